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

/// Whether `text` holds an SGR (colour) escape; cursor moves of a progress bar don't count.
fn coloured(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        let tail = &rest[at + 2..];
        let end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('m') {
            return true;
        }
        rest = tail;
    }
    false
}

/// `command` run on a pseudo-terminal (util-linux `script`), with `env`; what the terminal
/// showed.
fn on_a_terminal(command: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .envs(env.iter().copied())
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("script (util-linux) to get a terminal: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 2 s run of the sample service with one objective, so the summary has a PASS.
fn short_run(case: &kit::Case) -> std::path::PathBuf {
    use kit::exp::{health_probe, sample_service, Experiment};
    case.write(
        Experiment::new("colour", "2s")
            .service(sample_service(case.port))
            .probe(health_probe(case.port, "50/s"))
            .objective("availability", "{ min: 90%, during: run }"),
    )
}

#[test]
fn colour_only_on_a_terminal_unless_asked_and_never_with_no_color() {
    let case = kit::Case::new();
    let file = short_run(&case);
    let run = |extra: &[&str]| {
        let out = kit::shakeout()
            .args(["-v", "run"])
            .arg(&file)
            .args(extra)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Into pipes (a file, CI): no colour in the summary or in the `-v` log lines.
    let (stdout, stderr) = run(&[]);
    assert!(
        stdout.contains("PASS") && stderr.contains("run starting"),
        "{stdout}{stderr}"
    );
    assert!(
        !coloured(&stdout) && !coloured(&stderr),
        "{stdout:?}{stderr:?}"
    );
    // `--color always` colours both.
    let (stdout, stderr) = run(&["--color", "always"]);
    assert!(
        coloured(&stdout) && coloured(&stderr),
        "{stdout:?}{stderr:?}"
    );
    // On a terminal: colour by default, none with NO_COLOR or `--color never`.
    let command = format!("{} -v run {}", kit::process::BIN, file.display());
    assert!(coloured(&on_a_terminal(&command, &[])));
    assert!(!coloured(&on_a_terminal(&command, &[("NO_COLOR", "1")])));
    assert!(!coloured(&on_a_terminal(
        &format!("{command} --color never"),
        &[]
    )));
}

#[test]
fn the_agent_s_text_logs_have_no_colour_in_a_file_or_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "ci:test-secret-0123456789abcdef\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let command = |extra: &str| {
        format!(
            "timeout -s INT 2 {} --listen 127.0.0.1:0 --tokens {} --state-dir {} {extra}",
            kit::process::agent_binary().display(),
            tokens.display(),
            dir.path().join("state").display()
        )
    };
    // stderr into a file, as the systemd unit's journal gets it.
    let log = dir.path().join("agent.log");
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("{} 2> {}", command(""), log.display())])
        .env_remove("NO_COLOR")
        .status()
        .unwrap();
    assert!(status.success() || status.code() == Some(124), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "{text}");
    assert!(!coloured(&text), "{text:?}");
    // On a terminal it is coloured, unless NO_COLOR or `--color never` says not.
    assert!(coloured(&on_a_terminal(&command(""), &[])));
    assert!(!coloured(&on_a_terminal(
        &command(""),
        &[("NO_COLOR", "1")]
    )));
    assert!(!coloured(&on_a_terminal(&command("--color never"), &[])));
}

#[test]
fn help_answers_for_itself_and_for_every_command() {
    let out = shakeout(&["help", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = shakeout(&["help", "run"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--dry-run"));
    let out = shakeout(&["help", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains("no command `nope`"),
        "{}",
        stderr(&out)
    );
    // A default is said once, by clap.
    let text = String::from_utf8_lossy(&shakeout(&["demo", "--help"]).stdout).into_owned();
    assert_eq!(text.matches("18080").count(), 1, "{text}");
}

#[test]
fn completions_are_a_script_the_shell_accepts() {
    let out = shakeout(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(script.contains("complete -F _shakeout"), "{script}");
    for command in ["run", "validate", "init", "faults", "completions"] {
        assert!(script.contains(command), "no {command} in the completions");
    }
    // bash -n: parses without running.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shakeout.bash");
    std::fs::write(&file, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(shakeout(&["completions", "tcsh"]).status.code(), Some(3));
}

#[test]
fn faults_and_probes_list_every_kind() {
    for (command, kinds) in [
        ("faults", shakeout::catalog::FAULTS),
        ("probes", shakeout::catalog::PROBES),
    ] {
        let out = shakeout(&[command]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for kind in kinds {
            assert!(
                text.contains(kind.name) && text.contains(kind.example),
                "`shakeout {command}` lacks {}:\n{text}",
                kind.name
            );
        }
    }
}

#[test]
fn init_writes_a_starter_that_runs_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let run_in = |args: &[&str]| {
        kit::shakeout()
            .current_dir(dir.path())
            .env("SHAKEOUT_STATE_DIR", dir.path().join("state"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run_in(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
    let file = dir.path().join("experiment.yaml");
    let starter = std::fs::read_to_string(&file).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("shakeout run experiment.yaml"));
    // Never over someone's file.
    std::fs::write(&file, "mine\n").unwrap();
    let out = run_in(&["init"]);
    assert_eq!(out.status.code(), Some(3), "{}", kit::explain(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine\n");
    let out = run_in(&["init", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), starter);
    let out = run_in(&["init", "-"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), starter);
    // It runs as written (on a free port instead of its 18090) and meets its objectives.
    let port = kit::free_port().to_string();
    std::fs::write(&file, starter.replace("18090", &port)).unwrap();
    let json = dir.path().join("report.json");
    let out = run_in(&["run", "experiment.yaml", "--quiet", "--json", "report.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", kit::explain(&out));
    let report = kit::report::Report::read(&json).unwrap();
    assert!(report.probes[0].rto().time_to_recover_ms.is_some());
}

/// `validate -` checks an experiment piped in, named `<stdin>` in what it prints.
fn validate_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = kit::shakeout()
        .arg("validate")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn shakeout validate");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("write the experiment to shakeout's stdin");
    child
        .wait_with_output()
        .expect("wait for shakeout validate")
}

#[test]
fn validate_reads_an_experiment_from_stdin() {
    let demo = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/demo.yaml"),
    )
    .unwrap();
    let out = validate_stdin(&["-"], &demo);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<stdin>: ok (demo-kill-and-restart)\n"
    );

    // Problems are placed in `<stdin>` like in a file.
    let out = validate_stdin(&["-"], b"apiVersion: shakeout/v1\nkind: Experiment\nmetadata: {name: x}\nspec: {duration: 5 seconds}\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).starts_with("<stdin>:4:"), "{}", stderr(&out));

    // Mixed with files, each is checked; stdin once only.
    let demo_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/demo.yaml");
    let out = validate_stdin(&[demo_path.to_str().unwrap(), "-"], &demo);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = validate_stdin(&["-", "-"], &demo);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("named more than once"),
        "{}",
        stderr(&out)
    );

    // Nothing piped in is an empty experiment, not a hang.
    let out = validate_stdin(&["-"], b"");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("<stdin>:1:1: the file is empty"),
        "{}",
        stderr(&out)
    );
}
