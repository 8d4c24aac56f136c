//! How a drill tells a recovered part from a dead one: the shared L2 carries an entry from
//! one instance to another again; the breaker is closed; the bus is subscribed (and, after
//! a cut, with new connections); plus the Redis commands the drills inject faults with.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use authcache::{AuthService, BreakerState, BreakerStats};
use authcache_core::{KeyKind, Keyspace};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;
use tokio::time::Instant;

use super::PREFIX;
use super::population::fresh_bearer;

/// Bound on every recovery: the breaker's cool-down is at most a few seconds after a
/// drill's short fault, a bus reconnects within its 5 s backoff, the MongoDB driver within
/// its heartbeat. Far above them, for a loaded CI machine.
pub(crate) const RECOVERY: Duration = Duration::from_secs(30);

/// The breaker of `auth`'s shared L2.
pub(crate) fn breaker(auth: &AuthService) -> BreakerStats {
    auth.stats()
        .breaker
        .unwrap_or_else(|| panic!("the drill service has no L2 breaker: {:?}", auth.stats()))
}

/// The breaker is closed and the bus subscribed: `auth` uses Redis again.
pub(crate) fn reconnected(auth: &AuthService) -> bool {
    breaker(auth).state == BreakerState::Closed && auth.stats().bus_subscribed == Some(true)
}

/// Waits (bounded by [`RECOVERY`]) until `recovered` holds; returns how long that took.
pub(crate) async fn time_to_recover<F, Fut>(what: &str, recovered: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let back = Instant::now();
    eventually(RECOVERY, what, recovered).await;
    back.elapsed()
}

/// Proves an entry goes through the shared L2 again: `writer` loads a probe user nobody
/// has asked for (filling L2), then `reader` — which has never seen that user, so its L1
/// cannot answer — must find it in L2. Each round takes the next probe user.
pub(crate) struct L2Probe<'a> {
    writer: &'a AuthService,
    reader: &'a AuthService,
    ids: &'a [String],
    next: AtomicUsize,
}

impl<'a> L2Probe<'a> {
    pub(crate) fn new(writer: &'a AuthService, reader: &'a AuthService, ids: &'a [String]) -> Self {
        Self {
            writer,
            reader,
            ids,
            next: AtomicUsize::new(0),
        }
    }

    /// One round trip through L2; `stored_on`: only a user whose entry landed on that
    /// Cluster node counts (the node that was down).
    pub(crate) async fn round_trip(&self, stored_on: Option<&RedisServer>) -> bool {
        let index = self.next.fetch_add(1, Relaxed);
        let id = self.ids.get(index).unwrap_or_else(|| {
            panic!(
                "all {} probe users used without an L2 round trip",
                self.ids.len()
            )
        });
        let written = self.writer.authenticate(&fresh_bearer(id)).await;
        assert!(written.is_ok(), "probe user {id} refused: {written:?}");
        if stored_on.is_some_and(|node| !holds_user(node, id)) {
            return false;
        }
        let before = self.reader.stats().users.l2_hits;
        let read = self.reader.authenticate(&fresh_bearer(id)).await;
        assert!(
            read.is_ok(),
            "probe user {id} refused by the reader: {read:?}"
        );
        self.reader.stats().users.l2_hits > before
    }
}

/// Whether `node` itself stores the user entry of `id` (a Cluster node answers `MOVED`,
/// an error, for a key of another node's slots).
fn holds_user(node: &RedisServer, id: &str) -> bool {
    let key = Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, id)
        .unwrap();
    let exists: redis::RedisResult<u64> = redis::cmd("EXISTS")
        .arg(key.as_str())
        .query(&mut node.connection());
    matches!(exists, Ok(1))
}

/// Ids of the connections in pub/sub mode (`CLIENT LIST TYPE pubsub`): the instances'
/// invalidation subscribers.
pub(crate) fn pubsub_client_ids(server: &RedisServer) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut server.connection())
        .unwrap();
    list.lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// Closes every pub/sub connection (`CLIENT KILL TYPE pubsub`), as a proxy, a failover or
/// a server-side timeout would; returns how many were closed.
pub(crate) fn kill_pubsub_clients(server: &RedisServer) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut server.connection())
        .unwrap()
}
