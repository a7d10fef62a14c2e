//! Integration tests: shell completions and man pages generate, and `--help` has examples.

use std::process::Command;

use crate::util::*;

fn clawjail(args: &[&str]) -> std::process::Output {
    Command::new(clawjail_bin()).args(args).output().unwrap()
}

#[test]
fn completions_generate_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = clawjail(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let out = stdout(&o);
        for sub in ["run", "check", "verify", "audit"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(
            !out.contains("__verify-exec"),
            "{shell}: internal command offered"
        );
    }
    // The bash script parses.
    let o = clawjail(&["completions", "bash"]);
    let s = Scratch::new("completions");
    let f = s.file("clawjail.bash", &stdout(&o), 0o644);
    let n = Command::new("bash").arg("-n").arg(&f).output().unwrap();
    assert!(n.status.success(), "bash -n: {}", stderr(&n));
    let bad = clawjail(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("possible values"), "{}", stderr(&bad));
}

#[test]
fn man_pages_generate() {
    let o = clawjail(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH clawjail 1"), "{page}");
    assert!(page.contains("Confine an AI"), "{page}");
    let s = Scratch::new("man");
    let dir = s.join("man1");
    std::fs::create_dir(&dir).unwrap();
    let o = clawjail(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for page in [
        "clawjail.1",
        "clawjail-run.1",
        "clawjail-check.1",
        "clawjail-verify.1",
        "clawjail-audit.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    // man(1) renders it when installed.
    if let Ok(r) = Command::new("man")
        .arg("-l")
        .arg(dir.join("clawjail-run.1"))
        .env("MANPAGER", "cat")
        .output()
    {
        if r.status.success() {
            assert!(stdout(&r).contains("--policy"), "{}", stdout(&r));
        }
    }
}

#[test]
fn help_shows_examples() {
    let o = clawjail(&["--help"]);
    let out = stdout(&o);
    assert!(out.contains("Examples:"), "{out}");
    assert!(out.contains("clawjail run -- openclaw gateway"), "{out}");
}
