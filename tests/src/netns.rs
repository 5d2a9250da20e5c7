//! Network namespaces owned by one test.
//!
//! A [`Netns`] is named `tb-<tag>-<pid>-<n>`: the test's tag, the PID of
//! the test process and a counter, so parallel tests and parallel test
//! binaries never collide. Dropping it kills whatever still runs inside
//! (by PID, from `ip netns pids`) and deletes the namespace, also while a
//! panic unwinds. Namespaces left behind by a test process that was killed
//! outright are swept the first time a later process creates one.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Prefix of every namespace the harness creates.
pub const PREFIX: &str = "tb-";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A network namespace that lives as long as this value.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create a namespace for the test tagged `tag`, with `lo` up.
    pub fn new(tag: &str) -> Result<Netns> {
        SWEEP.call_once(sweep_stale);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{tag}-{}-{n}", std::process::id());
        crate::run("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A `Command` that runs `prog` inside the namespace (`ip netns exec`,
    /// which execs, so the child's PID is the program's own).
    pub fn command(&self, prog: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, prog]);
        cmd
    }

    /// Run `prog args...` inside the namespace to completion; its stdout.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["netns", "exec", &self.name, prog];
        all.extend_from_slice(args);
        crate::run("ip", &all)
    }

    /// Run `prog args...` inside the namespace and return its raw output,
    /// whatever its exit status.
    pub fn output(&self, prog: &str, args: &[&str]) -> Result<Output> {
        self.command(prog)
            .args(args)
            .output()
            .with_context(|| format!("cannot run `{prog}` in {}", self.name))
    }

    /// `ip <args>` against this namespace (`ip -n <name> ...`).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        crate::run("ip", &all)
    }

    /// Set a sysctl inside the namespace, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Run `f` on a new OS thread that has entered the namespace. Sockets
    /// the closure opens (TCP, UDP, netlink) belong to the namespace.
    pub fn spawn<T, F>(&self, f: F) -> Result<JoinHandle<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let file = File::open(self.path())
            .with_context(|| format!("cannot open namespace {}", self.name))?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {name}"))?;
                f()
            })
            .context("cannot spawn thread")
    }

    /// Run the future made by `f` to completion on a current-thread tokio
    /// runtime inside the namespace, and return its output.
    pub fn block_on<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
    {
        let handle = self.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot build tokio runtime")?;
            Ok(rt.block_on(f()))
        })?;
        handle
            .join()
            .map_err(|_| anyhow!("thread in namespace panicked"))?
    }

    /// PIDs of the processes running inside the namespace.
    pub fn pids(&self) -> Vec<Pid> {
        pids_in(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn pids_in(name: &str) -> Vec<Pid> {
    crate::run("ip", &["netns", "pids", name])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw)
                .collect()
        })
        .unwrap_or_default()
}

/// Kill what runs inside `name` (SIGKILL, by PID) and delete it.
fn remove(name: &str) {
    for pid in pids_in(name) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    for _ in 0..50 {
        if pids_in(name).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Err(e) = crate::run("ip", &["netns", "del", name]) {
        eprintln!("warning: could not delete namespace {name}: {e:#}");
    }
}

/// Remove every namespace process `pid` created (killing what runs in
/// them), its etcd data under /dev/shm and its lab dirs under the temp dir.
/// For a program interrupted before its guards could drop.
pub fn remove_everything_of(pid: u32) {
    if let Ok(list) = crate::run("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_pid(name) == Some(pid) {
                remove(name);
            }
        }
    }
    let prefixes = [
        (PathBuf::from("/dev/shm"), format!("tabby-etcd-{pid}-")),
        (std::env::temp_dir(), format!("tabby-lab-{pid}-")),
    ];
    for (dir, prefix) in prefixes {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

/// Delete `tb-*` namespaces whose creating process no longer exists.
fn sweep_stale() {
    let Ok(list) = crate::run("ip", &["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if let Some(pid) = owner_pid(name)
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            remove(name);
        }
    }
}

/// The PID part of a harness namespace name `tb-<tag>-<pid>-<n>`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.rsplit('-');
    parts.next()?.parse::<u32>().ok()?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_names_with_dashes_in_the_tag() {
        assert_eq!(owner_pid("tb-bird-frr-1234-7"), Some(1234));
        assert_eq!(owner_pid("tb-x-1-0"), Some(1));
        assert_eq!(owner_pid("other-1-2"), None);
        assert_eq!(owner_pid("tb-x-y"), None);
    }
}
