//! PLACEHOLDER (being written): Markdown summary.
use super::Report;
pub fn render_markdown(_r: &Report) -> String {
    todo!()
}
