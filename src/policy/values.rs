//! Typed policy values, parsed once when the file is read.
//!
//! Each key that means something more than "a string" (a mode, a capability, a port, a
//! path template, a resource limit) deserializes into its own type here, so `plan` and the
//! mechanism modules consume values and never parse text again. A value that cannot be
//! parsed is a deserialization error, located by toml at the value itself; its message
//! starts with one of [`CODES`]'s prefixes, which `diag` turns into the stable code.
//!
//! Every key keeps its span: lists and optional keys as `toml::Spanned`, keys with a
//! default (booleans, enums) as [`Located`], whose span is `0..0` when the key is absent.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::vars::Vars;
use super::{PolicyError, Source};

/// Message prefixes of the errors raised here, with the diagnostic code each one gets.
/// Checked by `diag::classify` after toml's own kinds (unknown field, invalid type, ...).
pub const CODES: &[(&str, &str)] = &[
    ("invalid mode ", "bad-mode"),
    ("unknown capability ", "unknown-capability"),
    ("invalid port ", "bad-port"),
    ("invalid limit ", "bad-value"),
    ("invalid environment variable name ", "bad-env-name"),
    ("unknown syscall ", "unknown-syscall"),
];

/// A value with its span, for keys that have a default: the span is `0..0` when the key
/// is absent (`PolicyError::at` then gives no position). toml's `Spanned` has no
/// `Default`, which `#[serde(default)]` on a section needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Located<T> {
    value: T,
    span: Range<usize>,
}

impl<T> Located<T> {
    /// A value that was not written in the file (a default).
    pub const fn absent(value: T) -> Self {
        Located { value, span: 0..0 }
    }

    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Whether the key was written in the file.
    pub fn is_written(&self) -> bool {
        self.span != (0..0)
    }
}

impl<T: Copy> Located<T> {
    pub fn get(&self) -> T {
        self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<T>::deserialize(d)?;
        let span = s.span();
        Ok(Located {
            value: s.into_inner(),
            span,
        })
    }
}

/// `true` when absent (`#[serde(default = "values::on")]`).
pub fn on() -> Located<bool> {
    Located::absent(true)
}

/// A boolean key with its span.
pub type Flag = Located<bool>;

/// A file mode or umask, written as an octal string ("0077", "700", "0o750").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parse an octal mode such as "0077" or "700".
    pub fn parse(s: &str) -> Result<Mode, String> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(Mode(m)),
            _ => Err(format!(
                "invalid mode \"{s}\": expected an octal string such as \"0077\""
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "an octal string such as \"0077\"", Mode::parse)
    }
}

/// Deserialize a string through `parse`. The error is raised inside the deserializer's
/// visit, so toml locates it at the value itself (a list element, not the whole list).
fn parse_str<'de, D: Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct V<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            (self.parse)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V { expecting, parse })
}

/// A capability name as `capabilities.keep` accepts it ("CAP_NET_BIND_SERVICE" or
/// "net_bind_service").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub caps::Capability);

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(
            d,
            "a capability name such as \"CAP_NET_BIND_SERVICE\"",
            |s| crate::caps::parse_cap_name(s).map(Cap),
        )
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An environment variable name (`env.pass`): non-empty, no `=`, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvName(pub String);

impl EnvName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "an environment variable name", |s| {
            super::check_env_name(s).map(|()| EnvName(s.to_string()))
        })
    }
}

/// A syscall name of the filter's table (`seccomp.allow`, `seccomp.deny`), with the nearest
/// known name suggested for a misspelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall(pub &'static str);

impl Syscall {
    pub fn parse(s: &str) -> Result<Syscall, String> {
        use crate::syscall_table as syscalls;
        let wanted = s.trim();
        match syscalls::number(wanted).and_then(syscalls::name) {
            Some(name) => Ok(Syscall(name)),
            None => {
                let hint = match syscalls::nearest(wanted) {
                    Some(n) => format!("; did you mean \"{n}\"?"),
                    None => String::new(),
                };
                Err(format!("unknown syscall \"{wanted}\" (x86_64){hint}"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Syscall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(
            d,
            "a syscall name such as \"io_uring_setup\"",
            Syscall::parse,
        )
    }
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A TCP port: a number (range-checked here) or a string with a variable, e.g.
/// `"${PORT}"` (expanded and checked at plan time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    Number(u16),
    Text(String),
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Number(n) => n.fmt(f),
            PortSpec::Text(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a string with a variable such as \"${PORT}\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                u16::try_from(n)
                    .map(PortSpec::Number)
                    .map_err(|_| E::custom(format!("invalid port {n}: out of range 0 to 65535")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortSpec, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                Ok(PortSpec::Text(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A path as written (variables and `~` expand at plan time, against the target user).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct PathTemplate(pub String);

/// Why a path template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    Undefined(String),
    Relative { written: String, expanded: String },
}

impl ExpandError {
    pub fn code(&self) -> &'static str {
        match self {
            ExpandError::Undefined(_) => "undefined-variable",
            ExpandError::Relative { .. } => "relative-path",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ExpandError::Undefined(m) => m.clone(),
            ExpandError::Relative { written, expanded } => format!(
                "{written:?} expands to {expanded:?}, which is not an absolute path; write /..., ~/..., or ${{HOME}}/..."
            ),
        }
    }
}

impl PathTemplate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Expand variables; the result must be absolute. The one place a policy path becomes
    /// a path (plan, Landlock, export and learn all come here).
    pub fn expand(&self, vars: &Vars) -> Result<PathBuf, ExpandError> {
        let s = vars.expand(&self.0).map_err(ExpandError::Undefined)?;
        if !s.starts_with('/') {
            return Err(ExpandError::Relative {
                written: self.0.clone(),
                expanded: s,
            });
        }
        Ok(PathBuf::from(s))
    }

    /// [`expand`](Self::expand), with a failure located at `span` under `key`.
    pub fn expand_at(
        &self,
        src: &Source,
        span: Range<usize>,
        key: &str,
        vars: &Vars,
    ) -> Result<PathBuf, PolicyError> {
        self.expand(vars)
            .map_err(|e| PolicyError::at(src, span, e.code(), key, e.message()))
    }
}

/// A `[filesystem]` list entry or an `env.files` entry: a path template, optional when
/// written with a leading `?` (skipped when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    pub optional: bool,
    pub path: PathTemplate,
}

impl PathEntry {
    /// The entry as written in the policy (`?` included).
    pub fn written(&self) -> String {
        format!("{}{}", if self.optional { "?" } else { "" }, self.path.0)
    }

    /// An entry that is not optional (verify's `/proc/self` grant, tests).
    pub fn required(path: &str) -> PathEntry {
        PathEntry {
            optional: false,
            path: PathTemplate(path.to_string()),
        }
    }
}

impl fmt::Display for PathEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written())
    }
}

impl<'de> Deserialize<'de> for PathEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix('?') {
            Some(rest) => PathEntry {
                optional: true,
                path: PathTemplate(rest.to_string()),
            },
            None => PathEntry {
                optional: false,
                path: PathTemplate(s),
            },
        })
    }
}

/// An rlimit value: a number or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    Value(u64),
    Unlimited,
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0 => Ok(LimitValue::Value(n as u64)),
            Raw::N(n) => Err(de::Error::custom(format!(
                "invalid limit {n}: expected a non-negative integer or \"unlimited\""
            ))),
            Raw::S(s) if s == "unlimited" || s == "infinity" => Ok(LimitValue::Unlimited),
            Raw::S(s) => Err(de::Error::custom(format!(
                "invalid limit \"{s}\": expected a non-negative integer or \"unlimited\""
            ))),
        }
    }
}

/// The resources `[limits]` can set, one key each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKind {
    Nofile,
    Nproc,
    Core,
    AddressSpace,
    Cpu,
    Fsize,
}

impl LimitKind {
    pub const ALL: [LimitKind; 6] = [
        LimitKind::Nofile,
        LimitKind::Nproc,
        LimitKind::Core,
        LimitKind::AddressSpace,
        LimitKind::Cpu,
        LimitKind::Fsize,
    ];
    const KEYS: &'static [&'static str] =
        &["nofile", "nproc", "core", "address_space", "cpu", "fsize"];

    /// The key in `[limits]`.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::Nofile => "nofile",
            LimitKind::Nproc => "nproc",
            LimitKind::Core => "core",
            LimitKind::AddressSpace => "address_space",
            LimitKind::Cpu => "cpu",
            LimitKind::Fsize => "fsize",
        }
    }
}

impl<'de> Deserialize<'de> for LimitKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let k = String::deserialize(d)?;
        LimitKind::ALL
            .into_iter()
            .find(|l| l.key() == k)
            .ok_or_else(|| de::Error::unknown_field(&k, LimitKind::KEYS))
    }
}

/// `[limits]`: the resources the policy sets. `core` is 0 unless written (no core dumps
/// of the target's memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits(BTreeMap<LimitKind, Located<LimitValue>>);

impl Default for Limits {
    fn default() -> Self {
        Limits(BTreeMap::from([(
            LimitKind::Core,
            Located::absent(LimitValue::Value(0)),
        )]))
    }
}

impl Limits {
    /// The limits set, in [`LimitKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (LimitKind, &Located<LimitValue>)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    pub fn get(&self, kind: LimitKind) -> Option<&Located<LimitValue>> {
        self.0.get(&kind)
    }
}

impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Limits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of resource limits")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Limits, A::Error> {
                let mut out = Limits::default();
                while let Some(k) = m.next_key::<LimitKind>()? {
                    out.0.insert(k, m.next_value()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_octal_only() {
        assert_eq!(Mode::parse("0077"), Ok(Mode(0o077)));
        assert_eq!(Mode::parse("0o750"), Ok(Mode(0o750)));
        assert!(Mode::parse("9").is_err());
        assert!(Mode::parse("").is_err());
        assert!(Mode::parse("17777").is_err());
    }

    #[test]
    fn path_entries_keep_the_optional_marker_apart() {
        let mut v = Vars::new();
        v.set("HOME", "/home/u");
        let e = PathEntry::deserialize(de::value::StrDeserializer::<de::value::Error>::new("?~/x"))
            .unwrap();
        assert!(e.optional);
        assert_eq!(e.written(), "?~/x");
        assert_eq!(e.path.expand(&v), Ok(PathBuf::from("/home/u/x")));
        let rel = PathTemplate("work".into()).expand(&v).unwrap_err();
        assert_eq!(rel.code(), "relative-path");
        assert!(rel.message().contains("\"work\" expands to \"work\""));
    }
}
