//! What a resolver hands back across the WIT boundary, as any plugin might write it: the
//! gateway's check never panics, and whatever it accepts is what the proxy can send on — the id
//! and groups as header values a container reads back unchanged, a cookie as a `Set-Cookie` the
//! browser returns unchanged.
#![no_main]

use hyper::HeaderMap;
use hyper::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;
use orca::front::cookies;
use orca::identity::chain::check_verdict;
use orca::identity::{Denial, Grant, Identity, Interface, Issued, Verdict};

type Who = (String, Option<String>, Vec<String>, Option<Vec<String>>);

fuzz_target!(
    |input: (u8, Who, u32, Option<(String, String, u32)>, bool)| {
        let (kind, (id, display_name, groups, images), seconds, cookie, session) = input;
        let verdict = match kind % 3 {
            0 => Verdict::Pass,
            1 => Verdict::Deny(Denial {
                reason: id,
                message: display_name,
            }),
            _ => Verdict::Allow(Grant {
                who: Identity {
                    id,
                    display_name,
                    groups,
                    images,
                },
                cache_seconds: seconds,
                set_cookie: cookie.map(|(name, value, max_age_seconds)| Issued {
                    name,
                    value,
                    max_age_seconds,
                }),
            }),
        };
        let interface =
            [Interface::Http, Interface::Ssh, Interface::Password][usize::from(kind) % 3];
        let Ok(Verdict::Allow(grant)) = check_verdict(verdict, interface, session) else {
            return;
        };
        let who = &grant.who;
        let user = HeaderValue::from_str(&who.id).expect("an accepted id is a header value");
        assert_eq!(user.as_bytes(), who.id.as_bytes());
        let joined = who.groups.join(",");
        let header = HeaderValue::from_str(&joined).expect("accepted groups are a header value");
        let read: Vec<&str> = header
            .to_str()
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if header.to_str().is_ok() {
            assert_eq!(read, who.groups, "X-Orca-Groups {joined:?}");
        }
        if let Some(issued) = &grant.set_cookie {
            let set = cookies::set(
                &issued.name,
                &issued.value,
                issued.max_age_seconds,
                "example.org",
            );
            HeaderValue::from_str(&set).expect("an accepted cookie is a Set-Cookie value");
            // The browser sends back `name=value`; the gateway must read the same pair.
            let mut back = HeaderMap::new();
            back.insert(
                COOKIE,
                HeaderValue::from_str(&format!("{}={}", issued.name, issued.value))
                    .expect("cookie-safe"),
            );
            assert_eq!(
                cookies::parse(&back),
                [(issued.name.clone(), issued.value.clone())]
            );
        }
    }
);
