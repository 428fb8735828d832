//! `orca status`'s tables: containers, then users, then recent stops, from the admin API's
//! [`ContainersView`]. A pure function of the document and the time, so it is tested as text.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::api::ContainersView;
use super::time::Timestamp;
use crate::units::{format_bytes, format_duration};

/// How many recent stops are shown.
pub const RECENT_STOPS: usize = 10;

/// The text `orca status` prints for `view`, with ages and idle times counted up to `now`.
pub fn render_status(view: &ContainersView, now: SystemTime) -> String {
    let mut out = String::new();
    if view.containers.is_empty() {
        out.push_str(
            "no containers are running; orca starts one when a user arrives for an image\n",
        );
    } else {
        let mut rows = vec![row(&[
            "NAME", "IMAGE", "PHASE", "USERS", "SERVED", "AGE", "WHY",
        ])];
        for c in &view.containers {
            rows.push(vec![
                c.name.clone(),
                c.image.clone(),
                c.phase.clone(),
                c.users.len().to_string(),
                c.served.to_string(),
                since(c.created, now),
                c.why.clone(),
            ]);
        }
        out.push_str(&table(&rows));
        out.push('\n');
        let mut rows = vec![row(&[
            "USER",
            "IMAGE",
            "CONTAINER",
            "CONN",
            "IDLE",
            "IN",
            "OUT",
        ])];
        for c in &view.containers {
            for u in &c.users {
                rows.push(vec![
                    u.user.clone(),
                    c.image.clone(),
                    c.name.clone(),
                    u.sessions.to_string(),
                    since(u.last_active, now),
                    format_bytes(u.bytes_in),
                    format_bytes(u.bytes_out),
                ]);
            }
        }
        if rows.len() == 1 {
            out.push_str("no users are connected\n");
        } else {
            out.push_str(&table(&rows));
        }
    }
    if !view.recent_stops.is_empty() {
        let shown = view.recent_stops.len().min(RECENT_STOPS);
        let _ = writeln!(out, "\nrecent stops (last {shown}, newest last):");
        // The reason is a sentence: it goes last, like WHY above, so the columns stay aligned.
        let mut rows = vec![row(&["NAME", "IMAGE", "WHEN", "REASON"])];
        for s in &view.recent_stops[view.recent_stops.len() - shown..] {
            rows.push(vec![
                s.name.clone(),
                s.image.clone(),
                format!("{} ago", since(s.at, now)),
                s.detail.clone(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// Whole seconds from `then` to `now` (zero when `then` is ahead: clocks of two machines).
fn since(then: Timestamp, now: SystemTime) -> String {
    let elapsed = now.duration_since(then.0).unwrap_or_default();
    format_duration(Duration::from_secs(elapsed.as_secs()))
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns two spaces apart. Cells come from the gateway, and user ids may hold
/// any character: control characters are escaped so a crafted id cannot move the cursor or
/// rewrite the operator's terminal.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

fn printable(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_string();
    }
    cell.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::admin::api::{ContainerView, StopView, UserView};

    const NOW: u64 = 1_700_000_000;

    fn ago(secs: u64) -> Timestamp {
        Timestamp(UNIX_EPOCH + Duration::from_secs(NOW - secs))
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn stop(n: usize) -> StopView {
        StopView {
            name: format!("orca-t-web-{n:08}"),
            image: "web".into(),
            reason: "linger".into(),
            detail: "no users for 5m (orca.timeout.linger)".into(),
            at: ago(60 * n as u64),
        }
    }

    fn view() -> ContainersView {
        ContainersView {
            containers: vec![
                ContainerView {
                    name: "orca-t-shell-0000beef".into(),
                    id: Some("c2".into()),
                    image: "shell".into(),
                    phase: "starting".into(),
                    phase_detail: "starting the container".into(),
                    address: None,
                    created: ago(4),
                    served: 0,
                    accepts_users: true,
                    why: "starting the container".into(),
                    users: vec![],
                },
                ContainerView {
                    name: "orca-t-web-0000abcd".into(),
                    id: Some("c1".into()),
                    image: "web".into(),
                    phase: "ready".into(),
                    phase_detail: "ready".into(),
                    address: Some("172.17.0.2".parse().unwrap()),
                    created: ago(3725),
                    served: 3,
                    accepts_users: true,
                    why: "serving 2 users".into(),
                    users: vec![
                        UserView {
                            user: "alice@example.org".into(),
                            sessions: 2,
                            since: ago(600),
                            last_active: ago(5),
                            bytes_in: 340,
                            bytes_out: 1_258_291,
                        },
                        UserView {
                            user: "evil\u{1b}[2J".into(),
                            sessions: 0,
                            since: ago(90),
                            last_active: ago(90),
                            bytes_in: 0,
                            bytes_out: 2048,
                        },
                    ],
                },
            ],
            recent_stops: (1..=12).rev().map(stop).collect(),
        }
    }

    #[test]
    fn the_status_tables_show_containers_users_and_the_last_ten_stops() {
        let text = render_status(&view(), now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME                   IMAGE  PHASE     USERS  SERVED  AGE     WHY"
        );
        assert_eq!(
            lines[1],
            "orca-t-shell-0000beef  shell  starting  0      0       4s      starting the container"
        );
        assert_eq!(
            lines[2],
            "orca-t-web-0000abcd    web    ready     2      3       1h2m5s  serving 2 users"
        );
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4],
            "USER               IMAGE  CONTAINER            CONN  IDLE   IN     OUT"
        );
        assert_eq!(
            lines[5],
            "alice@example.org  web    orca-t-web-0000abcd  2     5s     340 B  1.2 MiB"
        );
        // The escape character arrives escaped, never raw.
        assert_eq!(
            lines[6],
            "evil\\u{1b}[2J      web    orca-t-web-0000abcd  0     1m30s  0 B    2.0 KiB"
        );
        assert!(!text.contains('\u{1b}'));
        assert_eq!(lines[7], "");
        assert_eq!(lines[8], "recent stops (last 10, newest last):");
        assert_eq!(lines[9], "NAME                 IMAGE  WHEN     REASON");
        assert_eq!(
            lines[10],
            "orca-t-web-00000010  web    10m ago  no users for 5m (orca.timeout.linger)"
        );
        assert_eq!(
            lines[19],
            "orca-t-web-00000001  web    1m ago   no users for 5m (orca.timeout.linger)"
        );
        assert_eq!(lines.len(), 20);
    }

    #[test]
    fn nothing_running_says_so() {
        let empty = ContainersView {
            containers: vec![],
            recent_stops: vec![],
        };
        assert_eq!(
            render_status(&empty, now()),
            "no containers are running; orca starts one when a user arrives for an image\n"
        );
    }

    #[test]
    fn containers_without_users_say_no_one_is_connected() {
        let mut v = view();
        v.containers.truncate(1);
        v.recent_stops.clear();
        let text = render_status(&v, now());
        assert!(text.ends_with("\nno users are connected\n"), "{text}");
    }
}
