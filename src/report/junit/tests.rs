//! JUnit output checked with an independent XML parser, the way CI would read it.

use super::*;
use crate::report::fixture::verdict;

fn junit(r: &Report) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    write_junit(r, &path).unwrap();
    std::fs::read_to_string(&path).unwrap()
}

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    n.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", n.tag_name().name()))
}

fn testcases<'a>(doc: &'a roxmltree::Document<'_>) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect()
}

fn child<'a>(n: roxmltree::Node<'a, '_>, tag: &str) -> Option<roxmltree::Node<'a, 'a>> {
    n.children().find(|c| c.has_tag_name(tag))
}

#[test]
fn one_testcase_per_verdict_with_matching_counts() {
    let r = Report::test();
    let xml = junit(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suite = child(root, "testsuite").unwrap();
    assert_eq!(attr(suite, "name"), "checkout-failover");
    assert_eq!(attr(suite, "timestamp"), "2025-06-01T12:00:00.000Z");
    assert_eq!(attr(suite, "time"), "90.000");

    let cases = testcases(&doc);
    assert_eq!(cases.len(), r.verdicts.len());
    assert_eq!(attr(suite, "tests"), "3");
    let failed: Vec<_> = cases.iter().filter_map(|c| child(*c, "failure")).collect();
    let skipped: Vec<_> = cases.iter().filter_map(|c| child(*c, "skipped")).collect();
    assert_eq!(attr(suite, "failures"), failed.len().to_string());
    assert_eq!(attr(suite, "skipped"), skipped.len().to_string());
    assert_eq!(attr(suite, "errors"), "0");
    assert_eq!((failed.len(), skipped.len()), (1, 1));

    let rto = cases
        .iter()
        .find(|c| attr(**c, "name") == "rto/checkout")
        .unwrap();
    assert_eq!(attr(*rto, "classname"), "shakeout.checkout-failover");
    let failure = child(*rto, "failure").unwrap();
    assert_eq!(attr(failure, "message"), "measured 38.1s, required <= 30s");
    assert_eq!(attr(failure, "type"), "rto");
    assert!(failure.text().unwrap().contains("recovered at 58.4s"));
    assert_eq!(
        attr(skipped[0], "message"),
        "no ok responses during recovery"
    );
    // A verdict on one phase lasts as long as that phase.
    let baseline = cases
        .iter()
        .find(|c| attr(**c, "name") == "availability/checkout/baseline")
        .unwrap();
    assert_eq!(attr(*baseline, "time"), "20.000");
}

#[test]
fn run_that_did_not_complete_is_never_green() {
    for status in [
        RunStatus::Aborted,
        RunStatus::Interrupted,
        RunStatus::Error,
        RunStatus::RevertUnconfirmed,
    ] {
        let mut r = Report::test().with_status(status, Some("stop condition: error rate > 50%"));
        // Even with every verdict passing, CI must see a failure.
        r.verdicts.retain(|v| v.status == VerdictStatus::Pass);
        let xml = junit(&r);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = child(doc.root_element(), "testsuite").unwrap();
        let cases = testcases(&doc);
        assert_eq!(cases.len(), r.verdicts.len() + 1, "{status:?}");
        assert_eq!(attr(suite, "tests"), cases.len().to_string());
        assert_eq!(attr(suite, "errors"), "1", "{status:?}");
        let run = cases.iter().find(|c| attr(**c, "name") == "run").unwrap();
        let error = child(*run, "error").unwrap();
        assert_eq!(attr(error, "type"), status.as_str());
        assert!(
            attr(error, "message").contains("stop condition: error rate > 50%"),
            "{status:?}: {}",
            attr(error, "message")
        );
    }
}

#[test]
fn completed_run_has_no_extra_testcase() {
    let mut r = Report::test().with_status(RunStatus::Met, None);
    r.verdicts.retain(|v| v.status == VerdictStatus::Pass);
    let xml = junit(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(testcases(&doc).len(), 1);
    assert!(!xml.contains("<error"));
    assert!(!xml.contains("<failure"));
}

#[test]
fn markup_in_names_and_messages_is_escaped() {
    let nasty = r#"a<b>&"c"'d"#;
    let r = Report::test()
        .with_experiment_name(nasty)
        .with_verdict(verdict(
            &format!("latency/{nasty}/run"),
            VerdictStatus::Fail,
            Some("<&>"),
            r#"p99 <= "50ms" & </testcase>"#,
            Some("]]> <!-- not a comment -->"),
        ));
    let xml = junit(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = child(doc.root_element(), "testsuite").unwrap();
    assert_eq!(attr(suite, "name"), nasty);
    let case = testcases(&doc)
        .into_iter()
        .find(|c| attr(*c, "name") == format!("latency/{nasty}/run"))
        .unwrap();
    assert_eq!(attr(case, "classname"), format!("shakeout.{nasty}"));
    let failure = child(case, "failure").unwrap();
    assert_eq!(
        attr(failure, "message"),
        r#"measured <&>, required p99 <= "50ms" & </testcase>"#
    );
    assert!(failure
        .text()
        .unwrap()
        .contains("note: ]]> <!-- not a comment -->"));
}

#[test]
fn fault_output_with_control_characters_stays_parseable() {
    let mut r = Report::test();
    if let Some(apply) = r.faults[0].apply.as_mut() {
        apply.stdout = "\u{1b}[31mstopped\u{1b}[0m\u{0}\n".to_string();
        apply.stderr = "warning: <unit> & more\n".to_string();
    }
    let xml = junit(&r);
    let doc = roxmltree::Document::parse(&xml).expect("control characters broke the XML");
    let out = child(
        child(doc.root_element(), "testsuite").unwrap(),
        "system-out",
    )
    .unwrap()
    .text()
    .unwrap();
    assert!(
        out.contains("apply: systemctl stop postgresql@16-main -> exit 0"),
        "{out}"
    );
    assert!(
        out.contains("revert: systemctl start postgresql@16-main -> exit 0"),
        "{out}"
    );
    assert!(out.contains("\u{fffd}[31mstopped"), "{out}");
    assert!(out.contains("warning: <unit> & more"), "{out}");
}
