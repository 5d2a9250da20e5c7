//! Outgoing NAT for pools with `natOutgoing: true`, as Felix does it:
//! traffic from such a pool to anywhere outside every pool leaves the node
//! masqueraded to the node's address; pod-to-pod traffic (any pool to any
//! pool) is never translated.
//!
//! tabby owns one nftables table per family, `ip tabby-nat` and `ip6
//! tabby-nat`, each with two interval sets (`masq-pools`, `all-pools`) and
//! one rule in a `postrouting` nat chain — the nft form of Felix's
//! `cali-nat-outgoing` rule with its `cali40masq-ipam-pools` /
//! `cali40all-ipam-pools` ipsets (`cali60…` for IPv6). Both tables are
//! replaced in one `nft -f` transaction when the pools change (and
//! re-applied now and then to repair drift), so no packet ever sees half a
//! ruleset; a family with no NAT pool has no table.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// The table tabby owns.
pub const TABLE: &str = "tabby-nat";

/// How often the applied table is written again even if nothing changed.
const REPAIR: Duration = Duration::from_secs(30);

fn elements<'a>(nets: impl Iterator<Item = &'a IpNet>) -> String {
    let list: Vec<String> = nets.map(|n| n.trunc().to_string()).collect();
    if list.is_empty() {
        return String::new();
    }
    format!(" elements = {{ {} }};", list.join(", "))
}

/// The nft script that makes both tables what `masq` and `all` (pools of
/// either family) ask for. It first creates each table (a no-op if it
/// exists) so that the delete never fails, all in one transaction.
pub fn script(masq: &[IpNet], all: &[IpNet]) -> String {
    let mut s = String::new();
    for (family, addr_type, v6) in [("ip", "ipv4_addr", false), ("ip6", "ipv6_addr", true)] {
        let of = |nets: &[IpNet]| -> Vec<IpNet> {
            nets.iter()
                .filter(|n| n.addr().is_ipv6() == v6)
                .copied()
                .collect()
        };
        s.push_str(&format!(
            "table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n"
        ));
        let masq = of(masq);
        if masq.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "table {family} {TABLE} {{\n\
             \x20 set masq-pools {{ type {addr_type}; flags interval;{} }}\n\
             \x20 set all-pools {{ type {addr_type}; flags interval;{} }}\n\
             \x20 chain postrouting {{\n\
             \x20   type nat hook postrouting priority srcnat; policy accept;\n\
             \x20   {family} saddr @masq-pools {family} daddr != @all-pools counter masquerade\n\
             \x20 }}\n\
             }}\n",
            elements(masq.iter()),
            elements(of(all).iter()),
        ));
    }
    s
}

/// What was last applied, so unchanged pools cost nothing.
#[derive(Debug, Default)]
pub struct NatOutgoing {
    applied: Option<(String, Instant)>,
}

impl NatOutgoing {
    /// Make the table match; `Ok(true)` when `nft` ran.
    pub fn sync(&mut self, masq: &[IpNet], all: &[IpNet]) -> io::Result<bool> {
        let want = script(masq, all);
        if let Some((done, at)) = &self.applied
            && *done == want
            && at.elapsed() < REPAIR
        {
            return Ok(false);
        }
        apply(&want)?;
        self.applied = Some((want, Instant::now()));
        Ok(true)
    }
}

fn apply(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run nft (package nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft -f refused the {TABLE} table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TABLES: &str = "table ip tabby-nat {}\ndelete table ip tabby-nat\n\
                             table ip6 tabby-nat {}\ndelete table ip6 tabby-nat\n";

    #[test]
    fn the_script_replaces_the_table_or_deletes_it() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let s = script(
            &[n("10.0.0.0/16")],
            &[n("10.0.0.0/16"), n("10.9.0.0/16"), n("fd00:10::/48")],
        );
        assert!(
            s.starts_with("table ip tabby-nat {}\ndelete table ip tabby-nat\n"),
            "{s}"
        );
        assert!(
            s.ends_with("table ip6 tabby-nat {}\ndelete table ip6 tabby-nat\n"),
            "no IPv6 NAT pool, no IPv6 table: {s}"
        );
        assert!(
            s.contains(
                "set masq-pools { type ipv4_addr; flags interval; elements = { 10.0.0.0/16 }; }"
            ),
            "{s}"
        );
        assert!(s.contains("elements = { 10.0.0.0/16, 10.9.0.0/16 }"), "{s}");
        assert!(
            s.contains("ip saddr @masq-pools ip daddr != @all-pools counter masquerade"),
            "{s}"
        );
        assert_eq!(script(&[], &[n("10.0.0.0/16")]), NO_TABLES);
    }

    #[test]
    fn an_ipv6_nat_pool_gets_its_own_ip6_table() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let s = script(&[n("fd00:10::/48")], &[n("10.0.0.0/16"), n("fd00:10::/48")]);
        let (v4, v6) = s.split_once("table ip6 tabby-nat {}").unwrap();
        assert_eq!(
            v4, "table ip tabby-nat {}\ndelete table ip tabby-nat\n",
            "{s}"
        );
        assert!(
            v6.contains(
                "set masq-pools { type ipv6_addr; flags interval; elements = { fd00:10::/48 }; }"
            ) && v6.contains(
                "set all-pools { type ipv6_addr; flags interval; elements = { fd00:10::/48 }; }"
            ) && v6.contains("ip6 saddr @masq-pools ip6 daddr != @all-pools counter masquerade"),
            "{s}"
        );
    }
}
