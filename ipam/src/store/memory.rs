//! In-memory [`Datastore`] with etcd's semantics, for unit and property tests.
//!
//! **Not a product mode.** It keeps every key and the whole change history in
//! this process; nothing is shared between processes and nothing survives a
//! restart. It exists so that IPAM's concurrency logic can be tested against
//! the same revision rules etcd applies (one global revision per writing
//! transaction, `mod_revision`/`create_revision`, absent = revision 0,
//! atomic multi-key compare-and-swap, watch from a past revision).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::{
    Compare, Datastore, Event, EventKind, KeyValue, Op, Range, Revision, StoreError, TxnOutcome,
    WatchStream,
};

/// The in-memory store. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    kvs: BTreeMap<String, KeyValue>,
    history: Vec<Event>,
    watchers: Vec<Watcher>,
}

#[derive(Debug)]
struct Watcher {
    prefix: String,
    tx: mpsc::UnboundedSender<Result<Event, StoreError>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The store's current revision.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Forget history up to and including `revision`, as etcd's compaction
    /// does: watches from there on fail with [`StoreError::Compacted`].
    pub fn compact(&self, revision: Revision) {
        let mut state = self.lock();
        state.compacted = state.compacted.max(revision.min(state.revision));
        let keep = state.compacted;
        state.history.retain(|e| e.kv.mod_revision > keep);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written:
        // every mutation below is applied only after all checks passed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn apply(&mut self, compares: &[Compare], ops: Vec<Op>) -> TxnOutcome {
        let holds = compares.iter().all(|c| {
            let current = self.kvs.get(&c.key).map_or(0, |kv| kv.mod_revision);
            current == c.mod_revision
        });
        if !holds {
            let current = compares
                .iter()
                .map(|c| self.kvs.get(&c.key).cloned())
                .collect();
            return TxnOutcome::Conflict { current };
        }
        let writes = ops.iter().any(|op| match op {
            Op::Put { .. } => true,
            Op::Delete { key } => self.kvs.contains_key(key),
        });
        if !writes {
            return TxnOutcome::Committed {
                revision: self.revision,
            };
        }
        self.revision += 1;
        let revision = self.revision;
        for op in ops {
            let event = match op {
                Op::Put { key, value } => {
                    let create_revision =
                        self.kvs.get(&key).map_or(revision, |kv| kv.create_revision);
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        create_revision,
                        mod_revision: revision,
                    };
                    self.kvs.insert(key, kv.clone());
                    Event {
                        kind: EventKind::Put,
                        kv,
                    }
                }
                Op::Delete { key } => match self.kvs.remove(&key) {
                    Some(old) => Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            value: Vec::new(),
                            mod_revision: revision,
                            ..old
                        },
                    },
                    None => continue,
                },
            };
            self.watchers.retain(|w| {
                !event.kv.key.starts_with(&w.prefix) || w.tx.send(Ok(event.clone())).is_ok()
            });
            self.history.push(event);
        }
        TxnOutcome::Committed { revision }
    }
}

impl Datastore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().kvs.get(key).cloned())
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let state = self.lock();
        let kvs = state
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Ok(Range {
            kvs,
            revision: state.revision,
        })
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        Ok(self.lock().apply(&compares, ops))
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let mut state = self.lock();
        if from != 0 && from <= state.compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compacted: state.compacted,
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if from != 0 {
            for event in &state.history {
                if event.kv.mod_revision >= from && event.kv.key.starts_with(prefix) {
                    // The receiver is still in our hands: sending cannot fail.
                    let _ = tx.send(Ok(event.clone()));
                }
            }
        }
        state.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
        });
        Ok(WatchStream::new(rx, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn revisions_follow_etcd_rules() {
        rt().block_on(async {
            let s = MemoryStore::new();
            let TxnOutcome::Committed { revision: r1 } =
                s.create("a", b"1".to_vec()).await.unwrap()
            else {
                panic!("create failed")
            };
            assert_eq!(r1, 1);
            // create-if-absent fails on an existing key and returns it
            let TxnOutcome::Conflict { current } = s.create("a", b"x".to_vec()).await.unwrap()
            else {
                panic!("second create succeeded")
            };
            assert_eq!(current[0].as_ref().unwrap().value, b"1");
            // CAS on a stale revision fails; on the current one it succeeds
            assert!(matches!(
                s.update("a", b"2".to_vec(), 0).await.unwrap(),
                TxnOutcome::Conflict { .. }
            ));
            let TxnOutcome::Committed { revision: r2 } =
                s.update("a", b"2".to_vec(), r1).await.unwrap()
            else {
                panic!("cas failed")
            };
            assert_eq!(r2, 2);
            let kv = s.get("a").await.unwrap().unwrap();
            assert_eq!((kv.create_revision, kv.mod_revision), (1, 2));
            // a multi-key txn writes every key at one revision
            let out = s
                .txn(
                    vec![Compare::at("a", 2), Compare::absent("b")],
                    vec![Op::put("a", b"3".to_vec()), Op::put("b", b"1".to_vec())],
                )
                .await
                .unwrap();
            assert_eq!(out, TxnOutcome::Committed { revision: 3 });
            let range = s.range("").await.unwrap();
            assert_eq!(range.revision, 3);
            assert!(range.kvs.iter().all(|kv| kv.mod_revision == 3));
            // delete-if-revision
            assert!(matches!(
                s.delete("b", 2).await.unwrap(),
                TxnOutcome::Conflict { .. }
            ));
            assert_eq!(
                s.delete("b", 3).await.unwrap(),
                TxnOutcome::Committed { revision: 4 }
            );
            assert!(s.get("b").await.unwrap().is_none());
        });
    }

    #[test]
    fn range_is_by_prefix_in_key_order() {
        rt().block_on(async {
            let s = MemoryStore::new();
            for k in ["p/b", "p/a", "q/a", "p"] {
                s.create(k, vec![]).await.unwrap();
            }
            let keys: Vec<_> = s
                .range("p/")
                .await
                .unwrap()
                .kvs
                .into_iter()
                .map(|kv| kv.key)
                .collect();
            assert_eq!(keys, ["p/a", "p/b"]);
        });
    }

    #[test]
    fn watch_replays_from_a_revision_then_follows() {
        rt().block_on(async {
            let s = MemoryStore::new();
            s.create("w/1", b"a".to_vec()).await.unwrap(); // rev 1
            s.create("x/1", b"a".to_vec()).await.unwrap(); // rev 2, other prefix
            s.update("w/1", b"b".to_vec(), 1).await.unwrap(); // rev 3
            let mut w = s.watch("w/", 2).await.unwrap();
            s.delete("w/1", 3).await.unwrap(); // rev 4
            let e = w.next().await.unwrap().unwrap();
            assert_eq!(
                (e.kind, e.kv.mod_revision, e.kv.value.as_slice()),
                (EventKind::Put, 3, &b"b"[..])
            );
            let e = w.next().await.unwrap().unwrap();
            assert_eq!((e.kind, e.kv.mod_revision), (EventKind::Delete, 4));
            s.compact(3);
            assert!(matches!(
                s.watch("w/", 2).await,
                Err(StoreError::Compacted { .. })
            ));
        });
    }
}
