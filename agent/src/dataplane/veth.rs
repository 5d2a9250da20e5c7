//! A pod's veth pair, wired the way Calico wires it.
//!
//! Host side: named by [`host_interface_name`](super::workload::host_interface_name),
//! MAC `ee:ee:ee:ee:ee:ee` (every host side has the same one: the pod only
//! ever talks to its gateway), proxy ARP on with no delay, forwarding on,
//! `route_localnet` on; for IPv6 proxy NDP and forwarding on, router
//! advertisements ignored. Pod side: `eth0` (created directly inside the pod's
//! namespace), the pod's /32 and /128, the route `169.254.1.1 dev eth0 scope
//! link` and `default via 169.254.1.1`, which the host answers by proxy ARP;
//! for IPv6 the default route goes via the host side's link-local address.
//!
//! The host route to the pod (`<ip>/32 dev caliXXXX`) is not made here: it
//! belongs to the route reconciler like every other tabby route.
//! [`create`] replaces a stale host interface of the same name, and both
//! [`create`] and [`delete`] may be repeated safely.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::ROUTE_PROTOCOL;
use super::netns::with_handle_in;

/// The MAC of every host-side workload interface, as in Calico.
pub const HOST_MAC: [u8; 6] = [0xee; 6];

/// The pod's IPv4 gateway: link-local, answered by the host's proxy ARP.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The host side's IPv6 link-local address (EUI-64 of [`HOST_MAC`]), the
/// pod's IPv6 gateway.
pub const HOST_LINK_LOCAL_V6: Ipv6Addr =
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// What to wire.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// Host-side name, e.g. `calic440f455693`.
    pub host_ifname: String,
    /// The pod's network namespace, e.g. `/var/run/netns/cni-...`.
    pub pod_netns: PathBuf,
    /// Pod-side name, normally `eth0` (CNI_IFNAME).
    pub pod_ifname: String,
    /// The pod's addresses, each a host prefix (/32 or /128).
    pub addresses: Vec<IpNet>,
    /// MTU for both ends.
    pub mtu: u32,
}

/// What was wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiredVeth {
    pub host_ifindex: u32,
    pub pod_ifindex: u32,
    pub pod_mac: [u8; 6],
}

/// Why wiring failed.
#[derive(Debug, thiserror::Error)]
pub enum VethError {
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the pod namespace already has an interface named {0}")]
    PodInterfaceExists(String),
    #[error("interface {0} vanished while being configured")]
    Vanished(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VethError {
    let what = what.into();
    move |source| VethError::Io { what, source }
}

/// Index of the link named `name`, if it exists.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, VethError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The `RTM_NEWLINK` body that creates the pair: the host side with
/// [`HOST_MAC`], and the pod side created directly inside the namespace
/// open as `pod_ns_fd` (`IFLA_NET_NS_FD` on the peer).
pub fn pair_message(spec: &VethSpec, pod_ns_fd: RawFd) -> LinkMessage {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.pod_ifname.clone())
        .mtu(spec.mtu)
        .setns_by_fd(pod_ns_fd)
        .build();
    LinkVeth::new(&spec.host_ifname, &spec.pod_ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .address(HOST_MAC.to_vec())
        .mtu(spec.mtu)
        .build()
}

/// The peer's ifindex (`IFLA_LINK`) of the veth named `name`, if it exists.
pub async fn peer_index(handle: &Handle, name: &str) -> Result<Option<u32>, VethError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(i) => Some(*i),
            _ => None,
        })),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// MTU of the link named `name`, if it exists. (Read over netlink: `/sys`
/// shows the namespace it was mounted in, not the calling thread's.)
pub async fn link_mtu(handle: &Handle, name: &str) -> Result<Option<u32>, VethError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Create and configure the pair. `handle` talks to the host namespace.
pub async fn create(handle: &Handle, spec: &VethSpec) -> Result<WiredVeth, VethError> {
    // Check the pod side first: if its name is taken there, the host
    // interface of the same name may be this pod's live one, and must not
    // be replaced.
    // A pod side that is the peer of our host interface is our own earlier
    // pair (a repeated create): replace it. Anything else under that name
    // belongs to someone else.
    let pod_name = spec.pod_ifname.clone();
    let taken = with_handle_in(&spec.pod_netns, |h| async move {
        link_index(&h, &pod_name).await
    })
    .map_err(io_err("enter the pod namespace"))??;
    if let Some(pod_index) = taken {
        let ours = peer_index(handle, &spec.host_ifname).await? == Some(pod_index);
        if !ours {
            return Err(VethError::PodInterfaceExists(spec.pod_ifname.clone()));
        }
    }
    if let Some(stale) = link_index(handle, &spec.host_ifname).await? {
        handle.link().del(stale).execute().await?;
    }
    let pod_ns = std::fs::File::open(&spec.pod_netns)
        .map_err(io_err(format!("open {}", spec.pod_netns.display())))?;
    let veth = pair_message(spec, pod_ns.as_raw_fd());
    if let Err(e) = handle.link().add(veth).execute().await {
        // EEXIST here means the pod side's name is taken in the pod.
        if let rtnetlink::Error::NetlinkError(ref m) = e
            && m.raw_code() == -17
        {
            return Err(VethError::PodInterfaceExists(spec.pod_ifname.clone()));
        }
        return Err(e.into());
    }
    let host_ifindex = link_index(handle, &spec.host_ifname)
        .await?
        .ok_or_else(|| VethError::Vanished(spec.host_ifname.clone()))?;
    host_sysctls(
        &spec.host_ifname,
        spec.addresses.iter().any(|a| a.addr().is_ipv6()),
    )?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(host_ifindex).up().build())
        .execute()
        .await?;
    let pod = spec.clone();
    let (pod_ifindex, pod_mac) =
        with_handle_in(&spec.pod_netns, |h| async move { pod_side(&h, &pod).await })
            .map_err(io_err("enter the pod namespace"))??;
    Ok(WiredVeth {
        host_ifindex,
        pod_ifindex,
        pod_mac,
    })
}

/// Remove the pair by its host side; `Ok(false)` if it was already gone.
pub async fn delete(handle: &Handle, host_ifname: &str) -> Result<bool, VethError> {
    match link_index(handle, host_ifname).await? {
        Some(index) => match handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(false),
            Err(e) => Err(e.into()),
        },
        None => Ok(false),
    }
}

fn host_sysctls(ifname: &str, ipv6: bool) -> Result<(), VethError> {
    let mut settings = vec![
        (format!("ipv4/conf/{ifname}/proxy_arp"), "1"),
        (format!("ipv4/neigh/{ifname}/proxy_delay"), "0"),
        (format!("ipv4/conf/{ifname}/forwarding"), "1"),
        (format!("ipv4/conf/{ifname}/route_localnet"), "1"),
    ];
    if ipv6 {
        settings.extend([
            (format!("ipv6/conf/{ifname}/proxy_ndp"), "1"),
            (format!("ipv6/conf/{ifname}/forwarding"), "1"),
            (format!("ipv6/conf/{ifname}/accept_ra"), "0"),
            // The link-local address is the same EUI-64 on every host side
            // and nobody else is on the link: skip DAD so the pod's gateway
            // answers at once instead of after the DAD delay.
            (format!("ipv6/conf/{ifname}/accept_dad"), "0"),
        ]);
    }
    for (key, value) in settings {
        write_sysctl(&key, value)?;
    }
    Ok(())
}

/// Write `/proc/sys/net/<key>` (as seen from the calling thread's namespace).
pub fn write_sysctl(key: &str, value: &str) -> Result<(), VethError> {
    let path = Path::new("/proc/sys/net").join(key);
    std::fs::write(&path, value).map_err(io_err(format!("write {}", path.display())))
}

async fn pod_side(handle: &Handle, spec: &VethSpec) -> Result<(u32, [u8; 6]), VethError> {
    let mut links = handle
        .link()
        .get()
        .match_name(spec.pod_ifname.clone())
        .execute();
    let link = links
        .try_next()
        .await?
        .ok_or_else(|| VethError::Vanished(spec.pod_ifname.clone()))?;
    let index = link.header.index;
    let mac = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) if m.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(m);
                Some(mac)
            }
            _ => None,
        })
        .unwrap_or_default();
    let has_v6 = spec.addresses.iter().any(|a| a.addr().is_ipv6());
    if has_v6 {
        // The pod must not wait for duplicate address detection or learn
        // routes from advertisements: its addresses come from IPAM.
        write_sysctl(&format!("ipv6/conf/{}/accept_dad", spec.pod_ifname), "0")?;
        write_sysctl(&format!("ipv6/conf/{}/accept_ra", spec.pod_ifname), "0")?;
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    for addr in &spec.addresses {
        handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .replace()
            .execute()
            .await?;
    }
    if spec.addresses.iter().any(|a| a.addr().is_ipv4()) {
        let gateway = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(POD_GATEWAY_V4, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build();
        handle.route().add(gateway).replace().execute().await?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(POD_GATEWAY_V4)
            .output_interface(index)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build();
        handle.route().add(default).replace().execute().await?;
    }
    if has_v6 {
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(HOST_LINK_LOCAL_V6)
            .output_interface(index)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build();
        handle.route().add(default).replace().execute().await?;
    }
    Ok((index, mac))
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::link::{InfoKind, LinkInfo};

    use super::*;

    #[test]
    fn pair_message_names_both_ends_and_puts_the_peer_in_the_pod() {
        let spec = VethSpec {
            host_ifname: "calic440f455693".into(),
            pod_netns: "/var/run/netns/pod".into(),
            pod_ifname: "eth0".into(),
            addresses: vec![],
            mtu: 1450,
        };
        let msg = pair_message(&spec, 42);
        let attrs = &msg.attributes;
        assert!(attrs.contains(&LinkAttribute::IfName("calic440f455693".into())));
        assert!(attrs.contains(&LinkAttribute::Address(vec![0xee; 6])));
        assert!(attrs.contains(&LinkAttribute::Mtu(1450)));
        let infos = attrs
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert!(infos.contains(&LinkInfo::Kind(InfoKind::Veth)));
        let peer = infos
            .iter()
            .find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                _ => None,
            })
            .unwrap();
        assert!(
            peer.attributes
                .contains(&LinkAttribute::IfName("eth0".into()))
        );
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(42)));
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1450)));
    }
}
