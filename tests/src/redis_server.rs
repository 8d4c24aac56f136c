//! Throwaway Redis servers for tests and benches: [`RedisServer`] (one `redis-server` on a
//! free loopback port, no persistence, its own temp dir) and [`RedisClusterServer`]
//! (3 masters joined with `redis-cli --cluster create`). Both wait until they answer
//! (bounded), expose hang/resume/kill/restart for fault tests, and are killed and reaped on
//! drop, even when the owning test panics.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{ServerProcess, find_program, free_port};

const INSTALL_HINT: &str = "install redis-server: `apt-get install redis-server redis-tools` or run `cargo xtask services install`";

/// Bound on one Redis call in tests that are not about timeouts. The library's default
/// (100 ms) is a production setting that a starved CI runner can exceed; a test that is
/// about something else must not read a slow reply as a failed call.
pub const PATIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a fresh server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a Cluster may take to agree on its slot map and epochs.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts at picking free ports before giving up (another process may grab one between
/// the check and the server's bind).
const PORT_ATTEMPTS: usize = 5;

/// The `redis-server` binary (`AUTHCACHE_REDIS_SERVER` or `$PATH`).
pub fn redis_server_program() -> PathBuf {
    find_program(
        "redis-server",
        "AUTHCACHE_REDIS_SERVER",
        &[PathBuf::from("/usr/bin/redis-server")],
        INSTALL_HINT,
    )
}

/// The `redis-cli` binary (`AUTHCACHE_REDIS_CLI` or `$PATH`).
pub fn redis_cli_program() -> PathBuf {
    find_program(
        "redis-cli",
        "AUTHCACHE_REDIS_CLI",
        &[PathBuf::from("/usr/bin/redis-cli")],
        INSTALL_HINT,
    )
}

/// One `redis-server` on 127.0.0.1, killed and reaped on drop.
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
    port: u16,
    password: Option<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server without password and waits until it answers PING.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not come up in time.
    pub fn start() -> Self {
        Self::start_with(None, &[])
    }

    /// Starts a server that requires `password` (`--requirepass`).
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(Some(password), &[])
    }

    /// Starts a server with extra `redis-server` arguments, retrying on another port when
    /// the chosen one was taken meanwhile.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with(password: Option<&str>, extra_args: &[String]) -> Self {
        let program = redis_server_program();
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let server = Self::spawn(&program, port, password, extra_args);
            match server.wait_ready(START_TIMEOUT) {
                Ok(()) => return server,
                Err(reason) => failures.push(format!("port {port}: {reason}")),
            }
        }
        panic!("redis-server did not start: {failures:#?}");
    }

    fn spawn(program: &Path, port: u16, password: Option<&str>, extra_args: &[String]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("authcache-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir.path().display().to_string(),
            "--logfile",
            &dir.path().join("redis.log").display().to_string(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        if let Some(password) = password {
            args.extend(["--requirepass".to_owned(), password.to_owned()]);
        }
        args.extend(extra_args.iter().cloned());
        let process = ServerProcess::spawn(program, args, dir.path());
        Self {
            process,
            port,
            password: password.map(str::to_owned),
            dir,
        }
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The server's temp dir (holds `redis.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A synchronous redis-rs connection, for assertions that bypass the code under test.
    ///
    /// # Panics
    /// When the server does not accept it within 5 s.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connect to redis-server on port {}: {e}", self.port))
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn hang(&self) {
        self.process.hang();
    }

    /// Thaws a hung server (SIGCONT).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Kills the server (SIGKILL); the port closes.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills (if running) and starts it again on the same port (empty: no persistence),
    /// waiting until it answers PING.
    ///
    /// # Panics
    /// When it does not come back in time.
    pub fn restart(&mut self) {
        self.process.restart();
        if let Err(reason) = self.wait_ready(START_TIMEOUT) {
            panic!(
                "redis-server did not restart on port {}: {reason}",
                self.port
            );
        }
    }

    /// Polls PING until it answers (`+PONG`, or `-NOAUTH` when a password is set), then
    /// checks that the server answering is this one ([`ServerProcess::check_owner`]).
    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match ping(self.port) {
                Ok(()) => return self.process.check_owner(self.port, self.answering_pid()?),
                Err(reason) => last = reason,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("{last}; log: {}", self.log_tail()))
    }

    /// The pid the server on the port reports (`INFO server`).
    fn answering_pid(&self) -> Result<Option<u32>, String> {
        let info: String = redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .and_then(|mut conn| redis::cmd("INFO").arg("server").query(&mut conn))
            .map_err(|e| format!("INFO server: {e}"))?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse::<u32>().ok()))
    }

    /// The last lines of the server log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

/// One raw PING over TCP (no client library, so readiness does not depend on credentials).
fn ping(port: u16) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    stream.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.starts_with("+PONG") || line.starts_with("-NOAUTH") {
        Ok(())
    } else {
        Err(format!("PING answered {line:?}"))
    }
}

/// A 3-master Redis Cluster on loopback (no replicas), killed and reaped on drop.
#[derive(Debug)]
pub struct RedisClusterServer {
    nodes: Vec<RedisServer>,
}

impl RedisClusterServer {
    /// Masters in the cluster.
    pub const MASTERS: usize = 3;

    /// Starts 3 cluster-enabled servers, joins them with `redis-cli --cluster create` and
    /// waits until every node agrees on the same masters, epochs and slot map.
    ///
    /// # Panics
    /// When a binary is missing or the cluster does not form in time.
    pub fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let ports = cluster_ports(Self::MASTERS);
            match ports
                .iter()
                .map(|&port| start_cluster_node(port))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(nodes) => {
                    let cluster = Self { nodes };
                    cluster.create();
                    cluster.wait_agreed();
                    return cluster;
                }
                Err(reason) => failures.push(reason),
            }
        }
        panic!("Redis Cluster nodes did not start: {failures:#?}");
    }

    /// The nodes, one standalone view per master.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable access to a node for fault injection (kill/restart).
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// `redis://127.0.0.1:PORT` of every node (the seed nodes for a cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    fn create(&self) {
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            self.nodes
                .iter()
                .map(|node| format!("127.0.0.1:{}", node.port())),
        );
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        run_bounded(&redis_cli_program(), &args, CLUSTER_TIMEOUT);
    }

    /// Waits until every node reports `cluster_state:ok` *and* every node sees the same
    /// cluster: all masters connected, none flagged failing, the same config epochs and
    /// the same slot ranges covering all 16384 slots. `cluster_state:ok` alone is reached
    /// by each node before the others have learned its epoch and slots; a client that
    /// reads the slot map from a node still catching up routes keys to the wrong master.
    fn wait_agreed(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            let views: Vec<Result<String, String>> = self.nodes.iter().map(cluster_view).collect();
            if let Some(Ok(first)) = views.first()
                && views.iter().all(|view| view.as_ref() == Ok(first))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster nodes do not agree after {CLUSTER_TIMEOUT:?}: {views:#?}\n{}",
                self.nodes
                    .iter()
                    .map(RedisServer::log_tail)
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Slots in a Redis Cluster.
const CLUSTER_SLOTS: usize = 16_384;

/// One node's settled view of the cluster, normalised so that equal views mean agreement:
/// `id epoch slot-ranges` per master, sorted. An error names what is not settled yet.
fn cluster_view(node: &RedisServer) -> Result<String, String> {
    let mut conn = node.connection();
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if !info.contains("cluster_state:ok") {
        return Err(format!("port {}: cluster_state not ok", node.port()));
    }
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    // `<id> <addr> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`
    let mut masters = Vec::new();
    let mut covered = 0;
    for line in nodes.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let settled = fields.len() >= 8
            && fields[2].contains("master")
            && !["fail", "handshake", "noaddr"]
                .iter()
                .any(|flag| fields[2].contains(flag))
            && fields[7] == "connected";
        if !settled {
            return Err(format!("port {}: not settled: {line}", node.port()));
        }
        covered += fields[8..]
            .iter()
            .map(|range| slot_count(range))
            .sum::<usize>();
        masters.push(format!(
            "{} {} {}",
            fields[0],
            fields[6],
            fields[8..].join(" ")
        ));
    }
    if masters.len() != RedisClusterServer::MASTERS || covered != CLUSTER_SLOTS {
        return Err(format!(
            "port {}: {} masters covering {covered} slots",
            node.port(),
            masters.len()
        ));
    }
    masters.sort();
    Ok(masters.join("\n"))
}

/// Slots in one `CLUSTER NODES` slot field (`5`, `0-5460`; migration markers count 0).
fn slot_count(range: &str) -> usize {
    let bound = |s: &str| s.parse::<usize>().ok();
    match range.split_once('-') {
        _ if range.starts_with('[') => 0,
        Some((low, high)) => match (bound(low), bound(high)) {
            (Some(low), Some(high)) if high >= low => high - low + 1,
            _ => 0,
        },
        None => usize::from(bound(range).is_some()),
    }
}

/// One cluster-enabled node; its `nodes.conf` lands in its own temp dir (the working dir).
fn start_cluster_node(port: u16) -> Result<RedisServer, String> {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        // Far above any CPU starvation a loaded CI machine sees: a short timeout lets a
        // starved node be voted FAIL, and without replicas that is never undone by a
        // failover. Fault tests kill nodes; they never wait for FAIL detection.
        "--cluster-node-timeout",
        "30000",
        // A dead master's slots fail; the others keep serving, as in production clusters
        // that prefer partial availability.
        "--cluster-require-full-coverage",
        "no",
    ]
    .map(String::from);
    let server = RedisServer::spawn(&redis_server_program(), port, None, &args);
    match server.wait_ready(START_TIMEOUT) {
        Ok(()) => Ok(server),
        Err(reason) => Err(format!("cluster node on port {port}: {reason}")),
    }
}

/// `count` distinct ports whose cluster bus ports (+10000) are free too.
fn cluster_ports(count: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::with_capacity(count);
    let mut attempts = 0;
    while ports.len() < count {
        attempts += 1;
        assert!(
            attempts < 200,
            "cannot find {count} free port pairs (P and P+10000) on 127.0.0.1"
        );
        let port = free_port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        let clash = ports
            .iter()
            .any(|&p| p == port || p + 10_000 == port || p == bus);
        if !clash && bindable(port) && bindable(bus) {
            ports.push(port);
        }
    }
    ports
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Runs a short-lived command, killing it if it outlives `timeout`.
fn run_bounded(program: &Path, args: &[String], timeout: Duration) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().expect("wait for a child process") {
            Some(status) => {
                let output = child.wait_with_output().expect("collect child output");
                assert!(
                    status.success(),
                    "{} {args:?} failed ({status}):\n{}\n{}",
                    program.display(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                return;
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {args:?} did not finish within {timeout:?}",
                    program.display()
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
