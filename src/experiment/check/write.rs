//! Rules for write probes (`spec.probes[].write`): one backend, templates that name the
//! write (a write without `{seq}` or `{key}` would overwrite one key and measure nothing),
//! URLs that parse, exactly one way to read back, positive bounds.

use super::address::http_url;
use super::Checker;
use crate::experiment::spec::{HttpRequestSpec, WriteProbeSpec};
use crate::experiment::template::Template;

/// Methods a templated request may use.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

pub(super) fn check(c: &mut Checker<'_>, path: &str, name: &str, w: &WriteProbeSpec) {
    c.positive(&format!("{path}.timeout"), w.timeout, "like 500ms");
    if let Some(rb) = &w.read_back {
        let rb_path = format!("{path}.readBack");
        c.positive(&format!("{rb_path}.timeout"), rb.timeout, "like 30s");
        if rb
            .rate
            .is_some_and(|r| r.per_second.is_nan() || r.per_second <= 0.0)
        {
            c.report(&format!("{rb_path}.rate"), "must be above 0, like 1000/s");
        }
    }
    match (&w.http, &w.redis) {
        (Some(_), Some(_)) => c.report_key(
            &format!("{path}.redis"),
            format!("write probe `{name}` has both `http` and `redis`: use exactly one backend"),
        ),
        (None, None) => c.report(
            path,
            format!(
                "write probe `{name}` has no backend: add `http: {{ write: ..., read: ... }}` \
                 or `redis: {{ url: redis://127.0.0.1:6379/0 }}`"
            ),
        ),
        _ => {}
    }
    if let Some(r) = &w.redis {
        if let Err(e) = redis::Client::open(r.url.as_str()) {
            c.report(
                &format!("{path}.redis.url"),
                format!(
                    "`{}` is not a Redis URL ({e}): expected redis://host:port/db, like redis://127.0.0.1:6379/0",
                    r.url
                ),
            );
        }
    }
    let Some(h) = &w.http else { return };
    let http = format!("{path}.http");
    request(c, &format!("{http}.write"), &h.write);
    let write_url = Template::parse(&h.write.url);
    let write_body = Template::parse(h.write.body.as_deref().unwrap_or_default());
    if !write_url.per_write() && !write_body.per_write() {
        c.report(
            &format!("{http}.write.url"),
            "neither the URL nor the body holds the sequence placeholder: put `{seq}` or \
             `{key}` in one, like http://127.0.0.1:8080/kv/{key} with body `{seq}`",
        );
    }
    match (&h.read, &h.list) {
        (Some(_), Some(_)) => c.report_key(
            &format!("{http}.list"),
            "has both `read` and `list`: read back key by key (`read`) or all at once (`list`), not both",
        ),
        (None, None) => c.report(
            &http,
            "needs `read` (one request per key, like GET http://127.0.0.1:8080/kv/{key}) or \
             `list` (one request listing what is stored, like GET http://127.0.0.1:8080/log?prefix={run})",
        ),
        _ => {}
    }
    if let Some(read) = &h.read {
        request(c, &format!("{http}.read"), read);
        if !Template::parse(&read.url).per_write() {
            c.report(
                &format!("{http}.read.url"),
                "a per-key read needs `{seq}` or `{key}` in its URL, like http://127.0.0.1:8080/kv/{key}",
            );
        }
    }
    if let Some(list) = &h.list {
        request(c, &format!("{http}.list"), list);
    }
    if let Some(delete) = &h.delete {
        request(c, &format!("{http}.delete"), delete);
    }
}

/// A templated request: its URL parses once expanded, its method is one we send.
fn request(c: &mut Checker<'_>, path: &str, r: &HttpRequestSpec) {
    let sample = Template::parse(&r.url).expand("so-00000000-0", 0);
    if let Err(e) = http_url(&sample) {
        c.report(&format!("{path}.url"), e.replace(&sample, &r.url));
    }
    if let Some(m) = &r.method {
        if !METHODS.contains(&m.to_ascii_uppercase().as_str()) {
            c.report(
                &format!("{path}.method"),
                format!("`{m}` is not a method the write probe sends: use one of {METHODS:?}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};

    fn with_write(write: &str) -> String {
        BASE.replace(
            "      http: { url: http://127.0.0.1:8080/health }\n",
            &format!("      write:\n{write}"),
        )
    }

    #[test]
    fn http_and_redis_write_probes_are_valid() {
        let http = with_write(
            "        http:\n          write: { method: PUT, url: \"http://127.0.0.1:8080/kv/{key}\", body: \"{seq}\" }\n          read: { url: \"http://127.0.0.1:8080/kv/{key}\" }\n          delete: { method: DELETE, url: \"http://127.0.0.1:8080/kv/{key}\" }\n",
        );
        assert_eq!(problems(&http), vec![]);
        let redis = with_write(
            "        readBack: { rate: 100/s, timeout: 5s }\n        redis: { url: \"redis://127.0.0.1:6379/0\", mode: stream }\n",
        );
        assert_eq!(problems(&redis), vec![]);
    }

    #[test]
    fn a_write_without_the_sequence_placeholder_is_refused() {
        let text = with_write(
            "        http:\n          write: { url: \"http://127.0.0.1:8080/kv/{run}\", body: \"x\" }\n          list: { url: \"http://127.0.0.1:8080/log\" }\n",
        );
        let found = one(&text);
        assert!(
            found.starts_with(
                "12:25: spec.probes[0].write.http.write.url: neither the URL nor the body holds the sequence placeholder"
            ),
            "{found}"
        );
    }

    #[test]
    fn one_backend_one_read_and_urls_that_parse() {
        let text = with_write(
            "        http:\n          write: { url: \"https://h/{key}\" }\n          read: { url: \"http://h/all\" }\n          list: { url: \"http://h/log\" }\n        redis: { url: \"mysql://h\" }\n",
        );
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].contains("write.url: `https://h/{key}`: https is not supported"));
        assert!(found[1].contains("read.url: a per-key read needs `{seq}`"));
        assert!(found[2].contains("has both `read` and `list`"));
        assert!(found[3].contains("has both `http` and `redis`"));
        assert!(found[4].contains("redis.url: `mysql://h` is not a Redis URL"));
    }
}
