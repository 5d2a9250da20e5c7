//! Keeps the kernel's tabby-owned routes equal to the desired ones.
//!
//! The [`RouteReconciler`] remembers what it believes the kernel holds, so
//! a change of desired state costs only the difference, with no dump.
//! [`RouteReconciler::resync`] re-reads the kernel and repairs drift (a
//! route deleted or changed by hand comes back); the node runs it at start
//! (adopting what a previous run left, with no delete and no re-add), on
//! link events and periodically. One code path, [`Plan::between`], serves
//! all of them.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rtnetlink::constants::RTMGRP_LINK;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

use ipnet::IpNet;

use super::route::{Plan, RouteSet, Target};
use super::route_table::{ApplyReport, Change, RouteTable, RouteTableError};

/// Routes the reconciler must never delete even when they are not wanted
/// (see [`RouteReconciler::protect`]).
pub type Protected = Box<dyn Fn(&IpNet, &Target) -> bool + Send>;

/// The reconciler for one network namespace's main table.
pub struct RouteReconciler {
    table: RouteTable,
    /// What the kernel holds of ours, as far as we know.
    known: RouteSet,
    /// What we want.
    desired: RouteSet,
    protected: Option<Protected>,
}

impl std::fmt::Debug for RouteReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteReconciler")
            .field("known", &self.known.len())
            .field("desired", &self.desired.len())
            .finish()
    }
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
            protected: None,
        })
    }

    /// Never delete routes for which `keep` holds, wanted or not. The node
    /// protects pod routes on live workload interfaces: tabby-cni installs
    /// them before the agent hears of the pod, and they vanish with their
    /// interface when the pod goes.
    pub fn protect(mut self, keep: impl Fn(&IpNet, &Target) -> bool + Send + 'static) -> Self {
        self.protected = Some(Box::new(keep));
        self
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
        let mut plan = Plan::between(&self.desired, &self.known);
        if let Some(keep) = &self.protected {
            plan.delete.retain(|(dst, target)| !keep(dst, target));
        }
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

/// What the dataplane thread is told.
#[derive(Debug, Clone)]
pub enum RouteCommand {
    /// A new desired state (replacing the previous one).
    Desired(RouteSet),
    /// Re-read the kernel now (e.g. the node daemon saw something odd).
    Resync,
}

/// What [`RouteReconciler::serve`] reports after each round.
#[derive(Debug)]
pub enum RoundOutcome {
    /// A new desired state was applied.
    Applied(ApplyReport),
    /// The kernel was re-read (periodically, on request, or after a link
    /// event) and the report shows what was repaired.
    Resynced(ApplyReport),
    /// The kernel could not be talked to this round; the next round retries.
    Failed(RouteTableError),
}

/// How often [`RouteReconciler::serve`] checks for link events.
const LINK_POLL: Duration = Duration::from_millis(100);

impl RouteReconciler {
    /// Run on the calling thread until `commands` is closed: apply each new
    /// desired state as it arrives; resync when asked, after any link event
    /// (a link going down takes its routes with it; when it comes back they
    /// are put back), and whenever `resync_every` passes. Each round's
    /// outcome goes to `observe`.
    ///
    /// This is the dataplane's own thread (netlink programming is fastest
    /// from one thread, see `shared/reference/rust-crates.md` §5).
    pub fn serve(
        mut self,
        commands: &Receiver<RouteCommand>,
        resync_every: Duration,
        mut observe: impl FnMut(RoundOutcome),
    ) -> Result<(), RouteTableError> {
        let mut links = LinkEvents::open()?;
        let mut next_resync = Instant::now() + resync_every;
        loop {
            let wait = next_resync
                .saturating_duration_since(Instant::now())
                .min(LINK_POLL);
            let mut desired = None;
            let mut resync = false;
            match commands.recv_timeout(wait) {
                Ok(cmd) => {
                    // Coalesce a burst: only the newest desired state matters.
                    let mut cmds = vec![cmd];
                    cmds.extend(commands.try_iter());
                    for cmd in cmds {
                        match cmd {
                            RouteCommand::Desired(d) => desired = Some(d),
                            RouteCommand::Resync => resync = true,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            resync |= links.any_pending();
            resync |= Instant::now() >= next_resync;
            if let Some(d) = desired {
                self.desired = d;
                if !resync {
                    observe(
                        self.converge()
                            .map_or_else(RoundOutcome::Failed, RoundOutcome::Applied),
                    );
                }
            }
            if resync {
                next_resync = Instant::now() + resync_every;
                observe(
                    self.resync()
                        .map_or_else(RoundOutcome::Failed, RoundOutcome::Resynced),
                );
            }
        }
    }
}

/// A non-blocking netlink socket subscribed to link notifications.
#[derive(Debug)]
struct LinkEvents {
    socket: Socket,
    buf: Vec<u8>,
}

impl LinkEvents {
    fn open() -> Result<LinkEvents, RouteTableError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        socket.set_non_blocking(true)?;
        Ok(LinkEvents {
            socket,
            buf: vec![0; 1 << 16],
        })
    }

    /// Drain the socket; whether any notification (or an overrun, which
    /// means some were lost) arrived.
    fn any_pending(&mut self) -> bool {
        let mut seen = false;
        loop {
            match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(0) => return seen,
                Ok(_) => seen = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return seen,
                // ENOBUFS and friends: events were lost, so resync.
                Err(_) => return true,
            }
        }
    }
}
