//! L1 test doubles, for this crate's tests and other crates' (feature `test-support`): an
//! L1 that records the TTLs it was given, and one that holds an insert on the inserting
//! thread, so that code with no `await` to hold can still be interleaved exactly. Not for
//! production use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::l1::{L1Cache, L1Entry};

/// How long a test waits for the other side of a [`HeldL1`] before it fails: a bound on a
/// hang, never a verdict.
pub const HOLD_BOUND: Duration = Duration::from_secs(60);

/// An L1 that stops the next insert of one id on the inserting thread, twice: before the
/// entry goes in (so that an invalidation can run to its end meanwhile) and right after it
/// (so that a reader can look before the inserter takes its next step). The test drives
/// the stops through [`HeldL1::wait_for_insert`], [`HeldL1::let_insert`] and
/// [`HeldL1::let_go`]: a deterministic interleaving of code that has no `await` to hold.
#[derive(Debug)]
pub struct HeldL1<T> {
    inner: RecordingL1<T>,
    id: String,
    armed: AtomicBool,
    reached: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
    inserted: Mutex<Sender<()>>,
    resume: Mutex<Receiver<()>>,
    driver: Mutex<HoldDriver>,
}

/// The test's ends of a [`HeldL1`]'s channels.
#[derive(Debug)]
struct HoldDriver {
    reached: Receiver<()>,
    release: Sender<()>,
    inserted: Receiver<()>,
    resume: Sender<()>,
}

impl<T> HeldL1<T> {
    /// Holds the next insert of `id`.
    pub fn new(id: &str) -> Self {
        let (reached_tx, reached_rx) = channel();
        let (release_tx, release_rx) = channel();
        let (inserted_tx, inserted_rx) = channel();
        let (resume_tx, resume_rx) = channel();
        Self {
            inner: RecordingL1::default(),
            id: id.to_owned(),
            armed: AtomicBool::new(true),
            reached: Mutex::new(reached_tx),
            release: Mutex::new(release_rx),
            inserted: Mutex::new(inserted_tx),
            resume: Mutex::new(resume_rx),
            driver: Mutex::new(HoldDriver {
                reached: reached_rx,
                release: release_tx,
                inserted: inserted_rx,
                resume: resume_tx,
            }),
        }
    }

    /// Blocks until the held insert has begun (the entry is not in yet).
    pub fn wait_for_insert(&self) {
        let driver = lock(&self.driver);
        driver
            .reached
            .recv_timeout(HOLD_BOUND)
            .unwrap_or_else(|_| hold_failed("the held insert never began"));
    }

    /// Lets the held insert put its entry in, and blocks until it has.
    pub fn let_insert(&self) {
        let driver = lock(&self.driver);
        let _ = driver.release.send(());
        driver
            .inserted
            .recv_timeout(HOLD_BOUND)
            .unwrap_or_else(|_| hold_failed("the held insert never finished"));
    }

    /// Lets the inserting thread go on.
    pub fn let_go(&self) {
        let _ = lock(&self.driver).resume.send(());
    }
}

impl<T: std::fmt::Debug + Send + Sync> L1Cache<T> for HeldL1<T> {
    fn get(&self, id: &str) -> Option<L1Entry<T>> {
        self.inner.get(id)
    }

    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration) {
        let held = id == self.id && self.armed.swap(false, Ordering::SeqCst);
        if held {
            let _ = lock(&self.reached).send(());
            let _ = lock(&self.release).recv_timeout(HOLD_BOUND);
        }
        self.inner.insert(id, entry, ttl);
        if held {
            let _ = lock(&self.inserted).send(());
            let _ = lock(&self.resume).recv_timeout(HOLD_BOUND);
        }
    }

    fn remove(&self, id: &str) {
        self.inner.remove(id);
    }

    fn clear(&self) {
        self.inner.clear();
    }
}

/// An unbounded [`L1Cache`] on tokio's clock (so paused-time tests expire entries) that
/// records every TTL it was given.
#[derive(Debug)]
pub struct RecordingL1<T> {
    entries: Mutex<HashMap<String, (L1Entry<T>, Instant)>>,
    inserted: Mutex<Vec<(String, Duration)>>,
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
    /// Every insert so far: the id and the TTL it was given.
    pub fn ttls(&self) -> Vec<(String, Duration)> {
        lock(&self.inserted).clone()
    }
}

impl<T: std::fmt::Debug + Send + Sync> L1Cache<T> for RecordingL1<T> {
    fn get(&self, id: &str) -> Option<L1Entry<T>> {
        lock(&self.entries)
            .get(id)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(entry, _)| entry.clone())
    }

    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration) {
        lock(&self.inserted).push((id.to_owned(), ttl));
        let until = Instant::now() + ttl;
        lock(&self.entries).insert(id.to_owned(), (entry, until));
    }

    fn remove(&self, id: &str) {
        lock(&self.entries).remove(id);
    }

    fn clear(&self) {
        lock(&self.entries).clear();
    }
}

/// A poisoned lock here only means another test thread failed: its data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails the test that waited: the other side never came within [`HOLD_BOUND`].
#[allow(
    clippy::panic,
    reason = "a test double: a wait that cannot end must fail the test"
)]
fn hold_failed(what: &str) -> ! {
    panic!("{what} within {HOLD_BOUND:?}")
}
