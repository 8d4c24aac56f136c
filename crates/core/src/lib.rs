//! The cache abstraction of authcache.
//!
//! This crate does no I/O. It defines the contract every backend implements ([`Cache`]),
//! how keys are built ([`Keyspace`], [`Key`]), the error type ([`CacheError`]).
//!
//! ```
//! use authcache_core::{Keyspace, KeyKind, Fingerprint};
//!
//! let keys = Keyspace::default();
//! let key = keys.key(KeyKind::User, "42").unwrap();
//! assert_eq!(key.as_str(), "authcache:v1:user:42");
//! assert!(keys.key(KeyKind::User, "has space").is_err());
//! let token = keys.token_key(KeyKind::Revoked, &Fingerprint::of("a.b.c"));
//! assert!(!token.as_str().contains("a.b.c"));
//! ```

pub mod bus;
pub mod cache;
pub mod error;
pub mod key;

#[cfg(feature = "mock")]
pub use bus::MockInvalidationPublisher;
pub use bus::{BusEvent, InvalidationPublisher};
pub use cache::Cache;
#[cfg(feature = "mock")]
pub use cache::MockCache;
pub use error::{CacheError, KeyError, Result};
pub use key::{Fingerprint, Key, KeyKind, Keyspace};
