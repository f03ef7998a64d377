//! How numbers read, in one place: every report form and message uses these, so a time
//! reads the same everywhere.

/// Milliseconds as f64 from a Duration (reports use fractional ms).
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
