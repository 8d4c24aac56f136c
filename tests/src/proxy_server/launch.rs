//! Starting a proxy on a free port and knowing it is ours. Each attempt writes the config
//! into a fresh temp dir, spawns the server in its own process group, and waits (bounded)
//! until the only listener on the port is a socket of that process and it answers HTTP;
//! otherwise it is killed and the next attempt takes another port.
//!
//! "The only listener" matters for Caddy: it binds with `SO_REUSEPORT`, so a second Caddy
//! handed the same free port binds it too and the kernel splits connections between them.
//! The check reads the listening sockets from `/proc/net/tcp{,6}` and the process's own
//! sockets from `/proc/<pid>/fd`; a later Caddy that binds the port fails that same check
//! and moves on.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::free_port;

#[cfg(test)]
mod tests;

/// How long a fresh proxy may take to answer: far above the ~100 ms either needs, for a
/// starved CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at picking a free port before giving up (another process may bind it between
/// the pick and the proxy's bind).
const PORT_ATTEMPTS: usize = 5;

/// Where a proxy's stdout and stderr go, in its temp dir.
const OUTPUT_LOG: &str = "output.log";

/// Lines of each log a failure message shows.
const LOG_TAIL_LINES: usize = 20;

/// How long a proxy asked to stop (SIGTERM) may take before its group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One attempt's plan, for a port and a temp dir: the config text, its file name in the
/// dir, the command that runs the proxy on it, and how it is stopped.
pub(super) struct Plan {
    pub(super) config: String,
    pub(super) config_file: &'static str,
    pub(super) command: Command,
    pub(super) stop: Stop,
}

/// How a proxy is stopped on drop.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// SIGKILL to the process group at once: a single process (Caddy).
    Kill,
    /// SIGTERM to the leader first, whose fast shutdown stops and reaps its workers
    /// (nginx's master); SIGKILL to the group only if it is still there after
    /// [`STOP_TIMEOUT`]. Killed outright, the workers would be left for init to reap.
    Terminate,
}

/// A running proxy: its process group, port, temp dir and config. [`NginxServer`] and
/// [`CaddyServer`] dereference to it.
///
/// [`NginxServer`]: super::NginxServer
/// [`CaddyServer`]: super::CaddyServer
#[derive(Debug)]
pub struct Proxy {
    // Declared before `dir`: the process is killed before its dir is removed.
    process: ProxyProcess,
    port: u16,
    dir: TempDir,
    config: String,
}

impl Proxy {
    /// Starts the proxy `plan` describes on a free port, retrying on another port when the
    /// chosen one turns out not to be the proxy's alone.
    ///
    /// # Panics
    /// When no attempt comes up, with each attempt's reason and log tail.
    pub(super) fn start(what: &str, plan: impl Fn(u16, &Path) -> Plan) -> Self {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let dir = proxy_dir(what);
            let Plan {
                config,
                config_file,
                command,
                stop,
            } = plan(port, dir.path());
            let config_path = dir.path().join(config_file);
            fs::write(&config_path, &config)
                .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
            let mut process = ProxyProcess::spawn(command, stop, &dir.path().join(OUTPUT_LOG));
            match wait_ready(&mut process, port) {
                Ok(()) => {
                    return Self {
                        process,
                        port,
                        dir,
                        config,
                    };
                }
                Err(reason) => {
                    drop(process);
                    failures.push(format!("port {port}: {reason}\n{}", log_tail(dir.path())));
                }
            }
        }
        panic!("{what} did not start:\n{}", failures.join("\n---\n"));
    }

    /// The TCP port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its temp dir: the config, `output.log`, and the proxy's own files (nginx's prefix:
    /// pid file and `error.log`; Caddy's data and config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config it runs.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// The last lines of its logs, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }

    /// The leader's process id (nginx's master; its worker is a child of it).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

/// A temp dir the proxy's workers can use: nginx started as root runs its workers as
/// `nobody`, who must reach the temp paths (`proxy_temp_path`, …) the master creates and
/// hands to them inside it.
fn proxy_dir(what: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("authcache-{what}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temp dir for {what}: {e}"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
    dir
}

/// A proxy's process group (the server and, for nginx, its workers), stopped as a whole
/// and the leader reaped on drop. Killing the leader alone would leave nginx's workers
/// serving the port.
#[derive(Debug)]
struct ProxyProcess {
    child: Child,
    stop: Stop,
}

impl ProxyProcess {
    fn spawn(mut command: Command, stop: Stop, output: &Path) -> Self {
        let log =
            fs::File::create(output).unwrap_or_else(|e| panic!("create {}: {e}", output.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone {}: {e}", output.display()));
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        Self { child, stop }
    }

    /// The exit status, once the server has exited.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM to the leader and polls until it has exited, up to [`STOP_TIMEOUT`].
    fn terminate(&mut self) -> bool {
        signal("-TERM", &self.child.id().to_string());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        if matches!(self.stop, Stop::Terminate) && self.terminate() {
            return;
        }
        // The group's id is the leader's pid, which stays reserved until the `wait` below
        // reaps it: the signal cannot reach a stranger's group.
        signal("-KILL", &format!("-{}", self.child.id()));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill SIGNAL -- TARGET` (a pid, or `-pgid` for a whole group).
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Polls until the proxy owns the port's only listener and answers HTTP.
fn wait_ready(process: &mut ProxyProcess, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("not listening");
    loop {
        if let Some(status) = process.exit_status() {
            return Err(format!("exited ({status})"));
        }
        if sole_listener(port, process.child.id())? {
            match answers_http(port) {
                Ok(()) => return Ok(()),
                Err(reason) => last = reason,
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready after {START_TIMEOUT:?}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Ok(true)` when `pid` holds every socket listening on `port` (`Ok(false)`: none yet).
///
/// # Errors
/// When a socket of another process listens on the port too.
fn sole_listener(port: u16, pid: u32) -> Result<bool, String> {
    let listening = listening_sockets(port);
    if listening.is_empty() {
        return Ok(false);
    }
    let ours = sockets_of(pid);
    let foreign = listening.difference(&ours).count();
    if foreign == 0 {
        Ok(true)
    } else {
        Err(format!(
            "{foreign} socket(s) of another process listen on port {port} too"
        ))
    }
}

/// Inodes of the TCP sockets listening on `port`, any address, IPv4 or IPv6.
fn listening_sockets(port: u16) -> HashSet<u64> {
    const LISTEN: &str = "0A";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| {
            // `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
                    let listens = u16::from_str_radix(local_port, 16).ok()? == port
                        && *fields.get(3)? == LISTEN;
                    listens.then(|| fields.get(9)?.parse().ok()).flatten()
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

/// Inodes of the sockets `pid` has open (`/proc/<pid>/fd/N -> socket:[inode]`).
fn sockets_of(pid: u32) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Sends a request without `Host`, which both proxies answer themselves with 400: the
/// probe never reaches the auth endpoint or the upstream, which may run on the very thread
/// that waits here.
fn answers_http(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .map_err(|e| format!("read: {e}"))?;
    if status_line.starts_with("HTTP/1.") {
        Ok(())
    } else {
        Err(format!("answered {status_line:?}"))
    }
}

/// The last lines of every `.log` file in `dir`, for failure messages.
fn log_tail(dir: &Path) -> String {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs.iter()
        .map(|path| {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "== {} ==\n{}",
                path.display(),
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
