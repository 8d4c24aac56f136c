//! The invalidation bus on real servers: every subscriber receives a publish; a server
//! restart makes every subscriber report `Resubscribed` and receive again afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcache_core::{BusEvent, InvalidationPublisher, KeyKind, Keyspace};
use authcache_redis::{
    InvalidationSubscriber, RedisCache, RedisClusterCache, RedisConfig, RedisPublisher,
};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::{PATIENT_TIMEOUT, RedisClusterServer, RedisServer};

const DEADLINE: Duration = Duration::from_secs(15);

/// A subscriber plus everything its callback has seen.
struct Recorder {
    subscriber: InvalidationSubscriber,
    events: Arc<Mutex<Vec<BusEvent>>>,
}

impl Recorder {
    fn spawn(config: &RedisConfig, keys: &Keyspace) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let subscriber = InvalidationSubscriber::spawn(config, keys, move |event| {
            sink.lock().unwrap().push(event)
        })
        .unwrap();
        Self { subscriber, events }
    }

    fn saw(&self, event: &BusEvent) -> bool {
        self.events.lock().unwrap().contains(event)
    }
}

#[tokio::test]
async fn two_subscribers_both_receive_a_publish_and_both_report_a_resubscribe_after_restart() {
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url()).unwrap();
    let keys = Keyspace::default();
    let recorders = [
        Recorder::spawn(&config, &keys),
        Recorder::spawn(&config, &keys),
    ];
    for r in &recorders {
        r.subscriber.wait_subscribed(DEADLINE).await.unwrap();
        assert_eq!(r.subscriber.channel(), "authcache:invalidate");
    }
    // A publish is a verdict here: a slow reply must not time out.
    let cache = RedisCache::connect(&config.clone().with_timeout(PATIENT_TIMEOUT))
        .await
        .unwrap();
    let publisher = RedisPublisher::new(&cache, &keys);
    let first = keys.key(KeyKind::User, "42").unwrap();
    publisher.publish(&first).await.unwrap();
    let invalidated = BusEvent::Invalidated(first.as_str().to_owned());
    eventually(DEADLINE, "both subscribers receive the key", || async {
        recorders.iter().all(|r| r.saw(&invalidated))
    })
    .await;
    assert!(
        recorders.iter().all(|r| !r.saw(&BusEvent::Resubscribed)),
        "no resubscribe without a drop"
    );

    server.restart();
    eventually(DEADLINE, "both subscribers report Resubscribed", || async {
        recorders.iter().all(|r| r.saw(&BusEvent::Resubscribed))
    })
    .await;
    for r in &recorders {
        assert!(r.subscriber.subscriptions() >= 2, "{:?}", r.subscriber);
        r.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    }

    // The same publisher (its connection reconnects) reaches the resubscribed instances.
    let second = keys.key(KeyKind::Checkpoint, "42").unwrap();
    let invalidated = BusEvent::Invalidated(second.as_str().to_owned());
    eventually(
        DEADLINE,
        "both subscribers receive after the restart",
        || async {
            let _ = publisher.publish(&second).await;
            recorders.iter().all(|r| r.saw(&invalidated))
        },
    )
    .await;
}

#[tokio::test]
async fn a_subscriber_started_while_redis_is_down_subscribes_later_and_reports_the_gap() {
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url()).unwrap();
    server.kill();
    let recorder = Recorder::spawn(&config, &Keyspace::default());
    assert!(
        recorder
            .subscriber
            .wait_subscribed(Duration::from_millis(200))
            .await
            .unwrap_err()
            .is_timeout()
    );
    server.restart();
    recorder.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    eventually(DEADLINE, "Resubscribed after the initial gap", || async {
        recorder.saw(&BusEvent::Resubscribed)
    })
    .await;
}

#[tokio::test]
async fn a_hung_server_is_detected_by_the_health_check_and_the_subscription_comes_back() {
    let server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_connect_timeout(Duration::from_millis(300));
    let recorder = Recorder::spawn(&config, &Keyspace::default());
    recorder.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    server.hang();
    eventually(
        DEADLINE,
        "the subscriber notices the hung server",
        || async { !recorder.subscriber.is_subscribed() },
    )
    .await;
    server.resume();
    eventually(DEADLINE, "Resubscribed after SIGCONT", || async {
        recorder.saw(&BusEvent::Resubscribed)
    })
    .await;
}

#[tokio::test]
async fn dropping_the_handle_stops_the_subscription() {
    let server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url()).unwrap();
    let keys = Keyspace::new("dropped").unwrap();
    let recorder = Recorder::spawn(&config, &keys);
    recorder.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    let mut conn = server.connection();
    let count = |conn: &mut redis::Connection| -> u64 {
        let reply: (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("dropped:invalidate")
            .query(conn)
            .unwrap();
        reply.1
    };
    assert_eq!(count(&mut conn), 1);
    drop(recorder);
    eventually(DEADLINE, "the subscription is gone", || {
        let n = count(&mut conn);
        async move { n == 0 }
    })
    .await;
}

#[tokio::test]
async fn on_a_cluster_a_publish_through_the_cluster_reaches_subscribers_on_every_node() {
    let cluster = RedisClusterServer::start();
    let keys = Keyspace::default();
    let config = RedisConfig::from_urls(cluster.urls())
        .unwrap()
        .with_timeout(PATIENT_TIMEOUT);
    let cache = RedisClusterCache::connect(&config).await.unwrap();
    let publisher = RedisPublisher::for_cluster(&cache, &keys);
    // One subscriber per node: classic PUBLISH is broadcast over the cluster bus.
    let recorders: Vec<Recorder> = cluster
        .urls()
        .iter()
        .map(|url| Recorder::spawn(&RedisConfig::from_url(url).unwrap(), &keys))
        .collect();
    for r in &recorders {
        r.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    }
    let key = keys.key(KeyKind::RolePerms, "7").unwrap();
    publisher.publish(&key).await.unwrap();
    let invalidated = BusEvent::Invalidated(key.as_str().to_owned());
    eventually(DEADLINE, "every node's subscriber receives", || async {
        recorders.iter().all(|r| r.saw(&invalidated))
    })
    .await;
}

#[tokio::test]
async fn on_a_cluster_the_subscriber_moves_to_another_seed_node_when_its_node_dies() {
    let mut cluster = RedisClusterServer::start();
    let keys = Keyspace::default();
    let recorder = Recorder::spawn(&RedisConfig::from_urls(cluster.urls()).unwrap(), &keys);
    recorder.subscriber.wait_subscribed(DEADLINE).await.unwrap();
    cluster.node_mut(0).kill();
    eventually(DEADLINE, "Resubscribed on another node", || async {
        recorder.saw(&BusEvent::Resubscribed)
    })
    .await;
    // Published straight on a surviving node: the subscriber is now there or on its peer.
    let key = keys.key(KeyKind::User, "moved").unwrap();
    let invalidated = BusEvent::Invalidated(key.as_str().to_owned());
    let mut conn = cluster.nodes()[1].connection();
    eventually(DEADLINE, "the moved subscriber receives", || {
        let _: Result<u64, _> = redis::cmd("PUBLISH")
            .arg("authcache:invalidate")
            .arg(key.as_str())
            .query(&mut conn);
        async { recorder.saw(&invalidated) }
    })
    .await;
}
