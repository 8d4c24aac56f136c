//! Bytes stored per user entry: the signed envelope a service writes to Redis for the
//! replaced system's 20-field document (read back from Redis), against the same document
//! as `serde_json` and as `base64(pickle.dumps(doc))` — what the replaced system stored —
//! computed by `python3` from the same document.
//!
//! Then what those bytes are (issue 23, item 4), measured with the envelope codec the
//! service uses: the entry read back is decoded, encoded again (it must come out byte for
//! byte the same), and split by encoding its parts — header, expiry, `Option` tag,
//! document, HMAC tag — alone. Two shrinkings are measured on it and on a small user
//! (`authcache::User`, one role) without changing the stored format: the expiry as seconds
//! since a per-deployment epoch (encoded by the same codec in the expiry's place), and a
//! 1-byte header (the header as measured, less what a single byte would hold).

use std::io::Write;
use std::process::{Command, Stdio};

use authcache::{AuthServiceBuilder, CacheConfig, JwtVerifier, MemoryUserRepository, User};
use authcache_benches::figures::Unit;
use authcache_benches::profile::Profile;
use authcache_core::codec::{Bincode, Codec};
use authcache_core::{EnvelopeCodec, Key, KeyKind, Keyspace, SigningKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, record, record_missing};

/// A 24-character ObjectId, as in the replaced system.
const ID: &str = "64f1c2a7e4b0c0ffee000001";
const PREFIX: &str = "fig_bytes";
const SIGNING_KEY: &[u8] = b"bench-cache-signing-key-0123456789";

/// The per-deployment epoch of the varint-expiry shrinking: 2026-01-01T00:00:00Z, in Unix
/// seconds. Any epoch from 18 hours to 136 years before the expiry gives the same size
/// under bincode's varints (a `u32`'s 5 bytes).
const DEPLOYMENT_EPOCH_S: u64 = 1_767_225_600;

/// Bytes a 1-byte header would keep of today's: version, codec and the signed flag packed
/// together; tombstones keep a first byte no envelope uses.
const SHORT_HEADER_LEN: usize = 1;

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
    breakdown(&stored);
}

/// Splits the stored entry into its parts and measures both shrinkings on it and on a small
/// user with the same expiry, printing a table and recording the figures.
fn breakdown(stored: &[u8]) {
    let key = user_key();
    let (expires_at, document) = signed()
        .decode::<(u64, Option<Profile>)>(&key, stored)
        .unwrap();
    let document = document.expect("the stored entry holds the user");
    let large = Breakdown::of(&key, expires_at, &document);
    assert_eq!(
        large.entry, stored,
        "the entry encoded again must be the stored one"
    );
    let mut small_user = User::new(ID, "ada@example.com", "Ada");
    small_user.roles = vec!["user".into()];
    small_user.updated_at = 1_700_000_000_000;
    let small = Breakdown::of(&key, expires_at, &small_user);
    println!("\n{:<52} {:>10} {:>10}", "bytes", "20 fields", "small user");
    let totals = (
        "entry, signed (today)",
        "",
        large.entry.len(),
        small.entry.len(),
    );
    let rows = large.figures().into_iter().zip(small.figures());
    let rows = rows.map(|((what, name, large), (_, _, small))| (what, name, large, small));
    for (what, _, large, small) in std::iter::once(totals).chain(rows) {
        println!("{what:<52} {large:>10} {small:>10}");
    }
    record(
        "small_user_entry_bytes/authcache",
        small.entry.len() as f64,
        Unit::Bytes,
    );
    large.record("user_entry");
    small.record("small_user_entry");
}

/// The parts of one signed entry and the entry each shrinking would give.
struct Breakdown {
    entry: Vec<u8>,
    header: usize,
    expiry: usize,
    option_tag: usize,
    document: usize,
    tag: usize,
    /// The entry with the expiry as seconds since [`DEPLOYMENT_EPOCH_S`].
    varint_expiry: usize,
    /// The entry with the expiry as Unix seconds: what the per-deployment epoch adds.
    unix_seconds_expiry: usize,
    /// The entry with a [`SHORT_HEADER_LEN`]-byte header.
    short_header: usize,
}

impl Breakdown {
    fn of<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        key: &Key,
        expires_at: u64,
        document: &T,
    ) -> Self {
        let entry = signed().encode(key, &(expires_at, Some(document))).unwrap();
        let unsigned = EnvelopeCodec::new()
            .encode(key, &(expires_at, Some(document)))
            .unwrap();
        let payload = bincode_len(&(expires_at, Some(document)));
        let header = unsigned.len() - payload;
        let seconds = expires_at / 1000;
        let entry_with = |expiry: u64| {
            let entry = signed().encode(key, &(expiry, Some(document))).unwrap();
            let (_, back) = signed().decode::<(u64, Option<T>)>(key, &entry).unwrap();
            assert_eq!(back.as_ref(), Some(document));
            entry.len()
        };
        let parts = Self {
            header,
            expiry: bincode_len(&expires_at),
            option_tag: bincode_len(&Some(document)) - bincode_len(document),
            document: bincode_len(document),
            tag: entry.len() - unsigned.len(),
            varint_expiry: entry_with(seconds - DEPLOYMENT_EPOCH_S),
            unix_seconds_expiry: entry_with(seconds),
            short_header: entry.len() - header + SHORT_HEADER_LEN,
            entry: entry.to_vec(),
        };
        let sum = parts.header + parts.expiry + parts.option_tag + parts.document + parts.tag;
        assert_eq!(sum, parts.entry.len(), "the parts must add up to the entry");
        parts
    }

    /// Each part and each shrunk entry: what it is, its figure's name, its bytes.
    fn figures(&self) -> [(&'static str, &'static str, usize); 8] {
        [
            (
                "  header: magic 4, version, codec, flags",
                "header",
                self.header,
            ),
            ("  expiry: Unix ms, bincode varint", "expiry", self.expiry),
            (
                "  `Option` tag (`None`: known absent)",
                "option_tag",
                self.option_tag,
            ),
            ("  the document, bincode 2", "document", self.document),
            ("  HMAC-SHA256 tag", "tag", self.tag),
            (
                "expiry as varint s since a deployment epoch",
                "varint_expiry",
                self.varint_expiry,
            ),
            (
                "expiry as Unix seconds (no epoch)",
                "unix_seconds_expiry",
                self.unix_seconds_expiry,
            ),
            ("1-byte header", "short_header", self.short_header),
        ]
    }

    /// `<prefix>_part/<part>` for the parts, `<prefix>_bytes/<shrinking>` for the rest.
    fn record(&self, prefix: &str) {
        for (index, (_, name, bytes)) in self.figures().into_iter().enumerate() {
            let group = if index < 5 { "part" } else { "bytes" };
            record(
                &format!("{prefix}_{group}/{name}"),
                bytes as f64,
                Unit::Bytes,
            );
        }
    }
}

fn bincode_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut out = Vec::new();
    Bincode::encode(value, &mut out).unwrap();
    out.len()
}

fn user_key() -> Key {
    Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, ID)
        .unwrap()
}

/// The codec the service below writes with: bincode, signed with [`SIGNING_KEY`].
fn signed() -> EnvelopeCodec {
    EnvelopeCodec::new().with_signing_key(SigningKey::new(SIGNING_KEY).unwrap())
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
        .signing_key(SIGNING_KEY)
        .prefix(PREFIX)
        .build()
        .await
        .unwrap();
    assert_eq!(*auth.user(ID).await.unwrap(), *document);
    let key = user_key();
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
