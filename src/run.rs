//! PLACEHOLDER (being written): the runner.
use crate::cli::{DemoArgs, RunArgs};
pub fn run_file(_a: &RunArgs) -> i32 {
    todo!()
}
pub fn run_demo(_a: &DemoArgs) -> i32 {
    todo!()
}
