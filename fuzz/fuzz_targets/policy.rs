//! Fuzz the policy parser and its located diagnostics: no input may panic, and every
//! error must render (file:line:col computed from spans that could be out of range).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let src = clawjail::policy::Source::new(clawjail::policy::Origin::Flag("fuzz.toml".into()), text.to_string());
        if let Err(e) = clawjail::policy::load(src) {
            let _ = e.to_string();
        }
    }
});
