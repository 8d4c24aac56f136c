//! The Redis backend of authcache: [`RedisCache`] (standalone) and `RedisClusterCache`
//! (feature `cluster`) implement [`authcache_core::Cache`]; [`RedisPublisher`] and
//! [`InvalidationSubscriber`] carry invalidations between instances over pub/sub.
//!
//! - Commands: `SET key value PX ttl`, `GET`, `DEL`; `MGET` for `get_many` and one
//!   multi-key `DEL` for `delete_many` (on a Cluster, redis-rs splits both per hash slot).
//!   TTLs are rounded up to whole milliseconds, never below 1 ms.
//! - Every call is bounded by [`RedisConfig::timeout`] (default 100 ms) and connecting by
//!   [`RedisConfig::connect_timeout`] (default 1 s): a hung server costs a call one
//!   [`CacheError::Timeout`](authcache_core::CacheError::Timeout), a dead one an immediate
//!   [`CacheError::Unavailable`](authcache_core::CacheError::Unavailable); the connection
//!   comes back by itself when the server does.
//! - Configuration comes from URLs (`redis://`, `rediss://` for TLS via rustls, user,
//!   password, db). Credentials never appear in `Debug` output, errors or logs.
//! - No `redis::` type appears in this crate's public API.
//!
//! ```no_run
//! use std::time::Duration;
//! use authcache_core::{BusEvent, Cache, InvalidationPublisher, KeyKind, Keyspace};
//! use authcache_redis::{InvalidationSubscriber, RedisCache, RedisConfig, RedisPublisher};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::from_url("redis://:secret@127.0.0.1:6379/0")?
//!     .with_timeout(Duration::from_millis(100));
//! let cache = RedisCache::connect(&config).await?;
//!
//! let keys = Keyspace::default();
//! let key = keys.key(KeyKind::User, "42")?;
//! cache.set(&key, "alice".into(), Duration::from_secs(300)).await?;
//! assert_eq!(cache.get(&key).await?.as_deref(), Some(&b"alice"[..]));
//!
//! // Every instance subscribes; the writer publishes.
//! let subscriber = InvalidationSubscriber::spawn(&config, &keys, |event| match event {
//!     BusEvent::Invalidated(key) => println!("drop {key} from L1"),
//!     BusEvent::Resubscribed => println!("clear the whole L1"),
//!     _ => {}
//! })?;
//! subscriber.wait_subscribed(Duration::from_secs(1)).await?;
//! RedisPublisher::new(&cache, &keys).publish(&key).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//! - `cluster` — `RedisClusterCache` and `RedisPublisher::for_cluster`, on redis-rs
//!   `cluster-async`. Off by default.
//!
//! # On a Redis Cluster
//! See `RedisClusterCache` for multi-key commands and the [`bus`] module for pub/sub.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bus;
mod cache;
#[cfg(feature = "cluster")]
mod cluster;
mod commands;
mod config;

pub use bus::{InvalidationSubscriber, RedisPublisher};
pub use cache::RedisCache;
#[cfg(feature = "cluster")]
pub use cluster::RedisClusterCache;
pub use config::{ConfigError, RedisConfig};
