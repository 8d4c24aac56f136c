//! `authcache-server`: the sidecar that answers a proxy's "may this request through?" from
//! authcache's tiers, for services not written in Rust.
//!
//! | proxy | asks with | module |
//! |---|---|---|
//! | nginx | `auth_request` → `GET /auth` (`X-Original-URI`, `X-Original-Method`) | [`http`] |
//! | Caddy, Traefik | `forward_auth` → `GET /auth` (`X-Forwarded-Method`, `-Uri`, `-Host`) | [`http`] |
//! | Envoy (HTTP) | `ext_authz` → `<method> /auth/<original path>` | [`http`] |
//! | Envoy (gRPC) | `envoy.service.auth.v3.Authorization/Check` | [`grpc`] |
//!
//! Every form reads the credential ([`credential`]), the original request ([`request`]),
//! finds what the request must hold ([`policy`]) and asks one [`decision::Decider`], so the
//! four answer exactly alike. Revocation and invalidation from any language are on the
//! admin listener ([`admin`]), and an identity provider's OpenID Connect back-channel logout
//! on the public one ([`backchannel`]). [`server`] binds and serves it all; [`config`]
//! reads the `[server]` table beside the [`authcache::AuthConfig`] it is built from.
//!
//! Nothing below this crate learns about HTTP: it is written on the public API of
//! [`authcache::AuthService`].

pub mod admin;
pub mod backchannel;
pub mod config;
pub mod credential;
pub mod decision;
pub mod demo;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod policy;
pub mod request;
pub mod server;
pub mod telemetry;

pub use config::ServerConfig;
pub use decision::{Decider, Decision, Denial};
pub use server::{Listeners, RunningServer, Server};
pub use telemetry::Via;
