//! The cross-instance invalidation bus on Redis pub/sub: [`RedisPublisher`] sends invalidated
//! keys on the keyspace's channel (`{prefix}:invalidate`), [`InvalidationSubscriber`] hands
//! them to a callback and reports [`BusEvent::Resubscribed`] after any gap.
//!
//! # On a Redis Cluster
//! Classic `PUBLISH` (not sharded `SPUBLISH`) is broadcast over the cluster bus to every
//! node, so a subscription on any one node sees every message whichever node it was
//! published on. The publisher sends through the cluster connection (redis-rs routes it to
//! the node owning the channel name's slot); the subscriber holds one connection to one seed
//! node. When that node dies the subscription drops: the subscriber retries the same node
//! once, then moves on to the next seed node of the [`RedisConfig`] (round robin, with
//! backoff), and once subscribed again emits [`BusEvent::Resubscribed`] so the owner clears
//! its L1 — messages published meanwhile are lost, the flush makes that harmless. Give the
//! subscriber several seed nodes (ideally every master) so it can move.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authcache_core::{BusEvent, CacheError, InvalidationPublisher, Key, Keyspace, Result};
use futures::StreamExt;
use redis::ConnectionInfo;
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::RedisCache;
use crate::commands::{Commands, bounded};
use crate::config::{RedactedNode, Redactor, RedisConfig};

/// First pause after a failed (re)subscription attempt; doubled per failure.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between attempts: a restarted Redis is noticed within this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle subscription is checked with a `PING`: a hung or silently vanished
/// server would otherwise look like a quiet channel forever.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes invalidated keys with `PUBLISH {prefix}:invalidate <key>`, sharing the
/// connection of a [`RedisCache`] (or a `RedisClusterCache`).
#[derive(Clone)]
pub struct RedisPublisher {
    channel: Arc<str>,
    conn: PublishConn,
}

#[derive(Clone)]
enum PublishConn {
    Standalone(Commands<ConnectionManager>),
    #[cfg(feature = "cluster")]
    Cluster(Commands<redis::cluster_async::ClusterConnection>),
}

impl RedisPublisher {
    /// A publisher on `cache`'s connection, for `keyspace`'s invalidation channel.
    pub fn new(cache: &RedisCache, keyspace: &Keyspace) -> Self {
        Self {
            channel: Arc::from(keyspace.invalidation_channel()),
            conn: PublishConn::Standalone(cache.commands().clone()),
        }
    }

    /// A publisher on a Cluster connection; see the module docs for Cluster behaviour.
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn for_cluster(cache: &crate::RedisClusterCache, keyspace: &Keyspace) -> Self {
        Self {
            channel: Arc::from(keyspace.invalidation_channel()),
            conn: PublishConn::Cluster(cache.commands().clone()),
        }
    }

    /// The channel published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

#[async_trait]
impl InvalidationPublisher for RedisPublisher {
    async fn publish(&self, key: &Key) -> Result<()> {
        let receivers = match &self.conn {
            PublishConn::Standalone(commands) => {
                commands.publish(&self.channel, key.as_str()).await?
            }
            #[cfg(feature = "cluster")]
            PublishConn::Cluster(commands) => commands.publish(&self.channel, key.as_str()).await?,
        };
        tracing::trace!(channel = %self.channel, receivers, "published invalidation");
        Ok(())
    }
}

impl fmt::Debug for RedisPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPublisher")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// A background task subscribed to the invalidation channel. Every message is handed to the
/// callback as [`BusEvent::Invalidated`]; after the subscription dropped (or could not be
/// made at first) and was re-established, the callback gets [`BusEvent::Resubscribed`],
/// because messages may have been missed. Reconnects forever, with bounded backoff
/// (50 ms doubling to 5 s). Dropping the handle stops the task.
///
/// The callback runs on the subscriber task: it should be quick and must not block
/// (dropping a key from an in-process cache is the intended use).
pub struct InvalidationSubscriber {
    channel: Arc<str>,
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
}

/// What the task reports to its handle.
#[derive(Debug, Clone, Copy, Default)]
struct Status {
    subscribed: bool,
    subscriptions: u64,
}

impl InvalidationSubscriber {
    /// Starts the subscriber task on the current tokio runtime; it connects to the first
    /// node of `config` (then the others, round robin, when that fails).
    ///
    /// Returns at once: use [`InvalidationSubscriber::wait_subscribed`] to know when
    /// messages will be received.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when called outside a tokio runtime.
    pub fn spawn<F>(config: &RedisConfig, keyspace: &Keyspace, on_event: F) -> Result<Self>
    where
        F: Fn(BusEvent) + Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            CacheError::unavailable("InvalidationSubscriber::spawn needs a tokio runtime")
        })?;
        config.prepare_tls();
        let channel: Arc<str> = Arc::from(keyspace.invalidation_channel());
        let (status_tx, status) = watch::channel(Status::default());
        let worker = Worker {
            nodes: config.nodes().to_vec(),
            channel: channel.clone(),
            connect_timeout: config.connect_timeout(),
            redactor: config.redactor(),
            status: status_tx,
        };
        let task = runtime.spawn(worker.run(on_event));
        Ok(Self {
            channel,
            status,
            task,
        })
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// `true` while the subscription is established.
    pub fn is_subscribed(&self) -> bool {
        self.status.borrow().subscribed
    }

    /// How many times a subscription was established so far (1 after the first success,
    /// +1 per resubscription).
    pub fn subscriptions(&self) -> u64 {
        self.status.borrow().subscriptions
    }

    /// Waits until the subscription is established.
    ///
    /// # Errors
    /// [`CacheError::Timeout`] when it is not established within `timeout`;
    /// [`CacheError::Unavailable`] if the task has stopped.
    pub async fn wait_subscribed(&self, timeout: Duration) -> Result<()> {
        let mut status = self.status.clone();
        match tokio::time::timeout(timeout, status.wait_for(|s| s.subscribed)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(CacheError::unavailable(
                "invalidation subscriber task stopped",
            )),
            Err(_) => Err(CacheError::Timeout(timeout)),
        }
    }
}

impl Drop for InvalidationSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for InvalidationSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationSubscriber")
            .field("channel", &self.channel)
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}

/// The state of the subscriber task.
struct Worker {
    nodes: Vec<ConnectionInfo>,
    channel: Arc<str>,
    connect_timeout: Duration,
    redactor: Redactor,
    status: watch::Sender<Status>,
}

impl Worker {
    async fn run(self, on_event: impl Fn(BusEvent)) {
        let mut backoff = MIN_BACKOFF;
        let mut node = 0;
        // True once a message may have been missed: any failed attempt or dropped subscription.
        let mut gap = false;
        loop {
            let info = &self.nodes[node % self.nodes.len()];
            match self.subscribe(info).await {
                Ok((sink, stream)) => {
                    backoff = MIN_BACKOFF;
                    self.status.send_modify(|s| {
                        s.subscribed = true;
                        s.subscriptions += 1;
                    });
                    tracing::debug!(node = %RedactedNode(info), channel = %self.channel, "subscribed");
                    if gap {
                        on_event(BusEvent::Resubscribed);
                    }
                    self.pump(sink, stream, &on_event).await;
                    self.status.send_modify(|s| s.subscribed = false);
                    tracing::warn!(node = %RedactedNode(info), channel = %self.channel, "invalidation subscription dropped; resubscribing");
                    gap = true;
                }
                Err(err) => {
                    tracing::warn!(node = %RedactedNode(info), error = %err, retry_in = ?backoff, "cannot subscribe to the invalidation channel");
                    gap = true;
                    node += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn subscribe(&self, info: &ConnectionInfo) -> Result<(PubSubSink, PubSubStream)> {
        let client = redis::Client::open(info.clone())
            .map_err(|err| CacheError::unavailable(self.redactor.scrub(err)))?;
        let channel = self.channel.clone();
        bounded(self.connect_timeout, &self.redactor, async move {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&*channel).await?;
            Ok(pubsub.split())
        })
        .await
    }

    /// Delivers messages until the connection ends or stops answering `PING`.
    async fn pump(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        on_event: &impl Fn(BusEvent),
    ) {
        let mut health = tokio::time::interval(HEALTH_CHECK_INTERVAL);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => deliver(&message, on_event),
                    None => return,
                },
                _ = health.tick() => {
                    let ping = bounded(self.connect_timeout, &self.redactor, sink.ping::<redis::Value>()).await;
                    if let Err(err) = ping {
                        tracing::warn!(error = %err, "invalidation subscription failed its health check");
                        return;
                    }
                }
            }
        }
    }
}

fn deliver(message: &redis::Msg, on_event: &impl Fn(BusEvent)) {
    match std::str::from_utf8(message.get_payload_bytes()) {
        Ok(key) => on_event(BusEvent::Invalidated(key.to_owned())),
        Err(_) => tracing::warn!(
            len = message.get_payload_bytes().len(),
            "ignoring a non-UTF-8 invalidation message"
        ),
    }
}
