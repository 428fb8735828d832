//! The HTTPS front in a real browser: headless Chromium (Debian's `chromium`, driven by
//! `chromedriver` over WebDriver) logs in through the login form, watches the waiting page follow
//! a slow container's phases until the app appears by itself, keeps the session cookie, and logs
//! out. Screenshots of the waiting page and of the app are left in
//! `<target>/test-artifacts/https_browser/`.

use std::path::Path;
use std::time::Duration;

use orca::front::pages::phase_text;
use orca_tests::artifacts_dir;
use orca_tests::browser::Browser;
use orca_tests::gateway::{PASSWORD, USER, gateway_of};

/// What the slow image's index page says once its httpd is up.
const APP_TEXT: &str = "The slow app is up";
/// What the login form refuses a wrong password with.
const REFUSED: &str = "Wrong user name or password.";
/// Long enough for a container to be created, sleep 3 s and pass its readiness check on a
/// loaded two-core machine; the test moves on as soon as the page does.
const STARTUP: Duration = Duration::from_secs(60);
/// For pages the gateway serves itself.
const PAGE: Duration = Duration::from_secs(15);
/// A screenshot of a 1024×768 window with text on it is several kilobytes; a blank or broken
/// one compresses to far less.
const MIN_PNG_BYTES: u64 = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_waits_for_the_container_and_logs_out() {
    let started = std::time::Instant::now();
    let artifacts = artifacts_dir("https_browser").expect("the artifacts directory");
    for old in ["waiting.png", "app.png", "chromedriver.log"] {
        let _ = std::fs::remove_file(artifacts.join(old));
    }
    // Declared before the browser so it is dropped after it: containers go last.
    let gw = gateway_of("slow", &[]).await;
    let browser = Browser::launch(&artifacts.join("chromedriver.log"))
        .await
        .expect("headless Chromium starts (scripts/setup installs chromium and chromium-driver)");
    // A path and a query, so "sent back where the user was going" is more than `/`.
    let home = gw.url("/index.html?from=browser");

    // A browser without a session is sent to the login form, with the way back.
    browser.goto(&home).await.expect("the first navigation");
    let form = browser
        .wait_until("the login form", PAGE, |p| {
            (p.title == "Log in").then(|| p.clone())
        })
        .await
        .expect("the login form");
    assert_eq!(
        form.url,
        gw.url("/.orca/login?back=/index.html%3Ffrom%3Dbrowser"),
        "{form:?}"
    );

    // A wrong password: the form again, with the refusal.
    browser.fill("input[name=user]", USER).await.expect("user");
    browser
        .fill("input[name=password]", "not-the-password")
        .await
        .expect("password");
    browser.click("button[type=submit]").await.expect("submit");
    let refusal = browser
        .wait_until("the refusal", PAGE, |p| {
            p.text.contains(REFUSED).then_some(())
        })
        .await;
    refusal.expect("a wrong password is refused on the form");
    assert_eq!(
        browser.text_of("[role=alert]").await.expect("the alert"),
        REFUSED
    );
    assert!(
        gw.scheduler.status().containers.is_empty(),
        "a refused login launches nothing"
    );

    // The right password: back to where the user was going, which is the waiting page while
    // the container starts.
    browser.fill("input[name=user]", USER).await.expect("user");
    browser
        .fill("input[name=password]", PASSWORD)
        .await
        .expect("password");
    browser.click("button[type=submit]").await.expect("submit");
    let starting = format!("Starting {}", gw.image);
    let waiting = browser
        .wait_until("the waiting page", PAGE, |p| {
            (p.title == starting).then(|| p.clone())
        })
        .await
        .expect("the login sends the browser back, to the waiting page");
    assert_eq!(waiting.url, home, "sent back to the original URL");
    let phases: Vec<&str> = ["queued", "creating", "starting", "waiting_ready"]
        .into_iter()
        .map(phase_text)
        .collect();
    assert!(
        phases.iter().any(|ph| waiting.text.contains(ph)),
        "the waiting page names a phase: {waiting:?}"
    );
    let shot = artifacts.join("waiting.png");
    save_screenshot(&shot, &browser).await;
    // The screenshot is only of the waiting page if the page had not moved on yet.
    let after = browser.page().await.expect("the page after the screenshot");
    assert_eq!(
        after.title, starting,
        "the app came up before the waiting page could be photographed; make the slow image slower"
    );

    // Without any further navigation, the page follows the phases (long-polling /.orca/wait
    // with the session cookie) and reloads into the app once it is ready.
    let mut seen: Vec<String> = Vec::new();
    let app = browser
        .wait_until(
            "the app, reached by the waiting page itself",
            STARTUP,
            |p| {
                if p.title == starting {
                    for ph in &phases {
                        if p.text.contains(ph) && !seen.iter().any(|s| s == ph) {
                            seen.push((*ph).to_string());
                        }
                    }
                }
                p.text.contains(APP_TEXT).then(|| p.clone())
            },
        )
        .await
        .expect("the waiting page moves on to the app");
    assert_eq!(
        app.url, home,
        "the app is at the address the user asked for"
    );
    assert!(
        seen.iter().any(|s| s == phase_text("waiting_ready")),
        "the page showed the readiness wait as it happened (seen: {seen:?})"
    );
    let shot = artifacts.join("app.png");
    save_screenshot(&shot, &browser).await;
    assert_ne!(
        std::fs::read(artifacts.join("waiting.png")).ok(),
        std::fs::read(&shot).ok(),
        "the two screenshots show different pages"
    );

    // The browser kept the session cookie, as the front set it.
    let cookies = browser.cookies().await.expect("the cookies");
    let session = cookies
        .iter()
        .find(|c| c["name"] == "orca_session")
        .unwrap_or_else(|| panic!("the browser keeps the session cookie: {cookies:?}"));
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Lax", "{session}");

    // With it, a new navigation goes straight to the container, as carol.
    browser
        .goto(&gw.url("/cgi-bin/whoami"))
        .await
        .expect("a second navigation");
    let me = browser.page().await.expect("the page");
    assert!(
        me.text.contains(&format!("user: {USER}")) && me.text.contains("groups: admins"),
        "the container sees the logged-in user at once: {me:?}"
    );
    assert_eq!(
        gw.scheduler.status().containers.len(),
        1,
        "one container for carol"
    );

    // Logout ends the session: the cookie is gone and the login form is back.
    browser
        .goto(&gw.url("/.orca/logout"))
        .await
        .expect("logout");
    let out = browser
        .wait_until("the login form after logout", PAGE, |p| {
            (p.title == "Log in").then(|| p.clone())
        })
        .await
        .expect("logout brings the login form back");
    assert!(out.url.starts_with(&gw.url("/.orca/login")), "{out:?}");
    let cookies = browser.cookies().await.expect("the cookies");
    assert!(
        !cookies.iter().any(|c| c["name"] == "orca_session"),
        "logout clears the session cookie: {cookies:?}"
    );

    browser.close().await.expect("the session ends");
    eprintln!(
        "https_browser: done in {:?}; screenshots in {}",
        started.elapsed(),
        artifacts.display()
    );
}

/// Takes a screenshot into `path` and checks it is real: a PNG of the viewport's size (the
/// window less what headless Chromium keeps for its own chrome), with something drawn in it.
async fn save_screenshot(path: &Path, browser: &Browser) {
    let size = browser.screenshot(path).await.expect("a screenshot");
    let viewport = browser.viewport().await.expect("the viewport");
    assert_eq!(size, viewport, "{} has the viewport's size", path.display());
    assert!(
        size.width >= 800 && size.height >= 400,
        "{} is {size:?}: not the 1024×768 window",
        path.display()
    );
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(
        bytes >= MIN_PNG_BYTES,
        "{} is {bytes} bytes: too small for a rendered page",
        path.display()
    );
}
