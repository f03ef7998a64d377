//! PLACEHOLDER (being written): TCP connect probe sends.
