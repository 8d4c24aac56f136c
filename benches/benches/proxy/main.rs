//! The sidecar behind a real nginx (issue 22, item 6), side by side in one run, each at 64
//! connections: (a) nginx → upstream, the limit; (b) nginx `auth_request` →
//! authcache-server → upstream, whose throughput over (a)'s is the ratio the report holds
//! to ≥ 0.5×; (c) authcache-server's `/auth` alone. Every request carries the same valid
//! token (in (a) too, so the bytes nginx receives match), and every figure is req/s, p50
//! and p99 from [`wrk`], after a warm-up run that fills the caches and nginx's keep-alive
//! pools.
//!
//! `cargo bench -p authcache-benches --features proxy --bench proxy [-- FILTER]` runs the
//! scenarios whose name (`nginx_direct`, `nginx_auth_request`, `auth_alone`) contains
//! `FILTER`, or all of them when `proxy` is in FILTER's place (as `cargo xtask bench proxy`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod sidecar;
mod wrk;

use std::time::Duration;

use authcache_benches::by_mode;
use authcache_benches::figures::{self, Unit};
use authcache_tests::proxy_server::{EchoUpstream, NginxServer, ProxyReply, get};

use crate::sidecar::Sidecar;
use crate::wrk::{Load, Request};

/// The scenarios in the order they run; each name is the function of its figures' ids.
const SCENARIOS: [&str; 3] = ["nginx_direct", "nginx_auth_request", "auth_alone"];

fn main() {
    // cargo passes `--bench`; a word that is not a flag is a filter, as for criterion.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let selected: Vec<&str> = SCENARIOS
        .into_iter()
        .filter(|name| {
            filter
                .as_deref()
                .is_none_or(|f| name.contains(f) || format!("proxy/{name}").contains(f))
        })
        .collect();
    if selected.is_empty() {
        return;
    }
    // Upstream and sidecar are separate processes in production: each gets its own
    // runtime (one worker per core) so neither runs on the other's workers.
    let upstream_runtime = runtime();
    let sidecar_runtime = runtime();
    let upstream = upstream_runtime.block_on(EchoUpstream::start());
    let sidecar = sidecar_runtime.block_on(Sidecar::start());
    let timing = Timing {
        warm_up: by_mode(Duration::from_secs(2), Duration::from_secs(1)),
        measure: by_mode(Duration::from_secs(10), Duration::from_secs(2)),
    };
    for name in selected {
        println!("\n== proxy: {name}");
        let outcome = match name {
            "nginx_direct" => {
                let nginx = NginxServer::start_direct(upstream.address());
                through_nginx(&upstream_runtime, &nginx, &sidecar, None, timing)
            }
            "nginx_auth_request" => {
                let nginx = NginxServer::start(sidecar.address(), upstream.address());
                let user = Some(sidecar::USER);
                through_nginx(&upstream_runtime, &nginx, &sidecar, user, timing)
            }
            _ => {
                let url = format!("http://{}/auth", sidecar.address());
                answered_200(&upstream_runtime, &url, &sidecar)
                    .and_then(|_| measure(&url, &sidecar, timing))
            }
        };
        record(name, outcome);
    }
    assert!(
        sidecar.loads() <= 1,
        "every decision but the first came from the warm cache"
    );
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    warm_up: Duration,
    measure: Duration,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `GET /` through `nginx`, checked first to reach the upstream as `user` (as no one
/// without `auth_request`), then warmed and measured.
fn through_nginx(
    runtime: &tokio::runtime::Runtime,
    nginx: &NginxServer,
    sidecar: &Sidecar,
    user: Option<&str>,
    timing: Timing,
) -> Result<Load, String> {
    let url = nginx.url("/");
    let reached = answered_200(runtime, &url, sidecar)
        .map_err(|e| format!("{e}; nginx: {}", nginx.log_tail()))?
        .echoed();
    let seen = reached.header("X-Auth-Request-User");
    if seen != user {
        return Err(format!("the upstream saw user {seen:?}, not {user:?}"));
    }
    measure(&url, sidecar, timing)
}

/// One request with the token, which must answer 200.
fn answered_200(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    sidecar: &Sidecar,
) -> Result<ProxyReply, String> {
    let reply = runtime.block_on(get(url, &[("Authorization", &sidecar.bearer())]));
    match reply.status {
        200 => Ok(reply),
        status => Err(format!("GET {url} answered {status}: {}", reply.body)),
    }
}

fn measure(url: &str, sidecar: &Sidecar, timing: Timing) -> Result<Load, String> {
    let request = Request {
        url,
        authorization: &sidecar.bearer(),
    };
    wrk::run(&request, timing.warm_up)?;
    wrk::run(&request, timing.measure)
}

fn record(name: &str, outcome: Result<Load, String>) {
    let ids = [
        format!("proxy_rps/{name}"),
        format!("proxy_p50/{name}"),
        format!("proxy_p99/{name}"),
    ];
    let written = match outcome {
        Ok(load) => [
            (load.per_second, Unit::PerSecond),
            (load.p50_ns, Unit::Nanos),
            (load.p99_ns, Unit::Nanos),
        ]
        .iter()
        .zip(&ids)
        .try_for_each(|((value, unit), id)| figures::record(id, *value, *unit)),
        Err(reason) => ids
            .iter()
            .try_for_each(|id| figures::record_missing(id, &reason)),
    };
    written.unwrap_or_else(|e| panic!("cannot write the figures of {name}: {e}"));
}
