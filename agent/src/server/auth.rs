//! Bearer tokens: a file of `name:secret` lines. The name is what the audit log and the
//! policy know; the secret is compared in constant time against every token, so
//! response timing does not reveal how much of a guess was right. Like ssh with a key,
//! the agent refuses a tokens file that group or others may read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// Token file errors, with the line at fault.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("tokens {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "tokens {path}: mode {mode:04o} lets group or others read the secrets; \
         the agent accepts only a file private to its owner: run `chmod 600 {path}`"
    )]
    Mode { path: String, mode: u32 },
    #[error("tokens {path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// The accepted tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in a debug log.
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

impl Tokens {
    /// Parse a token file: `name:secret` per line; blank lines and `#` comments skipped.
    /// The file (a symlink is followed, as Kubernetes mounts Secrets) must give group and
    /// others no permission at all (`mode & 077 == 0`).
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        let shown = path.display().to_string();
        let read_err = |source| TokenError::Read {
            path: shown.clone(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Mode { path: shown, mode });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Tokens::parse(&text).map_err(|(line, message)| TokenError::Invalid {
            path: shown,
            line,
            message,
        })
    }

    /// Parse token file text; the error is (line number, message).
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut tokens = Tokens::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, secret)) = line.split_once(':') else {
                return Err((i + 1, "expected name:secret".into()));
            };
            let (name, secret) = (name.trim(), secret.trim());
            if name.is_empty() || name == "-" {
                return Err((i + 1, "token name must not be empty or `-`".into()));
            }
            if secret.len() < 16 {
                return Err((
                    i + 1,
                    format!("token {name}: secret shorter than 16 characters"),
                ));
            }
            if tokens.entries.iter().any(|(n, _)| n == name) {
                return Err((i + 1, format!("token {name} listed twice")));
            }
            tokens
                .entries
                .push((name.to_string(), secret.as_bytes().to_vec()));
        }
        if tokens.entries.is_empty() {
            return Err((0, "no tokens: the agent would accept nobody".into()));
        }
        Ok(tokens)
    }

    /// The token's name, if `header` is `Bearer <a known secret>`.
    pub fn authenticate(&self, header: Option<&str>) -> Option<String> {
        let secret = header?.strip_prefix("Bearer ")?.trim().as_bytes();
        let mut found = None;
        // No early exit: every token is compared, match or not.
        for (name, expected) in &self.entries {
            if bool::from(expected.as_slice().ct_eq(secret)) {
                found = Some(name.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_secrets_and_mistakes() {
        let t =
            Tokens::parse("# ci runners\nci: 0123456789abcdef0123\n\nops:fedcba9876543210fedc\n")
                .unwrap();
        assert_eq!(
            t.authenticate(Some("Bearer 0123456789abcdef0123"))
                .as_deref(),
            Some("ci")
        );
        assert_eq!(
            t.authenticate(Some("Bearer fedcba9876543210fedc"))
                .as_deref(),
            Some("ops")
        );
        assert_eq!(t.authenticate(Some("Bearer 0123456789abcdef012")), None);
        assert_eq!(t.authenticate(Some("Basic 0123456789abcdef0123")), None);
        assert_eq!(t.authenticate(None), None);
        assert!(
            !format!("{t:?}").contains("0123"),
            "debug output leaks a secret"
        );
        assert_eq!(Tokens::parse("nocolon").unwrap_err().0, 1);
        assert_eq!(Tokens::parse("a:short").unwrap_err().0, 1);
        assert_eq!(
            Tokens::parse("a:0123456789abcdef\na:0123456789abcdefg")
                .unwrap_err()
                .0,
            2
        );
        assert!(Tokens::parse("# nothing\n").is_err());
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "ci:0123456789abcdef0123\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let message = Tokens::load(&path).unwrap_err().to_string();
            assert!(message.contains(&format!("mode {mode:04o}")), "{message}");
            assert!(
                message.contains(&format!("chmod 600 {}", path.display())),
                "{message}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            Tokens::load(&path).unwrap();
        }
    }
}
