//! The servers tests and benches need: installed when missing, started and stopped on demand.
//!
//! - `redis-server` and `redis-cli` come from the OS packages (`apt-get`, as root only).
//! - SecantusDB, the MongoDB-compatible test server, comes from PyPI into a venv under
//!   `target/tools/secantus`, pinned; the test kit finds it through `AUTHCACHE_SECANTUSD`.

use std::fs;
use std::path::PathBuf;
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
    install_redis()?;
    let secantusd = install_secantus()?;
    println!("services: redis-server and {} ready", secantusd.display());
    Ok(Tools { secantusd })
}

fn install_redis() -> Result<()> {
    if on_path("redis-server") && on_path("redis-cli") {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "redis-server/redis-cli missing: run `sudo apt-get install -y redis-server redis-tools`"
        );
    }
    exec(Command::new("apt-get").args(["update", "-q"]))?;
    exec(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "redis-server",
                "redis-tools",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
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
