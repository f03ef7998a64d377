//! The `shakeout` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

fn main() {
    let cli = shakeout::cli::Cli::parse();
    shakeout::cli::init_tracing(cli.verbose);
    let code = shakeout::cli::execute(cli);
    std::process::exit(code);
}
