//! Test-only datastore wrapper: counts calls, and (when seeded) perturbs the
//! schedule and injects failures, so concurrent operations interleave
//! differently on every seed and a write can fail before or after it lands.

#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ipam::MemoryStore;
use ipam::store::{
    Compare, Datastore, KeyValue, Op, Range, Revision, StoreError, TxnOutcome, WatchStream,
};

#[derive(Debug, Default)]
pub struct Probe {
    pub inner: MemoryStore,
    pub reads: AtomicU64,
    pub txns: AtomicU64,
    chaos: Mutex<Option<Chaos>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    state: u64,
    /// Per mille of writes that fail without being applied.
    pub fail_before: u64,
    /// Per mille of writes that are applied, then reported as failed.
    pub fail_after: u64,
}

impl Chaos {
    pub fn new(seed: u64, fail_before: u64, fail_after: u64) -> Chaos {
        Chaos {
            state: seed | 1,
            fail_before,
            fail_after,
        }
    }
    fn next(&mut self) -> u64 {
        // xorshift64
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

fn lost() -> StoreError {
    StoreError::Unavailable {
        endpoints: "chaos".into(),
        detail: "injected".into(),
    }
}

impl Probe {
    pub fn new() -> Probe {
        Probe::default()
    }
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        *self.chaos.lock().unwrap() = chaos;
    }
    /// (yields, fail_before, fail_after) for the next call.
    fn roll(&self, write: bool) -> (u64, bool, bool) {
        let mut guard = self.chaos.lock().unwrap();
        let Some(c) = guard.as_mut() else {
            return (0, false, false);
        };
        let yields = c.next() % 4;
        let r = c.next() % 1000;
        let before = write && r < c.fail_before;
        let after = write && !before && r < c.fail_before + c.fail_after;
        (yields, before, after)
    }
    async fn pause(n: u64) {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }
    pub fn txn_count(&self) -> u64 {
        self.txns.load(Ordering::Relaxed)
    }
    pub fn read_count(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Datastore for Probe {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let (y, _, _) = self.roll(false);
        Probe::pause(y).await;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }
    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let (y, _, _) = self.roll(false);
        Probe::pause(y).await;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.range(prefix).await
    }
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let (y, before, after) = self.roll(true);
        Probe::pause(y).await;
        self.txns.fetch_add(1, Ordering::Relaxed);
        if before {
            return Err(lost());
        }
        let out = self.inner.txn(compares, ops).await?;
        if after {
            return Err(lost());
        }
        Ok(out)
    }
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, from).await
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
