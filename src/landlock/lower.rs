//! Lowering: policy entries -> the final Landlock rule list.
//!
//! Landlock is allow-only and a union: a rule on a directory grants its rights to everything
//! beneath it, and no rule can take a right away (landlock(7) "Filesystem flags",
//! kernel Documentation/userspace-api/landlock.rst "Layers of file path access rights").
//! So a `deny` path under an allowed parent, or a `read` path under a `write`/`exec` parent,
//! is implemented by *splitting* the parent: the parent gets no rule, each child gets the
//! parent's rights, except the child on the way to the carved-out path, which is split in
//! turn, and the carved-out path itself, which gets nothing from the parent. Entries are
//! compared by (device, inode), never by string.
//!
//! Cannot: cover entries created later directly in a split directory (they match no rule and
//! are unreachable), nor other names of a denied inode (hard links planted before launch, bind
//! mounts). Split directories themselves cannot be listed.
//!
//! Pure apart from `Tree::children`, which tests replace with a fake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use landlock::{AccessFs, BitFlags};

use crate::paths::FileId;

use super::rights;

/// Most rules one policy may produce through splits (a guard against `read = ["/"]` with a
/// deny deep in a huge tree).
pub const MAX_RULES: usize = 4096;

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Read,
    Write,
    Exec,
    /// Added by clawjail: exec chain, ELF loader, library directories.
    Auto,
}

/// One allowed path, resolved.
#[derive(Debug)]
pub struct Entry<H> {
    pub handle: H,
    pub id: FileId,
    /// Directory ids from `/` down to the parent.
    pub ancestors: Vec<FileId>,
    pub path: PathBuf,
    pub is_dir: bool,
    pub rights: BitFlags<AccessFs>,
    pub origin: Origin,
    pub why: String,
}

/// One `deny` path. When the path does not exist, `id`/`ancestors` describe its deepest
/// existing ancestor and `exists` is false: that ancestor is split so the path stays
/// unreachable if it appears later.
#[derive(Debug, Clone)]
pub struct Deny {
    pub id: FileId,
    pub ancestors: Vec<FileId>,
    pub path: PathBuf,
    pub exists: bool,
}

/// A directory entry as the split sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: FileId,
    pub path: PathBuf,
    pub is_dir: bool,
    pub is_symlink: bool,
}

/// Directory listings for splits (real: fds via `paths::children`).
pub trait Tree<H> {
    fn children(&mut self, dir: &H, path: &Path) -> Result<Vec<(H, NodeInfo)>, String>;
}

/// A rule as it will be applied.
#[derive(Debug)]
pub struct Rule<H> {
    pub handle: H,
    pub id: FileId,
    pub path: PathBuf,
    pub is_dir: bool,
    pub rights: BitFlags<AccessFs>,
    pub why: Vec<String>,
}

/// What a split did, for `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Split {
    pub parent: PathBuf,
    pub because: Vec<String>,
    /// Paths that got nothing from the parent.
    pub excluded: Vec<PathBuf>,
    /// Directories split in turn (no rule on them: not listable).
    pub split_dirs: Vec<PathBuf>,
    /// Children that received the parent's rights.
    pub granted_children: usize,
    /// Symlinks in split directories (no rule: access is checked where they lead).
    pub symlinks_skipped: Vec<PathBuf>,
}

/// Refusals found while lowering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    #[error("deny {deny} covers {path}, which is allowed by {origin} ({why}); a deny path may not equal or contain an allowed path")]
    DenyCoversAllowed {
        deny: PathBuf,
        path: PathBuf,
        origin: String,
        why: String,
    },
    #[error("{path} is listed in both read and write; remove it from one (read under a write parent is supported, the same path in both is ambiguous)")]
    ReadAndWrite { path: PathBuf },
    #[error(
        "splitting {parent} would create more than {MAX_RULES} rules; narrow the allowed parent"
    )]
    TooManyRules { parent: PathBuf },
    #[error("splitting {parent}: {why}")]
    Listing { parent: PathBuf, why: String },
}

/// The lowered rule set.
#[derive(Debug)]
pub struct Lowered<H> {
    pub rules: Vec<Rule<H>>,
    pub splits: Vec<Split>,
}

/// What must be carved out of one allowed directory.
#[derive(Debug, Default)]
struct Carve {
    skip: BTreeSet<FileId>,
    descend: BTreeSet<FileId>,
    because: Vec<String>,
    excluded: Vec<PathBuf>,
}

impl Carve {
    /// Carve `target` (with `target_ancestors`) out of the directory `parent`.
    fn add(&mut self, parent: FileId, target: FileId, target_ancestors: &[FileId], skip: bool) {
        if let Some(pos) = target_ancestors.iter().position(|a| *a == parent) {
            self.descend
                .extend(target_ancestors[pos + 1..].iter().copied());
        }
        if skip {
            self.skip.insert(target);
        } else {
            self.descend.insert(target);
        }
    }
}

fn is_under(ancestors: &[FileId], dir: FileId) -> bool {
    ancestors.contains(&dir)
}

/// Refuse a deny that equals or contains an allowed entry, and a path in both read and write.
fn check_conflicts<H>(entries: &[Entry<H>], denies: &[Deny]) -> Result<(), LowerError> {
    for d in denies.iter().filter(|d| d.exists) {
        for e in entries {
            if e.id == d.id || is_under(&e.ancestors, d.id) {
                return Err(LowerError::DenyCoversAllowed {
                    deny: d.path.clone(),
                    path: e.path.clone(),
                    origin: format!("{:?}", e.origin).to_lowercase(),
                    why: e.why.clone(),
                });
            }
        }
    }
    for r in entries.iter().filter(|e| e.origin == Origin::Read) {
        if entries
            .iter()
            .any(|w| w.origin == Origin::Write && w.id == r.id)
        {
            return Err(LowerError::ReadAndWrite {
                path: r.path.clone(),
            });
        }
    }
    Ok(())
}

/// What each allowed directory must have carved out (empty: keep its rule as is).
fn carves<H>(entries: &[Entry<H>], denies: &[Deny]) -> Vec<Carve> {
    entries
        .iter()
        .map(|p| {
            let mut c = Carve::default();
            if !p.is_dir {
                return c;
            }
            for d in denies {
                let inside = is_under(&d.ancestors, p.id) || (!d.exists && d.id == p.id);
                if !inside {
                    continue;
                }
                // An existing deny is skipped; a missing one splits its deepest ancestor.
                c.add(p.id, d.id, &d.ancestors, d.exists);
                c.because.push(format!("deny {}", d.path.display()));
                c.excluded.push(d.path.clone());
            }
            // A `read` entry narrows a parent that grants more (write, exec).
            for r in entries.iter().filter(|r| r.origin == Origin::Read) {
                if is_under(&r.ancestors, p.id) && !(p.rights & !r.rights).is_empty() {
                    c.add(p.id, r.id, &r.ancestors, true);
                    c.because.push(format!(
                        "read {} narrows {:?} {}",
                        r.path.display(),
                        p.origin,
                        p.path.display()
                    ));
                    c.excluded.push(r.path.clone());
                }
            }
            c
        })
        .collect()
}

/// Lower entries and denies to rules. Rights are given as policy rights; callers mask them
/// to the effective ABI afterwards (`rights::effective`).
pub fn lower<H, T: Tree<H>>(
    entries: Vec<Entry<H>>,
    denies: &[Deny],
    tree: &mut T,
) -> Result<Lowered<H>, LowerError> {
    check_conflicts(&entries, denies)?;
    let carves = carves(&entries, denies);
    let mut raw: Vec<Rule<H>> = Vec::new();
    let mut splits = Vec::new();
    for (e, c) in entries.into_iter().zip(carves) {
        if c.skip.is_empty() && c.descend.is_empty() {
            raw.push(Rule {
                handle: e.handle,
                id: e.id,
                path: e.path,
                is_dir: e.is_dir,
                rights: e.rights,
                why: vec![e.why],
            });
            continue;
        }
        let mut split = Split {
            parent: e.path.clone(),
            because: c.because.clone(),
            excluded: c.excluded.clone(),
            split_dirs: vec![e.path.clone()],
            granted_children: 0,
            symlinks_skipped: Vec::new(),
        };
        let why = format!("{} (split: {})", e.why, c.because.join("; "));
        split_dir(
            tree, &e.handle, &e.path, e.rights, &c, &why, &mut raw, &mut split,
        )?;
        splits.push(split);
    }
    Ok(Lowered {
        rules: merge(raw),
        splits,
    })
}

#[allow(clippy::too_many_arguments)]
fn split_dir<H, T: Tree<H>>(
    tree: &mut T,
    dir: &H,
    dir_path: &Path,
    rights: BitFlags<AccessFs>,
    carve: &Carve,
    why: &str,
    out: &mut Vec<Rule<H>>,
    report: &mut Split,
) -> Result<(), LowerError> {
    let kids = tree
        .children(dir, dir_path)
        .map_err(|why| LowerError::Listing {
            parent: dir_path.to_path_buf(),
            why,
        })?;
    for (h, n) in kids {
        if carve.skip.contains(&n.id) {
            continue;
        }
        if n.is_symlink {
            report.symlinks_skipped.push(n.path);
            continue;
        }
        if n.is_dir && carve.descend.contains(&n.id) {
            report.split_dirs.push(n.path.clone());
            split_dir(tree, &h, &n.path, rights, carve, why, out, report)?;
            continue;
        }
        if out.len() >= MAX_RULES {
            return Err(LowerError::TooManyRules {
                parent: report.parent.clone(),
            });
        }
        report.granted_children += 1;
        out.push(Rule {
            handle: h,
            id: n.id,
            path: n.path,
            is_dir: n.is_dir,
            rights,
            why: vec![why.to_string()],
        });
    }
    Ok(())
}

/// One rule per inode: rights are a union anyway, so say so once.
fn merge<H>(raw: Vec<Rule<H>>) -> Vec<Rule<H>> {
    let mut by_id: BTreeMap<FileId, Rule<H>> = BTreeMap::new();
    for r in raw {
        match by_id.get_mut(&r.id) {
            Some(have) => {
                have.rights |= r.rights;
                for w in r.why {
                    if !have.why.contains(&w) {
                        have.why.push(w);
                    }
                }
            }
            None => {
                by_id.insert(r.id, r);
            }
        }
    }
    let mut v: Vec<Rule<H>> = by_id.into_values().collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Rights an `Origin` grants (before ABI masking).
pub fn rights_for(origin: Origin) -> BitFlags<AccessFs> {
    match origin {
        Origin::Read => rights::READ,
        Origin::Write => rights::WRITE,
        Origin::Exec => rights::EXEC,
        Origin::Auto => rights::READ_FILE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake tree: path -> (id, is_dir, is_symlink); children by path prefix.
    struct Fake {
        nodes: Vec<(PathBuf, FileId, bool, bool)>,
    }

    fn id(n: u64) -> FileId {
        FileId { dev: 1, ino: n }
    }

    impl Fake {
        fn new(spec: &[(&str, u64, bool)]) -> Fake {
            Fake {
                nodes: spec
                    .iter()
                    .map(|(p, n, d)| (PathBuf::from(p), id(*n), *d, p.ends_with("@")))
                    .collect(),
            }
        }

        fn ancestors(&self, p: &str) -> Vec<FileId> {
            let mut v = vec![id(1)];
            let mut cur = PathBuf::from("/");
            let path = Path::new(p);
            let comps: Vec<_> = path.components().skip(1).collect();
            for c in &comps[..comps.len().saturating_sub(1)] {
                cur.push(c);
                if let Some(n) = self.nodes.iter().find(|n| n.0 == cur) {
                    v.push(n.1);
                }
            }
            v
        }

        fn entry(&self, p: &str, origin: Origin) -> Entry<PathBuf> {
            let n = self.nodes.iter().find(|n| n.0 == Path::new(p)).unwrap();
            Entry {
                handle: n.0.clone(),
                id: n.1,
                ancestors: self.ancestors(p),
                path: n.0.clone(),
                is_dir: n.2,
                rights: rights_for(origin),
                origin,
                why: format!("{origin:?}"),
            }
        }

        fn deny(&self, p: &str) -> Deny {
            match self.nodes.iter().find(|n| n.0 == Path::new(p)) {
                Some(n) => Deny {
                    id: n.1,
                    ancestors: self.ancestors(p),
                    path: n.0.clone(),
                    exists: true,
                },
                None => {
                    let parent = Path::new(p).parent().unwrap();
                    let n = self.nodes.iter().find(|n| n.0 == parent).unwrap();
                    Deny {
                        id: n.1,
                        ancestors: self.ancestors(parent.to_str().unwrap()),
                        path: PathBuf::from(p),
                        exists: false,
                    }
                }
            }
        }
    }

    impl Tree<PathBuf> for Fake {
        fn children(
            &mut self,
            dir: &PathBuf,
            _path: &Path,
        ) -> Result<Vec<(PathBuf, NodeInfo)>, String> {
            Ok(self
                .nodes
                .iter()
                .filter(|n| n.0.parent() == Some(dir.as_path()))
                .map(|n| {
                    (
                        n.0.clone(),
                        NodeInfo {
                            id: n.1,
                            path: n.0.clone(),
                            is_dir: n.2,
                            is_symlink: n.3,
                        },
                    )
                })
                .collect())
        }
    }

    fn home() -> Fake {
        Fake::new(&[
            ("/h", 10, true),
            ("/h/.ssh", 11, true),
            ("/h/.ssh/id_rsa", 12, false),
            ("/h/notes", 13, false),
            ("/h/work", 14, true),
            ("/h/work/cfg", 15, false),
            ("/h/work/src", 16, true),
            ("/h/link@", 17, false),
            ("/h/.aws", 18, true),
        ])
    }

    fn rule<'a>(l: &'a Lowered<PathBuf>, p: &str) -> Option<&'a Rule<PathBuf>> {
        l.rules.iter().find(|r| r.path == Path::new(p))
    }

    #[test]
    fn deny_splits_the_parent_into_its_other_children() {
        let mut t = home();
        let entries = vec![t.entry("/h", Origin::Read)];
        let denies = vec![t.deny("/h/.ssh"), t.deny("/h/.aws")];
        let l = lower(entries, &denies, &mut t).unwrap();
        assert!(rule(&l, "/h").is_none(), "the split parent keeps no rule");
        assert!(rule(&l, "/h/.ssh").is_none());
        assert!(rule(&l, "/h/.aws").is_none());
        assert_eq!(rule(&l, "/h/notes").unwrap().rights, rights::READ);
        assert_eq!(rule(&l, "/h/work").unwrap().rights, rights::READ);
        assert!(rule(&l, "/h/link@").is_none(), "symlinks get no rule");
        assert_eq!(l.splits.len(), 1);
        assert_eq!(l.splits[0].symlinks_skipped.len(), 1);
    }

    #[test]
    fn deep_deny_splits_recursively() {
        let mut t = home();
        let entries = vec![t.entry("/h", Origin::Read)];
        let denies = vec![t.deny("/h/.ssh/id_rsa")];
        let l = lower(entries, &denies, &mut t).unwrap();
        assert!(rule(&l, "/h/.ssh").is_none());
        assert!(rule(&l, "/h/.ssh/id_rsa").is_none());
        assert!(rule(&l, "/h/notes").is_some());
        assert_eq!(
            l.splits[0].split_dirs,
            vec![PathBuf::from("/h"), PathBuf::from("/h/.ssh")]
        );
    }

    #[test]
    fn missing_deny_splits_its_existing_parent() {
        let mut t = home();
        let entries = vec![t.entry("/h", Origin::Read)];
        let denies = vec![t.deny("/h/.gnupg")];
        let l = lower(entries, &denies, &mut t).unwrap();
        assert!(
            rule(&l, "/h").is_none(),
            "later-created /h/.gnupg must not match"
        );
        assert!(rule(&l, "/h/.ssh").is_some());
    }

    #[test]
    fn deny_equal_or_above_allowed_is_refused() {
        let mut t = home();
        let entries = vec![t.entry("/h/work", Origin::Write)];
        let err = lower(entries, &[t.deny("/h")], &mut t).unwrap_err();
        assert!(matches!(err, LowerError::DenyCoversAllowed { .. }));
        let entries = vec![t.entry("/h/work", Origin::Write)];
        let err = lower(entries, &[t.deny("/h/work")], &mut t).unwrap_err();
        assert!(matches!(err, LowerError::DenyCoversAllowed { .. }));
    }

    #[test]
    fn read_under_write_is_split_not_left_writable() {
        let mut t = home();
        let entries = vec![
            t.entry("/h/work", Origin::Write),
            t.entry("/h/work/cfg", Origin::Read),
        ];
        let l = lower(entries, &[], &mut t).unwrap();
        assert!(rule(&l, "/h/work").is_none());
        let cfg = rule(&l, "/h/work/cfg").unwrap();
        assert!(
            !cfg.rights.contains(AccessFs::WriteFile),
            "{:?}",
            cfg.rights
        );
        assert_eq!(rule(&l, "/h/work/src").unwrap().rights, rights::WRITE);
    }

    #[test]
    fn same_path_in_read_and_write_is_refused() {
        let mut t = home();
        let entries = vec![
            t.entry("/h/work", Origin::Write),
            t.entry("/h/work", Origin::Read),
        ];
        assert!(matches!(
            lower(entries, &[], &mut t).unwrap_err(),
            LowerError::ReadAndWrite { .. }
        ));
    }

    #[test]
    fn exec_under_write_is_a_union() {
        let mut t = home();
        let entries = vec![
            t.entry("/h/work", Origin::Write),
            t.entry("/h/work/cfg", Origin::Exec),
        ];
        let l = lower(entries, &[], &mut t).unwrap();
        assert!(rule(&l, "/h/work").is_some());
        assert!(rule(&l, "/h/work/cfg")
            .unwrap()
            .rights
            .contains(AccessFs::Execute));
    }

    /// Invariant: Execute appears only on exec-set rules or beneath an exec-set directory.
    #[test]
    fn no_execute_outside_the_exec_set() {
        let mut t = home();
        let entries = vec![
            t.entry("/h", Origin::Read),
            t.entry("/h/work", Origin::Write),
            t.entry("/h/work/cfg", Origin::Exec),
        ];
        let exec_ids = [id(15)];
        let l = lower(entries, &[t.deny("/h/.ssh")], &mut t).unwrap();
        for r in &l.rules {
            if r.rights.contains(AccessFs::Execute) {
                assert!(exec_ids.contains(&r.id), "{:?} got Execute", r.path);
            }
        }
        // Auto rules (libraries) never carry Execute either.
        assert!(!rights_for(Origin::Auto).contains(AccessFs::Execute));
    }

    #[test]
    fn same_inode_twice_is_merged() {
        let mut t = home();
        let entries = vec![
            t.entry("/h/work", Origin::Read),
            t.entry("/h/work", Origin::Exec),
        ];
        let l = lower(entries, &[], &mut t).unwrap();
        assert_eq!(l.rules.len(), 1);
        assert_eq!(l.rules[0].rights, rights::READ | rights::EXEC);
    }
}
