//! Tables in docs/ that mirror code, pinned to the code (issue 12), as `Step::ALL` is to
//! docs/design.md: a code added, renamed or removed on one side fails here.

use std::collections::BTreeSet;

fn doc(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(p).unwrap()
}

/// The section of `text` that starts at `heading` and ends at the next heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let rest = text.split(heading).nth(1).unwrap();
    let end = rest.find("\n#").unwrap_or(rest.len());
    &rest[..end]
}

/// Backticked words in the first column of a markdown table.
fn first_column(table: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in table.lines().filter(|l| l.starts_with("| `")) {
        let cell = l.split('|').nth(1).unwrap();
        for part in cell.split('`').skip(1).step_by(2) {
            out.insert(part.split_whitespace().next().unwrap().to_string());
        }
    }
    out
}

/// Audit finding codes: the docs/verify-audit.md table lists every code the audit emits,
/// and every code it lists is one the audit source spells.
#[test]
fn audit_finding_table_matches_the_code() {
    let table = first_column(section(
        &doc("docs/verify-audit.md"),
        "### Findings and their fixes",
    ));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/audit");
    let mut source = String::new();
    let mut emitted = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap().to_string();
        for after in code.split("Finding::new(").skip(1) {
            let lit = after.trim_start();
            if let Some(rest) = lit.strip_prefix('"') {
                emitted.insert(rest.split('"').next().unwrap().to_string());
            }
        }
        source.push_str(&code);
    }
    emitted.extend(crate::audit::strength::CODES.iter().map(|c| c.to_string()));
    assert!(emitted.len() > 20, "{emitted:?}");
    let undocumented: Vec<_> = emitted.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "findings missing from docs/verify-audit.md: {undocumented:?}"
    );
    for code in &table {
        assert!(
            source.contains(&format!("\"{code}\"")),
            "docs/verify-audit.md lists `{code}`, which the audit never emits"
        );
    }
}

/// The probe action table in docs/verify-audit.md names only actions that exist.
#[test]
fn probe_action_table_names_real_actions() {
    let table = first_column(section(
        &doc("docs/verify-audit.md"),
        "### Probe actions verify uses",
    ));
    assert!(table.len() > 20, "{table:?}");
    for name in &table {
        assert!(
            crate::probe::Action::from_name(name).is_some(),
            "docs/verify-audit.md names probe action `{name}`, which does not exist"
        );
    }
}

/// Every guard the filter can install is named in docs/seccomp.md's "What every profile
/// enforces" table (shorthand `a_b/c` and `prefix*` count), so a new guard cannot ship
/// undocumented.
#[test]
fn seccomp_guard_table_names_every_guard() {
    let text = doc("docs/seccomp.md");
    let table = section(&text, "## What every profile enforces");
    let mut names = BTreeSet::new();
    let mut prefixes = Vec::new();
    for token in table.split(|c: char| !(c.is_ascii_alphanumeric() || "_/*".contains(c))) {
        let mut parts = token.split('/');
        let Some(first) = parts.next() else { continue };
        if let Some(p) = first.strip_suffix('*') {
            prefixes.push(p.to_string());
        }
        names.insert(first.to_string());
        // `ioprio_set/get`, `io_uring_setup/enter/register`: siblings share the stem.
        let stem = first.rsplit_once('_').map_or("", |(s, _)| s);
        for p in parts {
            names.insert(p.to_string());
            if !stem.is_empty() {
                names.insert(format!("{stem}_{p}"));
            }
        }
    }
    let missing: Vec<&str> = crate::seccomp::guards::every_setting()
        .iter()
        .map(|g| g.name)
        .filter(|n| !names.contains(*n) && !prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        missing.is_empty(),
        "guards missing from docs/seccomp.md: {missing:?}"
    );
}

/// The error codes docs/policy.md calls stable: every code passed straight to
/// `PolicyError::at`/`whole` is listed, and every listed code is one the source spells.
#[test]
fn policy_error_codes_are_listed() {
    let listed = first_column(section(&doc("docs/policy.md"), "### Error codes"));
    assert!(listed.len() > 25, "{listed:?}");
    let mut source = String::new();
    let mut direct = BTreeSet::new();
    let mut stack = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p.ends_with("src/doc_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_string();
            // The code is the third argument of `at` and the second of `whole`.
            for (call, nth) in [("PolicyError::at(", 2), ("PolicyError::whole(", 1)] {
                for after in code.split(call).skip(1) {
                    let arg = after.split(',').nth(nth).unwrap_or("").trim();
                    if let Some(lit) = arg.strip_prefix('"') {
                        direct.insert(lit.split('"').next().unwrap().to_string());
                    }
                }
            }
            source.push_str(&code);
        }
    }
    // Codes of typed values, raised while the file is read (`policy::values`).
    direct.extend(
        crate::policy::values::CODES
            .iter()
            .map(|(_, c)| c.to_string()),
    );
    assert!(direct.len() > 15, "{direct:?}");
    let unlisted: Vec<_> = direct.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "error codes missing from docs/policy.md: {unlisted:?}"
    );
    for c in &listed {
        assert!(
            source.contains(&format!("\"{c}\"")),
            "docs/policy.md lists `{c}`, which no code spells"
        );
    }
}
