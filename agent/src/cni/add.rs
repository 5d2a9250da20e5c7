//! ADD for the network half (`"type": "tabby"`).
//!
//! 1. Wait (bounded, `node_wait_seconds`) for this node's `Node`: without
//!    it the node agent is not running and nothing would route to the pod.
//! 2. Allocate (handle `<network>.<containerID>`), in-process or through
//!    the delegated IPAM plugin.
//! 3. Wire the pod ([`crate::dataplane::veth::create`]): `caliXXXX` on the
//!    host, `CNI_IFNAME` in the pod with the /32 and /128 and the default
//!    route via 169.254.1.1.
//! 4. Add `<ip>/32 dev caliXXXX` (and /128) on the host through
//!    [`RouteTable`], with tabby's protocol (95). These routes are the
//!    node agent's to keep: its reconciler must include, for every local
//!    WorkloadEndpoint, `ipNetworks[i] dev interfaceName` in its desired
//!    set, or its next full sync deletes them.
//! 5. Record the WorkloadEndpoint.
//!
//! Any failure after step 2 rolls everything back (veth, endpoint,
//! addresses) before the error is returned, so a failed ADD leaks nothing.

use std::io::ErrorKind;
use std::path::Path;

use ipam::Datastore;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::endpoint;
use super::env::Attach;
use super::error::CniError;
use super::result::{CniResult, Interface, IpConfig, Route, format_mac};
use super::session::{Session, pod_mtu};
use crate::dataplane::route::{Plan, Target};
use crate::dataplane::route_table::RouteTable;
use crate::dataplane::veth::{self, HOST_LINK_LOCAL_V6, HOST_MAC, POD_GATEWAY_V4, VethSpec};
use crate::dataplane::workload::host_interface_name;
use crate::resources::{WorkloadEndpoint, WorkloadEndpointSpec};

/// The label that records which CNI network an endpoint belongs to.
pub const NETWORK_LABEL: &str = "tabby.dev/network";

pub async fn add<S: Datastore>(s: &Session<S>, attach: &Attach) -> Result<CniResult, CniError> {
    let netns = attach
        .netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS", "required for ADD"))?;
    if !netns.exists() {
        return Err(CniError::UnknownContainer(format!(
            "network namespace {} does not exist",
            netns.display()
        )));
    }
    let prev = match &s.conf.prev_result {
        Some(v) => Some(CniResult::from_value(v, "prevResult")?),
        None => None,
    };
    s.log.debug(&format!(
        "{} exists; waiting up to {:?} for node {:?}",
        netns.display(),
        s.conf.node_wait,
        s.node
    ));
    let node = endpoint::wait_for_node(s.store(), &s.node, s.conf.node_wait).await?;
    let ips = s.allocate(attach, &node.metadata.labels).await?;
    s.log.info(&format!("allocated {ips:?}"));
    let mut wep_written = false;
    match wire_and_record(s, attach, netns, &ips, &mut wep_written).await {
        Ok(ours) => Ok(match prev {
            Some(prev) => prev.chain(ours),
            None => ours,
        }),
        Err(e) => {
            s.log.warn(&format!("ADD failed, rolling back: {e}"));
            rollback(s, attach, wep_written).await;
            Err(e)
        }
    }
}

/// The host-side name of the attachment's veth.
pub fn host_ifname<S>(s: &Session<S>, attach: &Attach) -> String {
    host_interface_name(&s.conf.interface_prefix, &attach.namespace, &attach.pod)
}

/// The key of the attachment's WorkloadEndpoint.
pub fn endpoint_key<S>(s: &Session<S>, attach: &Attach) -> String {
    crate::resources::workload_endpoint_key(&s.node, &attach.namespace, &attach.pod, &attach.ifname)
}

/// `ip` narrowed to a host prefix.
pub fn host_prefix(ip: &IpNet) -> IpNet {
    IpNet::from(ip.addr())
}

async fn wire_and_record<S: Datastore>(
    s: &Session<S>,
    attach: &Attach,
    netns: &Path,
    ips: &[IpNet],
    wep_written: &mut bool,
) -> Result<CniResult, CniError> {
    let host_ifname = host_ifname(s, attach);
    let addresses: Vec<IpNet> = ips.iter().map(host_prefix).collect();
    let mtu = pod_mtu(&s.conf);
    let spec = VethSpec {
        host_ifname: host_ifname.clone(),
        pod_netns: netns.to_path_buf(),
        pod_ifname: attach.ifname.clone(),
        addresses: addresses.clone(),
        mtu,
    };
    let wired = with_host_handle(|h| async move { veth::create(&h, &spec).await })
        .await?
        .map_err(|e| CniError::dataplane("wiring the pod", e))?;
    add_host_routes(&addresses, wired.host_ifindex)?;
    let mac = format_mac(&wired.pod_mac);
    let mut wep = WorkloadEndpoint::new(
        &attach.namespace,
        WorkloadEndpointSpec {
            orchestrator: attach.orchestrator.into(),
            workload: String::new(),
            node: s.node.clone(),
            container_id: attach.container_id.clone(),
            pod: attach.pod.clone(),
            endpoint: attach.ifname.clone(),
            interface_name: host_ifname.clone(),
            mac: Some(mac.clone()),
            ip_networks: addresses.clone(),
            profiles: vec![format!("kns.{}", attach.namespace)],
        },
    );
    wep.metadata
        .labels
        .insert(NETWORK_LABEL.into(), s.conf.name.clone());
    wep.metadata.labels.insert(
        "projectcalico.org/namespace".into(),
        attach.namespace.clone(),
    );
    wep.metadata.labels.insert(
        "projectcalico.org/orchestrator".into(),
        attach.orchestrator.into(),
    );
    endpoint::put_endpoint(s.store(), &wep).await?;
    *wep_written = true;
    s.log.info(&format!(
        "wired {host_ifname} <-> {} {addresses:?}",
        attach.ifname
    ));
    let mut routes = Vec::new();
    if addresses.iter().any(|a| a.addr().is_ipv4()) {
        routes.push(Route {
            dst: IpNet::V4(Ipv4Net::default()),
            gw: Some(POD_GATEWAY_V4.into()),
        });
    }
    if addresses.iter().any(|a| a.addr().is_ipv6()) {
        routes.push(Route {
            dst: IpNet::V6(Ipv6Net::default()),
            gw: Some(HOST_LINK_LOCAL_V6.into()),
        });
    }
    Ok(CniResult {
        cni_version: s.conf.cni_version.as_str().into(),
        interfaces: vec![
            Interface {
                name: host_ifname,
                mac: Some(format_mac(&HOST_MAC)),
                mtu: Some(mtu),
                sandbox: None,
            },
            Interface {
                name: attach.ifname.clone(),
                mac: Some(mac),
                mtu: Some(mtu),
                sandbox: Some(netns.display().to_string()),
            },
        ],
        ips: addresses
            .iter()
            .map(|a| IpConfig {
                address: *a,
                gateway: None,
                interface: Some(1),
            })
            .collect(),
        routes,
        dns: s.conf.dns.clone(),
    })
}

/// Run `work` with an rtnetlink handle in the plugin's own namespace.
pub async fn with_host_handle<T, F, Fut>(work: F) -> Result<T, CniError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| CniError::dataplane("netlink socket", e))?;
    let conn = tokio::spawn(conn);
    let out = work(handle).await;
    conn.abort();
    Ok(out)
}

/// Install `<ip>/32 dev <ifindex>` for each address. A destination tabby
/// already owns (a stale route of an earlier pod) is replaced; one held by
/// another owner is an error, as in Calico.
fn add_host_routes(addresses: &[IpNet], ifindex: u32) -> Result<(), CniError> {
    let err = |e| CniError::dataplane("host routes", e);
    let mut table = RouteTable::open().map_err(err)?;
    let target = Target::Device { ifindex };
    let plan = Plan {
        add: addresses.iter().map(|a| (*a, target.clone())).collect(),
        ..Plan::default()
    };
    let report = table.apply(&plan).map_err(err)?;
    if report.failed.is_empty() {
        return Ok(());
    }
    let owned = table.owned().map_err(err)?;
    let mut replace = Plan::default();
    for (_, dst, e) in report.failed {
        if e.kind() == ErrorKind::AlreadyExists && owned.contains_key(&dst) {
            replace.replace.push((dst, target.clone()));
        } else {
            return Err(CniError::Dataplane(format!(
                "cannot add the host route {dst} dev #{ifindex}: {e}"
            )));
        }
    }
    let report = table.apply(&replace).map_err(err)?;
    match report.failed.first() {
        None => Ok(()),
        Some((_, dst, e)) => Err(CniError::Dataplane(format!(
            "cannot replace the host route {dst}: {e}"
        ))),
    }
}

/// Undo a half-done ADD: the veth (its host routes go with it), the
/// endpoint if this call wrote it, the addresses. Best effort, logged.
async fn rollback<S: Datastore>(s: &Session<S>, attach: &Attach, wep_written: bool) {
    let name = host_ifname(s, attach);
    match with_host_handle(|h| async move { veth::delete(&h, &name).await }).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => s.log.warn(&format!("rollback: deleting the veth: {e}")),
        Err(e) => s.log.warn(&format!("rollback: {e}")),
    }
    if wep_written {
        let key = endpoint_key(s, attach);
        if let Err(e) = endpoint::delete_endpoint_of(s.store(), &key, &attach.container_id).await {
            s.log.warn(&format!("rollback: {e}"));
        }
    }
    if let Err(e) = s.deallocate(&attach.container_id).await {
        s.log.warn(&format!("rollback: {e}"));
    }
}
