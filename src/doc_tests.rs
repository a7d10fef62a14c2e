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
