//! What a stranger puts in `Host` and `Cookie`: routing and cookie parsing never panic, and a
//! routed image name is one the subdomain spelled.
#![no_main]

use hyper::HeaderMap;
use hyper::header::{COOKIE, HeaderValue};
use libfuzzer_sys::fuzz_target;
use orca::front::cookies;
use orca::front::route::{Route, route};

fuzz_target!(|data: (&str, &[u8])| {
    let (host, cookie) = data;
    if let Route::Image(image) = route(host, "example.org") {
        assert!(!image.is_empty());
        assert!(
            host.to_ascii_lowercase().contains(&image),
            "{host:?} -> {image:?}"
        );
    }
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, value);
        for (name, _) in cookies::parse(&headers) {
            assert!(!name.is_empty());
        }
    }
});
