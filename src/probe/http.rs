//! PLACEHOLDER (being written): HTTP probe sends.
