//! JUnit XML, the one report format every CI system shows: one testcase per verdict, and
//! an extra failing testcase when the run did not complete, so an interrupted run can
//! never be read as green.

use std::borrow::Cow;
use std::io;
use std::path::Path;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::atomic::write_atomic;
use super::format::{self, action_outcome, command, status_words, verdict_outcome};
use super::{ActionReport, Report, RunStatus, Verdict, VerdictStatus};

/// Writes the report as JUnit XML, atomically.
pub fn write_junit(r: &Report, p: &Path) -> io::Result<()> {
    write_atomic(p, &render_junit(r)?)
}

fn render_junit(r: &Report) -> io::Result<Vec<u8>> {
    let failures = count(r, VerdictStatus::Fail);
    let skipped = count(r, VerdictStatus::NotMeasured);
    let run_error = run_error(r);
    let errors = usize::from(run_error.is_some());
    let tests = r.verdicts.len() + errors;
    let (tests, failures, skipped, errors) = (
        tests.to_string(),
        failures.to_string(),
        skipped.to_string(),
        errors.to_string(),
    );
    let time = seconds(r.run.duration_ms);
    let suite = xml_safe(&r.experiment.name);
    let classname = format!("shakeout.{suite}");

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .with_attributes([
            ("name", "shakeout"),
            ("tests", tests.as_str()),
            ("failures", failures.as_str()),
            ("errors", errors.as_str()),
            ("skipped", skipped.as_str()),
            ("time", time.as_str()),
        ])
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attributes([
                    ("name", suite.as_ref()),
                    ("tests", tests.as_str()),
                    ("failures", failures.as_str()),
                    ("errors", errors.as_str()),
                    ("skipped", skipped.as_str()),
                    ("time", time.as_str()),
                    ("timestamp", xml_safe(&r.run.started_at).as_ref()),
                ])
                .write_inner_content(|w| {
                    write_properties(w, r)?;
                    for v in &r.verdicts {
                        write_verdict(w, r, &classname, v)?;
                    }
                    if let Some((kind, message)) = &run_error {
                        w.create_element("testcase")
                            .with_attributes([
                                ("classname", classname.as_str()),
                                ("name", "run"),
                                ("time", time.as_str()),
                            ])
                            .write_inner_content(|w| {
                                w.create_element("error")
                                    .with_attributes([
                                        ("message", message.as_str()),
                                        ("type", kind),
                                    ])
                                    .write_text_content(BytesText::new(&xml_safe(&run_context(
                                        r,
                                    ))))?;
                                Ok(())
                            })?;
                    }
                    if !r.faults.is_empty() {
                        w.create_element("system-out")
                            .write_text_content(BytesText::new(&xml_safe(&fault_log(r))))?;
                    }
                    if !r.warnings.is_empty() {
                        // CI pages show a suite's standard error; a warning belongs there.
                        let text: String = r
                            .warnings
                            .iter()
                            .map(|w| format!("WARNING: {w}\n"))
                            .collect();
                        w.create_element("system-err")
                            .write_text_content(BytesText::new(&xml_safe(&text)))?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn count(r: &Report, status: VerdictStatus) -> usize {
    r.verdicts.iter().filter(|v| v.status == status).count()
}

/// `(type, message)` of the extra `run` testcase, when the run did not complete.
fn run_error(r: &Report) -> Option<(&'static str, String)> {
    let what = match r.run.status {
        RunStatus::Met | RunStatus::Failed => return None,
        RunStatus::Aborted => "run aborted by a stop condition; faults reverted",
        RunStatus::Interrupted => "run interrupted; faults reverted",
        RunStatus::Error => "experiment could not run",
        RunStatus::RevertUnconfirmed => {
            "faults could not be confirmed reverted: a person must look"
        }
    };
    let message = match &r.run.reason {
        Some(reason) => format!("{what}: {reason}"),
        None => what.to_string(),
    };
    Some((r.run.status.as_str(), flat(&message)))
}

fn run_context(r: &Report) -> String {
    format!(
        "status: {} (exit {})\nreason: {}\nseed: {}\nverdicts measured before the run stopped \
         are reported, but the run as a whole did not complete.\n",
        status_words(r.run.status),
        r.run.exit_code,
        r.run.reason.as_deref().unwrap_or("-"),
        r.run.seed,
    )
}

fn write_properties(w: &mut Writer<Vec<u8>>, r: &Report) -> io::Result<()> {
    let mut props = vec![
        ("experimentFile", r.experiment.file.clone()),
        ("status", r.run.status.as_str().to_string()),
        ("exitCode", r.run.exit_code.to_string()),
        ("seed", r.run.seed.to_string()),
        ("shakeoutVersion", r.run.shakeout_version.clone()),
    ];
    for (k, v) in &r.experiment.labels {
        props.push(("label", format!("{k}={v}")));
    }
    for warning in &r.warnings {
        props.push(("warning", format!("WARNING: {warning}")));
    }
    w.create_element("properties").write_inner_content(|w| {
        for (name, value) in &props {
            w.create_element("property")
                .with_attributes([("name", *name), ("value", xml_safe(value).as_ref())])
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_verdict(
    w: &mut Writer<Vec<u8>>,
    r: &Report,
    classname: &str,
    v: &Verdict,
) -> io::Result<()> {
    let time = seconds(window_ms(r, v));
    let id = xml_safe(&v.id);
    let case = w.create_element("testcase").with_attributes([
        ("classname", classname),
        ("name", id.as_ref()),
        ("time", time.as_str()),
    ]);
    match v.status {
        VerdictStatus::Pass => {
            case.write_empty()?;
        }
        VerdictStatus::Fail => {
            let message = flat(&format!(
                "measured {}, required {}",
                v.measured.as_deref().unwrap_or(format::NONE),
                v.required
            ));
            case.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attributes([
                        ("message", message.as_str()),
                        ("type", xml_safe(&v.kind).as_ref()),
                    ])
                    .write_text_content(BytesText::new(&xml_safe(&verdict_context(v))))?;
                Ok(())
            })?;
        }
        VerdictStatus::NotMeasured => {
            let why = flat(v.note.as_deref().unwrap_or("not measured"));
            case.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", why.as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// The failure body CI shows when a person expands the testcase.
fn verdict_context(v: &Verdict) -> String {
    let mut s = format!("{}: {}\n", v.id, verdict_outcome(v));
    s.push_str(&format!("kind: {}\n", v.kind));
    if let Some(p) = &v.probe {
        s.push_str(&format!("probe: {p}\n"));
    }
    if let Some(d) = &v.during {
        s.push_str(&format!("during: {d}\n"));
    }
    if let Some(n) = &v.note {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// A verdict has no running time of its own; its testcase lasts as long as the window it
/// judged (the phase, or the whole run), which is what a person scanning times expects.
fn window_ms(r: &Report, v: &Verdict) -> f64 {
    match v.during.as_deref() {
        Some("run") | None => r.run.duration_ms,
        Some(phase) => r
            .phases
            .iter()
            .filter(|p| p.phase == phase)
            .map(|p| p.end_ms - p.start_ms)
            .sum(),
    }
}

fn fault_log(r: &Report) -> String {
    let mut s = String::new();
    for f in &r.faults {
        s.push_str(&format!(
            "fault {} ({}) at {}: {}\n",
            f.name,
            f.kind,
            format::duration(f.at_ms),
            f.status
        ));
        for (label, action) in [("apply", &f.apply), ("revert", &f.revert)] {
            if let Some(a) = action {
                push_action(&mut s, label, a);
            }
        }
    }
    s
}

fn push_action(s: &mut String, label: &str, a: &ActionReport) {
    s.push_str(&format!(
        "  {label}: {} -> {}\n",
        command(&a.command),
        action_outcome(a)
    ));
    for (stream, text) in [("stdout", &a.stdout), ("stderr", &a.stderr)] {
        if !text.trim().is_empty() {
            s.push_str(&format!("    {stream}:\n"));
            for line in text.trim_end().lines() {
                s.push_str(&format!("      {line}\n"));
            }
        }
    }
}

/// JUnit times are seconds.
fn seconds(ms: f64) -> String {
    format!("{:.3}", ms.max(0.0) / 1000.0)
}

/// Attribute values lose their newlines to XML normalisation anyway; make it explicit.
fn flat(s: &str) -> String {
    xml_safe(&s.replace(['\r', '\n'], " ")).into_owned()
}

/// quick-xml escapes markup but cannot represent characters XML 1.0 forbids (control
/// bytes such as the ANSI colour codes a fault command may print); replace them so the
/// file stays parseable.
fn xml_safe(s: &str) -> Cow<'_, str> {
    let forbidden = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if s.contains(forbidden) {
        Cow::Owned(s.replace(forbidden, "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests;
