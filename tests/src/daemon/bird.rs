//! BIRD 2, the daemon Calico runs.

use std::path::PathBuf;

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
        let conf = dir.path().join("bird.conf");
        let log = dir.path().join("bird.log");
        let ctl = dir.path().join("bird.ctl");
        let pid = dir.path().join("bird.pid");
        std::fs::write(&conf, format!("log \"{}\" all;\n{config}", log.display()))?;
        let conf_s = conf.to_string_lossy().into_owned();
        crate::run("bird", &["-p", "-c", &conf_s]).context("BIRD rejects the config")?;
        let ctl_s = ctl.to_string_lossy().into_owned();
        let pid_s = pid.to_string_lossy().into_owned();
        let daemon = Daemon::spawn(
            "bird",
            ns,
            "bird",
            &["-f", "-c", &conf_s, "-s", &ctl_s, "-P", &pid_s],
            dir.path(),
            vec![log],
        )?;
        let mut bird = Bird { daemon, ctl, dir };
        let ctl = bird.ctl.clone();
        bird.daemon
            .wait_ready(|| birdc(&ctl, "show status").map(drop))?;
        Ok(bird)
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

fn birdc(ctl: &std::path::Path, command: &str) -> Result<String> {
    let ctl = ctl.to_string_lossy();
    let mut args = vec!["-s", &ctl];
    args.extend(command.split_whitespace());
    crate::run("birdc", &args)
}
