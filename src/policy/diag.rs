//! Policy diagnostics that point into the file: `policy.toml:7:9: error[unknown-key]: ...`.
//!
//! Codes are stable kebab-case strings (after cargo-deny); `tests/it/policy_errors.rs` pins
//! them so scripts can match on them.

use std::fmt;
use std::ops::Range;

use super::Source;

/// A policy that cannot be used, with its location when one exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File name as given (or `<embedded:...>`).
    pub file: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// Stable code, e.g. `unknown-key`.
    pub code: &'static str,
    /// Dotted key path, e.g. `identity.user`.
    pub key: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl PolicyError {
    /// An error located at a byte span of the policy source.
    pub fn at(
        src: &Source,
        span: Range<usize>,
        code: &'static str,
        key: &str,
        message: impl Into<String>,
    ) -> Self {
        // Spans of defaulted values are 0..0: they have no place in the file.
        let position = (span != (0..0)).then(|| src.line_col(span.start));
        PolicyError {
            file: src.origin.display_name().to_string(),
            position,
            code,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (unreadable, not UTF-8).
    pub fn whole(file: &str, code: &'static str, message: impl Into<String>) -> Self {
        PolicyError {
            file: file.to_string(),
            position: None,
            code,
            key: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "{}:{}:{}: ", self.file, l, c)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "error[{}]: ", self.code)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Turn a toml/serde error into a located diagnostic, naming the table it happened in.
pub fn from_toml(src: &Source, e: &toml::de::Error) -> PolicyError {
    let span = e.span().unwrap_or(0..0);
    let table = enclosing_table(&src.text, span.start);
    let raw = e.message().trim().to_string();
    let (code, mut key, message) = classify(&raw, &table, &src.text[span.clone()]);
    // A bad value of `key = value`: name the key itself, not only its table.
    if code == "bad-value" && key == table {
        if let Some(k) = key_on_line(&src.text, span.start) {
            key = if table.is_empty() {
                k
            } else {
                format!("{table}.{k}")
            };
        }
    }
    let mut err = PolicyError::at(src, span, code, &key, message);
    if err.position.is_none() && !src.text.is_empty() {
        err.position = Some((1, 1));
    }
    err
}

fn classify(raw: &str, table: &str, spanned_text: &str) -> (&'static str, String, String) {
    let in_table = if table.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in [{table}]")
    };
    let qualify = |k: &str| {
        if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        }
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = tail
            .trim_start_matches(", ")
            .replace('`', "")
            .replace("expected one of ", "expected one of: ");
        let expected = if expected.is_empty() {
            "no keys are allowed here".to_string()
        } else {
            expected
        };
        return (
            "unknown-key",
            qualify(field),
            format!("unknown key \"{field}\" {in_table}; {expected}"),
        );
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return (
            "missing-key",
            qualify(field),
            format!("required key \"{field}\" is missing {in_table}"),
        );
    }
    if raw.starts_with("unknown variant") {
        let key = table.to_string();
        return ("bad-value", key, raw.replace('`', "\""));
    }
    if raw.starts_with("invalid type") || raw.contains("data did not match any variant") {
        let key = table.to_string();
        let msg = if raw.contains("did not match any variant") {
            format!(
                "value {} has the wrong type {in_table}",
                spanned_text.trim()
            )
        } else {
            format!("{} {in_table}", raw.replace('`', "\""))
        };
        return ("wrong-type", key, msg);
    }
    if raw.starts_with("invalid limit") {
        return ("bad-value", table.to_string(), raw.to_string());
    }
    if raw.contains("duplicate key") {
        return ("duplicate-key", table.to_string(), raw.replace('`', "\""));
    }
    ("syntax", table.to_string(), raw.replace('`', "\""))
}

/// The bare key of the `key = value` line holding a byte offset, if the line is one.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (k, _) = text[start..].split_once('=')?;
    let k = k.trim();
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    bare.then(|| k.to_string())
}

/// The `[table]` header in force at a byte offset ("" for the top level).
fn enclosing_table(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > offset {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') && pos + line.len() <= offset + line.len() && pos <= offset {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            table = name.to_string();
        }
        pos += line.len();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{load, Origin, Source};

    fn err(text: &str) -> PolicyError {
        match load(Source::new(Origin::Flag("p.toml".into()), text.into())) {
            Ok(_) => PolicyError::whole("-", "none", "no error"),
            Err(e) => e,
        }
    }

    #[test]
    fn unknown_key_names_table_and_valid_keys() {
        let e = err("version = 1\n[identity]\nusr = \"x\"\n");
        assert_eq!(e.code, "unknown-key");
        assert_eq!(e.position, Some((3, 1)));
        assert_eq!(e.key, "identity.usr");
        assert!(e.message.contains("expected one of"), "{e}");
        assert!(e.message.contains("user"), "{e}");
        assert!(
            e.to_string().starts_with("p.toml:3:1: error[unknown-key]"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err("version = 1\n[identity]\nallow_root = \"yes\"\n");
        assert_eq!(e.code, "wrong-type");
        assert_eq!(e.position.map(|p| p.0), Some(3));
    }

    #[test]
    fn version_is_required_and_checked() {
        assert_eq!(err("").code, "missing-key");
        let e = err("version = 2\n");
        assert_eq!(e.code, "unsupported-version");
        assert_eq!(e.position, Some((1, 11)));
    }

    #[test]
    fn unknown_top_level_section() {
        let e = err("version = 1\n[idnetity]\n");
        assert_eq!(e.code, "unknown-key");
        assert!(e.message.contains("identity"), "{e}");
    }
}
