//! Binding and serving: the public listener (`/auth`, the operator's routes, the
//! back-channel logout), the admin listener and Envoy's gRPC listener, each an accept loop
//! over one hyper connection builder (HTTP/1 and HTTP/2) with the configured limits, and a
//! graceful shutdown that stops accepting, lets the requests in flight finish (bounded by
//! [`DRAIN_TIMEOUT`]), then returns.
//!
//! ```no_run
//! # async fn run(auth: authcache::AuthService) -> anyhow::Result<()> {
//! use authcache_server::{Listeners, Server, ServerConfig};
//!
//! let config = ServerConfig::default();
//! let listeners = Listeners::bind(&config).await?;
//! let running = Server::new(auth, config).await?.start(listeners);
//! println!("deciding on {}", running.public_addr());
//! running.shutdown().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authcache::AuthService;
use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_http::timeout::TimeoutLayer;

use crate::backchannel::BackchannelLogout;
use crate::config::{ConfigError, ServerConfig};
use crate::decision::Decider;
use crate::grpc::ExtAuthz;
use crate::{admin, http};

/// How long a shutdown waits for the requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A sidecar ready to serve: the decider, the admin credential, the back-channel verifier.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    decider: Decider,
    admin_secret: Option<Arc<[u8]>>,
    backchannel: Option<Arc<BackchannelLogout>>,
}

impl Server {
    /// Prepares a sidecar on `auth`: reads the admin secret, builds the back-channel
    /// verifier (fetching the identity provider's keys when it is remote).
    ///
    /// # Errors
    /// A setting that cannot work, named: an admin secret that cannot be read, admin routes
    /// on the public listener without a secret, a back-channel verifier that cannot be built.
    pub async fn new(auth: AuthService, config: ServerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let admin_secret = config.admin_secret()?.map(Arc::from);
        if config.admin_listen.is_none() && admin_secret.is_none() {
            return Err(ConfigError::Server(
                "admin_listen = \"off\" serves the admin routes on the public listener: set \
                 admin_secret_env or admin_secret_file"
                    .into(),
            ));
        }
        let backchannel = match &config.backchannel {
            Some(verifier) => Some(Arc::new(BackchannelLogout::from_config(verifier).await?)),
            None => None,
        };
        let decider = Decider::new(auth, config.policy.clone(), config.forwarded_headers);
        Ok(Self {
            config,
            decider,
            admin_secret,
            backchannel,
        })
    }

    /// The decider every front asks.
    pub fn decider(&self) -> &Decider {
        &self.decider
    }

    /// The public routes; with `admin_listen = "off"`, the admin routes too.
    pub fn public_router(&self) -> Router {
        let router = http::router(
            self.decider.clone(),
            self.config.cookie.clone(),
            self.backchannel.clone(),
        );
        let router = match self.config.admin_listen {
            Some(_) => router,
            None => router.merge(self.admin_router()),
        };
        router.layer(self.timeout())
    }

    /// The admin routes.
    pub fn admin_router(&self) -> Router {
        admin::router(self.decider.auth().clone(), self.admin_secret.clone()).layer(self.timeout())
    }

    /// Envoy's `ext_authz` gRPC service, as a router.
    pub fn grpc_router(&self) -> Router {
        let service = ExtAuthz::new(
            self.decider.clone(),
            self.config.cookie.clone(),
            self.config.strip_authorization,
        )
        .into_service();
        // No request timeout here: a plain HTTP 503 is no gRPC answer; Envoy's
        // `grpc_service.timeout` bounds the call.
        tonic::service::Routes::new(service)
            .prepare()
            .into_axum_router()
    }

    fn timeout(&self) -> TimeoutLayer {
        TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            self.config.request_timeout(),
        )
    }

    /// Serves on `listeners` until [`RunningServer::shutdown`].
    pub fn start(self, listeners: Listeners) -> RunningServer {
        let limits = Limits {
            max_header_bytes: self.config.max_header_bytes,
            header_timeout: self.config.request_timeout(),
        };
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let public_addr = local_addr(&listeners.public);
        tasks.spawn(serve(
            listeners.public,
            self.public_router(),
            limits,
            stopped.clone(),
        ));
        // With `admin_listen = "off"` the admin routes are on the public listener: an
        // admin listener handed over anyway serves nothing.
        let admin = listeners
            .admin
            .filter(|_| self.config.admin_listen.is_some());
        let admin_addr = admin.map(|listener| {
            let addr = local_addr(&listener);
            tasks.spawn(serve(
                listener,
                self.admin_router(),
                limits,
                stopped.clone(),
            ));
            addr
        });
        let grpc_addr = listeners.grpc.map(|listener| {
            let addr = local_addr(&listener);
            tasks.spawn(serve(listener, self.grpc_router(), limits, stopped.clone()));
            addr
        });
        RunningServer {
            public_addr,
            admin_addr,
            grpc_addr,
            stop,
            tasks,
        }
    }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The bound sockets: bound before serving, so a test (or a supervisor handing over
/// sockets) can bind port 0 and read the address.
#[derive(Debug)]
pub struct Listeners {
    /// `/auth` and the operator's routes.
    pub public: TcpListener,
    /// The admin routes, unless they are on the public listener.
    pub admin: Option<TcpListener>,
    /// Envoy's gRPC `ext_authz`.
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    ///
    /// # Errors
    /// The address that could not be bound.
    pub async fn bind(config: &ServerConfig) -> std::io::Result<Self> {
        async fn bind(address: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
            TcpListener::bind(address).await.map_err(|error| {
                std::io::Error::new(error.kind(), format!("binding {what} {address}: {error}"))
            })
        }
        Ok(Self {
            public: bind(config.listen, "listen").await?,
            admin: match config.admin_listen {
                Some(address) => Some(bind(address, "admin_listen").await?),
                None => None,
            },
            grpc: match config.grpc_listen {
                Some(address) => Some(bind(address, "grpc_listen").await?),
                None => None,
            },
        })
    }

    /// Every listener on a port of the kernel's choosing on 127.0.0.1 (tests, benches).
    ///
    /// # Errors
    /// When loopback cannot be bound.
    pub async fn ephemeral() -> std::io::Result<Self> {
        let any = || TcpListener::bind("127.0.0.1:0");
        Ok(Self {
            public: any().await?,
            admin: Some(any().await?),
            grpc: Some(any().await?),
        })
    }
}

/// A serving sidecar.
#[derive(Debug)]
pub struct RunningServer {
    public_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    grpc_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningServer {
    /// Where `/auth` is served.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// Where the admin routes are served, when on their own listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Where Envoy's gRPC `Check` is served.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Stops accepting, lets the requests in flight finish (at most [`DRAIN_TIMEOUT`]).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_header_bytes: usize,
    header_timeout: Duration,
}

/// One listener's accept loop, then its drain.
async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(limits.max_header_bytes)
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        // A client that goes away mid-request is not the server's error.
                        let _ = connection.await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(target: "authcache_server", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}
