//! Test support: `clawjail-probe ACTION [ARGS...]` attempts one action and prints
//! `ok ...` or `errno NAME`. See `clawjail::probe`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((action, rest)) = args.split_first() else {
        eprintln!("usage: clawjail-probe ACTION [ARGS...]");
        std::process::exit(2);
    };
    let Some(action) = clawjail::probe::Action::from_name(action) else {
        eprintln!("clawjail-probe: unknown action {action:?}");
        std::process::exit(2);
    };
    match clawjail::probe::run(action, rest) {
        Some(o) => {
            println!("{}", o.line());
            std::process::exit(if matches!(o, clawjail::probe::Outcome::Broken(_)) {
                3
            } else {
                0
            });
        }
        None => {
            eprintln!("clawjail-probe: unknown action {action:?}");
            std::process::exit(2);
        }
    }
}
