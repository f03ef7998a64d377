//! The `shakeout` binary: parse the command line, set up logging, hand over to the library.

use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    let cli = match shakeout::cmd::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap's own exit code for a usage error is 2, which means "aborted, faults
            // reverted" here: a command line that cannot be read is "could not run".
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => shakeout::exit::MET,
                _ => shakeout::exit::CANNOT_RUN,
            };
            // Printing to a closed pipe is not worth a panic; the exit code still tells.
            let _ = e.print();
            std::process::exit(code);
        }
    };
    cli.color.write_global();
    // The guardian sets up its own logging (to its log file, at info).
    if !matches!(cli.command, shakeout::cmd::Command::Guardian { .. }) {
        shakeout::cmd::init_tracing(cli.verbose);
    }
    let code = shakeout::cmd::execute(cli);
    std::process::exit(code);
}
