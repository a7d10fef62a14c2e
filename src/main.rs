//! clawjail: parse the command line, run, print an error once, exit.

use clap::Parser;

fn main() {
    let cli = clawjail::cli::Cli::parse();
    match clawjail::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(f) => {
            eprintln!("clawjail: {}", f.message);
            std::process::exit(f.code);
        }
    }
}
