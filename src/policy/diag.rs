//! Policy diagnostics that point into the file: `policy.toml:7:9: error[unknown-key]: ...`.
//!
//! Codes are stable kebab-case strings (after cargo-deny); `tests/it/policy_errors.rs` pins
//! them so scripts can match on them.

use std::fmt;
use std::ops::Range;

use super::{values, Source};

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
    /// The file's other errors, reported in the same run (boxed: most errors come alone,
    /// and every `Result` carrying a `PolicyError` pays for its size).
    pub also: Option<Box<Also>>,
}

/// The errors reported together with the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Also {
    pub errors: Vec<PolicyError>,
    /// More than [`MAX_ERRORS`] were found; the rest were not listed.
    pub truncated: bool,
}

/// At most this many errors of one file are listed in one run.
pub const MAX_ERRORS: usize = 20;

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
            also: None,
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
            also: None,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_one(f)?;
        let Some(also) = &self.also else {
            return Ok(());
        };
        for e in &also.errors {
            f.write_str("\n")?;
            e.fmt_one(f)?;
        }
        if !also.errors.is_empty() {
            let n = also.errors.len() + 1;
            write!(f, "\n{n} errors in {}", self.file)?;
            if also.truncated {
                write!(f, " (stopped after {MAX_ERRORS}; fix these and run again)")?;
            }
        }
        Ok(())
    }
}

impl PolicyError {
    /// The other errors reported with this one.
    pub fn more(&self) -> &[PolicyError] {
        self.also.as_ref().map_or(&[], |a| a.errors.as_slice())
    }

    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// One error carrying the others, or `None` when the list is empty.
pub fn combine(mut errs: Vec<PolicyError>) -> Option<PolicyError> {
    // In file order, as compilers list them; errors without a place first.
    errs.sort_by_key(|e| e.position);
    let truncated = errs.len() > MAX_ERRORS;
    errs.truncate(MAX_ERRORS);
    let mut it = errs.into_iter();
    let mut first = it.next()?;
    let errors: Vec<PolicyError> = it.collect();
    if !errors.is_empty() {
        first.also = Some(Box::new(Also { errors, truncated }));
    }
    Some(first)
}

/// Deserialize the policy, collecting every type/key error rather than only the first.
///
/// serde stops at the first error, so after each one the offending lines are blanked (bytes
/// replaced by spaces, so every later span and line:column still points into the original
/// file) and the text is parsed again. A `[table]` that is itself unknown is blanked whole,
/// so its keys are not reported again as strays. A TOML syntax error, an error with no
/// place, or one that blanking itself caused (a syntax error or a missing key after a
/// blank) ends the loop: those would only cascade.
pub fn parse_collecting(src: &Source) -> (Option<super::Policy>, Vec<PolicyError>) {
    let mut errs = Vec::new();
    let mut work = src.clone();
    let mut blanked = false;
    while errs.len() <= MAX_ERRORS {
        let e = match super::parse(&work.text) {
            Ok(p) => return (Some(p), errs),
            Err(e) => e,
        };
        let err = from_toml(&work, &e);
        let caused_by_blanking = blanked && matches!(err.code, "syntax" | "missing-key");
        if !caused_by_blanking {
            errs.push(err.clone());
        }
        let span = match e.span() {
            Some(span) if !caused_by_blanking && err.code != "syntax" => span,
            _ => break,
        };
        let range = blank_range(&work.text, span);
        if range.is_empty() || work.text[range.clone()].trim().is_empty() {
            break;
        }
        // Same byte length, so offsets after the range do not move: a multi-byte character
        // becomes as many spaces as it had bytes.
        let spaces: String = work.text[range.clone()]
            .chars()
            .map(|c| {
                if c == '\n' {
                    "\n".to_string()
                } else {
                    " ".repeat(c.len_utf8())
                }
            })
            .collect();
        work.text.replace_range(range, &spaces);
        blanked = true;
    }
    (None, errs)
}

/// The lines to blank for an error at `span`: the whole lines it touches, or, when the first
/// is a `[table]` header, the table up to the next header.
fn blank_range(text: &str, span: Range<usize>) -> Range<usize> {
    // Byte searches only: a span may end inside a multi-byte character, and a '\n' byte is
    // always a character boundary.
    let bytes = text.as_bytes();
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let line_start = bytes[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = |from: usize| {
        bytes[from.min(bytes.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| from + i)
    };
    let first_line = &text[line_start..line_end(line_start)];
    if first_line.trim_start().starts_with('[') {
        // Up to the next line that opens another table.
        let mut pos = line_end(line_start);
        while pos < text.len() {
            let next = pos + 1;
            if text[next..]
                .trim_start_matches([' ', '\t'])
                .starts_with('[')
            {
                return line_start..pos;
            }
            pos = line_end(next);
        }
        return line_start..text.len();
    }
    let last = if end > start { end - 1 } else { start };
    line_start..line_end(last.min(text.len()))
}

/// Turn a toml/serde error into a located diagnostic, naming the table it happened in.
pub fn from_toml(src: &Source, e: &toml::de::Error) -> PolicyError {
    let span = e.span().unwrap_or(0..0);
    let mut table = enclosing_table(&src.text, span.start);
    // An unknown `[table]` is a key of its parent: `[idnetity]` is a top-level key, not a
    // key inside itself.
    let line_start = src.text.as_bytes()[..span.start.min(src.text.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if src.text[line_start..].trim_start().starts_with('[') {
        table = table
            .rsplit_once('.')
            .map_or(String::new(), |(parent, _)| parent.to_string());
    }
    let raw = e.message().trim().to_string();
    let (code, mut key, message) = classify(&raw, &table, &src.text[span.clone()]);
    // A value a typed key refused (`values::CODES`): toml knows the key path.
    if key == table && values::CODES.iter().any(|(_, c)| *c == code) {
        if let Some(k) = key_path(e) {
            key = k;
        }
    }
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
    if let Some((_, code)) = values::CODES.iter().find(|(p, _)| raw.starts_with(p)) {
        return (code, table.to_string(), raw.to_string());
    }
    if raw.contains("duplicate key") {
        return ("duplicate-key", table.to_string(), raw.replace('`', "\""));
    }
    ("syntax", table.to_string(), raw.replace('`', "\""))
}

/// The dotted key path toml records for a deserialization error (`process.umask`), which
/// it prints only when the error carries no input text: so print a copy without it.
fn key_path(e: &toml::de::Error) -> Option<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let path = shown.lines().rev().find_map(|l| l.strip_prefix("in `"))?;
    let path = path.strip_suffix('`')?;
    (!path.is_empty()).then(|| path.to_string())
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
    fn every_error_of_a_file_is_reported_in_one_run() {
        let e = err("version = 1\n[identity]\nusr = \"x\"\nallow_root = \"yes\"\n[idnetity]\nuser = 1\n[process]\numask = \"9\"\n[env]\npass = [\"A=B\"]\n");
        let all: Vec<(&str, Option<usize>)> = std::iter::once(&e)
            .chain(e.more())
            .map(|e| (e.code, e.position.map(|p| p.0)))
            .collect();
        assert_eq!(
            all,
            [
                ("unknown-key", Some(3)),
                ("wrong-type", Some(4)),
                ("unknown-key", Some(5)),
                ("bad-mode", Some(8)),
                ("bad-env-name", Some(10)),
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(text.ends_with("5 errors in p.toml"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("p.toml:")).count(), 5);
    }

    #[test]
    fn the_error_list_is_capped() {
        let mut text = String::from("version = 1\n[identity]\n");
        for i in 0..30 {
            text.push_str(&format!("bogus{i} = 1\n"));
        }
        let e = err(&text);
        assert_eq!(e.more().len() + 1, MAX_ERRORS);
        assert!(e.also.as_ref().is_some_and(|a| a.truncated));
        assert!(e.to_string().contains("stopped after 20"), "{e}");
    }

    #[test]
    fn a_syntax_error_ends_the_list_and_blanking_adds_none() {
        // Blanking the wrong-typed version must not add a "missing version" error.
        let e = err("version = \"one\"\n[identity]\nusr = 1\n");
        assert!(e.more().iter().all(|m| m.code != "missing-key"), "{e}");
        let e = err("version = 1\n[identity\nuser = 1\n");
        assert_eq!(e.code, "syntax");
        assert!(e.more().is_empty(), "{e}");
    }

    /// Typed values are refused while the file is read, at the value, with the key
    /// toml recorded (also inside a multi-line list) and the code of the value's kind.
    #[test]
    fn typed_values_are_refused_at_the_value() {
        let cases = [
            (
                "[process]\numask = \"9\"\n",
                "bad-mode",
                "process.umask",
                (3, 9),
            ),
            (
                "[filesystem]\ncreate_mode = \"rwx\"\n",
                "bad-mode",
                "filesystem.create_mode",
                (3, 15),
            ),
            (
                "[capabilities]\nkeep = [\n  \"CAP_CHOWN\",\n  \"CAP_NOPE\",\n]\n",
                "unknown-capability",
                "capabilities.keep",
                (5, 3),
            ),
            (
                "[network]\nconnect = [443, 70000]\n",
                "bad-port",
                "network.connect",
                (3, 17),
            ),
            (
                "[limits]\nnproc = -1\n",
                "bad-value",
                "limits.nproc",
                (3, 9),
            ),
            (
                "[limits]\nnofle = 1\n",
                "unknown-key",
                "limits.nofle",
                (3, 1),
            ),
            (
                "[seccomp]\nallow = [\"io_uring_setpu\"]\n",
                "unknown-syscall",
                "seccomp.allow",
                (3, 10),
            ),
        ];
        for (text, code, key, pos) in cases {
            let e = err(&format!("version = 1\n{text}"));
            assert_eq!(
                (e.code, e.key.as_str(), e.position),
                (code, key, Some(pos)),
                "{e}"
            );
        }
        let e = err("version = 1\n[limits]\nnofle = 1\n");
        assert!(e.message.contains("expected one of: nofile, nproc"), "{e}");
        let e = err("version = 1\n[capabilities]\nkeep = [\"CAP_NOPE\"]\n");
        assert!(
            e.message.contains("expected one of: ") && e.message.contains("CAP_CHOWN"),
            "{e}"
        );
    }

    #[test]
    fn booleans_and_enums_keep_their_spans() {
        let l = load(Source::new(
            Origin::Flag("p.toml".into()),
            "version = 1\n[network]\nunix = true\n[seccomp]\naction = \"log\"\n".into(),
        ))
        .unwrap();
        let p = &l.policy;
        assert!(p.network.unix.get());
        assert_eq!(l.source.line_col(p.network.unix.span().start), (3, 8));
        assert_eq!(l.source.line_col(p.seccomp.action.span().start), (5, 10));
        assert!(!p.filesystem.allow_chown.is_written());
        assert!(p.process.new_session.get() && !p.process.new_session.is_written());
        let core = p.limits.get(crate::policy::LimitKind::Core).unwrap();
        assert_eq!(core.get(), crate::policy::LimitValue::Value(0));
    }

    #[test]
    fn unknown_top_level_section() {
        let e = err("version = 1\n[idnetity]\n");
        assert_eq!(e.code, "unknown-key");
        assert!(e.message.contains("identity"), "{e}");
    }
}
