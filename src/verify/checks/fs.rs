//! Landlock filesystem rows: deny paths, outside paths, links, the allowed control rows.

use super::*;

/// The action that attacks a path: read a regular file (the first found under a
/// directory, as root, three levels deep), else list the directory.
pub fn attack_for(path: &Path) -> Option<(Action, PathBuf)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return Some((Action::Read, path.to_path_buf()));
    }
    Some(match first_file_under(path, 3) {
        Some(f) => (Action::Read, f),
        None => (Action::List, path.to_path_buf()),
    })
}

pub(super) fn first_file_under(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in &entries {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            return Some(e.path());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| first_file_under(&e.path(), depth - 1))
}

/// A path attack row; the attempt is skipped (INCONCLUSIVE, nothing to protect) when the
/// path does not exist.
pub(super) fn path_row(id: &str, kind: Kind, label: &str, path: &Path) -> Check {
    match attack_for(path) {
        Some((action, target)) => Check::new(
            id,
            kind,
            "landlock-fs",
            format!("{action} {label} ({})", target.display()),
            action,
            vec![target.display().to_string()],
            Expect::Denied,
        ),
        None => {
            let mut c = Check::new(
                id,
                kind,
                "landlock-fs",
                format!("read {label}"),
                Action::Read,
                vec![path.display().to_string()],
                Expect::Denied,
            );
            c.skip = Some(format!(
                "{} does not exist (nothing to protect)",
                path.display()
            ));
            c
        }
    }
}

pub(super) fn deny_paths(inp: &Inputs<'_>) -> Vec<Check> {
    inp.listed(ListKind::Deny)
        .enumerate()
        .map(|(i, e)| {
            path_row(
                &format!("deny-{}", i + 1),
                Kind::Enforcement,
                &e.at,
                &e.path,
            )
        })
        .collect()
}

pub(super) fn outside_paths(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let fx = inp.fx;
    let mut v = Vec::new();
    let mut outside = Check::new(
        "read-outside",
        Kind::Enforcement,
        "landlock-fs",
        "read a file outside every list".into(),
        Action::Read,
        vec![fx.outside_file.display().to_string()],
        Expect::Denied,
    );
    let mut write = Check::new(
        "write-outside",
        Kind::Enforcement,
        "landlock-fs",
        "create a file outside the write set".into(),
        Action::CreateFresh,
        vec![fx
            .owned_dir
            .join(format!("written-by-verify-{}", fx.token))
            .display()
            .to_string()],
        Expect::Denied,
    );
    if !fx.scratch_outside {
        let why = "every scratch location is under a policy list".to_string();
        outside.skip = Some(why.clone());
        write.skip = Some(why);
    }
    v.push(outside);
    v.push(write);
    let tmp = PathBuf::from(format!("/tmp/clawjail-verify-{}-created", fx.token));
    if !inp.writable(&tmp) {
        cleanup.push(tmp.clone());
        v.push(Check::new(
            "tmp-create",
            Kind::Enforcement,
            "landlock-fs",
            "create a file in /tmp (not in the write set)".into(),
            Action::CreateFresh,
            vec![tmp.display().to_string()],
            Expect::Denied,
        ));
    }
    let sh = std::fs::canonicalize("/bin/sh").unwrap_or_else(|_| PathBuf::from("/bin/sh"));
    if !inp.executable(Path::new("/bin/sh")) && !inp.executable(&sh) {
        v.push(Check::new(
            "exec-sh",
            Kind::Enforcement,
            "landlock-fs",
            "exec /bin/sh (not in the exec set)".into(),
            Action::Exec,
            vec!["/bin/sh".into(), "-c".into(), "true".into()],
            Expect::Denied,
        ));
    }
    v
}

/// The first directory of the write set that exists (link and write attempts go there).
pub(super) fn write_dir<'a>(inp: &'a Inputs<'_>) -> Option<&'a Listed> {
    inp.listed(ListKind::Write).find(|e| e.path.is_dir())
}

pub(super) fn links(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let Some(w) = write_dir(inp) else {
        return Vec::new();
    };
    let token = &inp.fx.token;
    let link = w.path.join(format!(".clawjail-verify-{token}-symlink"));
    let hard = w.path.join(format!(".clawjail-verify-{token}-hardlink"));
    cleanup.push(link.clone());
    cleanup.push(hard.clone());
    vec![
        Check::new(
            "symlink-escape",
            Kind::Enforcement,
            "landlock-fs",
            format!(
                "symlink in {} to an outside file, read through it",
                w.path.display()
            ),
            Action::SymlinkRead,
            vec![
                inp.fx.outside_file.display().to_string(),
                link.display().to_string(),
            ],
            Expect::Denied,
        ),
        Check::new(
            "hardlink-escape",
            Kind::Enforcement,
            "landlock-fs",
            format!("hard-link an outside file into {}", w.path.display()),
            Action::Hardlink,
            vec![
                inp.fx.owned_file.display().to_string(),
                hard.display().to_string(),
            ],
            Expect::Denied,
        ),
    ]
}

pub(super) fn allowed(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let mut v = Vec::new();
    if let Some((e, (action, target))) = inp
        .listed(ListKind::Read)
        .filter(|e| inp.reachable(&e.path).is_some())
        .find_map(|e| attack_for(&e.path).map(|a| (e, a)))
    {
        v.push(Check::new(
            "read-allowed",
            Kind::Enforcement,
            "landlock-fs",
            format!("{action} {} (under {})", target.display(), e.at),
            action,
            vec![target.display().to_string()],
            Expect::Allowed,
        ));
    }
    if let Some(w) = write_dir(inp) {
        let f = w
            .path
            .join(format!(".clawjail-verify-{}-write", inp.fx.token));
        cleanup.push(f.clone());
        v.push(Check::new(
            "write-allowed",
            Kind::Enforcement,
            "landlock-fs",
            format!("create a file in {}", w.at),
            Action::CreateFresh,
            vec![f.display().to_string()],
            Expect::Allowed,
        ));
    }
    if let Some(p) = inp.listed_connect_port() {
        v.push(Check::new(
            "tcp-connect-listed",
            Kind::Enforcement,
            "landlock-net",
            format!("TCP connect 127.0.0.1:{p} (listed in network.connect)"),
            Action::TcpConnect,
            vec!["127.0.0.1".into(), p.to_string()],
            Expect::Allowed,
        ));
    }
    v
}
