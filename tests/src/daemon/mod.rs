//! Real BGP daemons in namespaces: BIRD 2, FRR and GoBGP.
//!
//! Each instance gets its own temp dir holding its config, control socket,
//! pid file and logs, so several run side by side. Daemons run in the
//! foreground as the harness's children (started through `ip netns exec`,
//! which execs, so the child PID is the daemon's). A guard stops its daemon
//! by PID on drop and, when a test is failing, prints the daemon's logs.
//! The command lines follow `shared/reference/lab-facts.md` §2.

mod bird;
mod frr;
mod gobgp;

pub use bird::Bird;
pub use frr::Frr;
pub use gobgp::GoBgp;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Netns;

/// One daemon process the harness started, and where its logs are.
#[derive(Debug)]
pub(crate) struct Daemon {
    label: String,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Daemon {
    /// Start `prog args...` inside `ns`, stdout and stderr to `<dir>/<label>.out`.
    /// `logs` are further files (the daemon's own log) to show on failure.
    pub(crate) fn spawn(
        label: &str,
        ns: &Netns,
        prog: &str,
        args: &[&str],
        dir: &Path,
        logs: Vec<PathBuf>,
    ) -> Result<Daemon> {
        Daemon::spawn_env(label, ns, prog, args, &[], dir, logs)
    }

    /// [`Daemon::spawn`] with environment variables.
    pub(crate) fn spawn_env(
        label: &str,
        ns: &Netns,
        prog: &str,
        args: &[&str],
        env: &[(String, String)],
        dir: &Path,
        mut logs: Vec<PathBuf>,
    ) -> Result<Daemon> {
        let out_path = dir.join(format!("{label}.out"));
        let out = File::options().create(true).append(true).open(&out_path)?;
        let child = ns
            .command(prog)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {prog}"))?;
        logs.insert(0, out_path);
        Ok(Daemon {
            label: label.to_string(),
            child: Some(child),
            logs,
        })
    }

    /// Fail if the daemon has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was stopped", self.label);
        };
        if let Some(status) = child.try_wait()? {
            bail!("{} exited ({status})\n{}", self.label, self.logs_text());
        }
        Ok(())
    }

    /// Poll `ready` until it succeeds, failing early if the daemon dies.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut() -> Result<()>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.check_alive()?;
            let attempt = ready();
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    bail!(
                        "{} did not become ready: {e:#}\n{}",
                        self.label,
                        self.logs_text()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The daemon's PID while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop it now: SIGTERM (and SIGKILL after `grace`), or SIGKILL at once.
    pub(crate) fn stop(&mut self, grace: Option<Duration>) {
        if let Some(mut child) = self.child.take() {
            match grace {
                Some(g) => stop_child(child, g),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }

    fn logs_text(&self) -> String {
        self.logs
            .iter()
            .map(|p| format!("--- {} {} ---\n{}", self.label, p.display(), tail(p, 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs_text());
        }
        if let Some(child) = self.child.take() {
            stop_child(child, Duration::from_secs(3));
        }
    }
}

/// Stop a child by PID: SIGTERM, up to `grace` to exit, then SIGKILL.
pub(crate) fn stop_child(mut child: Child, grace: Duration) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `lines` lines of the file at `path` (or why it can't be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A fresh temp dir for one daemon instance, `/tmp/tabby-<label>-XXXXXX`.
pub(crate) fn state_dir(label: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("tabby-{label}-"))
        .tempdir()
        .context("cannot create daemon state dir")
}
