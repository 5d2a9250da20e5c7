//! Running dataplane code inside another network namespace.
//!
//! A pod's side of its veth pair is configured from inside the pod's
//! namespace. The calling process stays where it is: a scoped OS thread
//! enters the namespace (`setns(2)` changes only that thread), builds a
//! current-thread tokio runtime there so that the netlink sockets it opens
//! belong to the namespace, runs the work and exits.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// Run the future made by `work` to completion inside the network
/// namespace at `path` (e.g. `/var/run/netns/cni-1234` or
/// `/proc/<pid>/ns/net`).
pub fn block_on_in<T, F, Fut>(path: &Path, work: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    let ns = File::open(path)?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> io::Result<T> {
            setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(work()))
        });
        worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace worker panicked")))
    })
}

/// Run the future made by `work` on a current-thread runtime in the
/// calling thread's own namespace.
pub fn block_on_here<T, Fut: Future<Output = T>>(work: Fut) -> io::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(work))
}

/// Run `work` with an rtnetlink [`Handle`](rtnetlink::Handle) whose socket
/// lives in the namespace at `path`.
pub fn with_handle_in<T, F, Fut>(path: &Path, work: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: Future<Output = T>,
{
    block_on_in(path, move || async move {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let conn = tokio::spawn(conn);
        let out = work(handle).await;
        conn.abort();
        Ok(out)
    })?
}
