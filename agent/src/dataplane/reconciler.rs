//! Keeps the kernel's tabby-owned routes equal to the desired ones.
//!
//! The [`RouteReconciler`] remembers what it believes the kernel holds, so
//! a change of desired state costs only the difference, with no dump.
//! [`RouteReconciler::resync`] re-reads the kernel and repairs drift (a
//! route deleted or changed by hand comes back); the node runs it at start
//! (adopting what a previous run left, with no delete and no re-add), on
//! link events and periodically. One code path, [`Plan::between`], serves
//! all of them.

use super::route::{Plan, RouteSet};
use super::route_table::{ApplyReport, Change, RouteTable, RouteTableError};

/// The reconciler for one network namespace's main table.
#[derive(Debug)]
pub struct RouteReconciler {
    table: RouteTable,
    /// What the kernel holds of ours, as far as we know.
    known: RouteSet,
    /// What we want.
    desired: RouteSet,
}

impl RouteReconciler {
    /// Open the calling thread's namespace and read what tabby already owns
    /// there; nothing is changed until [`RouteReconciler::set`].
    pub fn start() -> Result<RouteReconciler, RouteTableError> {
        let mut table = RouteTable::open()?;
        let known = table.owned()?;
        Ok(RouteReconciler {
            table,
            known,
            desired: RouteSet::new(),
        })
    }

    /// The routes tabby owns in the kernel, as last seen or changed.
    pub fn known(&self) -> &RouteSet {
        &self.known
    }

    /// Make `desired` the wanted state and apply the difference from what
    /// is known to be in the kernel.
    pub fn set(&mut self, desired: RouteSet) -> Result<ApplyReport, RouteTableError> {
        self.desired = desired;
        self.converge()
    }

    /// Re-read the kernel, then apply whatever differs from the wanted
    /// state (drift repair).
    pub fn resync(&mut self) -> Result<ApplyReport, RouteTableError> {
        self.known = self.table.owned()?;
        self.converge()
    }

    fn converge(&mut self) -> Result<ApplyReport, RouteTableError> {
        let plan = Plan::between(&self.desired, &self.known);
        if plan.is_empty() {
            return Ok(ApplyReport::default());
        }
        let report = self.table.apply(&plan)?;
        let failed = |dst| report.failed.iter().any(|(_, d, _)| d == dst);
        for (dst, target) in plan.add.iter().chain(&plan.replace) {
            if !failed(dst) {
                self.known.insert(*dst, target.clone());
            }
        }
        for (dst, _) in &plan.delete {
            self.known.remove(dst);
        }
        // A failed replace leaves the kernel in doubt: read it next time.
        if report.failed.iter().any(|(c, _, _)| *c == Change::Replace) {
            self.known = self.table.owned()?;
        }
        Ok(report)
    }
}

/// What [`RouteReconciler::serve`] reports after each round.
#[derive(Debug)]
pub enum RoundOutcome {
    /// A new desired state was applied.
    Applied(ApplyReport),
    /// The periodic re-read of the kernel ran (its report shows repairs).
    Resynced(ApplyReport),
    /// The kernel could not be talked to this round; the next round retries.
    Failed(RouteTableError),
}

impl RouteReconciler {
    /// Run on the calling thread until `updates` is closed: apply each new
    /// desired state as it arrives, and resync whenever `resync_every`
    /// passes without one. Each round's outcome goes to `observe`.
    ///
    /// This is the dataplane's own thread (netlink programming is fastest
    /// from one thread, see `shared/reference/rust-crates.md` §5).
    pub fn serve(
        mut self,
        updates: &std::sync::mpsc::Receiver<RouteSet>,
        resync_every: std::time::Duration,
        mut observe: impl FnMut(RoundOutcome),
    ) {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            let outcome = match updates.recv_timeout(resync_every) {
                Ok(mut desired) => {
                    // Coalesce a burst: only the newest state matters.
                    while let Ok(newer) = updates.try_recv() {
                        desired = newer;
                    }
                    self.set(desired).map(RoundOutcome::Applied)
                }
                Err(RecvTimeoutError::Timeout) => self.resync().map(RoundOutcome::Resynced),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            observe(outcome.unwrap_or_else(RoundOutcome::Failed));
        }
    }
}
