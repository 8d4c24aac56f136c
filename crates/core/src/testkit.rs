//! Test doubles shared by this crate's unit tests: a byte cache that fails or hangs on
//! command. (The L1 doubles are in [`crate::test_support`], for other crates too.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

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
