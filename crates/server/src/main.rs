//! `authcache-server`: the sidecar binary. See the crate docs and the README's
//! *authcache-server* section.
//!
//! ```text
//! authcache-server --demo
//! authcache-server --config /etc/authcache/server.toml
//! AUTHCACHE_VERIFIER__SECRET_ENV=TOKEN_SECRET AUTHCACHE_CACHE__BACKEND=redis … authcache-server
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use authcache::{AuthConfig, AuthService};
use authcache_server::config::{self, ServerConfig};
use authcache_server::{Listeners, Server, demo};
use clap::{Parser, ValueEnum};

/// Answers nginx `auth_request`, Caddy/Traefik `forward_auth` and Envoy `ext_authz` from
/// authcache's verified, cached tiers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The configuration file: the service's settings (`[verifier]`, `[cache]`,
    /// `[repository]`…) and the sidecar's `[server]` table. Without it, the service is
    /// configured by `AUTHCACHE_*` variables.
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Run on the embedded defaults (in-process cache, in-memory users) and print tokens
    /// to try it with.
    #[arg(long)]
    demo: bool,
    /// The public listener (`/auth`, `/healthz`, `/ready`, `/metrics`).
    #[arg(long, env = "AUTHCACHE_SERVER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The admin listener (`/logout`, `/admin/…`).
    #[arg(long, env = "AUTHCACHE_SERVER_ADMIN_LISTEN", value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Envoy's gRPC `ext_authz` listener.
    #[arg(long, env = "AUTHCACHE_SERVER_GRPC_LISTEN", value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    /// Log lines as text or as JSON objects (filtered by `RUST_LOG`, default `info`).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(args.log_format);
    let stop = termination()?;
    let (auth, mut server_config) = if args.demo {
        let auth = demo::service().await.context("building the demo service")?;
        (auth, ServerConfig::default())
    } else {
        let (auth_config, server_config) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                config::load(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => (
                AuthConfig::from_env().context("reading the AUTHCACHE_* variables")?,
                ServerConfig::default(),
            ),
        };
        let auth = AuthService::builder()
            .config(auth_config)
            .build()
            .await
            .context("building the service")?;
        (auth, server_config)
    };
    if let Some(listen) = args.listen {
        server_config.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        server_config.admin_listen = Some(admin);
    }
    if let Some(grpc) = args.grpc_listen {
        server_config.grpc_listen = Some(grpc);
    }
    let listeners = Listeners::bind(&server_config).await?;
    let server = Server::new(auth.clone(), server_config).await?;
    let running = server.start(listeners);
    if args.demo {
        let text = demo::introduction(&auth, running.public_addr(), running.admin_addr()).await?;
        // One write, its failure ignored: `println!` wrote the text and its newline apart and
        // panicked when the reader had gone in between (`| head`, a test that read what it
        // needed) — the introduction is for a reader, and a missing one is no reason to die.
        let mut stdout = std::io::stdout().lock();
        let _unread = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    }
    tracing::info!(
        target: "authcache_server",
        public = %running.public_addr(),
        admin = ?running.admin_addr(),
        grpc = ?running.grpc_addr(),
        "serving"
    );
    running.until(stop).await;
    tracing::info!(target: "authcache_server", "stopped");
    Ok(())
}

/// Completes on SIGTERM (an orchestrator's stop) or SIGINT (Ctrl-C). The handlers are
/// installed when this is called, not when the future is first polled: a stop that arrives
/// while the server starts up is a clean stop too, never the signal's default (death).
#[cfg(unix)]
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
