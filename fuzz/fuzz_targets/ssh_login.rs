//! SSH login names (`user` or `user+image`) from any client: parsed or refused, never a panic;
//! a parsed name keeps its parts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    if let Ok(login) = orca::ssh::login::parse(name) {
        assert!(!login.user.is_empty());
        assert!(name.starts_with(&login.user), "{name:?}");
        if let Some(image) = &login.image {
            assert!(!image.is_empty());
        }
    }
});
