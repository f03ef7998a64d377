//! The `shakeout` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

fn main() {
    let cli = shakeout::cli::Cli::parse();
    // The guardian sets up its own logging (to its log file, at info).
    if !matches!(cli.command, shakeout::cli::Command::Guardian { .. }) {
        shakeout::cli::init_tracing(cli.verbose);
    }
    let code = shakeout::cli::execute(cli);
    std::process::exit(code);
}
