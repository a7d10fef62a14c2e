//! The collapse rule (docs/learn.md "How paths become rules"): recorded accesses -> the
//! fewest `read`/`write`/`exec` entries that cover them, never broader than the rule says.
//!
//! 1. `/proc/<pid>/...`, `/proc/self/...` and `/proc/thread-self/...` become one `/proc/self`
//!    entry (Landlock resolves `/proc/self` for the confined process at launch).
//! 2. Accesses at or under a base `deny` path are dropped (they stay denied) and reported.
//! 3. A file the run created itself gets no rule: creating it needed `write` on its
//!    directory, which covers it (and another instance will not have it yet).
//! 4. `write` covers `read` (a `write` directory covers everything beneath it); an `exec`
//!    entry covers reading the same file.
//! 5. Bottom-up, for `read` and `write` (`exec` entries stay files): a directory with at least [`THRESHOLD`] distinct entries of one
//!    class directly in it becomes one entry of that class, unless it is *stopped*: `/`,
//!    `~` (the target's home), any home directory (`/home/*`, `/root`), `/usr`, `/etc`,
//!    `/home`, `/tmp`, `/var`, `/proc`, `/sys`, `/dev`, `/run`, `/opt`, `/srv`, `/mnt`,
//!    `/media`, or a directory that is, or holds, a base `deny` path (Landlock cannot take
//!    a right away beneath a grant). A collapsed directory counts as one entry of its
//!    parent, so collapses climb until they meet a stop.
//! 6. Entries beneath a directory entry of the same (or a covering) class are merged in.
//!
//! Pure: unit-tested on made-up recordings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use super::record::{Class, Recording, Stat};

/// Distinct entries of one class in a directory that make it a directory rule.
pub const THRESHOLD: usize = 3;

/// Directories never collapsed into (besides `~`, home directories and deny holders).
pub const STOP: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/",
    "/usr",
    "/etc",
    "/home",
    "/tmp",
    "/var",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/opt",
    "/srv",
    "/mnt",
    "/media",
    "/root",
    "/boot",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local",
    "/usr/share",
    "/usr/libexec",
    "/var/lib",
    "/var/cache",
    "/var/log",
];

/// One proposed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub class: Class,
    pub path: PathBuf,
    pub is_dir: bool,
    pub stat: Stat,
    /// Recorded entries merged into it (1: recorded as is).
    pub merged: usize,
    /// Made by step 5 (a collapse), not recorded as a directory.
    pub collapsed: bool,
    /// Under a base `create` directory or created during the run, so it may be missing for
    /// another instance (writer: `create` for directories, `?` for files).
    pub instance: bool,
}

/// What the reviewer must see about the collapse.
#[derive(Debug, Default)]
pub struct Notes {
    /// Accesses that hit a base deny path (denied during learning, not granted).
    pub denied: Vec<(PathBuf, Stat)>,
    /// Directory listings of stopped directories: not granted (a `read` on the directory
    /// would grant its whole tree).
    pub not_granted: Vec<(Class, PathBuf, Stat)>,
}

pub struct Context<'a> {
    pub home: Option<&'a Path>,
    /// Base `deny` paths, expanded.
    pub deny: &'a [PathBuf],
    /// Base `create` directories, expanded (per-instance directories).
    pub instance_dirs: &'a [PathBuf],
}

impl Context<'_> {
    /// Whether `dir` may become a directory rule.
    pub fn stopped(&self, dir: &Path) -> bool {
        STOP.iter().any(|s| dir == Path::new(s))
            || self.home.is_some_and(|h| dir == h || h.starts_with(dir))
            || dir.parent() == Some(Path::new("/home"))
            || dir.starts_with("/proc")
            || self.deny.iter().any(|d| d.starts_with(dir))
    }

    fn denied(&self, p: &Path) -> bool {
        self.deny.iter().any(|d| p.starts_with(d))
    }
}

/// `/proc/<digits>|self|thread-self/...` -> `/proc/self`; other paths unchanged.
pub fn proc_self(p: &Path) -> PathBuf {
    let mut c = p.components();
    let (Some(Component::RootDir), Some(Component::Normal(proc)), Some(Component::Normal(who))) =
        (c.next(), c.next(), c.next())
    else {
        return p.to_path_buf();
    };
    let who = who.to_string_lossy();
    if proc == "proc"
        && (who == "self" || who == "thread-self" || who.bytes().all(|b| b.is_ascii_digit()))
    {
        return PathBuf::from("/proc/self");
    }
    p.to_path_buf()
}

/// Apply steps 1-6.
pub fn collapse(rec: &Recording, ctx: &Context<'_>) -> (Vec<Rule>, Notes) {
    let mut notes = Notes::default();
    // (class, path) -> rule
    let mut cur: BTreeMap<(Class, PathBuf), Rule> = BTreeMap::new();
    for ((class, path), a) in &rec.accesses {
        if ctx.denied(path) {
            notes.denied.push((path.clone(), a.stat.clone()));
            continue;
        }
        if rec.created.contains(path) && !a.is_dir {
            continue;
        }
        let (path, is_dir) = if path.starts_with("/proc") {
            let p = proc_self(path);
            let d = a.is_dir || p != *path;
            (p, d)
        } else {
            (path.clone(), a.is_dir)
        };
        if is_dir && ctx.stopped(&path) && !path.starts_with("/proc/self") {
            notes.not_granted.push((*class, path, a.stat.clone()));
            continue;
        }
        let instance =
            rec.created.contains(&path) || ctx.instance_dirs.iter().any(|d| path.starts_with(d));
        let r = Rule {
            class: *class,
            path: path.clone(),
            is_dir,
            stat: a.stat.clone(),
            merged: 1,
            collapsed: false,
            instance,
        };
        cur.entry((*class, path))
            .and_modify(|x| {
                x.stat.merge(&r.stat);
                x.merged += 1;
            })
            .or_insert(r);
    }
    let mut rules: Vec<Rule> = cur.into_values().collect();
    rules = subsume(rules);
    // `exec` entries stay files: a directory would let the target run anything in it.
    for class in [Class::Read, Class::Write] {
        rules = climb(rules, class, ctx);
    }
    let mut rules = subsume(rules);
    rules.sort_by(|a, b| (a.class, &a.path).cmp(&(b.class, &b.path)));
    (rules, notes)
}

/// Whether `a` (an entry) is covered by `by` (another entry).
fn covers(by: &Rule, a: &Rule) -> bool {
    if by.class == a.class && by.path == a.path {
        return false;
    }
    let class_ok = by.class == a.class
        || (by.class == Class::Write && a.class == Class::Read)
        || (by.class == Class::Exec && a.class == Class::Read && by.path == a.path);
    let path_ok = if by.is_dir {
        a.path.starts_with(&by.path)
    } else {
        a.path == by.path
    };
    class_ok && path_ok
}

/// Drop entries covered by another (write covers read, directories cover what is
/// beneath), merging their counts into the cover. Looks only at each entry's ancestors:
/// O(entries x depth), for the tens of thousands of paths a gateway start records.
fn subsume(rules: Vec<Rule>) -> Vec<Rule> {
    let mut at: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        at.entry(r.path.clone()).or_default().push(i);
    }
    let mut cover_of: Vec<Option<usize>> = vec![None; rules.len()];
    for (i, r) in rules.iter().enumerate() {
        cover_of[i] = r
            .path
            .ancestors()
            .filter_map(|a| at.get(a))
            .flatten()
            .copied()
            .find(|&j| j != i && covers(&rules[j], r));
    }
    // Follow chains to an entry that is itself uncovered.
    let root = |mut i: usize| {
        let mut hops = 0;
        while let Some(j) = cover_of[i] {
            i = j;
            hops += 1;
            if hops > rules.len() {
                break;
            }
        }
        i
    };
    let mut merged: BTreeMap<usize, (Stat, usize)> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        if cover_of[i].is_some() {
            let j = root(i);
            let e = merged
                .entry(j)
                .or_insert((rules[j].stat.clone(), rules[j].merged));
            e.0.merge(&r.stat);
            e.1 += r.merged;
        }
    }
    let mut keep = Vec::new();
    for (i, r) in rules.into_iter().enumerate() {
        if cover_of[i].is_some() {
            continue;
        }
        let mut r = r;
        if let Some((s, m)) = merged.remove(&i) {
            r.stat = s;
            r.merged = m;
        }
        keep.push(r);
    }
    keep
}

/// Step 5 for one class: all candidate directories at the deepest level at once, then
/// the next level up, until none is left. Entries are kept sorted by path, so everything
/// beneath a directory is one contiguous range.
fn climb(rules: Vec<Rule>, class: Class, ctx: &Context<'_>) -> Vec<Rule> {
    let (mine, mut rest): (Vec<Rule>, Vec<Rule>) =
        rules.into_iter().partition(|r| r.class == class);
    let mut set: BTreeMap<PathBuf, Rule> = mine.into_iter().map(|r| (r.path.clone(), r)).collect();
    loop {
        let mut counts: HashMap<PathBuf, usize> = HashMap::new();
        for p in set.keys() {
            if let Some(parent) = p.parent() {
                *counts.entry(parent.to_path_buf()).or_default() += 1;
            }
        }
        let cands: Vec<PathBuf> = counts
            .into_iter()
            .filter(|(dir, n)| *n >= THRESHOLD && !ctx.stopped(dir))
            .map(|(d, _)| d)
            .collect();
        let Some(depth) = cands.iter().map(|d| d.components().count()).max() else {
            break;
        };
        for dir in cands
            .into_iter()
            .filter(|d| d.components().count() == depth)
        {
            let beneath: Vec<PathBuf> = set
                .range(dir.clone()..)
                .take_while(|(p, _)| p.starts_with(&dir))
                .map(|(p, _)| p.clone())
                .collect();
            let mut stat: Option<Stat> = None;
            let mut merged = 0;
            let mut instance = ctx.instance_dirs.iter().any(|d| dir.starts_with(d));
            let mut recorded_dir = false;
            for p in beneath {
                if let Some(r) = set.remove(&p) {
                    merged += r.merged;
                    if r.path == dir {
                        instance |= r.instance;
                        recorded_dir = true;
                    }
                    match &mut stat {
                        Some(s) => s.merge(&r.stat),
                        None => stat = Some(r.stat.clone()),
                    }
                }
            }
            if let Some(stat) = stat {
                set.insert(
                    dir.clone(),
                    Rule {
                        class,
                        path: dir,
                        is_dir: true,
                        stat,
                        merged,
                        collapsed: !recorded_dir,
                        instance,
                    },
                );
            }
        }
    }
    rest.extend(set.into_values());
    subsume(rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn rec(list: &[(Class, &str, bool)]) -> Recording {
        let mut r = Recording::default();
        for (c, p, d) in list {
            r.path(*c, Path::new(p), *d, true, "/usr/bin/python3");
        }
        r
    }

    fn ctx<'a>(deny: &'a [PathBuf]) -> Context<'a> {
        Context {
            home: Some(Path::new("/home/u")),
            deny,
            instance_dirs: &[],
        }
    }

    fn paths(rules: &[Rule]) -> Vec<(Class, String)> {
        let mut v: Vec<_> = rules
            .iter()
            .map(|r| (r.class, r.path.display().to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn three_files_make_a_directory_two_do_not() {
        let r = rec(&[
            (Class::Read, "/opt/app/lib/a.py", false),
            (Class::Read, "/opt/app/lib/b.py", false),
            (Class::Read, "/opt/app/lib/c.py", false),
            (Class::Read, "/opt/app/conf/x.toml", false),
            (Class::Read, "/opt/app/conf/y.toml", false),
        ]);
        let (rules, _) = collapse(&r, &ctx(&[]));
        assert_eq!(
            paths(&rules),
            vec![
                (Class::Read, "/opt/app/conf/x.toml".into()),
                (Class::Read, "/opt/app/conf/y.toml".into()),
                (Class::Read, "/opt/app/lib".into()),
            ]
        );
        let lib = rules.iter().find(|r| r.path.ends_with("lib")).unwrap();
        assert_eq!(lib.merged, 3);
        assert!(lib.collapsed);
    }

    #[test]
    fn never_into_stops_home_or_deny_holders() {
        let deny = vec![PathBuf::from("/srv/data/secret")];
        let r = rec(&[
            (Class::Read, "/etc/a", false),
            (Class::Read, "/etc/b", false),
            (Class::Read, "/etc/c", false),
            (Class::Read, "/home/u/.a", false),
            (Class::Read, "/home/u/.b", false),
            (Class::Read, "/home/u/.c", false),
            (Class::Read, "/srv/data/x", false),
            (Class::Read, "/srv/data/y", false),
            (Class::Read, "/srv/data/z", false),
            (Class::Read, "/srv/data/secret/k", false),
            (Class::Read, "/", true),
        ]);
        let (rules, notes) = collapse(&r, &ctx(&deny));
        assert_eq!(rules.len(), 9, "{:?}", paths(&rules));
        assert!(rules.iter().all(|r| !r.is_dir));
        assert_eq!(notes.denied.len(), 1);
        assert_eq!(notes.not_granted.len(), 1);
    }

    #[test]
    fn write_covers_read_and_collapses_climb() {
        let r = rec(&[
            (Class::Write, "/data/s/a", true),
            (Class::Write, "/data/s/b", true),
            (Class::Write, "/data/s/c", true),
            (Class::Read, "/data/s/a/f", false),
            (Class::Read, "/data/t/f", false),
        ]);
        let (rules, _) = collapse(&r, &ctx(&[]));
        assert_eq!(
            paths(&rules),
            vec![
                (Class::Read, "/data/t/f".into()),
                (Class::Write, "/data/s".into())
            ]
        );
    }

    #[test]
    fn proc_pids_become_proc_self() {
        assert_eq!(
            proc_self(Path::new("/proc/2/stat")),
            PathBuf::from("/proc/self")
        );
        assert_eq!(
            proc_self(Path::new("/proc/meminfo")),
            PathBuf::from("/proc/meminfo")
        );
        let r = rec(&[
            (Class::Read, "/proc/12/maps", false),
            (Class::Read, "/proc/self/cgroup", false),
            (Class::Read, "/proc/meminfo", false),
        ]);
        let (rules, _) = collapse(&r, &ctx(&[]));
        assert_eq!(
            paths(&rules),
            vec![
                (Class::Read, "/proc/meminfo".into()),
                (Class::Read, "/proc/self".into())
            ]
        );
    }

    #[test]
    fn created_files_need_no_rule() {
        let mut r = rec(&[(Class::Write, "/data/s", true)]);
        r.created(Path::new("/data/s/new"));
        r.path(Class::Write, Path::new("/data/s/new"), false, true, "x");
        let (rules, _) = collapse(&r, &ctx(&[]));
        assert_eq!(paths(&rules), vec![(Class::Write, "/data/s".into())]);
    }
}
