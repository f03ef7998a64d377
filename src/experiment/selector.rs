//! Syntax checks for what the API server will parse anyway — label and field selectors,
//! namespace names — so a typo fails validation (exit 3, with the line) instead of a
//! 400 from the server minutes into a run.

/// A label selector: comma-separated requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`.
pub fn check_labels(text: &str) -> Result<(), String> {
    let help = "use requirements like `app=checkout`, `tier!=db`, `env in (prod,staging)`, `canary` or `!canary`, joined by commas";
    if text.trim().is_empty() {
        return Err(format!("is empty: {help}"));
    }
    for req in split_top(text).map_err(|e| format!("`{text}`: {e}; {help}"))? {
        let req = req.trim();
        let bad = |why: &str| format!("`{req}` in `{text}`: {why}; {help}");
        if let Some(key) = req.strip_prefix('!') {
            check_key(key.trim()).map_err(|e| bad(&e))?;
            continue;
        }
        let words: Vec<&str> = req.splitn(2, char::is_whitespace).collect();
        if words.len() == 2 {
            let rest = words[1].trim_start();
            let (op, set) = if let Some(s) = rest.strip_prefix("notin") {
                ("notin", s)
            } else if let Some(s) = rest.strip_prefix("in") {
                ("in", s)
            } else {
                ("", rest)
            };
            if !op.is_empty() {
                check_key(words[0]).map_err(|e| bad(&e))?;
                let set = set.trim();
                let inner = set
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(|| {
                        bad(&format!(
                            "`{op}` needs a set in parentheses, like ({op_example})",
                            op_example = "a,b"
                        ))
                    })?;
                for v in inner.split(',') {
                    check_value(v.trim()).map_err(|e| bad(&e))?;
                }
                continue;
            }
        }
        let (key, value) = if let Some((k, v)) = req.split_once("!=") {
            (k, Some(v))
        } else if let Some((k, v)) = req.split_once("==") {
            (k, Some(v))
        } else if let Some((k, v)) = req.split_once('=') {
            (k, Some(v))
        } else {
            (req, None)
        };
        check_key(key.trim()).map_err(|e| bad(&e))?;
        if let Some(v) = value {
            check_value(v.trim()).map_err(|e| bad(&e))?;
        }
    }
    Ok(())
}

/// A field selector: comma-separated `path=value`, `path==value` or `path!=value`.
pub fn check_fields(text: &str) -> Result<(), String> {
    let help = "use terms like `status.phase=Running` or `spec.nodeName!=node-1`, joined by commas";
    if text.trim().is_empty() {
        return Err(format!("is empty: {help}"));
    }
    for term in text.split(',') {
        let term = term.trim();
        let (field, value) = term
            .split_once("!=")
            .or_else(|| term.split_once("=="))
            .or_else(|| term.split_once('='))
            .ok_or_else(|| format!("`{term}` in `{text}` has no operator; {help}"))?;
        let field = field.trim();
        if field.is_empty()
            || !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return Err(format!("`{field}` in `{text}` is not a field path; {help}"));
        }
        if value.contains(['=', '!', ' ']) {
            return Err(format!(
                "`{term}` in `{text}` has more than one operator; {help}"
            ));
        }
    }
    Ok(())
}

/// A namespace name (RFC 1123 label).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a namespace name: use lowercase letters, digits and `-` (at most 63), like `shop`"
        ))
    }
}

/// Split on commas outside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("a `)` without its `(`".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a `(` without its `)`".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// `[prefix/]name`: name 1-63 alphanumerics with `-_.` inside; prefix a DNS subdomain.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !ok {
            return Err(format!("`{p}` is not a label key prefix (a DNS name)"));
        }
    }
    if name.is_empty() || name.len() > 63 || !label_chars(name) {
        return Err(format!("`{key}` is not a label key"));
    }
    Ok(())
}

/// Empty, or 1-63 alphanumerics with `-_.` inside.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && label_chars(value)) {
        Ok(())
    } else {
        Err(format!("`{value}` is not a label value"))
    }
}

fn label_chars(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_the_server_accepts() {
        for ok in [
            "app=checkout",
            "app==checkout",
            "app!=checkout",
            "app=checkout,tier!=db",
            "env in (prod, staging)",
            "env notin (dev)",
            "canary",
            "!canary",
            "app.kubernetes.io/name=shakeout-agent",
            "app=checkout, env in (a,b),!legacy",
        ] {
            assert_eq!(check_labels(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn label_selectors_the_server_refuses() {
        for bad in [
            "",
            "app=check out",
            "env in prod",
            "env in (prod",
            "app=",
            "=checkout",
            "-app=x",
            "app=x)",
            "Bad_Prefix/app=x",
        ] {
            let r = check_labels(bad);
            if bad == "app=" {
                // An empty value is valid: `app=` matches pods whose label is empty.
                assert_eq!(r, Ok(()));
                continue;
            }
            assert!(r.is_err(), "{bad} should be refused");
        }
        let msg = check_labels("env in prod").unwrap_err();
        assert!(msg.contains("env in prod") && msg.contains("like"), "{msg}");
    }

    #[test]
    fn field_selectors() {
        assert_eq!(check_fields("status.phase=Running"), Ok(()));
        assert_eq!(check_fields("spec.nodeName!=n1,metadata.name==x"), Ok(()));
        assert!(check_fields("status.phase").is_err());
        assert!(check_fields("status phase=Running").is_err());
        assert!(check_fields("").is_err());
    }

    #[test]
    fn namespace_names() {
        assert_eq!(check_name("shop-1"), Ok(()));
        assert!(check_name("Shop").is_err());
        assert!(check_name("-shop").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
    }
}
