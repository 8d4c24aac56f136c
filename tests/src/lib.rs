//! The authcache test kit: spawns real servers (redis-server, a 3-node Redis Cluster, the
//! MongoDB-compatible SecantusDB, nginx and Caddy in front of an echoing upstream) on free
//! loopback ports for integration tests and benches, and reaps them on drop. A server that
//! cannot be had fails the test with a message saying how to get it
//! (`cargo xtask services install`); nothing is ever skipped.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used, missing_docs)]

pub mod cache_conformance;
pub mod cluster_slots;
pub mod hooked_repository;
pub mod mongo_server;
pub mod process;
pub mod proxy_server;
pub mod redis_server;
