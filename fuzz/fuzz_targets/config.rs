//! Any text as a configuration file: a config or errors, never a panic; a config written back
//! as TOML reads back the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use orca::config::Config;

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new("/etc/orca"), None) {
        Ok(config) => {
            let again = Config::parse(&config.to_toml(), Path::new("/elsewhere"), None)
                .expect("a rendered configuration parses");
            assert_eq!(
                again, config,
                "the rendered configuration reads back the same"
            );
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            let _ = errors.to_string();
        }
    }
});
