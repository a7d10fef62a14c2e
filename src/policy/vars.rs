//! `${NAME}` and `~` expansion.
//!
//! Variables expand once, from the resolved *target* user (never the caller), so the same
//! reviewed policy means the same paths whoever starts it. An undefined variable is an error.

use std::collections::BTreeMap;

/// Names that come from the target user and cannot be set by `[vars]` or `--var`
/// (STATE_DIR may be overridden: it is a per-instance choice).
pub const BUILTIN: &[&str] = &["HOME", "UID", "GID", "USER", "STATE_DIR", "TMP"];

/// The variable table a policy expands against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    map: BTreeMap<String, String>,
    /// Where each value came from, for `check` ("[vars]", "[unprivileged.vars]: openclaw
    /// found in the caller's PATH at ...", "--var").
    origin: BTreeMap<String, String>,
}

impl Vars {
    pub fn new() -> Self {
        Vars::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.map.insert(name.to_string(), value.into());
    }

    /// Record where `name`'s value came from.
    pub fn set_origin(&mut self, name: &str, origin: impl Into<String>) {
        self.origin.insert(name.to_string(), origin.into());
    }

    pub fn origins(&self) -> impl Iterator<Item = (&String, &String)> {
        self.origin.iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }

    /// Expand `${NAME}` everywhere and a leading `~` (alone or followed by `/`) to `${HOME}`.
    /// `$$` is a literal `$`.
    pub fn expand(&self, input: &str) -> Result<String, String> {
        let tilde;
        let input = if input == "~" || input.starts_with("~/") {
            tilde = format!("${{HOME}}{}", &input[1..]);
            tilde.as_str()
        } else {
            input
        };
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| {
                    format!("unterminated variable in {input:?}: expected ${{NAME}}")
                })?;
                let name = &body[..end];
                check_var_name(name)?;
                let value = self.get(name).ok_or_else(|| {
                    let known: Vec<&str> = self.map.keys().map(String::as_str).collect();
                    format!(
                        "undefined variable ${{{name}}}; defined: {}; set it with --var {name}=VALUE or in [vars]",
                        known.join(", ")
                    )
                })?;
                out.push_str(value);
                rest = &body[end + 1..];
            } else {
                return Err(format!(
                    "bare '$' in {input:?}: write ${{NAME}} for a variable or $$ for a literal '$'"
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The names `input` refers to with `${NAME}` (a leading `~` refers to HOME), in order;
/// malformed references are left for [`Vars::expand`] to report.
pub fn references(input: &str) -> Vec<String> {
    let mut out = Vec::new();
    if input == "~" || input.starts_with("~/") {
        out.push("HOME".to_string());
    }
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else { break };
            out.push(body[..end].to_string());
            rest = &body[end + 1..];
        } else {
            rest = after;
        }
    }
    out
}

/// Variable names are `[A-Z_][A-Z0-9_]*`.
pub fn check_var_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid variable name {name:?}: expected upper-case letters, digits and '_'"
        ))
    }
}

/// Parse `--var NAME=VALUE`.
pub fn parse_cli_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--var {s:?}: expected NAME=VALUE"))?;
    check_var_name(name)?;
    if BUILTIN.contains(&name) && name != "STATE_DIR" {
        return Err(format!(
            "--var {name}: ${{{name}}} comes from the target user and cannot be overridden"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set("HOME", "/home/oc");
        v.set("PORT", "18789");
        v
    }

    #[test]
    fn expands_braces_and_tilde() {
        let v = vars();
        assert_eq!(v.expand("~/.ssh").as_deref(), Ok("/home/oc/.ssh"));
        assert_eq!(v.expand("~").as_deref(), Ok("/home/oc"));
        assert_eq!(
            v.expand("${HOME}/x/${PORT}").as_deref(),
            Ok("/home/oc/x/18789")
        );
        assert_eq!(v.expand("a$$b").as_deref(), Ok("a$b"));
        assert_eq!(v.expand("~user").as_deref(), Ok("~user"));
    }

    #[test]
    fn undefined_and_malformed_are_errors() {
        let v = vars();
        assert!(v
            .expand("${NOPE}")
            .unwrap_err()
            .contains("undefined variable ${NOPE}"));
        assert!(v.expand("${HOME").is_err());
        assert!(v.expand("$HOME").is_err());
        assert!(v.expand("${lower}").is_err());
    }

    #[test]
    fn references_found() {
        assert_eq!(references("~/a/${B}/$${C}${D}"), vec!["HOME", "B", "D"]);
        assert!(references("plain").is_empty());
    }

    #[test]
    fn cli_vars() {
        assert_eq!(parse_cli_var("PORT=1"), Ok(("PORT".into(), "1".into())));
        assert!(parse_cli_var("HOME=/").is_err());
        assert!(parse_cli_var("PORT").is_err());
        assert!(parse_cli_var("STATE_DIR=/srv/oc").is_ok());
    }
}
