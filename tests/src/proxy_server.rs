//! Throwaway reverse proxies for the sidecar's integration tests and benches: the real
//! nginx ([`NginxServer`], `auth_request`) and the real Caddy ([`CaddyServer`],
//! `forward_auth`) on free loopback ports, each with a generated config in its own temp dir,
//! in front of an auth endpoint and an [`EchoUpstream`] that answers with what reached it.
//! [`get`] and [`request`] drive them over real HTTP.
//!
//! Both proxies wait (bounded) until they answer, are checked to be the only listener on
//! their port, and are killed with their whole process group on drop (nginx's workers
//! too), even when the owning test panics. A missing binary fails the test with how to get
//! it (`cargo xtask services install`); nothing is ever skipped.
//!
//! Both protect the same routes the same way, so one test can run against either:
//! `/admin/…` asks the auth endpoint `GET /auth?role=admin`, every other path `GET /auth`;
//! a 2xx lets the request through with the auth answer's `X-Auth-Request-User`, `-Email`,
//! `-Groups` and `-Permissions` headers set on it, anything else is the answer to the client
//! (401 and 403 with the auth answer's `WWW-Authenticate`).
#![cfg(feature = "proxies")]

mod caddy;
mod client;
mod launch;
mod nginx;
mod upstream;

pub use caddy::{CaddyServer, caddy_program};
pub use client::{ProxyReply, get, request};
pub use launch::Proxy;
pub use nginx::{NginxMode, NginxServer, nginx_program};
pub use upstream::{EchoUpstream, Echoed};

/// The identity headers the auth endpoint answers with and the proxies copy onto the
/// request they forward, in the order the configs list them.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Permissions",
];
