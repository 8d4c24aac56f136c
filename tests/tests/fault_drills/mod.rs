//! Pieces of the fault drills (`fault_drills.rs`): the user population and fresh tokens, the
//! concurrent load and its figures, the probes that tell a recovered part from a dead one,
//! and a SecantusDB that keeps its data across a kill.

pub(crate) mod churn;
pub(crate) mod durable_mongo;
pub(crate) mod load;
pub(crate) mod population;
pub(crate) mod probe;
pub(crate) mod report;

use std::sync::Arc;

use authcache::{AuthService, AuthServiceBuilder, CacheConfig, JwtVerifier, UserRepository};

use crate::auth_support::{SECRET, SIGNING_KEY, wait_subscribed};

/// Key prefix of every drill's instances (the probes build keys with it).
pub(crate) const PREFIX: &str = "drill";

/// A service on `cache` and `repository` as production would build it (signed L2, default
/// breaker and TTLs), adjusted by `tune`; returned once its bus, if any, is subscribed.
pub(crate) async fn drill_service(
    cache: CacheConfig,
    repository: &Arc<dyn UserRepository>,
    tune: impl FnOnce(AuthServiceBuilder) -> AuthServiceBuilder,
) -> AuthService {
    let builder = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .shared_repository(Arc::clone(repository))
        .cache(cache)
        .signing_key(SIGNING_KEY)
        .prefix(PREFIX);
    let auth = tune(builder)
        .build()
        .await
        .unwrap_or_else(|e| panic!("build a drill service: {e}"));
    wait_subscribed(&auth).await;
    auth
}
