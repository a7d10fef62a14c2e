//! Probe actions that need raw syscalls (seccomp guards). Test support: the only probe
//! file allowed `unsafe`, each block with its SAFETY comment.
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;

use super::Outcome;

pub fn run(action: &str, _args: &[String]) -> Option<Outcome> {
    let _ = action;
    None::<Outcome>
}

/// Borrow an fd number given on the command line (it may be invalid: read gives EBADF).
pub fn borrow_raw_fd(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: the probe only passes this to read(2); an invalid fd yields EBADF, and the
    // probe process exits right after, so no lifetime outlives the descriptor in practice.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Fork a child that forks a grandchild sleeping `secs`, then exits: the grandchild is
/// orphaned and re-parented to the nearest subreaper. Returns the grandchild's pid.
pub fn fork_orphan(secs: u64) -> std::io::Result<i32> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the probe is single-threaded; the children only call async-signal-safe
    // functions (fork, write, sleep, _exit).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: as above.
        let grand = unsafe { libc::fork() };
        if grand == 0 {
            // SAFETY: async-signal-safe calls only.
            unsafe {
                libc::sleep(secs as u32);
                libc::_exit(0);
            }
        }
        let bytes = grand.to_ne_bytes();
        // SAFETY: writing 4 bytes from a live buffer to our pipe, then _exit.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    let mut buf = [0u8; 4];
    // SAFETY: reading into a live 4-byte buffer; waitpid on our own child.
    unsafe {
        libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
        libc::waitpid(child, std::ptr::null_mut(), 0);
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    Ok(i32::from_ne_bytes(buf))
}
