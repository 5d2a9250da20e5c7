//! GoBGP (`gobgpd` 3.x), driven through its CLI on a unix socket.

use anyhow::Result;
use tempfile::TempDir;

use super::{Daemon, state_dir};
use crate::Netns;

/// A gobgpd instance inside a namespace.
#[derive(Debug)]
pub struct GoBgp {
    daemon: Daemon,
    target: String,
    dir: TempDir,
}

impl GoBgp {
    /// Start gobgpd in `ns` with the TOML `config` and wait until its API
    /// answers. The gRPC API listens only on a unix socket in the state dir
    /// and pprof is off, so no TCP port is opened besides BGP's.
    pub fn start(ns: &Netns, config: &str) -> Result<GoBgp> {
        let dir = state_dir("gobgp")?;
        let conf = dir.path().join("gobgpd.toml");
        std::fs::write(&conf, config)?;
        let target = format!("unix://{}", dir.path().join("gobgp.sock").display());
        let conf_s = conf.to_string_lossy().into_owned();
        let daemon = Daemon::spawn(
            "gobgpd",
            ns,
            "gobgpd",
            &[
                "-f",
                &conf_s,
                "-p",
                "-l",
                "info",
                "--api-hosts",
                &target,
                "--pprof-disable",
            ],
            dir.path(),
            Vec::new(),
        )?;
        let mut gobgp = GoBgp {
            daemon,
            target,
            dir,
        };
        let target = gobgp.target.clone();
        gobgp
            .daemon
            .wait_ready(|| cli(&target, &["global"]).map(drop))?;
        Ok(gobgp)
    }

    /// Run `gobgp <args>` against this instance, e.g. `["neighbor"]`.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        cli(&self.target, args)
    }

    /// How many neighbors are in state Established.
    pub fn established(&self) -> Result<usize> {
        let out = self.gobgp(&["-j", "neighbor"])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        let count = json
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter(|p| p["state"]["session_state"] == 6)
                    .count()
            })
            .unwrap_or(0);
        Ok(count)
    }

    /// The instance's state dir.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn cli(target: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["--target", target];
    all.extend_from_slice(args);
    crate::run("gobgp", &all)
}
