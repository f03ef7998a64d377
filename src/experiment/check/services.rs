//! Rules for `spec.services`: each supervised process has a unique name, a program to
//! start and, when given, one readiness check the runner can perform.

use super::address::{host_port, http_url};
use super::Checker;
use crate::experiment::spec::{RestartPolicy, ServiceSpec, Spec};

pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    c.unique_names(
        "service",
        spec.services
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("spec.services[{i}]"), s.name.as_str())),
    );
    for (i, service) in spec.services.iter().enumerate() {
        let path = format!("spec.services[{i}]");
        let name = &service.name;
        if service.command.first().is_none_or(|p| p.is_empty()) {
            c.report(
                &format!("{path}.command"),
                format!(
                    "service `{name}` needs a program to run, like `[\"${{exe}}\", sample-service]` \
                     or `[python3, -m, http.server, \"8080\"]`"
                ),
            );
        }
        if service.log.as_deref().is_some_and(|l| l.trim().is_empty()) {
            c.report(
                &format!("{path}.log"),
                format!("service `{name}` needs a file name for its log, like `{name}.log`"),
            );
        }
        check_restart(c, &path, service);
        let Some(ready) = &service.ready else {
            continue;
        };
        let ready_path = format!("{path}.ready");
        if ready.command.is_some() && (ready.http.is_some() || ready.tcp.is_some()) {
            c.report_key(
                &format!("{ready_path}.command"),
                format!("service `{name}` has more than one readiness check: keep exactly one of `http`, `tcp` or `command`"),
            );
        }
        if ready
            .command
            .as_ref()
            .is_some_and(|cmd| cmd.first().is_none_or(|p| p.is_empty()))
        {
            c.report(
                &format!("{ready_path}.command"),
                "needs a program to run, like [pg_isready, -h, 127.0.0.1]",
            );
        }
        match (&ready.http, &ready.tcp) {
            _ if ready.command.is_some() => {}
            (Some(_), Some(_)) => c.report_key(
                &format!("{ready_path}.tcp"),
                format!("service `{name}` has both `ready.http` and `ready.tcp`: keep exactly one"),
            ),
            (None, None) => c.report(
                &ready_path,
                format!(
                    "service `{name}` needs exactly one readiness check, like \
                     `http: http://127.0.0.1:8080/health`, `tcp: 127.0.0.1:8080` or \
                     `command: [pg_isready, -h, 127.0.0.1]`"
                ),
            ),
            _ => {}
        }
        if let Some(url) = &ready.http {
            if let Err(e) = http_url(url) {
                c.report(&format!("{ready_path}.http"), e);
            }
        }
        if let Some(address) = &ready.tcp {
            if let Err(e) = host_port(address) {
                c.report(&format!("{ready_path}.tcp"), e);
            }
        }
        c.positive(&format!("{ready_path}.within"), ready.within, "like 10s");
    }
}

/// Backoff and crash-loop limits: only with `policy: onExit`, each one meaningful.
fn check_restart(c: &mut Checker<'_>, path: &str, service: &ServiceSpec) {
    let Some(restart) = &service.restart else {
        return;
    };
    let name = &service.name;
    let path = format!("{path}.restart");
    if restart.policy == RestartPolicy::Never {
        for (key, given) in [
            ("delay", restart.delay.is_some()),
            ("maxDelay", restart.max_delay.is_some()),
            ("maxRestarts", restart.max_restarts.is_some()),
            ("resetAfter", restart.reset_after.is_some()),
        ] {
            if given {
                c.report_key(
                    &format!("{path}.{key}"),
                    format!(
                        "service `{name}` is never restarted, so `{key}` has no effect: \
                         remove it or use `policy: onExit`"
                    ),
                );
            }
        }
        return;
    }
    if restart.max_restarts == Some(0) {
        c.report(
            &format!("{path}.maxRestarts"),
            format!(
                "service `{name}`: must be at least 1, like 5; use `policy: never` for no restarts"
            ),
        );
    }
    c.positive(&format!("{path}.maxDelay"), restart.max_delay, "like 30s");
    c.positive(
        &format!("{path}.resetAfter"),
        restart.reset_after,
        "like 10s",
    );
    if let (Some(delay), Some(max)) = (restart.delay, restart.max_delay) {
        if max < delay {
            c.report(
                &format!("{path}.maxDelay"),
                format!(
                    "service `{name}`: the longest wait ({max}) is shorter than the first \
                     ({delay}): make it at least {delay}"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};

    fn with_services(services: &str) -> String {
        format!("{BASE}  services:\n{services}")
    }

    #[test]
    fn valid_services_pass() {
        let text = with_services(
            "    - { name: app, command: [app], ready: { tcp: \"127.0.0.1:80\", within: 5s } }\n    - { name: db, command: [db] }\n",
        );
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn names_unique() {
        let text =
            with_services("    - { name: app, command: [a] }\n    - { name: app, command: [b] }\n");
        assert_eq!(
            one(&text),
            "13:15: spec.services[1].name: service name `app` is already used by \
             spec.services[0] at line 12, column 15: service names must be unique"
        );
    }

    #[test]
    fn command_non_empty() {
        let text = with_services("    - { name: app, command: [] }\n");
        assert!(one(&text)
            .starts_with("12:29: spec.services[0].command: service `app` needs a program"));
        let text = with_services("    - { name: app, command: [\"\"] }\n");
        assert!(one(&text).contains("needs a program"));
    }

    #[test]
    fn ready_exactly_one_valid_check() {
        let text = with_services(
            "    - name: app\n      command: [app]\n      ready: { http: \"http://h/\", tcp: \"h:1\" }\n",
        );
        assert!(one(&text).starts_with("14:35: spec.services[0].ready.tcp: service `app` has both"));
        let text =
            with_services("    - name: app\n      command: [app]\n      ready: { within: 0s }\n");
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("needs exactly one readiness check"));
        assert!(found[1].contains("ready.within: must be greater than 0s"));
        let text = with_services(
            "    - name: app\n      command: [app]\n      ready: { http: \"https://h/\" }\n",
        );
        assert!(one(&text).contains("ready.http: `https://h/`: https is not supported here"));
        let text =
            with_services("    - name: app\n      command: [app]\n      ready: { tcp: h }\n");
        assert!(one(&text).contains("ready.tcp: `h` has no port"));
    }

    #[test]
    fn restart_limits_and_log() {
        let service =
            |extra: &str| with_services(&format!("    - name: app\n      command: [app]\n{extra}"));
        let text = service(
            "      restart: { policy: onExit, delay: 1s, maxDelay: 8s, maxRestarts: 3, resetAfter: 20s }\n      log: app.log\n",
        );
        assert_eq!(problems(&text), vec![]);
        let text = service("      restart: { policy: onExit, maxRestarts: 0 }\n");
        assert!(one(&text).contains("restart.maxRestarts: service `app`: must be at least 1"));
        let text = service("      restart: { policy: onExit, delay: 2s, maxDelay: 1s }\n");
        assert!(one(&text).contains("the longest wait (1s) is shorter than the first (2s)"));
        let text = service("      restart: { policy: onExit, resetAfter: 0s }\n");
        assert!(one(&text).contains("restart.resetAfter: must be greater than 0s"));
        let text = service("      restart: { policy: never, maxRestarts: 3 }\n");
        assert!(one(&text).contains("is never restarted, so `maxRestarts` has no effect"));
        let text = service("      log: \"\"\n");
        assert!(one(&text).contains("spec.services[0].log: service `app` needs a file name"));
    }
}
