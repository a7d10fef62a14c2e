//! Derived variables (`[vars]` / `[unprivileged.vars]` tables, docs/policy.md): values
//! that come from the machine at plan time instead of the policy text, so one policy
//! serves a laptop user's own install without flags. Each is computed only when the
//! policy (or a variable it uses) refers to it, and `check` prints where it came from.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::target;
use crate::identity::Ids;

/// OpenClaw's built-in gateway port (docs/gateway/index.md in the openclaw package).
pub const OPENCLAW_DEFAULT_PORT: u16 = 18789;

/// `{ which = NAME, strip = N }`: where NAME is found in the caller's PATH, the way a shell
/// finds it (first executable regular file), with N trailing components dropped. The
/// found path is not canonicalized: for npm's `PREFIX/bin/NAME -> ../lib/node_modules/...`
/// link the link's own location names the prefix.
pub fn which(name: &str, strip: u32, ids: &Ids) -> Result<(PathBuf, PathBuf), String> {
    let path = std::env::var("PATH").unwrap_or_else(|_| target::DEFAULT_PATH.to_string());
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let found = target::search_path(OsStr::new(name), &path, &cwd, ids).map_err(|_| {
        format!("{name:?} is not found in the caller's PATH ({path}): put its directory on PATH or set this variable with --var")
    })?;
    let value = found
        .ancestors()
        .nth(strip as usize)
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| format!("strip = {strip} removes more than {} has", found.display()))?
        .to_path_buf();
    Ok((found, value))
}

/// `{ openclaw_port = CONFIG }`: the port `openclaw gateway` listens on, in the gateway's
/// own order (docs/gateway/index.md): `--port` in the command, else
/// `OPENCLAW_GATEWAY_PORT` in the caller's environment, else `gateway.port` in CONFIG,
/// else 18789. Returns the port and where it came from.
pub fn openclaw_port(command: Option<&[OsString]>, config: &Path) -> Result<(u16, String), String> {
    if let Some(p) = command.and_then(|c| port_flag(c.get(1..).unwrap_or(&[])).transpose()) {
        return Ok((p?, "--port in the command".into()));
    }
    if let Some(v) = std::env::var_os("OPENCLAW_GATEWAY_PORT").filter(|v| !v.is_empty()) {
        let p = parse_port(&v.to_string_lossy())
            .map_err(|m| format!("OPENCLAW_GATEWAY_PORT in the caller's environment: {m}"))?;
        return Ok((
            p,
            "OPENCLAW_GATEWAY_PORT in the caller's environment".into(),
        ));
    }
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((
                OPENCLAW_DEFAULT_PORT,
                format!("openclaw's default ({} does not exist)", config.display()),
            ))
        }
        Err(e) => return Err(format!("reading {}: {e}", config.display())),
    };
    match config_port(&text) {
        Ok(Some(p)) => Ok((p, format!("gateway.port in {}", config.display()))),
        Ok(None) => Ok((
            OPENCLAW_DEFAULT_PORT,
            format!(
                "openclaw's default (no gateway.port in {})",
                config.display()
            ),
        )),
        Err(m) => Err(format!(
            "{}: {m}; pass --port N to the gateway or set the variable with --var",
            config.display()
        )),
    }
}

/// `--port N` or `--port=N` among the gateway's arguments.
fn port_flag(args: &[OsString]) -> Result<Option<u16>, String> {
    let mut it = args.iter().map(|a| a.to_string_lossy());
    let mut found = None;
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--port" {
            let v = it.next().ok_or("--port in the command has no value")?;
            found = Some(parse_port(&v).map_err(|m| format!("--port in the command: {m}"))?);
        } else if let Some(v) = a.strip_prefix("--port=") {
            found = Some(parse_port(v).map_err(|m| format!("--port in the command: {m}"))?);
        }
    }
    Ok(found)
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{s:?} is not a port (1-65535)"))
}

/// `gateway.port` from OpenClaw's JSON5 config: None when it is not set.
pub fn config_port(text: &str) -> Result<Option<u16>, String> {
    let json = json5_to_json(text);
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        format!("not readable as JSON5 (comments, trailing commas and unquoted keys are understood): {e}")
    })?;
    match v.get("gateway").and_then(|g| g.get("port")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|p| *p != 0)
            .map(Some)
            .ok_or_else(|| format!("gateway.port = {n} is not a port (1-65535)")),
        Some(other) => Err(format!("gateway.port = {other} is not a number")),
    }
}

/// The JSON5 that hand-edited OpenClaw configs use, rewritten to JSON: `//` and `/* */`
/// comments dropped, trailing commas dropped, unquoted keys and single-quoted strings
/// quoted. Anything else is left for serde_json to reject (then the caller says so).
fn json5_to_json(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '"' | '\'' => i = copy_string(&c, i, &mut out),
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            ',' if next_significant(&c, i + 1).is_some_and(|n| n == '}' || n == ']') => i += 1,
            c0 if c0.is_alphabetic() || c0 == '_' || c0 == '$' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                if next_significant(&c, i) == Some(':') {
                    out.push('"');
                    out.push_str(&word);
                    out.push('"');
                } else {
                    out.push_str(&word);
                }
            }
            _ => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Copy the string starting at `c[i]` as a double-quoted JSON string; returns the index
/// after it.
fn copy_string(c: &[char], mut i: usize, out: &mut String) -> usize {
    let quote = c[i];
    i += 1;
    out.push('"');
    while i < c.len() && c[i] != quote {
        match c[i] {
            '\\' if i + 1 < c.len() => {
                if c[i + 1] == '\'' {
                    out.push('\'');
                } else {
                    out.push('\\');
                    out.push(c[i + 1]);
                }
                i += 2;
                continue;
            }
            '"' => out.push_str("\\\""),
            ch => out.push(ch),
        }
        i += 1;
    }
    out.push('"');
    i + 1
}

/// The next character after `i` that is not blank and not inside a comment.
fn next_significant(c: &[char], mut i: usize) -> Option<char> {
    while i < c.len() {
        match c[i] {
            ch if ch.is_whitespace() => i += 1,
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            ch => return Some(ch),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_from_json5_config() {
        let t = "// c\n{ gateway: { mode: 'local', port: 19001, /* x */ }, logging: {file: \"/a//b\",}, }";
        assert_eq!(config_port(t), Ok(Some(19001)));
        assert_eq!(config_port("{\"gateway\":{\"mode\":\"local\"}}"), Ok(None));
        assert_eq!(config_port("{}"), Ok(None));
        assert!(config_port("{gateway:{port:70000}}").is_err());
        assert!(config_port("{gateway:{port:'x'}}").is_err());
        assert!(config_port("{gateway: ").is_err());
        assert_eq!(
            config_port("{'gateway': {'port': 1, 's': 'it\\'s \"q\"'}}"),
            Ok(Some(1))
        );
    }

    #[test]
    fn port_flag_forms() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            port_flag(&a(&["gateway", "--port", "1234"])),
            Ok(Some(1234))
        );
        assert_eq!(port_flag(&a(&["gateway", "--port=99"])), Ok(Some(99)));
        assert_eq!(port_flag(&a(&["gateway", "run"])), Ok(None));
        assert!(port_flag(&a(&["--port"])).is_err());
        assert!(port_flag(&a(&["--port", "0"])).is_err());
        assert_eq!(port_flag(&a(&["--", "--port", "5"])), Ok(None));
    }

    #[test]
    fn which_strips() {
        let ids = crate::plan::user::caller().ids;
        let (found, dir) = which("sh", 1, &ids).unwrap();
        assert!(found.ends_with("sh"));
        assert_eq!(found.parent(), Some(dir.as_path()));
        assert!(which("no-such-program-clawjail", 0, &ids).is_err());
        assert!(which("sh", 99, &ids).is_err());
    }
}
