//! Bytes stored per user entry: the signed envelope a service writes to Redis for the
//! replaced system's 20-field document (read back from Redis), against the same document
//! as `serde_json` and as `base64(pickle.dumps(doc))` — what the replaced system stored —
//! computed by `python3` from the same document.

use std::io::Write;
use std::process::{Command, Stdio};

use authcache::{AuthServiceBuilder, CacheConfig, JwtVerifier, MemoryUserRepository};
use authcache_benches::figures::Unit;
use authcache_benches::profile::Profile;
use authcache_core::{KeyKind, Keyspace};

use crate::{Context, record, record_missing};

/// A 24-character ObjectId, as in the replaced system.
const ID: &str = "64f1c2a7e4b0c0ffee000001";
const PREFIX: &str = "fig_bytes";

/// Pickles the JSON document on stdin with the default protocol, base64s it, prints the length.
const PICKLE_BASE64: &str = "import base64, json, pickle, sys; \
    print(len(base64.b64encode(pickle.dumps(json.load(sys.stdin)))))";

pub(crate) fn run(cx: &Context) {
    let document = Profile::sample(ID);
    let stored = cx
        .runtime
        .block_on(stored_entry(&cx.redis.url(), &document));
    let json = authcache_jwt::serde_json::to_vec(&document).unwrap();
    record(
        "user_entry_bytes/authcache",
        stored.len() as f64,
        Unit::Bytes,
    );
    record(
        "user_entry_bytes/serde_json",
        json.len() as f64,
        Unit::Bytes,
    );
    match pickle_base64_len(&json) {
        Ok(len) => record("user_entry_bytes/pickle_base64", len as f64, Unit::Bytes),
        Err(reason) => record_missing("user_entry_bytes/pickle_base64", &reason),
    }
}

/// What a service with Redis as L2 and a signing key stores for `document`, read back from
/// Redis.
async fn stored_entry(redis_url: &str, document: &Profile) -> Vec<u8> {
    let repository = MemoryUserRepository::new()
        .with_user(document.clone())
        .unwrap();
    let auth = AuthServiceBuilder::<Profile>::new()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .cache(CacheConfig::redis(redis_url))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .prefix(PREFIX)
        .build()
        .await
        .unwrap();
    assert_eq!(*auth.user(ID).await.unwrap(), *document);
    let key = Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, ID)
        .unwrap();
    let mut conn = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("GET")
        .arg(key.as_str())
        .query_async(&mut conn)
        .await
        .unwrap()
}

fn pickle_base64_len(json: &[u8]) -> Result<usize, String> {
    let mut python = Command::new("python3")
        .args(["-c", PICKLE_BASE64])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e} (install python3)"))?;
    python
        .stdin
        .take()
        .ok_or("python3 has no stdin")?
        .write_all(json)
        .map_err(|e| format!("writing to python3: {e}"))?;
    let output = python
        .wait_with_output()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.trim().parse().map_err(|_| {
        format!(
            "python3 printed {stdout:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
