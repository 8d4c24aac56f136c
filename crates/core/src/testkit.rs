//! Test doubles shared by this crate's unit tests: a byte cache that fails or hangs on
//! command, and an L1 that records what it was asked to keep.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::l1::{L1Cache, L1Entry};
use crate::{Cache, CacheError, Key, Result};

/// How [`FlakyCache`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    Healthy = 0,
    Failing = 1,
    Hanging = 2,
}

/// An in-memory [`Cache`] on tokio's clock (so paused-time tests expire entries), with a
/// switch to fail or hang every call.
#[derive(Debug, Default)]
pub(crate) struct FlakyCache {
    entries: Mutex<HashMap<Key, (Bytes, Instant)>>,
    mode: AtomicU8,
    pub(crate) calls: AtomicU64,
}

impl FlakyCache {
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn raw_get(&self, key: &Key) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap();
        entries
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(bytes, _)| bytes.clone())
    }

    pub(crate) fn raw_set(&self, key: &Key, bytes: Bytes, ttl: Duration) {
        let until = Instant::now() + ttl;
        self.entries
            .lock()
            .unwrap()
            .insert(key.clone(), (bytes, until));
    }

    async fn gate(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            0 => Ok(()),
            1 => Err(CacheError::unavailable("connection refused")),
            _ => std::future::pending().await,
        }
    }
}

#[async_trait]
impl Cache for FlakyCache {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.gate().await?;
        Ok(self.raw_get(key))
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> Result<()> {
        self.gate().await?;
        self.raw_set(key, value, ttl);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.gate().await?;
        Ok(self.entries.lock().unwrap().remove(key).is_some())
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool> {
        self.gate().await?;
        let mut entries = self.entries.lock().unwrap();
        let current = entries
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(bytes, _)| bytes.clone());
        if current != expected {
            return Ok(false);
        }
        entries.insert(key.clone(), (value, Instant::now() + ttl));
        Ok(true)
    }
}

/// An unbounded [`L1Cache`] on tokio's clock that records every TTL it was given.
#[derive(Debug)]
pub(crate) struct RecordingL1<T> {
    entries: Mutex<HashMap<String, (L1Entry<T>, Instant)>>,
    pub(crate) inserted: Mutex<Vec<(String, Duration)>>,
}

impl<T> Default for RecordingL1<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            inserted: Mutex::default(),
        }
    }
}

impl<T> RecordingL1<T> {
    pub(crate) fn ttls(&self) -> Vec<(String, Duration)> {
        self.inserted.lock().unwrap().clone()
    }
}

impl<T: std::fmt::Debug + Send + Sync> L1Cache<T> for RecordingL1<T> {
    fn get(&self, id: &str) -> Option<L1Entry<T>> {
        let entries = self.entries.lock().unwrap();
        entries
            .get(id)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(entry, _)| entry.clone())
    }

    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration) {
        self.inserted.lock().unwrap().push((id.to_owned(), ttl));
        let until = Instant::now() + ttl;
        self.entries
            .lock()
            .unwrap()
            .insert(id.to_owned(), (entry, until));
    }

    fn remove(&self, id: &str) {
        self.entries.lock().unwrap().remove(id);
    }

    fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }
}
