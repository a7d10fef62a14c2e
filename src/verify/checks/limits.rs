//! Limit rows: what no policy can enforce, attempted so the report shows it.

use super::*;

pub(super) fn limits(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    let mut v = Vec::new();
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .iter()
        .find(|p| Path::new(p).exists());
    if let Some(ld) = loader {
        let mut c = Check::new(
            "ld-so",
            Kind::Limit,
            "landlock-fs",
            format!("{ld} /bin/true (a readable ELF through the loader)"),
            Action::Exec,
            vec![ld.to_string(), "/bin/true".into()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock Execute limits execve of files, not code: any readable ELF runs through the dynamic loader; keep /usr/bin out of read");
        v.push(c);
    }
    // Same class, no file at all: a memfd has no path in any Landlock hierarchy, so
    // execveat(memfd, "", AT_EMPTY_PATH) of a copied ELF is not an execve Landlock sees.
    if let Ok(exe) = std::env::current_exe() {
        let mut c = Check::new(
            "memfd-exec",
            Kind::Limit,
            "landlock-fs",
            "copy a readable ELF into a memfd and execveat it (fileless exec)".into(),
            Action::MemfdExec,
            vec![exe.display().to_string(), "--version".into()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock Execute covers files reached by path; memfd_create + execveat runs code outside the exec set (same class as the loader row)");
        v.push(c);
    }
    let mut udp = Check::new(
        "udp",
        Kind::Limit,
        "landlock-net",
        format!("UDP send to 127.0.0.1:{}", fx.udp_port),
        Action::UdpSend,
        vec!["127.0.0.1".into(), fx.udp_port.to_string()],
        Expect::Observe,
    );
    udp.limit_note = Some(
        "Landlock does not control UDP (DNS included); use nftables or systemd IPAddressDeny=",
    );
    v.push(udp);
    if let Some(p) = inp.listed_connect_port() {
        let mut c = Check::new(
            "dest-address",
            Kind::Limit,
            "landlock-net",
            format!("TCP connect 127.0.0.2:{p} (another host, allowed port)"),
            Action::TcpConnect,
            vec!["127.0.0.2".into(), p.to_string()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock TCP rules match ports, not addresses: any host on an allowed port is reachable (ECONNREFUSED still means the connect went out)");
        v.push(c);
    }
    v
}
