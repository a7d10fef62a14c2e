//! ELF dynamic-linking facts for the exec chain: PT_INTERP (the loader the kernel maps and
//! which needs Landlock Execute) and DT_NEEDED / DT_RUNPATH / DT_RPATH (the libraries the
//! loader opens, which need ReadFile). elf(5); System V gABI "Dynamic Section".
//!
//! Reads only what it needs with positioned reads (Node's binary is ~100 MB), bounds-checks
//! every offset, and never trusts a size field beyond the caps below. 32/64-bit, both byte
//! orders. Cannot: emulate ld.so exactly (no ld.so.cache lookup, no LD_LIBRARY_PATH, which
//! clawjail never passes anyway); a library the loader finds elsewhere is reported missing.

use std::path::{Path, PathBuf};

/// p_type values (elf(5)).
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
/// d_tag values (elf(5)).
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// Caps against hostile or corrupt headers.
const MAX_PHNUM: u64 = 4096;
const MAX_INTERP: u64 = 4096;
const MAX_DYNAMIC: u64 = 1 << 20;
const MAX_STRTAB: u64 = 16 << 20;

/// The standard library directories searched after RPATH/RUNPATH (ld.so(8) "default path"
/// plus Debian's multiarch directories, which its ld.so.conf lists).
pub const DEFAULT_LIB_DIRS_64: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/lib",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
pub const DEFAULT_LIB_DIRS_32: &[&str] = &[
    "/lib/i386-linux-gnu",
    "/usr/lib/i386-linux-gnu",
    "/lib32",
    "/usr/lib32",
    "/lib",
    "/usr/lib",
];

/// What an ELF file says about its dynamic linking.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElfInfo {
    pub class64: bool,
    pub little_endian: bool,
    pub machine: u16,
    /// PT_INTERP, e.g. /lib64/ld-linux-x86-64.so.2 (None: static).
    pub interp: Option<PathBuf>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
}

impl ElfInfo {
    /// Whether a library can be loaded into this program (ld.so skips other classes/machines).
    pub fn compatible(&self, lib: &ElfInfo) -> bool {
        self.class64 == lib.class64
            && self.little_endian == lib.little_endian
            && self.machine == lib.machine
    }

    /// Directories ld.so searches for this object's DT_NEEDED, in order (ld.so(8)): DT_RPATH
    /// only when there is no DT_RUNPATH, then DT_RUNPATH, then the defaults. `$ORIGIN` is
    /// the directory of the object (`origin`).
    pub fn search_dirs(&self, origin: &Path) -> Vec<PathBuf> {
        let expand = |s: &String| -> Vec<PathBuf> {
            s.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let o = origin.display().to_string();
                    PathBuf::from(d.replace("${ORIGIN}", &o).replace("$ORIGIN", &o))
                })
                .filter(|p| p.is_absolute())
                .collect()
        };
        let mut dirs = Vec::new();
        if self.runpath.is_empty() {
            dirs.extend(self.rpath.iter().flat_map(expand));
        }
        dirs.extend(self.runpath.iter().flat_map(expand));
        let defaults = if self.class64 {
            DEFAULT_LIB_DIRS_64
        } else {
            DEFAULT_LIB_DIRS_32
        };
        dirs.extend(defaults.iter().map(PathBuf::from));
        dirs
    }
}

/// A malformed ELF.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("truncated or out-of-range {0}")]
    Range(&'static str),
    #[error("{0} too large")]
    TooLarge(&'static str),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Positioned reads: a file or, in tests, a byte slice.
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..end)
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Field decoding for one class and byte order.
struct Fmt {
    class64: bool,
    le: bool,
}

impl Fmt {
    fn u16(&self, b: &[u8], at: usize) -> Result<u16, ElfError> {
        let s: [u8; 2] = b
            .get(at..at + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or(ElfError::Range("field"))?;
        Ok(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Result<u32, ElfError> {
        let s: [u8; 4] = b
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or(ElfError::Range("field"))?;
        Ok(if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    fn u64(&self, b: &[u8], at: usize) -> Result<u64, ElfError> {
        let s: [u8; 8] = b
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or(ElfError::Range("field"))?;
        Ok(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }

    /// A word: 8 bytes in ELF64, 4 in ELF32.
    fn word(&self, b: &[u8], at: usize) -> Result<u64, ElfError> {
        if self.class64 {
            self.u64(b, at)
        } else {
            self.u32(b, at).map(u64::from)
        }
    }
}

/// One program header.
#[derive(Debug, Clone, Copy)]
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

fn read_vec<R: ReadAt + ?Sized>(r: &R, offset: u64, len: u64) -> Result<Vec<u8>, ElfError> {
    let n = usize::try_from(len).map_err(|_| ElfError::TooLarge("section"))?;
    let mut v = vec![0u8; n];
    r.read_exact_at(&mut v, offset)
        .map_err(|_| ElfError::Range("segment"))?;
    Ok(v)
}

/// Parse the ELF behind `r`. `Ok(None)` when it is not an ELF file (e.g. a script).
pub fn parse<R: ReadAt + ?Sized>(r: &R) -> Result<Option<ElfInfo>, ElfError> {
    let mut ident = [0u8; 64];
    if r.read_exact_at(&mut ident[..16], 0).is_err() || &ident[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let class64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return Ok(None),
    };
    let le = match ident[5] {
        1 => true,
        2 => false,
        _ => return Ok(None),
    };
    let f = Fmt { class64, le };
    let ehsize = if class64 { 64 } else { 52 };
    r.read_exact_at(&mut ident[..ehsize], 0)
        .map_err(|_| ElfError::Range("ELF header"))?;
    let eh = &ident[..ehsize];
    let machine = f.u16(eh, 18)?;
    let (phoff, phentsize, phnum) = if class64 {
        (f.u64(eh, 0x20)?, f.u16(eh, 0x36)?, f.u16(eh, 0x38)?)
    } else {
        (
            u64::from(f.u32(eh, 0x1c)?),
            f.u16(eh, 0x2a)?,
            f.u16(eh, 0x2c)?,
        )
    };
    let min_ph = if class64 { 56 } else { 32 };
    if u64::from(phnum) > MAX_PHNUM {
        return Err(ElfError::TooLarge("program header table"));
    }
    if phnum > 0 && usize::from(phentsize) < min_ph {
        return Err(ElfError::Range("e_phentsize"));
    }
    let table = read_vec(r, phoff, u64::from(phentsize) * u64::from(phnum))?;
    let mut phdrs = Vec::with_capacity(usize::from(phnum));
    for i in 0..usize::from(phnum) {
        let b = &table[i * usize::from(phentsize)..];
        phdrs.push(if class64 {
            Phdr {
                p_type: f.u32(b, 0)?,
                offset: f.u64(b, 8)?,
                vaddr: f.u64(b, 16)?,
                filesz: f.u64(b, 32)?,
            }
        } else {
            Phdr {
                p_type: f.u32(b, 0)?,
                offset: u64::from(f.u32(b, 4)?),
                vaddr: u64::from(f.u32(b, 8)?),
                filesz: u64::from(f.u32(b, 16)?),
            }
        });
    }
    let mut info = ElfInfo {
        class64,
        little_endian: le,
        machine,
        ..ElfInfo::default()
    };
    if let Some(p) = phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        if p.filesz > MAX_INTERP {
            return Err(ElfError::TooLarge("PT_INTERP"));
        }
        let raw = read_vec(r, p.offset, p.filesz)?;
        let s = raw.split(|b| *b == 0).next().unwrap_or_default();
        info.interp = Some(PathBuf::from(String::from_utf8_lossy(s).into_owned()));
    }
    if let Some(p) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) {
        read_dynamic(r, &f, p, &phdrs, &mut info)?;
    }
    Ok(Some(info))
}

/// Map a virtual address to a file offset through the PT_LOAD segments.
fn vaddr_to_offset(phdrs: &[Phdr], vaddr: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .find(|p| vaddr >= p.vaddr && vaddr - p.vaddr < p.filesz)
        .map(|p| vaddr - p.vaddr + p.offset)
}

fn read_dynamic<R: ReadAt + ?Sized>(
    r: &R,
    f: &Fmt,
    dynamic: &Phdr,
    phdrs: &[Phdr],
    info: &mut ElfInfo,
) -> Result<(), ElfError> {
    if dynamic.filesz > MAX_DYNAMIC {
        return Err(ElfError::TooLarge("PT_DYNAMIC"));
    }
    let raw = read_vec(r, dynamic.offset, dynamic.filesz)?;
    let entsize = if f.class64 { 16 } else { 8 };
    let half = entsize / 2;
    let mut entries = Vec::new();
    let (mut strtab, mut strsz) = (None, None);
    for chunk in raw.chunks_exact(entsize) {
        let tag = f.word(chunk, 0)?;
        let val = f.word(chunk, half)?;
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_NEEDED | DT_RPATH | DT_RUNPATH => entries.push((tag, val)),
            _ => {}
        }
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Ok(());
    };
    if strsz > MAX_STRTAB {
        return Err(ElfError::TooLarge("DT_STRTAB"));
    }
    let off = vaddr_to_offset(phdrs, strtab).ok_or(ElfError::Range("DT_STRTAB"))?;
    let strings = read_vec(r, off, strsz)?;
    for (tag, val) in entries {
        let start = usize::try_from(val).map_err(|_| ElfError::Range("string"))?;
        let s = strings.get(start..).ok_or(ElfError::Range("string"))?;
        let s = s.split(|b| *b == 0).next().unwrap_or_default();
        let s = String::from_utf8_lossy(s).into_owned();
        match tag {
            DT_NEEDED => info.needed.push(s),
            DT_RPATH => info.rpath.push(s),
            _ => info.runpath.push(s),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_elf_is_none() {
        assert!(parse(&b"#!/bin/sh\necho\n"[..]).unwrap().is_none());
        assert!(parse(&b""[..]).unwrap().is_none());
    }

    #[test]
    fn truncated_headers_are_errors_not_panics() {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.resize(64, 0);
        // e_phoff far beyond the end, one program header.
        b[0x20..0x28].copy_from_slice(&1_000_000u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        assert!(parse(&b[..]).is_err());
    }

    #[test]
    fn parses_a_system_binary() {
        // /bin/sh on Debian is dynamically linked against libc.
        let Ok(f) = std::fs::File::open("/bin/sh") else {
            return;
        };
        let info = parse(&f).unwrap().unwrap();
        assert!(info.interp.is_some(), "{info:?}");
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
    }

    #[test]
    fn runpath_hides_rpath_and_origin_expands() {
        let info = ElfInfo {
            class64: true,
            rpath: vec!["/r".into()],
            runpath: vec!["$ORIGIN/../lib:${ORIGIN}/x".into()],
            ..ElfInfo::default()
        };
        let dirs = info.search_dirs(Path::new("/opt/app/bin"));
        assert_eq!(dirs[0], PathBuf::from("/opt/app/bin/../lib"));
        assert_eq!(dirs[1], PathBuf::from("/opt/app/bin/x"));
        assert!(!dirs.contains(&PathBuf::from("/r")));
        let info = ElfInfo {
            class64: true,
            rpath: vec!["/r".into()],
            ..ElfInfo::default()
        };
        assert_eq!(info.search_dirs(Path::new("/"))[0], PathBuf::from("/r"));
    }
}
