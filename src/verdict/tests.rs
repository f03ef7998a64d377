//! The verdicts' arithmetic: RTO from buckets, percentiles over too few samples.

use super::*;
use crate::probe::{Bucket, Counts, Outcome};

fn buckets(pattern: &str) -> Vec<Bucket> {
    // One char per 100 ms bucket: '.' ok (20 sends), 'x' all failed, ' ' empty.
    pattern
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let mut counts = Counts::default();
            match c {
                '.' => counts.add(Outcome::Ok, 20),
                'x' => counts.add(Outcome::Refused, 20),
                _ => {}
            }
            Bucket {
                start: Duration::from_millis(100 * i as u64),
                counts,
                max_us: 0,
                p99_us: 0,
            }
        })
        .collect()
}

fn window(start_ms: u64, end_ms: u64, until_ms: u64) -> RtoWindow {
    RtoWindow {
        fault_start: Duration::from_millis(start_ms),
        fault_end: Duration::from_millis(end_ms),
        until: Duration::from_millis(until_ms),
        level: 0.999,
        stable_for: Duration::from_millis(500),
        rate_per_second: 200.0,
    }
}

#[test]
fn rto_is_first_failure_to_start_of_stable_stretch() {
    //          0         1         2
    let b = buckets("..........xxxxxxxxxx..........");
    let r = measure_rto(&b, Duration::from_millis(100), window(950, 950, 3000));
    assert_eq!(r.first_failure_ms, Some(1000.0));
    assert_eq!(r.time_to_detect_ms, Some(50.0));
    assert_eq!(r.recovered_ms, Some(2000.0));
    assert_eq!(r.time_to_recover_ms, Some(1000.0));
    assert_eq!(r.resolution_ms, 100.0);
}

#[test]
fn a_relapse_moves_recovery_to_the_last_failure() {
    let b = buckets("..........xxx....x............");
    let r = measure_rto(&b, Duration::from_millis(100), window(1000, 1000, 3000));
    assert_eq!(r.recovered_ms, Some(1800.0));
}

#[test]
fn not_recovered_when_the_stable_stretch_is_too_short() {
    let b = buckets("..........xxxxxxxxxx...");
    let r = measure_rto(&b, Duration::from_millis(100), window(1000, 1000, 2300));
    assert_eq!(r.time_to_recover_ms, None);
    assert!(
        r.note
            .as_deref()
            .unwrap_or("")
            .contains("steady for 300ms of the 500ms"),
        "{:?}",
        r.note
    );
    assert!(!recovered(
        &b,
        Duration::from_millis(100),
        window(1000, 1000, 2300)
    ));
}

#[test]
fn no_failure_means_zero_rto_with_a_note() {
    let b = buckets("..............................");
    let r = measure_rto(&b, Duration::from_millis(100), window(1000, 1000, 3000));
    assert_eq!(r.time_to_recover_ms, Some(0.0));
    assert_eq!(r.note.as_deref(), Some("no failure observed"));
}

#[test]
fn failures_before_the_fault_are_not_counted_and_empty_buckets_are_neutral() {
    let b = buckets("xx........ xx  xx.....  .......");
    let r = measure_rto(&b, Duration::from_millis(100), window(1000, 1000, 3100));
    assert_eq!(r.first_failure_ms, Some(1100.0));
    assert_eq!(r.recovered_ms, Some(1700.0));
    // Resolution is the larger of bucket width and the send interval.
    let mut w = window(1000, 1000, 3100);
    w.rate_per_second = 2.0;
    assert_eq!(
        measure_rto(&b, Duration::from_millis(100), w).resolution_ms,
        500.0
    );
}

#[test]
fn min_samples_is_one_over_the_tail() {
    assert_eq!(min_samples(0.5), 2);
    assert_eq!(min_samples(0.9), 10);
    assert_eq!(min_samples(0.99), 100);
    assert_eq!(min_samples(0.999), 1000);
    assert_eq!(min_samples(1.0), u64::MAX);
}

/// Phase stats with `n` successful responses of 1 ms each.
fn ok_responses(n: u64) -> PhaseStats {
    let mut counts = Counts::default();
    counts.add(Outcome::Ok, n);
    let mut latency = hdrhistogram::Histogram::new(3).unwrap();
    latency.record_n(1000, n).unwrap();
    PhaseStats { counts, latency }
}

#[test]
fn a_percentile_over_too_few_samples_is_not_measured_and_says_how_many() {
    use crate::experiment::spec::MaxDuration;
    use shakeout_api::Dur;
    let bounds = LatencyBounds {
        p50: Some(MaxDuration {
            max: Dur(Duration::from_millis(5)),
        }),
        p99: Some(MaxDuration {
            max: Dur(Duration::from_millis(5)),
        }),
        ..LatencyBounds::default()
    };
    let few = latency_verdicts(
        "latency",
        "latency",
        "web",
        During::Faults,
        &ok_responses(99),
        &bounds,
    );
    assert_eq!(
        few[0].status,
        VerdictStatus::Pass,
        "p50 needs only 2: {:?}",
        few[0]
    );
    assert_eq!(few[1].status, VerdictStatus::NotMeasured, "{:?}", few[1]);
    assert_eq!(
        few[1].note.as_deref(),
        Some("only 99 successful responses during faults: a p99 needs at least 100")
    );
    let enough = latency_verdicts(
        "latency",
        "latency",
        "web",
        During::Faults,
        &ok_responses(100),
        &bounds,
    );
    assert_eq!(enough[1].status, VerdictStatus::Pass, "{:?}", enough[1]);
    assert_eq!(enough[1].measured.as_deref(), Some("p99 1.00ms"));
}
