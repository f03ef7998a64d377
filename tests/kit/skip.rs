//! When a test may skip, and when it must fail instead: a test that needs root or a tool
//! says why it skips on a developer's machine, and fails under CI (`CI` set), where a
//! skipped privileged test would look like a passed one.

/// Fails when running under CI, where nothing may skip; otherwise says why `test` skips.
fn skip(test: &str, why: &str, under_ci: &str) {
    assert!(std::env::var_os("CI").is_none(), "{test}: {under_ci}");
    eprintln!("skipping {test}: {why}");
}

/// True as root. Otherwise the test is skipped with `needs` said (failing under CI).
pub fn root_or_skip(test: &str, needs: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(
        test,
        &format!("needs root ({needs})"),
        "privileged tests must run as root in CI",
    );
    false
}
