//! The servers tests and benches need: installed when missing, started and stopped on demand.
//!
//! - `redis-server`, `redis-cli`, `nginx` and `caddy` come from the OS packages (`apt-get`,
//!   as root only), installed without starting the system services the nginx and caddy
//!   packages ship: the test kit runs its own servers on free ports.
//! - SecantusDB, the MongoDB-compatible test server, comes from PyPI into a venv under
//!   `target/tools/secantus`, pinned; the test kit finds it through `AUTHCACHE_SECANTUSD`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::run::{exec, on_path, root};

/// SecantusDB is a pre-release: pin it so every machine tests against the same server.
const SECANTUS_PACKAGE: &str = "secantusdb==0.7.0b3";
/// Where `services up` listens: away from the standard ports a developer may already use.
const REDIS_PORT: u16 = 16379;
const MONGO_PORT: u16 = 27018;

/// Paths of the installed tools, handed to the commands that need them.
pub(crate) struct Tools {
    secantusd: PathBuf,
}

impl Tools {
    /// Tells the test kit where the tools are.
    pub(crate) fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env("AUTHCACHE_SECANTUSD", &self.secantusd)
    }
}

/// Installs whatever is missing; returns where the tools are.
///
/// # Errors
/// A one-line instruction when something cannot be installed from here.
pub(crate) fn install() -> Result<Tools> {
    install_os_packages()?;
    let secantusd = install_secantus()?;
    println!(
        "services: redis-server, nginx, caddy and {} ready",
        secantusd.display()
    );
    Ok(Tools { secantusd })
}

/// The Debian packages the tests run, each with the program that shows it is installed.
const OS_PACKAGES: &[(&str, &str)] = &[
    ("redis-server", "redis-server"),
    ("redis-tools", "redis-cli"),
    ("nginx", "nginx"),
    ("caddy", "caddy"),
];

/// Where Debian puts daemons: `/usr/sbin` is not on a non-root user's `PATH`, yet the
/// test kit finds `nginx` there, so an installed nginx must not read as missing.
const SYSTEM_BIN_DIRS: &[&str] = &["/usr/sbin", "/usr/bin"];

fn install_os_packages() -> Result<()> {
    let missing: Vec<&str> = OS_PACKAGES
        .iter()
        .filter(|(_, program)| !installed(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    if !is_root() {
        bail!(
            "{packages} missing: run `sudo apt-get install -y --no-install-recommends {packages}`"
        );
    }
    exec(Command::new("apt-get").args(["update", "-q"]))?;
    let _no_starts = NoServiceStarts::install()?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn installed(program: &str) -> bool {
    on_path(program)
        || SYSTEM_BIN_DIRS
            .iter()
            .any(|dir| Path::new(dir).join(program).is_file())
}

/// Debian's `nginx` and `caddy` packages start a system server on port 80 from their
/// maintainer scripts. Nothing of ours needs it, and a machine-wide web server is not
/// something a test-tool install should leave behind, so the install runs under a
/// `policy-rc.d` that denies every service start (exit 101: Debian's convention for chroots
/// and image builds, honoured by `invoke-rc.d` and `deb-systemd-invoke`). The file is
/// removed on drop; a policy already in place (container images ship one) is left alone.
/// The services stay enabled: a later boot or `systemctl start` runs them as usual.
struct NoServiceStarts {
    created: Option<PathBuf>,
}

impl NoServiceStarts {
    const PATH: &str = "/usr/sbin/policy-rc.d";
    const DENY_ALL: &str = "#!/bin/sh\n# Written by `cargo xtask services install` for the duration of one apt-get run.\nexit 101\n";

    fn install() -> Result<Self> {
        let path = PathBuf::from(Self::PATH);
        if path.exists() {
            return Ok(Self { created: None });
        }
        fs::write(&path, Self::DENY_ALL)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            created: Some(path),
        })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.created.take()
            && let Err(error) = fs::remove_file(&path)
        {
            eprintln!(
                "services: remove {} by hand ({error}): it stops every service start",
                path.display()
            );
        }
    }
}

fn install_secantus() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("AUTHCACHE_SECANTUSD").map(PathBuf::from) {
        if path.is_file() {
            return Ok(path);
        }
        bail!("AUTHCACHE_SECANTUSD={} does not exist", path.display());
    }
    let venv = root().join("target/tools/secantus");
    let server = venv.join("bin/secantusd-py");
    if server.is_file() {
        return Ok(server);
    }
    if !on_path("python3") {
        bail!(
            "python3 missing: install it (`apt-get install -y python3 python3-venv`) to get SecantusDB"
        );
    }
    exec(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    exec(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        SECANTUS_PACKAGE,
    ]))?;
    if !server.is_file() {
        bail!(
            "{SECANTUS_PACKAGE} installed but {} is missing",
            server.display()
        );
    }
    Ok(server)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn pid_file() -> PathBuf {
    root().join("target/tools/services.pids")
}

/// Starts a redis-server and a SecantusDB in the background for manual use.
///
/// # Errors
/// When a tool is missing or a server cannot be started.
pub(crate) fn up() -> Result<()> {
    let tools = install()?;
    let logs = root().join("target/tools");
    fs::create_dir_all(&logs)?;
    let redis_port = REDIS_PORT.to_string();
    let mongo_port = MONGO_PORT.to_string();
    let redis = [
        "--port",
        &redis_port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let mongo = [
        "--host",
        "127.0.0.1",
        "--port",
        &mongo_port,
        "--storage-path",
        ":memory:",
        "--standalone",
    ];
    let pids = [
        spawn_detached(
            &PathBuf::from("redis-server"),
            &redis,
            &logs.join("redis.log"),
        )?,
        spawn_detached(&tools.secantusd, &mongo, &logs.join("secantus.log"))?,
    ];
    fs::write(pid_file(), pids.map(|pid| pid.to_string()).join("\n"))?;
    println!("redis:   redis://127.0.0.1:{REDIS_PORT}");
    println!("mongodb: mongodb://127.0.0.1:{MONGO_PORT}");
    println!("stop them with `cargo xtask services down`");
    Ok(())
}

fn spawn_detached(program: &PathBuf, args: &[&str], log: &PathBuf) -> Result<u32> {
    let out = fs::File::create(log)?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok(child.id())
}

/// Stops what `services up` started.
///
/// # Errors
/// When the pid file cannot be read.
pub(crate) fn down() -> Result<()> {
    let Ok(pids) = fs::read_to_string(pid_file()) else {
        println!("no services running (no {})", pid_file().display());
        return Ok(());
    };
    for pid in pids.lines().filter(|line| !line.trim().is_empty()) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    fs::remove_file(pid_file())?;
    println!("services stopped");
    Ok(())
}
