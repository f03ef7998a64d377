//! PLACEHOLDER (being written): terminal summary.
use super::Report;
pub fn render_terminal(_r: &Report) -> String {
    todo!()
}
