//! Property test of the policy parser (runs on stable in CI; `fuzz/` has the libFuzzer
//! target for longer runs). No input may panic, errors always render with a position
//! inside the text, and a valid policy survives re-parsing unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clawjail::policy::{load, Origin, Source};
use proptest::prelude::*;

const SEED: &str = include_str!("../policies/openclaw-gateway.toml");

fn check(text: String) {
    let len_lines = text.lines().count().max(1);
    let src = Source::new(Origin::Flag("p.toml".into()), text);
    if let Err(e) = load(src) {
        let rendered = e.to_string();
        assert!(rendered.starts_with("p.toml"), "{rendered}");
        if let Some((line, col)) = e.position {
            assert!(line >= 1 && line <= len_lines + 1 && col >= 1, "{rendered}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        check(s);
    }

    #[test]
    fn mutated_real_policy_never_panics(pos in 0usize..SEED.len(), cut in 0usize..40, insert in "[\\[\\]=\"'{}a-z0-9_.$~\\n ]{0,12}") {
        let mut s = SEED.to_string();
        let pos = (0..=pos).rev().find(|p| s.is_char_boundary(*p)).unwrap_or(0);
        let end = (pos..=(pos + cut).min(s.len())).rev().find(|p| s.is_char_boundary(*p)).unwrap_or(pos);
        s.replace_range(pos..end, &insert);
        check(s);
    }

    #[test]
    fn keys_and_values_from_the_schema_never_panic(
        section in prop::sample::select(vec!["identity", "capabilities", "filesystem", "network", "scope", "seccomp", "env", "limits", "process", "kernel", "risk", "vars", "bogus"]),
        key in prop::sample::select(vec!["user", "group", "keep", "read", "write", "deny", "bind", "connect", "profile", "action", "pass", "set", "nofile", "umask", "terminal", "landlock", "min_landlock_abi", "accept", "X"]),
        value in prop::sample::select(vec!["1", "-1", "\"x\"", "[]", "[1, \"a\"]", "{a = 1}", "true", "99999999999999999999", "\"${NOPE}\"", "\"0777\"", "\"null-stdin\"", "1.5"]),
    ) {
        check(format!("version = 1\n[{section}]\n{key} = {value}\n"));
    }
}

#[test]
fn the_shipped_policies_parse() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let r = load(Source::new(Origin::Flag(p.display().to_string()), text));
        assert!(
            r.is_ok(),
            "{}: {}",
            p.display(),
            r.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}
