//! Throwaway server processes: free loopback ports, spawn, hang, resume, kill, restart,
//! and always reap — even when the test that owns them panics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, as the kernel hands it out right now.
///
/// # Panics
/// When the loopback interface cannot bind at all (the test cannot run).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address").port()
}

/// Finds a server binary: the environment variable `env_var` first, then `fallbacks`,
/// then `$PATH`. Fails the test with `install_hint` when it is nowhere — never skips.
///
/// # Panics
/// When the program cannot be found.
pub fn find_program(
    name: &str,
    env_var: &str,
    fallbacks: &[PathBuf],
    install_hint: &str,
) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var).map(PathBuf::from) {
        assert!(
            path.is_file(),
            "{env_var}={} does not exist. {install_hint}",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    fallbacks
        .iter()
        .chain(on_path.iter())
        .find(|candidate| candidate.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("`{name}` not found (set {env_var} or put it on PATH). {install_hint}")
        })
}

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Polls `probe` every 20 ms until it returns `true`, or panics after `timeout` with `what`.
/// The bounded poll that integration tests use instead of fixed sleeps.
///
/// # Panics
/// When `probe` stays false for `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if probe().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process that is killed and reaped on drop, with signals for fault injection.
#[derive(Debug)]
pub struct ServerProcess {
    program: PathBuf,
    args: Vec<String>,
    workdir: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts `program args…` in `workdir`, output discarded.
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn spawn(program: &Path, args: Vec<String>, workdir: &Path) -> Self {
        let mut process = Self {
            program: program.to_path_buf(),
            args,
            workdir: workdir.to_path_buf(),
            child: None,
        };
        process.start();
        process
    }

    fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Ok` when the server answering on `port` reports this process's pid (`answering`):
    /// a free port handed out twice (another test's server bound it first, and ours failed
    /// to) must be a retry on another port, never two tests sharing — and hanging,
    /// flushing, killing — one server.
    ///
    /// # Errors
    /// Both pids, when they differ or the server reported none.
    pub fn check_owner(&self, port: u16, answering: Option<u32>) -> Result<(), String> {
        match (answering, self.pid()) {
            (Some(answering), Some(ours)) if answering == ours => Ok(()),
            (answering, ours) => Err(format!(
                "port {port} is served by pid {answering:?}, not ours ({ours:?})"
            )),
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers. Returns only
    /// once every thread of the process is stopped.
    ///
    /// `kill(2)` only queues SIGSTOP: one thread must be scheduled to start the group stop,
    /// and on a starved CPU another thread may meanwhile read and answer the very request
    /// the test sends next. Waiting for state `T` in `/proc` makes the freeze a fact.
    ///
    /// # Panics
    /// When the process is not stopped within [`SIGNAL_EFFECT_TIMEOUT`].
    pub fn hang(&self) {
        self.signal("STOP");
        self.wait_for_threads("stopped", |state| state == 'T');
    }

    /// Thaws a hung process (SIGCONT); returns once no thread of it is stopped any more.
    ///
    /// # Panics
    /// When the process is still stopped after [`SIGNAL_EFFECT_TIMEOUT`].
    pub fn resume(&self) {
        self.signal("CONT");
        self.wait_for_threads("running again", |state| state != 'T');
    }

    /// Polls the scheduler state of every thread until `wanted` holds for all of them.
    fn wait_for_threads(&self, what: &str, wanted: impl Fn(char) -> bool) {
        let Some(pid) = self.pid() else { return };
        let deadline = Instant::now() + SIGNAL_EFFECT_TIMEOUT;
        loop {
            let states = thread_states(pid);
            if !states.is_empty() && states.iter().all(|&state| wanted(state)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "process {pid} ({}) not {what} after {SIGNAL_EFFECT_TIMEOUT:?}: thread states {states:?}",
                self.program.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills (if running) and starts the same command again: same port, same arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(pid.to_string())
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "kill -{name} {pid} failed: {status:?}"
            );
        }
    }
}

/// Bound on a signal taking effect: far above the microseconds it takes even on a
/// starved machine.
pub const SIGNAL_EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The scheduler state (`R`, `S`, `T`, …) of every thread of `pid`, from
/// `/proc/<pid>/task/*/stat`; empty when the process is gone.
fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        // `pid (comm) state …`: comm may hold spaces and parentheses, so split at the last `)`.
        .filter_map(|stat| stat.rsplit_once(')')?.1.trim_start().chars().next())
        .collect()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (hung) process too, so this reaps in every state.
        self.kill();
    }
}
