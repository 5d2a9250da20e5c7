//! BIRD 2, the daemon Calico runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::TempDir;

use super::{Daemon, state_dir};
use crate::Netns;

/// A BIRD 2 instance inside a namespace.
#[derive(Debug)]
pub struct Bird {
    daemon: Daemon,
    ctl: PathBuf,
    dir: TempDir,
}

impl Bird {
    /// Check `config` with `bird -p`, then start BIRD with it in `ns` and
    /// wait until `birdc` answers. A `log` line to the instance's own log
    /// file is prepended to the config.
    pub fn start(ns: &Netns, config: &str) -> Result<Bird> {
        let dir = state_dir("bird")?;
        let ctl = dir.path().join("bird.ctl");
        let daemon = spawn(ns, dir.path(), config, &[])?;
        let mut bird = Bird { daemon, ctl, dir };
        let ctl = bird.ctl.clone();
        bird.daemon
            .wait_ready(|| birdc(&ctl, "show status").map(drop))?;
        Ok(bird)
    }

    /// Kill BIRD at once (SIGKILL, by PID): its sessions end without a
    /// NOTIFICATION, as in a crash, which graceful-restart helpers keep
    /// the routes through.
    pub fn crash(&mut self) {
        self.daemon.stop(None);
    }

    /// Start BIRD again in `ns` (after [`Bird::crash`]) with `config` and
    /// `-R`: graceful restart recovery, so it announces the Restart State
    /// bit and sends End-of-RIB once it has converged.
    pub fn restart_graceful(&mut self, ns: &Netns, config: &str) -> Result<()> {
        self.daemon.stop(None);
        self.daemon = spawn(ns, self.dir.path(), config, &["-R"])?;
        let ctl = self.ctl.clone();
        self.daemon
            .wait_ready(|| birdc(&ctl, "show status").map(drop))
    }

    /// Run one `birdc` command, e.g. `show route`.
    pub fn birdc(&self, command: &str) -> Result<String> {
        birdc(&self.ctl, command)
    }

    /// How many BGP protocols are in state Established.
    pub fn established(&self) -> Result<usize> {
        let out = self.birdc("show protocols")?;
        Ok(out.lines().filter(|l| l.contains("Established")).count())
    }

    /// The instance's state dir (config, socket, logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// BIRD's PID.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }
}

/// Check `config` (with the log line prepended) and start BIRD on it in
/// `ns`, its files in `dir`, with `extra` arguments.
fn spawn(ns: &Netns, dir: &Path, config: &str, extra: &[&str]) -> Result<Daemon> {
    let conf = dir.join("bird.conf");
    let log = dir.join("bird.log");
    let ctl = dir.join("bird.ctl");
    let pid = dir.join("bird.pid");
    std::fs::write(&conf, format!("log \"{}\" all;\n{config}", log.display()))?;
    let conf_s = conf.to_string_lossy().into_owned();
    crate::run("bird", &["-p", "-c", &conf_s]).context("BIRD rejects the config")?;
    let ctl_s = ctl.to_string_lossy().into_owned();
    let pid_s = pid.to_string_lossy().into_owned();
    let mut args = vec!["-f", "-c", &conf_s, "-s", &ctl_s, "-P", &pid_s];
    args.extend_from_slice(extra);
    Daemon::spawn("bird", ns, "bird", &args, dir, vec![log])
}

fn birdc(ctl: &std::path::Path, command: &str) -> Result<String> {
    let ctl = ctl.to_string_lossy();
    let mut args = vec!["-s", &ctl];
    args.extend(command.split_whitespace());
    crate::run("birdc", &args)
}
