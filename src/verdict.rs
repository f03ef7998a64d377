//! PLACEHOLDER (being written): verdicts.
