//! The datastore seam: a small key-value API with etcd's semantics.
//!
//! Everything IPAM persists goes through [`Datastore`]. It has exactly the
//! operations the allocator needs and no more: point reads, prefix ranges,
//! multi-key compare-and-swap transactions conditioned on each key's
//! `mod_revision`, and watches from a revision. Two backends implement it
//! with identical semantics:
//!
//! - [`EtcdStore`](etcd::EtcdStore), the product backend (etcd v3 API);
//! - [`MemoryStore`](memory::MemoryStore), for unit and property tests.
//!   It is **not a product mode**: it keeps everything, including the whole
//!   history, in one process's memory.
//!
//! Semantics shared by both (those of etcd v3):
//! - the store has one global revision, bumped once per transaction that
//!   writes; every key written by that transaction gets it as `mod_revision`;
//! - a key's `create_revision` is the revision that created it, and survives
//!   updates;
//! - an absent key compares as `mod_revision == 0`, so
//!   [`Compare::absent`] is create-if-absent;
//! - a failed transaction changes nothing and returns the current value of
//!   every compared key, so a caller can retry without another read.

pub mod etcd;
pub mod memory;

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

/// An etcd revision. `0` means "the key does not exist".
pub type Revision = i64;

/// One stored key with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// The result of a prefix range: the keys in key order, read at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
}

/// A transaction condition: `key`'s mod_revision equals `mod_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

impl Compare {
    /// The key must not exist (create-if-absent).
    pub fn absent(key: impl Into<String>) -> Compare {
        Compare {
            key: key.into(),
            mod_revision: 0,
        }
    }

    /// The key must still be at `mod_revision` (0 = absent).
    pub fn at(key: impl Into<String>, mod_revision: Revision) -> Compare {
        Compare {
            key: key.into(),
            mod_revision,
        }
    }
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Op {
    pub fn put(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op::Put {
            key: key.into(),
            value,
        }
    }

    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held and every op was applied at `revision`.
    Committed { revision: Revision },
    /// Some compare failed; nothing was written. `current` holds the current
    /// value of each compared key, in the order of the compares.
    Conflict { current: Vec<Option<KeyValue>> },
}

/// What happened to a key, as seen by a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change. For a delete, `kv.value` is empty and `kv.mod_revision` is the
/// revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// A stream of changes under a prefix, in revision order. Dropping it
/// cancels the watch.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<Result<Event, StoreError>>,
    _cancel: Option<tokio::task::AbortHandle>,
}

impl WatchStream {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Result<Event, StoreError>>,
        cancel: Option<tokio::task::AbortHandle>,
    ) -> WatchStream {
        WatchStream {
            rx,
            _cancel: cancel,
        }
    }

    /// The next change; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        self.rx.recv().await
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        if let Some(task) = &self._cancel {
            task.abort();
        }
    }
}

/// Why a datastore call failed (a CAS conflict is not an error: see
/// [`TxnOutcome::Conflict`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("etcd at {endpoints} is unreachable: {detail}")]
    Unavailable { endpoints: String, detail: String },
    #[error("etcd at {endpoints} did not answer {operation} within {after:?}")]
    Timeout {
        endpoints: String,
        operation: &'static str,
        after: Duration,
    },
    #[error("etcd refused {operation}: {detail}")]
    Rejected {
        operation: &'static str,
        detail: String,
    },
    #[error("watch from revision {requested} impossible: history compacted up to {compacted}")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    #[error("key {0:?} is not valid UTF-8")]
    NonUtf8Key(String),
}

/// A key-value store with etcd v3 semantics (see the module docs).
pub trait Datastore: Send + Sync {
    /// The key's current value, if it exists.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send;

    /// All keys starting with `prefix`, in key order, at one revision.
    fn range(&self, prefix: &str) -> impl Future<Output = Result<Range, StoreError>> + Send;

    /// The keys under `prefix`, in key order, without their values.
    fn keys(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        async move {
            Ok(self
                .range(prefix)
                .await?
                .kvs
                .into_iter()
                .map(|kv| kv.key)
                .collect())
        }
    }

    /// If every compare holds, apply every op atomically.
    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send;

    /// Changes under `prefix` with revision `>= from` (0: from now on).
    fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;

    /// Create `key` if it does not exist.
    fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send {
        self.txn(vec![Compare::absent(key)], vec![Op::put(key, value)])
    }

    /// Replace `key` if it is still at `revision`.
    fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: Revision,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send {
        self.txn(vec![Compare::at(key, revision)], vec![Op::put(key, value)])
    }

    /// Delete `key` if it is still at `revision`.
    fn delete(
        &self,
        key: &str,
        revision: Revision,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send {
        self.txn(vec![Compare::at(key, revision)], vec![Op::delete(key)])
    }
}

impl<S: Datastore> Datastore for std::sync::Arc<S> {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send {
        (**self).get(key)
    }
    fn range(&self, prefix: &str) -> impl Future<Output = Result<Range, StoreError>> + Send {
        (**self).range(prefix)
    }
    fn keys(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).keys(prefix)
    }
    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send {
        (**self).txn(compares, ops)
    }
    fn watch(
        &self,
        prefix: &str,
        from: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send {
        (**self).watch(prefix, from)
    }
}
