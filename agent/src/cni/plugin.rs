//! One invocation, start to end: parse the config, take the host lock,
//! connect to etcd, run the command for the binary's role, and say what to
//! print. The binary only reads stdin and the environment and prints.
//!
//! The same binary serves both roles: installed as `tabby` it is the
//! network plugin, installed (copied or linked) as `tabby-ipam` it is the
//! IPAM plugin for any main plugin (bridge, ptp, ...). The network role
//! serves `"ipam": {"type": "tabby-ipam"}` in-process rather than by exec,
//! under the same lock; any other IPAM type is delegated through CNI_PATH.

use std::path::Path;

use ipam::{EtcdConfig, EtcdStore, EtcdTls, Ipam};
use serde_json::Value;

use super::config::{NetConf, peek_version};
use super::endpoint;
use super::env::{CniEnv, Command};
use super::error::CniError;
use super::lock::HostLock;
use super::log::Log;
use super::session::{Session, node_name};
use super::version::{CniVersion, LATEST, SUPPORTED, version_answer};
use super::{add, check, del, gc, ipam_role};

/// Which plugin this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `"type": "tabby"`: veth, routes, endpoint, and IPAM.
    Network,
    /// `"ipam": {"type": "tabby-ipam"}` under another main plugin.
    Ipam,
}

impl Role {
    /// The role for the name the binary was run as (`argv[0]`).
    pub fn from_argv0(argv0: &str) -> Role {
        let name = Path::new(argv0)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == super::config::TABBY_IPAM {
            Role::Ipam
        } else {
            Role::Network
        }
    }
}

/// The `cniVersion` to put in an error reply for this stdin.
pub fn reply_version(stdin: &[u8]) -> String {
    peek_version(stdin)
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST.to_string())
}

/// Run the command in `env` with the config `stdin`. `Ok(Some(json))` is
/// printed on stdout; `Ok(None)` prints nothing (DEL, CHECK, GC, STATUS).
pub async fn run(role: Role, env: &CniEnv, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == Command::Version {
        let asked = peek_version(stdin).unwrap_or_else(|| LATEST.to_string());
        return Ok(Some(version_answer(&asked)));
    }
    let conf = NetConf::parse(stdin)?;
    if matches!(env.command, Command::Gc | Command::Status) && !conf.cni_version.has_gc_and_status()
    {
        return Err(CniError::IncompatibleVersion {
            version: format!("{} (GC and STATUS need 1.1.0)", conf.cni_version.as_str()),
            supported: &["1.1.0"],
        });
    }
    if role == Role::Network && conf.ipam.plugin_type == conf.plugin_type {
        return Err(CniError::config(
            "ipam.type",
            "must name an IPAM plugin, not the network plugin itself",
        ));
    }
    let context = match &env.container_id {
        Some(id) => format!("{:?} {id}", env.command),
        None => format!("{:?}", env.command),
    };
    let log = Log::new(conf.log_level, conf.log_file_path.as_deref(), context);
    let node = node_name(&conf)?;
    let _lock = match env.command {
        Command::Add | Command::Del | Command::Gc => {
            Some(HostLock::acquire(&conf.lock_file, conf.lock_timeout)?)
        }
        _ => None,
    };
    let store = EtcdStore::connect(&etcd_config(&conf)).await?;
    let version = conf.cni_version;
    let s = Session {
        conf,
        env: env.clone(),
        raw: stdin.to_vec(),
        ipam: Ipam::new(store),
        node,
        log,
    };
    let out = match role {
        Role::Network => network(&s, version).await,
        Role::Ipam => ipam_only(&s, version).await,
    };
    if let Err(e) = &out {
        s.log.warn(&format!("failed with code {}: {e}", e.code()));
    }
    out
}

async fn network(s: &Session<EtcdStore>, version: CniVersion) -> Result<Option<Value>, CniError> {
    match s.env.command {
        Command::Add => {
            let result = add::add(s, &s.env.attach()?).await?;
            Ok(Some(result.render(version)))
        }
        Command::Del => del::del(s, &s.env.attach()?).await.map(|()| None),
        Command::Check => check::check(s, &s.env.attach()?).await.map(|()| None),
        Command::Gc => gc::gc(s).await.map(|()| None),
        Command::Status => gc::status(s).await.map(|()| None),
        Command::Version => Ok(None),
    }
}

async fn ipam_only(s: &Session<EtcdStore>, version: CniVersion) -> Result<Option<Value>, CniError> {
    match s.env.command {
        Command::Add => {
            let attach = s.env.attach()?;
            let node = endpoint::wait_for_node(s.store(), &s.node, s.conf.node_wait).await?;
            let request = s.pod_request(&attach).await?;
            let ips = ipam_role::assign(
                &s.ipam,
                &s.conf,
                &attach,
                &s.node,
                &node.metadata.labels,
                &request,
            )
            .await?;
            s.log.info(&format!("allocated {ips:?}"));
            Ok(Some(ipam_role::ipam_result(&s.conf, &ips).render(version)))
        }
        Command::Del => {
            let attach = s.env.attach()?;
            ipam_role::release(&s.ipam, &s.conf, &attach.container_id).await?;
            Ok(None)
        }
        Command::Check => {
            let attach = s.env.attach()?;
            let handle = s.conf.handle(&attach.container_id);
            if s.ipam.ips_by_handle(&handle).await?.is_empty() {
                return Err(CniError::CheckFailed(format!(
                    "IPAM holds nothing for {handle}"
                )));
            }
            Ok(None)
        }
        Command::Gc => {
            let valid = s.conf.valid_container_ids()?;
            ipam_role::gc(&s.ipam, &s.conf, &s.node, &valid).await?;
            Ok(None)
        }
        Command::Status => gc::status(s).await.map(|()| None),
        Command::Version => Ok(None),
    }
}

fn etcd_config(conf: &NetConf) -> EtcdConfig {
    let mut c = EtcdConfig::new(conf.etcd.endpoints.clone());
    c.connect_timeout = conf.etcd.timeout;
    c.request_timeout = conf.etcd.timeout;
    let e = &conf.etcd;
    c.tls = EtcdTls::from_files(
        e.ca_cert_file.clone(),
        e.cert_file.clone(),
        e.key_file.clone(),
    );
    c
}

/// Parse the environment with [`CniEnv::parse`] from the process's own.
pub fn process_env() -> Result<CniEnv, CniError> {
    CniEnv::parse(|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_follows_the_installed_name() {
        assert_eq!(Role::from_argv0("/opt/cni/bin/tabby-ipam"), Role::Ipam);
        assert_eq!(Role::from_argv0("/opt/cni/bin/tabby"), Role::Network);
        assert_eq!(Role::from_argv0("tabby-cni"), Role::Network);
        assert_eq!(reply_version(b"{\"cniVersion\":\"0.4.0\"}"), "0.4.0");
        assert_eq!(reply_version(b"{\"cniVersion\":\"9.9.9\"}"), LATEST);
        assert_eq!(reply_version(b"garbage"), LATEST);
    }
}
