//! The host-wide lock that serialises ADD, DEL and GC on one node: an
//! exclusive `flock(2)` on a file (`ipam_lock_file`, default
//! `/var/run/tabby/cni.lock`), as calico-ipam does. The kernel drops it
//! when the process exits, however it exits, so a crashed plugin never
//! leaves the node locked. Waiting is bounded: past the bound the caller
//! gets code 11 (try again later) instead of hanging kubelet.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::CniError;

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct HostLock {
    _flock: Flock<File>,
}

impl HostLock {
    /// Take the lock at `path` (creating the file and its directory),
    /// waiting at most `timeout`.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<HostLock, CniError> {
        let io = |what: &str, e: std::io::Error| CniError::Io {
            what: format!("{what} {}", path.display()),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        let deadline = Instant::now() + timeout;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => return Ok(HostLock { _flock: flock }),
                Err((back, Errno::EWOULDBLOCK)) => file = back,
                Err((_, e)) => return Err(io("lock", e.into())),
            }
            if Instant::now() >= deadline {
                return Err(CniError::TryAgainLater(format!(
                    "{} is still locked by another CNI invocation after {timeout:?}",
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gets_code_11() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/cni.lock");
        let first = HostLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let e = HostLock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.code(), 11, "{e}");
        drop(first);
        HostLock::acquire(&path, Duration::from_millis(50)).unwrap();
    }
}
