//! What one learning run saw, aggregated: Landlock-relevant accesses by (class, path),
//! TCP ports, unix socket paths and syscalls outside the base profile, each with a count
//! and the first program that needed it. Pure data; `notify.rs` fills it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The policy list an access belongs to (`[filesystem] read/write/exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Read,
    Write,
    Exec,
}

impl Class {
    pub fn key(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Exec => "exec",
        }
    }
}

/// How often, and who first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub count: u64,
    /// The first program (/proc/<tid>/exe) that made the call.
    pub first: String,
    /// Order of the first sighting (to merge stats: the earliest program wins).
    pub seq: u64,
}

impl Stat {
    pub fn merge(&mut self, other: &Stat) {
        self.count += other.count;
        if other.seq < self.seq {
            self.seq = other.seq;
            self.first = other.first.clone();
        }
    }
}

/// One access to a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub stat: Stat,
    pub is_dir: bool,
}

/// One TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortUse {
    pub stat: Stat,
    /// Addresses seen with it ("127.0.0.1"), at most a few.
    pub addrs: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Recording {
    pub accesses: BTreeMap<(Class, PathBuf), Access>,
    /// Paths the target created during the run (they need no rule of their own: the
    /// parent's `write` covers them, and they may not exist for another instance).
    pub created: BTreeSet<PathBuf>,
    /// Paths that existed when first seen (and were not created by the run).
    pub preexisting: BTreeSet<PathBuf>,
    pub bind: BTreeMap<u16, PortUse>,
    pub connect: BTreeMap<u16, PortUse>,
    /// Pathname unix sockets connected to or bound (network.unix).
    pub unix: BTreeMap<String, Stat>,
    pub syscalls: BTreeMap<String, Stat>,
    /// Notifications handled.
    pub events: u64,
    seq: u64,
}

impl Recording {
    fn stat(&mut self, exe: &str) -> Stat {
        self.seq += 1;
        Stat {
            count: 1,
            first: exe.to_string(),
            seq: self.seq,
        }
    }

    pub fn path(&mut self, class: Class, path: &Path, is_dir: bool, exists: bool, exe: &str) {
        if exists && !self.created.contains(path) {
            self.preexisting.insert(path.to_path_buf());
        }
        let s = self.stat(exe);
        self.accesses
            .entry((class, path.to_path_buf()))
            .and_modify(|a| a.stat.count += 1)
            .or_insert(Access { stat: s, is_dir });
    }

    pub fn created(&mut self, path: &Path) {
        if !self.preexisting.contains(path) {
            self.created.insert(path.to_path_buf());
        }
    }

    pub fn port(&mut self, bind: bool, port: u16, addr: String, exe: &str) {
        let s = self.stat(exe);
        let map = if bind {
            &mut self.bind
        } else {
            &mut self.connect
        };
        let e = map.entry(port).or_insert(PortUse {
            stat: Stat { count: 0, ..s },
            addrs: BTreeSet::new(),
        });
        e.stat.count += 1;
        if e.addrs.len() < 4 {
            e.addrs.insert(addr);
        }
    }

    pub fn unix_socket(&mut self, path: String, exe: &str) {
        let s = self.stat(exe);
        self.unix
            .entry(path)
            .and_modify(|u| u.count += 1)
            .or_insert(s);
    }

    pub fn syscall(&mut self, name: &str, exe: &str) {
        let s = self.stat(exe);
        self.syscalls
            .entry(name.to_string())
            .and_modify(|u| u.count += 1)
            .or_insert(s);
    }

    /// Distinct paths seen (for progress lines).
    pub fn paths(&self) -> usize {
        self.accesses.len()
    }
}
