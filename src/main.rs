//! clawjail: parse the command line, run, print an error once, exit.

use clap::Parser;

fn main() {
    // Rust starts with SIGPIPE ignored, so `clawjail check | head` would panic on EPIPE;
    // a CLI should end quietly instead. (`run` resets every signal before exec anyway.)
    if let Err(e) = clawjail::sys::signal_default(libc::SIGPIPE) {
        eprintln!("clawjail: rt_sigaction(SIGPIPE, SIG_DFL): {e}");
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = clawjail::cli::internal_command(&args) {
        std::process::exit(code);
    }
    let cli = clawjail::cli::Cli::parse_from(args);
    match clawjail::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(f) => {
            eprintln!("clawjail: {}", f.message);
            std::process::exit(f.code);
        }
    }
}
