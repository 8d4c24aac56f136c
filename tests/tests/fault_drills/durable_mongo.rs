//! A SecantusDB server whose data survives a kill: on-disk storage in its own temp dir,
//! synced on every commit. The test kit's `MongoServer` keeps its data in memory, so a
//! restart there comes back empty — unlike a production database, which the repository
//! drill stands for.

use std::time::Duration;

use authcache_tests::mongo_server::secantusd_program;
use authcache_tests::process::{ServerProcess, eventually, free_port};
use mongodb::Client;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use tempfile::TempDir;

/// Attempts at a port of its own before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Bound on start-up and restart (Python imports dominate; generous for a loaded machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running SecantusDB with durable storage, killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct DurableMongo {
    process: ServerProcess,
    port: u16,
    _dir: TempDir,
}

impl DurableMongo {
    /// Starts a server and waits until it answers.
    pub(crate) async fn start() -> Self {
        let mut clashes = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let server = Self::spawn(free_port());
            match server.wait_until_ready().await {
                Ok(()) => return server,
                Err(clash) => clashes.push(clash),
            }
        }
        panic!("secantusd could not get a port of its own: {clashes:#?}");
    }

    fn spawn(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("authcache-drill-secantus-")
            .tempdir()
            .unwrap();
        let storage = dir.path().join("data");
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--storage-path",
            &storage.display().to_string(),
            "--standalone",
            "--sync-on-commit",
        ]
        .map(String::from)
        .to_vec();
        let process = ServerProcess::spawn(&secantusd_program(), args, dir.path());
        Self {
            process,
            port,
            _dir: dir,
        }
    }

    /// The connection string (`directConnection=true`: one standalone server).
    pub(crate) fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Kills the server (SIGKILL); its data stays on disk.
    pub(crate) fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port and storage; waits until it answers.
    pub(crate) async fn restart(&mut self) {
        self.process.restart();
        if let Err(clash) = self.wait_until_ready().await {
            panic!("secantusd did not come back on its own port: {clash}");
        }
    }

    /// Waits until the server answers a ping — and is this one (a port handed out twice
    /// must be a retry on another port, never two tests sharing one server).
    async fn wait_until_ready(&self) -> Result<(), String> {
        let mut options = ClientOptions::parse(self.uri()).await.unwrap();
        options.server_selection_timeout = Some(Duration::from_secs(2));
        options.connect_timeout = Some(Duration::from_secs(2));
        let admin = Client::with_options(options).unwrap().database("admin");
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
