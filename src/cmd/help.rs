//! `shakeout help [COMMAND...]`: the long help of shakeout or of one of its commands.

use clap::CommandFactory;

use super::Cli;
use crate::exit;

/// Print the help of the command at `path` (empty: shakeout itself).
pub fn help(path: &[String]) -> i32 {
    let mut command = Cli::command().bin_name("shakeout");
    command.build();
    let mut at = &mut command;
    for name in path {
        if at.find_subcommand(name).is_none() {
            let known: Vec<&str> = at
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name())
                .collect();
            eprintln!(
                "no command `{name}` in `{}`; commands: {}",
                at.get_bin_name().unwrap_or("shakeout"),
                known.join(", ")
            );
            return exit::CANNOT_RUN;
        }
        match at.find_subcommand_mut(name) {
            Some(sub) => at = sub,
            None => return exit::CANNOT_RUN,
        }
    }
    match at.print_long_help() {
        Ok(()) => exit::MET,
        Err(e) => {
            eprintln!("cannot print the help: {e}");
            exit::CANNOT_RUN
        }
    }
}
