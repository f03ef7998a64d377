//! The command line itself: a line that cannot be read is "could not run" (exit 3, never 2,
//! which means "aborted, faults reverted"), help and version exit 0, and the seed limit is
//! enforced where the seed is typed.

mod kit;

use std::process::Output;

fn shakeout(args: &[&str]) -> Output {
    kit::shakeout()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("shakeout {args:?}: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_3_with_clap_s_message() {
    for (args, says) in [
        (&["run"][..], "required arguments were not provided"),
        (&["explode"][..], "unrecognized subcommand 'explode'"),
        (
            &["run", "x.yaml", "--sed", "1"][..],
            "unexpected argument '--sed'",
        ),
        (&[][..], "Usage:"),
    ] {
        let out = shakeout(args);
        assert_eq!(out.status.code(), Some(3), "shakeout {args:?}: {out:?}");
        assert!(
            stderr(&out).contains(says),
            "shakeout {args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [&["--help"][..], &["run", "--help"][..], &["--version"][..]] {
        let out = shakeout(args);
        assert_eq!(out.status.code(), Some(0), "shakeout {args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "shakeout {args:?} printed nothing");
    }
}

#[test]
fn a_seed_past_2_pow_53_is_refused_on_the_command_line() {
    let out = shakeout(&["run", "experiments/demo.yaml", "--seed", "9007199254740992"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = stderr(&out);
    assert!(
        text.contains("9007199254740992") && text.contains("0..=9007199254740991"),
        "{text}"
    );
}
