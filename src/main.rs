//! The `shakeout` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

fn main() {
    let cli = shakeout::cmd::Cli::parse();
    // The guardian sets up its own logging (to its log file, at info).
    if !matches!(cli.command, shakeout::cmd::Command::Guardian { .. }) {
        shakeout::cmd::init_tracing(cli.verbose);
    }
    let code = shakeout::cmd::execute(cli);
    std::process::exit(code);
}
