//! The automatic exec chain: what the target needs to start, added as rules so the policy
//! does not have to name it.
//!
//! - The target and each `#!` interpreter (and the program `#!/usr/bin/env NAME` finds):
//!   Execute + ReadFile on the file.
//! - A `#!` script: ReadFile (its interpreter opens it).
//! - Each ELF's PT_INTERP loader: Execute + ReadFile (execve(2) maps it; without Execute on
//!   it the kernel returns EACCES: research/crates.md §1.1 [V]).
//! - The directories of the shared libraries found for DT_NEEDED (transitively):
//!   ReadFile, and /etc/ld.so.cache (optional).
//!
//! Cannot: know what an interpreter loads at run time (python's stdlib, node_modules); those
//! go in `read`. Execute limits execve of files, not code: ld.so runs any readable ELF.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use landlock::{AccessFs, BitFlags};

use crate::elf::{self, ElfInfo};
use crate::paths::{self, FileId, PathError, Resolved, Trust};

use super::rights;

/// Why a file is part of the target's exec chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainRole {
    /// The ELF that is executed (the target itself, or the final interpreter).
    Executable,
    /// A `#!` script: only read by its interpreter.
    Script,
    /// A program named by `#!/usr/bin/env NAME`, found in the target's PATH.
    EnvLookup,
}

/// One file of the exec chain, for Landlock (Execute on ELFs, read on scripts) and `check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainEntry {
    pub path: PathBuf,
    pub role: ChainRole,
    /// Why it is here, e.g. "#! interpreter of /srv/app/run.sh".
    pub why: String,
}

/// Most libraries followed for one program (a guard against a hostile DT_NEEDED graph).
const MAX_LIBS: usize = 512;

/// The loader cache, read by ld.so when present.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// One automatically added path.
#[derive(Debug)]
pub struct Auto {
    pub resolved: Resolved,
    pub rights: BitFlags<AccessFs>,
    pub why: String,
}

/// What the chain added, plus notes for `check` (missing libraries, non-ELF programs).
#[derive(Debug, Default)]
pub struct ChainRules {
    pub autos: Vec<Auto>,
    pub notes: Vec<String>,
    seen: BTreeSet<(FileId, u64)>,
}

impl ChainRules {
    fn add(&mut self, resolved: Resolved, rights: BitFlags<AccessFs>, why: String) {
        // One entry per (inode, rights): the merge in `lower` unites them anyway.
        if self.seen.insert((resolved.meta.id, rights.bits())) {
            self.autos.push(Auto {
                resolved,
                rights,
                why,
            });
        }
    }
}

/// Errors are refusals: a chain path that resolves through a planted symlink is an attack.
pub type ChainError = (PathBuf, PathError);

/// Rules for the target's exec chain.
pub fn for_chain(
    chain: &[ChainEntry],
    ids: &Trust,
    out: &mut ChainRules,
) -> Result<(), ChainError> {
    for c in chain {
        let r = paths::resolve(&c.path, ids).map_err(|e| (c.path.clone(), e))?;
        match c.role {
            ChainRole::Script => {
                let why = format!("{} (read by its interpreter)", c.why);
                out.add(r, rights::READ_FILE, why);
            }
            ChainRole::Executable | ChainRole::EnvLookup => {
                let path = r.path.clone();
                let info = read_elf(&r);
                out.add(r, rights::EXEC, c.why.clone());
                match info {
                    Some(info) => elf_deps(&path, &info, ids, out)?,
                    None => out.notes.push(format!(
                        "{}: not an ELF file; no loader or libraries added for it",
                        path.display()
                    )),
                }
            }
        }
    }
    Ok(())
}

/// Loader and library rules for an ELF the policy lists in `exec` (a file, not a directory).
pub fn for_exec_file(r: &Resolved, ids: &Trust, out: &mut ChainRules) -> Result<(), ChainError> {
    if let Some(info) = read_elf(r) {
        elf_deps(&r.path, &info, ids, out)?;
    }
    Ok(())
}

fn read_elf(r: &Resolved) -> Option<ElfInfo> {
    let f = paths::reopen_for_read(r).ok()?;
    elf::parse(&f).ok().flatten()
}

/// PT_INTERP and the DT_NEEDED closure of one program.
fn elf_deps(
    prog: &Path,
    info: &ElfInfo,
    ids: &Trust,
    out: &mut ChainRules,
) -> Result<(), ChainError> {
    let Some(interp) = &info.interp else {
        return Ok(()); // static: nothing to load
    };
    let loader = paths::resolve(interp, ids).map_err(|e| (interp.clone(), e))?;
    out.add(
        loader,
        rights::EXEC,
        format!("ELF interpreter (PT_INTERP) of {}", prog.display()),
    );
    match paths::resolve(Path::new(LD_SO_CACHE), ids) {
        Ok(c) => out.add(c, rights::READ_FILE, "loader cache (optional)".into()),
        Err(PathError::Missing { .. }) => {}
        Err(e) => return Err((PathBuf::from(LD_SO_CACHE), e)),
    }
    let mut queue: VecDeque<(PathBuf, ElfInfo)> = VecDeque::new();
    queue.push_back((prog.to_path_buf(), info.clone()));
    let mut done: BTreeSet<String> = BTreeSet::new();
    while let Some((obj, obj_info)) = queue.pop_front() {
        let origin = obj.parent().unwrap_or(Path::new("/")).to_path_buf();
        for name in &obj_info.needed {
            if !done.insert(name.clone()) {
                continue;
            }
            if done.len() > MAX_LIBS {
                out.notes.push(format!(
                    "{}: more than {MAX_LIBS} libraries; stopped following DT_NEEDED",
                    prog.display()
                ));
                return Ok(());
            }
            match find_lib(name, &obj_info.search_dirs(&origin), info, ids)? {
                Some((lib, lib_info)) => {
                    let dir_path = lib.path.parent().unwrap_or(Path::new("/")).to_path_buf();
                    let dir = paths::resolve(&dir_path, ids).map_err(|e| (dir_path.clone(), e))?;
                    out.add(
                        dir,
                        rights::READ_FILE,
                        format!("library directory ({name}, needed by {})", prog.display()),
                    );
                    queue.push_back((lib.path.clone(), lib_info));
                }
                None => out.notes.push(format!(
                    "{name} (needed by {}) not found in its RUNPATH/RPATH or the standard directories; add its directory to read if the loader finds it elsewhere",
                    obj.display()
                )),
            }
        }
    }
    Ok(())
}

/// The first candidate ld.so would load: exists, is an ELF of the program's class/machine.
fn find_lib(
    name: &str,
    dirs: &[PathBuf],
    prog: &ElfInfo,
    ids: &Trust,
) -> Result<Option<(Resolved, ElfInfo)>, ChainError> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        dirs.iter().map(|d| d.join(name)).collect()
    };
    for cand in candidates {
        match paths::resolve(&cand, ids) {
            Ok(r) => {
                if let Some(li) = read_elf(&r) {
                    if prog.compatible(&li) {
                        return Ok(Some((r, li)));
                    }
                }
            }
            Err(e @ PathError::UnsafeSymlink { .. }) => return Err((cand, e)),
            Err(_) => {}
        }
    }
    Ok(None)
}
