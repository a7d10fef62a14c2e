//! The target's environment.
//!
//! Enforces: the target sees only `env.pass` names (from clawjail's own environment),
//! `env.set` values and `env.files` entries — nothing else, in that precedence order.
//! Names that make the dynamic loader or a runtime load code are refused in all three
//! unless `env.allow_code_loading_vars = true`: ld.so strips LD_* only in AT_SECURE mode,
//! which a plain exec is not, and Node, Python, Perl, Ruby, git and npm all have variables
//! that run arbitrary code. Values are never logged, only names.

use std::ffi::CString;

/// Exact names that load or run code, or weaken trust (glibc's unsecvars.h plus runtimes).
const CODE_LOADING_NAMES: &[&str] = &[
    // glibc unsecvars.h (minus TMPDIR, which is a plain directory choice)
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
    "GLIBC_TUNABLES",
    "MALLOC_CHECK_",
    "MALLOC_PERTURB_",
    // Node.js
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_REPL_EXTERNAL_MODULE",
    "NODE_V8_COVERAGE",
    "NODE_REDIRECT_WARNINGS",
    "NODE_PENDING_DEPRECATION",
    "NODE_ICU_DATA",
    "UV_USE_IO_URING",
    "UV_THREADPOOL_SIZE_FILE",
    // OpenSSL
    "OPENSSL_CONF",
    "OPENSSL_MODULES",
    "OPENSSL_ENGINES",
    "SSLKEYLOGFILE",
    // shells
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    // Python, Perl, Ruby, Java
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONUSERBASE",
    "PYTHONBREAKPOINT",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
];

/// Prefixes of name families that load or run code.
const CODE_LOADING_PREFIXES: &[&str] = &[
    "LD_",        // ld.so: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
    "DYLD_",      // for completeness on shared policies
    "GIT_",       // GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_CONFIG_*, GIT_ASKPASS, ...
    "BASH_FUNC_", // exported shell functions
];

/// Whether a variable name makes the loader or a runtime load code.
pub fn is_code_loading(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    CODE_LOADING_NAMES.contains(&name)
        || CODE_LOADING_PREFIXES.iter().any(|p| name.starts_with(p))
        // npm reads npm_config_* case-insensitively (npm_config_node_options, script_shell).
        || lower.starts_with("npm_config_")
}

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvFrom {
    Pass,
    Set,
    File,
    Clawjail,
}

/// The target's environment, built before the first irreversible step.
#[derive(Debug, Clone, Default)]
pub struct EnvPlan {
    /// name -> (value, origin), in a stable order.
    pub vars: std::collections::BTreeMap<String, (String, EnvFrom)>,
    /// `pass` names that were not set in clawjail's environment.
    pub missing: Vec<String>,
}

impl EnvPlan {
    pub fn insert(&mut self, name: &str, value: String, from: EnvFrom) {
        self.vars.insert(name.to_string(), (value, from));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|(v, _)| v.as_str())
    }

    /// `NAME=VALUE` C strings for execve. Fails on a NUL byte.
    pub fn envp(&self) -> Result<Vec<CString>, String> {
        self.vars
            .iter()
            .map(|(k, (v, _))| {
                CString::new(format!("{k}={v}"))
                    .map_err(|_| format!("env {k}: value contains a NUL byte"))
            })
            .collect()
    }

    /// The envp of a child forked by the session step: systemd's LISTEN_PID must name the
    /// process that execs (sd_listen_fds(3)), and after a fork that is the child, not the
    /// pid `prepare` saw. None when socket activation is not in use (`envp` applies as is).
    pub fn envp_for_forked_child(&self, pid: u32) -> Result<Option<Vec<CString>>, String> {
        if self.get("LISTEN_PID").is_none() {
            return Ok(None);
        }
        let mut env = self.clone();
        env.insert("LISTEN_PID", pid.to_string(), EnvFrom::Clawjail);
        env.envp().map(Some)
    }

    /// Names and origins, never values.
    pub fn names(&self) -> impl Iterator<Item = (&str, EnvFrom)> {
        self.vars.iter().map(|(k, (_, f))| (k.as_str(), *f))
    }
}

/// An env file that is unsafe to use or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("env file {path}: cannot open: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("env file {path}: mode {mode:04o} is readable or writable by group or others; expected 0600 or stricter (chmod 600 {path})")]
    Mode { path: String, mode: u32 },
    #[error(
        "env file {path}: owned by uid {owner}; expected root (0) or the target user ({target})"
    )]
    Owner {
        path: String,
        owner: u32,
        target: u32,
    },
    #[error("env file {path}: not a regular file")]
    NotFile { path: String },
    #[error("env file {why}")]
    Unsafe { path: String, why: String },
    #[error("env file {path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
}

/// Most bytes read from one env file (a few dozen KEY=VALUE lines are a few KiB); caps what
/// root reads when the path names /dev/zero-like or multi-GiB sparse files.
pub const ENV_FILE_MAX: u64 = 64 * 1024;

/// Read a KEY=VALUE file as root, before the drop. Resolved like a Landlock path: only
/// symlinks `paths::Trust` accepts are followed (else a planted `creds/token.env ->
/// /root/other.env`, or a third user's link in /tmp, would hand the target another
/// root-owned secret), then read through the resolved fd (no path race, O_NONBLOCK, at most
/// [`ENV_FILE_MAX`] bytes); a regular file, mode 0600 or stricter, owned by root or the
/// target user.
pub fn read_env_file(
    path: &str,
    trust: &crate::paths::Trust,
) -> Result<Vec<(String, String)>, EnvFileError> {
    use crate::paths::{PathError, ReadError};
    let resolved =
        crate::paths::resolve(std::path::Path::new(path), trust).map_err(|e| match e {
            PathError::Missing { .. } => EnvFileError::Open {
                path: path.to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            other => EnvFileError::Unsafe {
                path: path.to_string(),
                why: other.to_string(),
            },
        })?;
    let target_uid = trust.ids.uid;
    if !resolved.meta.is_regular() {
        return Err(EnvFileError::NotFile {
            path: path.to_string(),
        });
    }
    let mode = resolved.meta.mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(EnvFileError::Mode {
            path: path.to_string(),
            mode,
        });
    }
    if resolved.meta.uid != 0 && resolved.meta.uid != target_uid {
        return Err(EnvFileError::Owner {
            path: path.to_string(),
            owner: resolved.meta.uid,
            target: target_uid,
        });
    }
    let bytes = crate::paths::read_capped(&resolved, ENV_FILE_MAX).map_err(|e| match e {
        ReadError::NotRegular { .. } => EnvFileError::NotFile {
            path: path.to_string(),
        },
        other => EnvFileError::Unsafe {
            path: path.to_string(),
            why: other.to_string(),
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|_| EnvFileError::Syntax {
        path: path.to_string(),
        line: 0,
        message: "not UTF-8 text".into(),
    })?;
    parse_env_file(path, &text)
}

/// KEY=VALUE per line; `#` comments and blank lines ignored; an optional `export ` prefix;
/// one pair of matching surrounding quotes is removed. No other interpretation.
pub fn parse_env_file(path: &str, text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or_else(|| EnvFileError::Syntax {
            path: path.to_string(),
            line: i + 1,
            message: "expected KEY=VALUE".to_string(),
        })?;
        let k = k.trim();
        crate::policy::check_env_name(k).map_err(|message| EnvFileError::Syntax {
            path: path.to_string(),
            line: i + 1,
            message,
        })?;
        let v = v.trim();
        let v = ['"', '\'']
            .iter()
            .find_map(|q| v.strip_prefix(*q).and_then(|s| s.strip_suffix(*q)))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_loading_class() {
        for n in [
            "LD_PRELOAD",
            "LD_AUDIT",
            "GLIBC_TUNABLES",
            "NODE_OPTIONS",
            "GCONV_PATH",
            "PYTHONPATH",
            "BASH_ENV",
            "GIT_SSH_COMMAND",
            "npm_config_node_options",
            "NPM_CONFIG_SCRIPT_SHELL",
            "BASH_FUNC_x%%",
            "OPENSSL_CONF",
        ] {
            assert!(is_code_loading(n), "{n}");
        }
        for n in [
            "PATH",
            "TMPDIR",
            "HOME",
            "LANG",
            "TZ",
            "NODE_ENV",
            "OPENCLAW_STATE_DIR",
        ] {
            assert!(!is_code_loading(n), "{n}");
        }
    }

    #[test]
    fn parses_env_files() {
        let v = parse_env_file("f", "# c\n\nA=1\nexport B=\"two words\"\nC='x'\nD==y\n")
            .unwrap_or_default();
        assert_eq!(
            v,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into()),
                ("D".into(), "=y".into()),
            ]
        );
        assert!(matches!(
            parse_env_file("f", "nope\n"),
            Err(EnvFileError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn envp_has_no_values_in_names() {
        let mut p = EnvPlan::default();
        p.insert("A", "secret".into(), EnvFrom::Set);
        assert_eq!(p.names().collect::<Vec<_>>(), vec![("A", EnvFrom::Set)]);
        assert_eq!(p.envp().unwrap_or_default().len(), 1);
    }

    /// The LISTEN_PID rewrite after the session fork is computed from the plan, not
    /// written into it: the plan `check` shows is the plan applied.
    #[test]
    fn forked_child_envp_names_the_child_and_leaves_the_plan_alone() {
        let mut p = EnvPlan::default();
        assert_eq!(p.envp_for_forked_child(42).unwrap(), None);
        p.insert("LISTEN_PID", "7".into(), EnvFrom::Clawjail);
        p.insert("LISTEN_FDS", "1".into(), EnvFrom::Clawjail);
        let envp = p.envp_for_forked_child(42).unwrap().unwrap();
        let texts: Vec<&str> = envp.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(texts, vec!["LISTEN_FDS=1", "LISTEN_PID=42"]);
        assert_eq!(p.get("LISTEN_PID"), Some("7"));
    }
}
