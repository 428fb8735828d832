//! Image labels are written by whoever builds an image: any text must give a spec or errors,
//! never a panic; a spec hashes and prints.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    // One label per line, `key=value`; the first line is the image reference.
    let mut lines = data.lines();
    let reference = lines.next().unwrap_or("");
    let labels: HashMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match orca::images::parse_labels("sha256:0", reference, &labels) {
        Ok(spec) => {
            let _ = spec.spec_hash();
            let _ = spec.kinds.to_string();
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal names at least one label");
            for e in errors {
                let _ = e.to_string();
            }
        }
    }
});
