//! The `shakeout-agent` binary.

use clap::Parser;

/// shakeout node agent.
#[derive(Parser)]
#[command(name = "shakeout-agent", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("{}", shakeout_agent::status());
    std::process::exit(3);
}
