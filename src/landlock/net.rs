//! `[network] bind/connect`: Landlock TCP port rules (ABI 4, landlock(7) "Network flags").
//!
//! Every TCP bind/connect not listed is denied (an absent section lists nothing). Port 0 in
//! `bind` means the whole ephemeral range (landlock_add_rule(2)); it is never implied.
//! Cannot: addresses, UDP, `listen()` without `bind()` (auto-binds an ephemeral port:
//! landlock-lsm/linux#15); MPTCP and TCP Fast Open are closed by seccomp, not here.

use toml::Spanned;

use crate::policy::{vars::Vars, PolicyError, PortSpec, Source};

/// Expand and check one port list.
pub fn ports(
    src: &Source,
    vars: &Vars,
    list: &[Spanned<PortSpec>],
    key: &str,
    allow_zero: bool,
) -> Result<Vec<u16>, PolicyError> {
    let mut out = Vec::new();
    for p in list {
        let bad = |m: String| PolicyError::at(src, p.span(), "bad-port", key, m);
        let n: i64 = match p.get_ref() {
            PortSpec::Number(n) => i64::from(*n),
            PortSpec::Text(t) => {
                let s = vars
                    .expand(t)
                    .map_err(|m| PolicyError::at(src, p.span(), "undefined-variable", key, m))?;
                s.trim().parse().map_err(|_| {
                    bad(format!(
                        "{t:?} expands to {s:?}, which is not a port number"
                    ))
                })?
            }
        };
        if !(0..=65535).contains(&n) {
            return Err(bad(format!("port {n} is out of range 0 to 65535")));
        }
        if n == 0 && !allow_zero {
            return Err(bad(
                "port 0 is only meaningful in network.bind (the ephemeral range)".into(),
            ));
        }
        let n = n as u16;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Origin;

    fn src() -> Source {
        Source::new(Origin::Embedded, String::new())
    }

    fn sp(p: PortSpec) -> Spanned<PortSpec> {
        Spanned::new(0..0, p)
    }

    #[test]
    fn expands_variables_and_dedups() {
        let mut v = Vars::new();
        v.set("PORT", "18789");
        let got = ports(
            &src(),
            &v,
            &[
                sp(PortSpec::Text("${PORT}".into())),
                sp(PortSpec::Number(443)),
                sp(PortSpec::Number(443)),
            ],
            "network.connect",
            false,
        )
        .unwrap();
        assert_eq!(got, vec![18789, 443]);
    }

    #[test]
    fn zero_only_in_bind_and_range_checked() {
        let v = Vars::new();
        let zero = [sp(PortSpec::Number(0))];
        assert!(ports(&src(), &v, &zero, "network.connect", false).is_err());
        assert_eq!(
            ports(&src(), &v, &zero, "network.bind", true).unwrap(),
            vec![0]
        );
        assert!(ports(&src(), &v, &[sp(PortSpec::Text("70000".into()))], "k", true).is_err());
        assert!(ports(&src(), &v, &[sp(PortSpec::Text("x".into()))], "k", true).is_err());
    }
}
