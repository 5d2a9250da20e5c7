//! IPIP: the `tunl0` device, as Felix's IPIP manager keeps it.
//!
//! The kernel's `ipip` module creates the fallback device `tunl0` in every
//! network namespace; tabby only sets its MTU, brings it up and gives it
//! the node's tunnel address (/32). Routes to remote blocks then go `via
//! <remote node> dev tunl0 onlink` ([`super::encap`]). A kernel without
//! CONFIG_NET_IPIP has no tunl0: [`ensure_tunl0`] then fails with
//! [`IpipError::Unsupported`], and the agent refuses at start a pool whose
//! `ipipMode` needs it.

use ipnet::IpNet;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{Handle, LinkUnspec};

use super::veth::{VethError, link_index};

/// The kernel's IPIP fallback device.
pub const TUNL0: &str = "tunl0";

/// Why tunl0 cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum IpipError {
    #[error("this kernel has no IPIP support (CONFIG_NET_IPIP, module ipip): no tunl0 device")]
    Unsupported,
    #[error(transparent)]
    Link(#[from] VethError),
}

/// The `RTM_NEWLINK` (set) body for tunl0: MTU and up.
pub fn tunl0_message(index: u32, mtu: u32) -> LinkMessage {
    LinkUnspec::new_with_index(index).mtu(mtu).up().build()
}

/// Configure tunl0 with `mtu` and the node's `tunnel_address`; its ifindex.
pub async fn ensure_tunl0(
    handle: &Handle,
    mtu: u32,
    tunnel_address: Option<IpNet>,
) -> Result<u32, IpipError> {
    let index = link_index(handle, TUNL0)
        .await?
        .ok_or(IpipError::Unsupported)?;
    handle
        .link()
        .set(tunl0_message(index, mtu))
        .execute()
        .await
        .map_err(VethError::from)?;
    if let Some(addr) = tunnel_address {
        handle
            .address()
            .add(index, addr.addr(), addr.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(VethError::from)?;
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_core::Emitable;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};

    use super::*;

    #[test]
    fn tunl0_message_sets_mtu_and_up_on_the_index() {
        let msg = tunl0_message(9, 1480);
        assert_eq!(msg.header.index, 9);
        assert!(msg.header.flags.contains(LinkFlags::Up));
        assert!(msg.header.change_mask.contains(LinkFlags::Up));
        assert!(msg.attributes.contains(&LinkAttribute::Mtu(1480)));
        // ifinfomsg (16 bytes) + IFLA_MTU (8): nothing else is changed.
        assert_eq!(msg.buffer_len(), 24);
    }
}
