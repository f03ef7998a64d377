//! Files only their owner may read (token files: the agent refuses any others). One
//! source for the agent's tests and the controller's (`tests/kit` includes it by path).

use std::path::Path;

/// Write `text` to `path` with mode 0600.
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    // `mode` applies only when the file is created; a file already there is narrowed too.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}
