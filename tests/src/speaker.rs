//! tabby's own BGP speaker running inside a lab namespace.
//!
//! The speaker's tasks run on a current-thread runtime on a thread that has
//! entered the namespace, so its listener and connections live there. The
//! test talks to it through the [`SpeakerHandle`] from its own runtime (the
//! handle's channels work across runtimes). With [`SpeakerInNs::start_routing`]
//! the RIB-owning router task runs beside the speaker on the same
//! runtime; [`SpeakerInNs::start_routing_here`] does the same in a helper
//! process that was started inside the namespace. Dropping the guard
//! shuts the speaker down (Cease to every peer) and joins the thread.

use std::future::Future;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bgp::session::State;
use bgp::speaker::router::{self, RouterConfig, RouterHandle};
use bgp::speaker::{self, PeerStatus, SpeakerConfig, SpeakerHandle};
use tokio::sync::oneshot;

use crate::Netns;

/// A running speaker in a namespace.
#[derive(Debug)]
pub struct SpeakerInNs {
    pub handle: SpeakerHandle,
    /// The router, when started with [`SpeakerInNs::start_routing`].
    pub router: Option<RouterHandle>,
    rt: tokio::runtime::Runtime,
    /// `true`: shut down with Cease; `false`: just stop (a crash).
    stop: Option<oneshot::Sender<bool>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl SpeakerInNs {
    /// Start a speaker with `config` inside `ns`.
    pub fn start(ns: &Netns, config: SpeakerConfig) -> Result<SpeakerInNs> {
        Self::start_inner(Some(ns), config, None)
    }

    /// Start a speaker with `config` and a router with `routing` on top
    /// of it inside `ns`.
    pub fn start_routing(
        ns: &Netns,
        config: SpeakerConfig,
        routing: RouterConfig,
    ) -> Result<SpeakerInNs> {
        Self::start_inner(Some(ns), config, Some(routing))
    }

    /// [`SpeakerInNs::start_routing`] in the namespace this process is
    /// already in (a helper process started with `ip netns exec`).
    pub fn start_routing_here(config: SpeakerConfig, routing: RouterConfig) -> Result<SpeakerInNs> {
        Self::start_inner(None, config, Some(routing))
    }

    /// The router (panics if started without one: a test bug).
    pub fn router(&self) -> &RouterHandle {
        match &self.router {
            Some(r) => r,
            None => panic!("this speaker was started without a router"),
        }
    }

    fn start_inner(
        ns: Option<&Netns>,
        config: SpeakerConfig,
        routing: Option<RouterConfig>,
    ) -> Result<SpeakerInNs> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<bool>();
        let run = move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let handle = match speaker::start(config).await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = handle_tx.send(Err(anyhow!("{e}")));
                        return Ok(());
                    }
                };
                let router = routing.map(|r| router::start(handle.clone(), r));
                let _ = handle_tx.send(Ok((handle.clone(), router.clone())));
                if !stopped.await.unwrap_or(true) {
                    // A crash: the runtime and every socket go at once,
                    // so peers see the connections end without a
                    // NOTIFICATION.
                    return Ok(());
                }
                if let Some(r) = router {
                    r.shutdown().await;
                }
                handle.shutdown(Some("test over".into())).await;
                // Let the writers flush the Cease NOTIFICATIONs.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            })
        };
        let thread = match ns {
            Some(ns) => ns.spawn(run)?,
            None => std::thread::Builder::new()
                .name("speaker".into())
                .spawn(run)
                .context("cannot spawn the speaker thread")?,
        };
        let (handle, router) = handle_rx.recv().context("speaker thread died")??;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(SpeakerInNs {
            handle,
            router,
            rt,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Run `f` on the test's runtime (to call the handle).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Every peer's status.
    pub fn peers(&self) -> Result<Vec<PeerStatus>> {
        Ok(self.block_on(self.handle.peers())?)
    }

    /// One peer's status.
    pub fn peer(&self, addr: IpAddr) -> Result<PeerStatus> {
        self.block_on(self.handle.peer(addr))?
            .ok_or_else(|| anyhow!("no peer {addr}"))
    }

    /// Wait until every peer in `addrs` is Established.
    pub fn wait_established(&self, addrs: &[IpAddr], timeout: Duration) -> Result<()> {
        crate::wait_until("tabby's sessions Established", timeout, || {
            let peers = self.peers()?;
            Ok(addrs.iter().all(|a| {
                peers
                    .iter()
                    .any(|p| p.address == *a && p.state == State::Established)
            }))
        })
        .with_context(|| format!("tabby's peers: {:#?}", self.peers().unwrap_or_default()))
    }
}

impl SpeakerInNs {
    /// Stop the speaker as a crash would: no Cease, the connections just
    /// close (for graceful restart tests).
    pub fn crash(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(false);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SpeakerInNs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
