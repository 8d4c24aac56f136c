//! Spawns a throwaway SecantusDB server — MongoDB-compatible, on WiredTiger, from PyPI — on a
//! free loopback port, in memory; waits until it answers a ping; kills it on drop.
//!
//! Standalone by default ([`MongoServer::start`]); [`MongoServer::start_replica_set`] runs it
//! as the single-node replica set `secantus`, which serves change streams (the oplog is in
//! memory too: a restart starts an empty one, so resume tokens of the old process point into
//! a history the new one never had).
//!
//! The program is `$AUTHCACHE_SECANTUSD`, else `<workspace>/target/tools/secantus/bin/secantusd-py`
//! (what `cargo xtask services install` creates), else `secantusd-py` on `PATH`. Starting takes
//! about 1.5 s on a loaded 2-core machine, so each test owns one server and uses a fresh
//! database per case.
#![cfg(feature = "users")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;

use crate::process::{ServerProcess, eventually, find_program, free_port, workspace_root};

/// The environment variable naming the `secantusd-py` program.
pub const SECANTUSD_ENV: &str = "AUTHCACHE_SECANTUSD";
/// Attempts at a port of its own before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Bound on start-up (Python imports dominate; generous for a loaded CI machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How a [`MongoServer`] runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MongoServerOptions {
    replica_set: bool,
    oplog_max_entries: Option<u64>,
}

impl MongoServerOptions {
    /// A standalone server: no replica set, no change streams.
    pub fn standalone() -> Self {
        Self::default()
    }

    /// The single-node replica set `secantus`: change streams are served.
    pub fn replica_set() -> Self {
        Self {
            replica_set: true,
            ..Self::default()
        }
    }

    /// Keeps at most `entries` oplog entries once pruned ([`MongoServer::prune_oplog`]), so
    /// a test can make a resume token outlive the history it points into.
    #[must_use]
    pub fn oplog_max_entries(mut self, entries: u64) -> Self {
        self.oplog_max_entries = Some(entries);
        self
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut args = ["--host", "127.0.0.1", "--storage-path", ":memory:"]
            .map(String::from)
            .to_vec();
        args.extend(["--port".to_owned(), port.to_string()]);
        if !self.replica_set {
            args.push("--standalone".to_owned());
        }
        if let Some(entries) = self.oplog_max_entries {
            args.extend(["--oplog-max-entries".to_owned(), entries.to_string()]);
        }
        args
    }
}

/// A running SecantusDB server, killed and reaped on drop.
#[derive(Debug)]
pub struct MongoServer {
    process: ServerProcess,
    port: u16,
    _workdir: tempfile::TempDir,
}

impl MongoServer {
    /// Starts a standalone server and waits until it answers a ping.
    ///
    /// # Panics
    /// When `secantusd-py` cannot be found (run `cargo xtask services install`) or the server
    /// does not answer within 60 s.
    pub async fn start() -> Self {
        Self::start_with(&MongoServerOptions::standalone()).await
    }

    /// Starts a single-node replica set (change streams served) and waits until it answers.
    ///
    /// # Panics
    /// As [`MongoServer::start`].
    pub async fn start_replica_set() -> Self {
        Self::start_with(&MongoServerOptions::replica_set()).await
    }

    /// Starts a server run as `options` says and waits until it answers a ping.
    ///
    /// # Panics
    /// As [`MongoServer::start`].
    pub async fn start_with(options: &MongoServerOptions) -> Self {
        let mut clashes = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let server = Self::spawn(free_port(), options);
            match server.wait_until_ready().await {
                Ok(()) => return server,
                Err(clash) => clashes.push(clash),
            }
        }
        panic!("secantusd could not get a port of its own: {clashes:#?}");
    }

    fn spawn(port: u16, options: &MongoServerOptions) -> Self {
        let program = secantusd_program();
        let workdir = tempfile::tempdir().expect("temporary directory for secantusd");
        let process = ServerProcess::spawn(&program, options.args(port), workdir.path());
        Self {
            process,
            port,
            _workdir: workdir,
        }
    }

    /// The connection string (`directConnection=true`: one server, standalone or the only
    /// member of its replica set).
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A driver client with short timeouts, for seeding and inspecting test data.
    pub async fn client(&self) -> Client {
        let mut options = ClientOptions::parse(self.uri())
            .await
            .expect("parse test uri");
        options.server_selection_timeout = Some(Duration::from_secs(2));
        options.connect_timeout = Some(Duration::from_secs(2));
        Client::with_options(options).expect("mongodb client")
    }

    /// A database name never handed out before in this process, so cases sharing a server
    /// never see each other's data.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!(
            "authcache_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Kills the server (SIGKILL). Its in-memory data is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (empty: storage is in memory) and waits
    /// until it answers.
    pub async fn restart(&mut self) {
        self.process.restart();
        if let Err(clash) = self.wait_until_ready().await {
            panic!("secantusd did not come back on its own port: {clash}");
        }
    }

    /// Drops the oldest oplog entries beyond `--oplog-max-entries` now (SecantusDB's
    /// `secantusAdmin.pruneOplog`; otherwise it prunes only every so many writes); returns
    /// how many were dropped.
    ///
    /// # Panics
    /// When the server refuses the command.
    pub async fn prune_oplog(&self) -> i64 {
        let reply = self
            .client()
            .await
            .database("admin")
            .run_command(doc! { "secantusAdmin.pruneOplog": 1 })
            .await
            .expect("secantusAdmin.pruneOplog");
        reply
            .get_i64("pruned")
            .or_else(|_| reply.get_i32("pruned").map(i64::from))
            .expect("pruneOplog answers how many entries it dropped")
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn hang(&self) {
        self.process.hang();
    }

    /// Thaws a hung server (SIGCONT).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Waits until the server answers a ping, then checks that the server answering is
    /// this one ([`ServerProcess::check_owner`]).
    ///
    /// # Panics
    /// When nothing answers within [`STARTUP_TIMEOUT`].
    async fn wait_until_ready(&self) -> Result<(), String> {
        let client = self.client().await;
        let admin = client.database("admin");
        eventually(
            STARTUP_TIMEOUT,
            &format!("secantusd on port {} to answer a ping", self.port),
            || async { admin.run_command(doc! { "ping": 1 }).await.is_ok() },
        )
        .await;
        let status = admin
            .run_command(doc! { "serverStatus": 1 })
            .await
            .map_err(|e| format!("serverStatus: {e}"))?;
        let answering = status
            .get_i64("pid")
            .ok()
            .or_else(|| status.get_i32("pid").ok().map(i64::from))
            .and_then(|pid| u32::try_from(pid).ok());
        self.process.check_owner(self.port, answering)
    }
}

/// The `secantusd-py` program, or a test failure saying how to install it.
///
/// # Panics
/// When it is nowhere to be found.
pub fn secantusd_program() -> std::path::PathBuf {
    let installed = workspace_root().join("target/tools/secantus/bin/secantusd-py");
    find_program(
        "secantusd-py",
        SECANTUSD_ENV,
        &[installed],
        "Run `cargo xtask services install` (it creates target/tools/secantus with `pip install secantusdb==0.7.0b3`).",
    )
}
