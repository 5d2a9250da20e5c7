//! One invocation's context: the validated config and environment, the
//! IPAM client on the datastore, the node's name and the log; and the two
//! operations both halves need, which go to tabby's IPAM in-process or to
//! the delegated IPAM plugin.

use std::collections::BTreeMap;
use std::path::Path;

use ipam::{Datastore, Ipam};
use ipnet::IpNet;

use super::annotations::{self, PodRequest};
use super::config::NetConf;
use super::delegate;
use super::env::{Attach, CniEnv, Command};
use super::error::CniError;
use super::ipam_role;
use super::log::Log;
use super::result::CniResult;

#[derive(Debug)]
pub struct Session<S> {
    pub conf: NetConf,
    pub env: CniEnv,
    /// The config exactly as read, for delegated plugins.
    pub raw: Vec<u8>,
    pub ipam: Ipam<S>,
    pub node: String,
    pub log: Log,
}

impl<S: Datastore> Session<S> {
    pub fn store(&self) -> &S {
        self.ipam.store()
    }

    /// Addresses for the attachment, from tabby's IPAM or the delegate.
    pub async fn allocate(
        &self,
        attach: &Attach,
        node_labels: &BTreeMap<String, String>,
    ) -> Result<Vec<IpNet>, CniError> {
        if self.conf.ipam.is_tabby() {
            let request = self.pod_request(attach).await?;
            return ipam_role::assign(
                &self.ipam,
                &self.conf,
                attach,
                &self.node,
                node_labels,
                &request,
            )
            .await;
        }
        let out = self.delegate(Command::Add)?;
        let result = CniResult::from_value(&out, "IPAM result")?;
        if result.ips.is_empty() {
            return Err(CniError::Ipam(format!(
                "{} returned no addresses",
                self.conf.ipam.plugin_type
            )));
        }
        Ok(result.ips.iter().map(|ip| ip.address).collect())
    }

    /// What the pod's annotations ask for, when the conflist names a
    /// kubeconfig and the runtime names the pod; else nothing.
    pub async fn pod_request(&self, attach: &Attach) -> Result<PodRequest, CniError> {
        let Some(kubeconfig) = &self.conf.kubeconfig else {
            return Ok(PodRequest::default());
        };
        if attach.orchestrator != "k8s" {
            return Ok(PodRequest::default());
        }
        let client = annotations::client(kubeconfig).await?;
        let request = annotations::read(&client, &attach.namespace, &attach.pod).await?;
        if request != PodRequest::default() {
            self.log
                .info(&format!("pod annotations ask for {request:?}"));
        }
        Ok(request)
    }

    /// Give the attachment's addresses back; nothing held is not an error.
    pub async fn deallocate(&self, container_id: &str) -> Result<(), CniError> {
        if self.conf.ipam.is_tabby() {
            let released = ipam_role::release(&self.ipam, &self.conf, container_id).await?;
            self.log.info(&format!("released {released:?}"));
            return Ok(());
        }
        self.delegate(Command::Del).map(drop)
    }

    /// Run the delegated IPAM plugin for `command` with our config.
    pub fn delegate(&self, command: Command) -> Result<serde_json::Value, CniError> {
        let plugin = delegate::find(&self.conf.ipam.plugin_type, &self.env.path)?;
        self.log
            .debug(&format!("delegating {command:?} to {}", plugin.display()));
        delegate::run(&plugin, command, &self.raw)
    }
}

/// This node's name: `nodename` in the config, else the first line of
/// `nodename_file` (written by the node agent), else the hostname.
pub fn node_name(conf: &NetConf) -> Result<String, CniError> {
    if let Some(n) = &conf.nodename {
        return Ok(n.clone());
    }
    let first_line = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|s| !s.is_empty())
    };
    let name = first_line(&conf.nodename_file)
        .or_else(|| first_line(Path::new("/proc/sys/kernel/hostname")))
        .ok_or_else(|| CniError::config("nodename", "not set, and no hostname found"))?;
    if !ipam::keys::is_segment(&name) {
        return Err(CniError::config(
            "nodename",
            format!("{name:?} is not a node name"),
        ));
    }
    Ok(name)
}

/// The veth MTU: `mtu` in the config, else `mtu_file` (written by the
/// node agent from the uplink and the encapsulation), else 1500.
pub fn pod_mtu(conf: &NetConf) -> u32 {
    conf.mtu
        .or_else(|| {
            std::fs::read_to_string(&conf.mtu_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|m| (68..=65535).contains(m))
        })
        .unwrap_or(1500)
}
