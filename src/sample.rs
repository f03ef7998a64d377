//! PLACEHOLDER (being written): sample service.
#[derive(Debug, clap::Args, Clone)]
pub struct SampleArgs {}
pub fn main(_a: SampleArgs) -> i32 {
    todo!()
}
