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

/// Kebab-case strings in src/audit's code that are not finding codes.
const NOT_FINDING_CODES: &[&str] = &[
    // statedir.rs: a file-name marker of a credential file.
    "api-key",
];

/// Audit finding codes: the docs/verify-audit.md table lists every code the audit emits,
/// and every code it lists is one the audit source spells. A code reaches `Finding::new`
/// directly, from a tuple (`mode_problem`) or as a fallback (`weak-confinement`), so every
/// kebab-case string in src/audit's non-test code counts (or is in `NOT_FINDING_CODES`).
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
        kebab_literals(&code, &mut emitted);
        source.push_str(&code);
    }
    for c in NOT_FINDING_CODES {
        assert!(
            emitted.remove(*c),
            "NOT_FINDING_CODES lists {c:?}, which src/audit no longer spells"
        );
    }
    emitted.extend(crate::audit::strength::CODES.iter().map(|c| c.to_string()));
    assert!(emitted.len() > 20, "{emitted:?}");
    let undocumented: Vec<_> = emitted.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "findings missing from docs/verify-audit.md: {undocumented:?} (a kebab-case string in src/audit; if one is not a finding code, add it to NOT_FINDING_CODES in src/doc_tests.rs)"
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
    // And the other way: every syscall the Call column names is one the filter guards.
    let guarded: BTreeSet<&str> = crate::seccomp::guards::every_setting()
        .iter()
        .map(|g| g.name)
        .collect();
    let calls: String = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Call"))
        .filter_map(|l| l.split('|').nth(1))
        .collect::<Vec<_>>()
        .join(" ");
    let stale: Vec<String> = calls
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_/".contains(c)))
        .flat_map(|token| {
            // `process_vm_readv/writev`: the sibling is `process_vm_writev`.
            let mut parts = token.split('/');
            let first = parts.next().unwrap_or_default();
            let stem = first.rsplit_once('_').map_or("", |(s, _)| s);
            let siblings: Vec<String> = parts
                .map(|p| {
                    if stem.is_empty() {
                        p.to_string()
                    } else {
                        format!("{stem}_{p}")
                    }
                })
                .collect();
            std::iter::once(first.to_string()).chain(siblings)
        })
        .filter(|n| crate::seccomp::syscalls::number(n).is_some() && !guarded.contains(n.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        stale.is_empty(),
        "docs/seccomp.md's guard table names syscalls no guard covers: {stale:?}"
    );
}

/// Kebab-case strings in the code of a file that builds a `PolicyError` that are not error
/// codes, each with where it comes from.
const NOT_POLICY_ERROR_CODES: &[&str] = &[
    // cli.rs: the probe action verify runs for a non-UTF-8 argument.
    "non-utf8-argument",
];

/// Every kebab-case string literal (`"a-b"`) in `code`, outside attributes
/// (`#[serde(rename_all = "kebab-case")]`).
fn kebab_literals(code: &str, out: &mut BTreeSet<String>) {
    for line in code.lines().filter(|l| !l.trim_start().starts_with("#[")) {
        for lit in line.split('"').skip(1).step_by(2) {
            let words: Vec<&str> = lit.split('-').collect();
            let word = |w: &&str| {
                !w.is_empty()
                    && w.starts_with(|c: char| c.is_ascii_lowercase())
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            };
            if words.len() > 1 && words.iter().all(word) {
                out.insert(lit.to_string());
            }
        }
    }
}

/// The error codes docs/policy.md calls stable. A code reaches `PolicyError::at`/`whole`
/// directly, through a helper (`err(src, s, "bad-endpoint", ..)`) or from a `match`
/// (`PathError::UnsafeSymlink { .. } => "unsafe-symlink"`), so every kebab-case string in
/// the non-test code of a file that builds a `PolicyError` must be a listed code (or in
/// `NOT_POLICY_ERROR_CODES`); and every listed code is one the source spells.
#[test]
fn policy_error_codes_are_listed() {
    let listed = first_column(section(&doc("docs/policy.md"), "### Error codes"));
    assert!(listed.len() > 25, "{listed:?}");
    let mut source = String::new();
    let mut emitted = BTreeSet::new();
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
            if code.contains("PolicyError::") || code.contains("PolicyError {") {
                kebab_literals(&code, &mut emitted);
            }
            source.push_str(&code);
        }
    }
    // Codes of typed values, raised while the file is read (`policy::values`).
    emitted.extend(
        crate::policy::values::CODES
            .iter()
            .map(|(_, c)| c.to_string()),
    );
    // The codes passed straight to the constructors are among them (a sanity check
    // that the scan sees the files at all).
    for known in [
        "unknown-key",
        "missing-path",
        "bad-endpoint",
        "undefined-variable",
    ] {
        assert!(emitted.contains(known), "{known} not found in {emitted:?}");
    }
    let unlisted: Vec<_> = emitted
        .iter()
        .filter(|c| !listed.contains(*c) && !NOT_POLICY_ERROR_CODES.contains(&c.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "error codes missing from docs/policy.md's table: {unlisted:?} (a kebab-case string in a file that builds a PolicyError; if one is not an error code, add it to NOT_POLICY_ERROR_CODES in src/doc_tests.rs with where it comes from)"
    );
    for c in NOT_POLICY_ERROR_CODES {
        assert!(
            emitted.contains(*c),
            "NOT_POLICY_ERROR_CODES lists {c:?}, which no such file spells any more"
        );
    }
    for c in &listed {
        assert!(
            source.contains(&format!("\"{c}\"")),
            "docs/policy.md lists `{c}`, which no code spells"
        );
    }
    // Codes cited elsewhere (`error[code]` in any doc, docs/landlock.md's own list) are
    // codes of the table.
    let mut cited = Vec::new();
    let mut docs = vec!["README.md".to_string()];
    for e in
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).unwrap()
    {
        docs.push(format!("docs/{}", e.unwrap().file_name().to_string_lossy()));
    }
    for d in docs.iter().filter(|d| d.ends_with(".md")) {
        for after in doc(d).split("error[").skip(1) {
            cited.push((d.clone(), after.split(']').next().unwrap().to_string()));
        }
    }
    let landlock = doc("docs/landlock.md");
    // Its list ends at the first `;` (then prose about refusals).
    let list = section(&landlock, "## Error codes")
        .split(';')
        .next()
        .unwrap();
    for code in list.split('`').skip(1).step_by(2) {
        cited.push(("docs/landlock.md".into(), code.to_string()));
    }
    for (d, code) in cited {
        assert!(
            listed.contains(&code),
            "{d} cites error code `{code}`, which docs/policy.md's table does not list"
        );
    }
}

/// Step numbers cited in prose ("step 16 (`landlock-restrict-self`)", "steps 7-9
/// (`drop-bounding-set`, `lock-securebits`, `set-ids`)") name the steps `Step::ALL` has at
/// those places: a step added before them would otherwise leave every such number stale
/// (several were, when this test was written). Docs and code comments cite a launch step
/// by number only in this form.
#[test]
fn step_numbers_in_docs_name_the_right_steps() {
    use crate::launch::Step;
    let mut files = vec!["README.md".to_string()];
    for e in
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).unwrap()
    {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut stack = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("doc_tests.rs") {
                let rel = p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
                files.push(rel.display().to_string());
            }
        }
    }
    let mut checked = 0;
    for f in &files {
        // Joined lines: a citation may wrap.
        let text = doc(f).split_whitespace().collect::<Vec<_>>().join(" ");
        for (i, _) in text.match_indices("step") {
            let rest = &text[i + "step".len()..];
            let rest = rest.strip_prefix('s').unwrap_or(rest);
            let Some(rest) = rest.strip_prefix(' ') else {
                continue;
            };
            let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
            let n = digits(rest);
            if n == 0 {
                continue;
            }
            let first: usize = rest[..n].parse().unwrap();
            let mut rest = &rest[n..];
            let mut last = first;
            if let Some(r) = rest.strip_prefix('-').filter(|r| digits(r) > 0) {
                last = r[..digits(r)].parse().unwrap();
                rest = &r[digits(r)..];
            }
            let Some(inner) = rest.strip_prefix(" (`") else {
                continue;
            };
            let names: Vec<&str> = inner
                .split(')')
                .next()
                .unwrap()
                .split(", ")
                .map(|n| n.trim_matches('`'))
                .collect();
            let expected: Vec<&str> = Step::ALL
                .get(first - 1..last)
                .unwrap_or_else(|| {
                    panic!(
                        "{f}: step {first}-{last}: there are {} steps",
                        Step::ALL.len()
                    )
                })
                .iter()
                .map(|s| s.name())
                .collect();
            assert_eq!(
                names,
                expected,
                "{f}: \"step{} {first}{} (...)\" names the wrong steps (Step::ALL)",
                if last > first { "s" } else { "" },
                if last > first {
                    format!("-{last}")
                } else {
                    String::new()
                }
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} step citations found");
}

/// The keys the policy schema accepts in `table` (`""`: the top level), read from the
/// schema itself: the deserializer's own "expected one of" list for an unknown key.
fn schema_keys(table: &str) -> BTreeSet<String> {
    use crate::policy::{Origin, Source};
    let text = if table.is_empty() {
        "version = 1\nzz_not_a_key = 1\n".to_string()
    } else {
        format!("version = 1\n[{table}]\nzz_not_a_key = 1\n")
    };
    let e = crate::policy::load(Source::new(Origin::Flag("k.toml".into()), text)).unwrap_err();
    assert_eq!(e.code, "unknown-key", "{e}");
    // "expected one of: a, b, c", "expected a or b", "expected a".
    let list = e.message.rsplit("expected ").next().unwrap();
    let list = list.strip_prefix("one of: ").unwrap_or(list);
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| {
            k.trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_string()
        })
        .collect()
}

/// docs/policy.md documents exactly the keys the schema accepts, table by table (a key
/// added to a policy struct without a row, or a row for a key that was removed, fails).
#[test]
fn policy_key_tables_match_the_schema() {
    let text = doc("docs/policy.md");
    let top = schema_keys("");
    assert!(top.contains("version") && top.contains("egress"), "{top:?}");
    let top_table = first_column(section(&text, "## Top level"));
    for key in &top {
        let documented = top_table.contains(key)
            || top_table.iter().any(|t| {
                t.strip_prefix('[').is_some_and(|t| {
                    t.starts_with(&format!("{key}]")) || t.starts_with(&format!("{key}."))
                })
            })
            || text.contains(&format!("## `[{key}]`"));
        assert!(
            documented,
            "docs/policy.md does not document the top-level key `{key}`"
        );
    }
    let tables: Vec<&String> = top
        .iter()
        .filter(|k| text.contains(&format!("## `[{k}]`")))
        .collect();
    assert!(tables.len() >= 10, "{tables:?}");
    for t in tables {
        let documented = first_column(section(&text, &format!("## `[{t}]`")));
        let schema = schema_keys(t);
        assert_eq!(
            documented, schema,
            "docs/policy.md's [{t}] table (left) and the schema's keys (right) differ"
        );
    }
}

/// docs/landlock.md's `[filesystem]` table: the first sentence of the `read`, `write` and
/// `exec` rows names exactly the rights `src/landlock/rights.rs` grants for that list
/// (`read` in the `write` row stands for the read rights).
#[test]
fn landlock_rights_table_matches_the_code() {
    use crate::landlock::rights;
    let text = doc("docs/landlock.md");
    let table = section(&text, "## `[filesystem]`");
    let names =
        |r| -> BTreeSet<String> { rights::names(r).split(',').map(str::to_string).collect() };
    for (key, granted) in [
        ("read", rights::READ),
        ("write", rights::WRITE),
        ("exec", rights::EXEC),
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/landlock.md has no `{key}` row"));
        let cell = row.split('|').nth(2).unwrap();
        let first = cell.split(". ").next().unwrap();
        let mut documented = BTreeSet::new();
        for word in first.split('`').skip(1).step_by(2) {
            if word == "read" {
                documented.extend(names(rights::READ));
            } else {
                documented.insert(word.to_string());
            }
        }
        assert_eq!(
            documented,
            names(granted),
            "docs/landlock.md's `{key}` row (left) and rights.rs (right) differ"
        );
    }
}
