//! How numbers read, in one place: every report form, verdict and progress line uses
//! these, so a time reads the same everywhere (`412µs`, `12.3ms`, `1.24s`, `2m05s`).

use std::time::Duration;

/// Placeholder for a value that was not measured.
pub const NONE: &str = "-";

/// Milliseconds as f64 from a Duration (reports use fractional ms).
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A duration for people: three significant digits, in the unit a person expects.
pub fn duration(d: Duration) -> String {
    duration_ms(ms(d))
}

/// Milliseconds (possibly negative, or not finite: `-`) as a short human duration: `412µs`, `12.3ms`, `1.24s`, `2m05s`, `1h02m`.
///
/// Three significant digits: enough to compare runs, few enough to read at a glance.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return NONE.to_string();
    }
    if ms < 0.0 {
        // recovered - faultEnd is negative when the service recovered before the fault ended.
        return format!("-{}", duration_ms(-ms));
    }
    // Round first, then pick the unit, so 999.7ms reads `1.00s`, not `1000ms`.
    let us = round_sig(ms * 1000.0, 3);
    if us < 1.0 && us > 0.0 {
        return "<1µs".to_string();
    }
    if us < 1000.0 {
        return format!("{us:.0}µs");
    }
    let ms = us / 1000.0;
    if ms < 1000.0 {
        return format!("{}ms", sig3(ms));
    }
    let s = ms / 1000.0;
    if s < 60.0 {
        return format!("{}s", sig3(s));
    }
    let whole = s.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let minutes = (s / 60.0).round() as u64;
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    }
}

fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    // Divide or multiply by an exact power of ten: multiplying by 1e-5 is not exact and
    // 59.99s would come back as 59.9999…s.
    let e = digits - 1 - v.abs().log10().floor() as i32;
    if e >= 0 {
        let f = 10f64.powi(e);
        (v * f).round() / f
    } else {
        let f = 10f64.powi(-e);
        (v / f).round() * f
    }
}

/// A value in [1, 1000) already rounded to three significant digits.
fn sig3(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Unix seconds as RFC 3339 (`2026-12-16T10:00:00Z`), clamped at the epoch: certificate
/// dates in verdicts and reports.
pub fn rfc3339_unix(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_unit_a_person_expects() {
        let cases = [
            (0.412, "412µs"),
            (0.0004, "<1µs"),
            (0.0, "0µs"),
            (1.0, "1.00ms"),
            (12.34, "12.3ms"),
            (412.0, "412ms"),
            (999.7, "1.00s"),
            (1240.0, "1.24s"),
            (12_345.0, "12.3s"),
            (59_990.0, "1m00s"),
            (125_000.0, "2m05s"),
            (3_720_000.0, "1h02m"),
            (-1500.0, "-1.50s"),
            (f64::NAN, "-"),
        ];
        for (ms, want) in cases {
            assert_eq!(duration_ms(ms), want, "duration_ms({ms})");
        }
    }
}
