//! Leader election through a `coordination.k8s.io/v1` Lease, with
//! client-go's rules: the holder renews the Lease every round; another
//! candidate takes it over only after it has seen the same record unchanged
//! for `leaseDurationSeconds` by its own clock (so clock skew between nodes
//! does not matter), and every write carries the resourceVersion it read,
//! so two candidates can never both win (the loser gets a 409).
//!
//! [`Elector::decide`] is the sans-IO part; [`Elector::round`] reads the
//! Lease, decides and writes.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use super::{FIELD_MANAGER, is_conflict, is_not_found};

/// The Lease the IPAM garbage collector is elected with.
pub const IPAM_GC_LEASE: &str = "tabby-ipam-gc";

/// Who competes for which Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This candidate (tabby-node uses its node name).
    pub identity: String,
    /// `leaseDurationSeconds`: how long a silent holder keeps the Lease.
    pub duration: Duration,
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// No Lease yet: create it, held by us.
    Create(Lease),
    /// Renew ours or take over an expired or released one (same
    /// resourceVersion as read).
    Replace(Lease),
    /// Someone else holds it and is alive.
    Follow { holder: String },
}

/// The part of a Lease whose change proves its holder alive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.as_ref();
        Record {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            transitions: spec.and_then(|s| s.lease_transitions),
        }
    }
}

/// One candidate's state between rounds.
#[derive(Debug)]
pub struct Elector {
    pub config: LeaseConfig,
    /// The record last seen and when it was first seen (our clock).
    observed: Option<(Record, Instant)>,
    leader: bool,
}

impl Elector {
    pub fn new(config: LeaseConfig) -> Elector {
        Elector {
            config,
            observed: None,
            leader: false,
        }
    }

    /// Whether the last round won or renewed the Lease.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// The step for the Lease as read now (`None`: it does not exist).
    /// `now` is our monotonic clock, `wall` the time written into the Lease.
    pub fn decide(&mut self, current: Option<&Lease>, now: Instant, wall: Timestamp) -> Step {
        let me = self.config.identity.clone();
        let Some(current) = current else {
            return Step::Create(Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(MicroTime(wall)),
                    renew_time: Some(MicroTime(wall)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            });
        };
        let record = Record::of(current);
        let seen_since = match &self.observed {
            Some((r, since)) if *r == record => *since,
            _ => {
                self.observed = Some((record.clone(), now));
                now
            }
        };
        let mut next = current.clone();
        let spec = next.spec.get_or_insert_with(LeaseSpec::default);
        spec.lease_duration_seconds = Some(self.duration_seconds());
        match &record.holder {
            Some(h) if *h == me => {
                spec.renew_time = Some(MicroTime(wall));
                Step::Replace(next)
            }
            Some(h) if now.duration_since(seen_since) < self.config.duration => {
                Step::Follow { holder: h.clone() }
            }
            // Released, or silent for a whole lease duration: take over.
            _ => {
                spec.holder_identity = Some(me);
                spec.acquire_time = Some(MicroTime(wall));
                spec.renew_time = Some(MicroTime(wall));
                spec.lease_transitions = Some(record.transitions.unwrap_or(0).saturating_add(1));
                Step::Replace(next)
            }
        }
    }

    /// Read the Lease, decide, write. Returns whether we lead now; losing
    /// a race (409) is not an error, just not leading.
    pub async fn round(&mut self, client: &kube::Client) -> Result<bool, kube::Error> {
        let api = Api::<Lease>::namespaced(client.clone(), &self.config.namespace);
        let current = match api.get(&self.config.name).await {
            Ok(l) => Some(l),
            Err(e) if is_not_found(&e) => None,
            Err(e) => {
                self.leader = false;
                return Err(e);
            }
        };
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let written = match self.decide(current.as_ref(), Instant::now(), Timestamp::now()) {
            Step::Follow { .. } => {
                self.leader = false;
                return Ok(false);
            }
            Step::Create(l) => api.create(&params, &l).await,
            Step::Replace(l) => api.replace(&self.config.name, &params, &l).await,
        };
        self.leader = match written {
            Ok(_) => true,
            Err(e) if is_conflict(&e) => false,
            Err(e) => {
                self.leader = false;
                return Err(e);
            }
        };
        Ok(self.leader)
    }
}
