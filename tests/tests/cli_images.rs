//! `orca images` against the real engine: effective settings and every label error.

use orca::config::Config;
use orca_tests::{build_image, unique_name};

#[tokio::test]
async fn orca_images_shows_settings_and_label_errors() {
    let good = unique_name("web");
    build_image(
        "web",
        &format!("{good}:latest"),
        &[("orca.name", good.as_str()), ("orca.users.concurrent", "7")],
    )
    .unwrap();
    let bad = unique_name("web");
    build_image(
        "web",
        &format!("{bad}:latest"),
        &[
            ("orca.name", bad.as_str()),
            ("orca.port", "99999"),
            ("orca.timout.session", "1h"),
        ],
    )
    .unwrap();
    let (text, code) = orca::cli::images(&Config::embedded()).await;
    assert_eq!(code, 0, "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{good} ")))
        .unwrap_or_else(|| panic!("{good} missing:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "ok", "{row}");
    assert_eq!(cells[2], "web", "{row}");
    assert_eq!(cells[6], "7", "concurrent users: {row}");
    assert!(
        text.contains(&format!("{good}: https://{good}.localhost/")),
        "{text}"
    );
    let bad_row = text
        .lines()
        .find(|l| l.starts_with(&format!("{bad} ")))
        .unwrap();
    assert!(bad_row.contains("disabled (2 label errors)"), "{bad_row}");
    assert!(
        text.contains("label `orca.port` = `99999`: must be a TCP port number from 1 to 65535"),
        "{text}"
    );
    assert!(
        text.contains("did you mean `orca.timeout.session`?"),
        "{text}"
    );
}
