//! Outgoing NAT for pools with `natOutgoing: true`, as Felix does it:
//! traffic from such a pool to anywhere outside every pool leaves the node
//! masqueraded to the node's address; pod-to-pod traffic (any pool to any
//! pool) is never translated.
//!
//! tabby owns one nftables table, `ip tabby-nat`, with two interval sets
//! (`masq-pools`, `all-pools`) and one rule in a `postrouting` nat chain —
//! the nft form of Felix's `cali-nat-outgoing` rule with its
//! `cali40masq-ipam-pools` / `cali40all-ipam-pools` ipsets. The whole table
//! is replaced in one `nft -f` transaction when the pools change (and
//! re-applied now and then to repair drift), so no packet ever sees half a
//! ruleset; with no NAT pool the table is deleted.

use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

/// The table tabby owns.
pub const TABLE: &str = "tabby-nat";

/// How often the applied table is written again even if nothing changed.
const REPAIR: Duration = Duration::from_secs(30);

fn elements(nets: &[Ipv4Net]) -> String {
    if nets.is_empty() {
        return String::new();
    }
    let list: Vec<String> = nets.iter().map(|n| n.trunc().to_string()).collect();
    format!(" elements = {{ {} }};", list.join(", "))
}

/// The nft script that makes the table what `masq` and `all` ask for.
/// It first creates the table (a no-op if it exists) so that the delete
/// never fails, all in one transaction.
pub fn script(masq: &[Ipv4Net], all: &[Ipv4Net]) -> String {
    let mut s = format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n");
    if masq.is_empty() {
        return s;
    }
    s.push_str(&format!(
        "table ip {TABLE} {{\n\
         \x20 set masq-pools {{ type ipv4_addr; flags interval;{} }}\n\
         \x20 set all-pools {{ type ipv4_addr; flags interval;{} }}\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr @masq-pools ip daddr != @all-pools counter masquerade\n\
         \x20 }}\n\
         }}\n",
        elements(masq),
        elements(all),
    ));
    s
}

/// What was last applied, so unchanged pools cost nothing.
#[derive(Debug, Default)]
pub struct NatOutgoing {
    applied: Option<(String, Instant)>,
}

impl NatOutgoing {
    /// Make the table match; `Ok(true)` when `nft` ran.
    pub fn sync(&mut self, masq: &[Ipv4Net], all: &[Ipv4Net]) -> io::Result<bool> {
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

    #[test]
    fn the_script_replaces_the_table_or_deletes_it() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let s = script(&[n("10.0.0.0/16")], &[n("10.0.0.0/16"), n("10.9.0.0/16")]);
        assert!(
            s.starts_with("table ip tabby-nat {}\ndelete table ip tabby-nat\n"),
            "{s}"
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
        assert_eq!(
            script(&[], &[n("10.0.0.0/16")]),
            "table ip tabby-nat {}\ndelete table ip tabby-nat\n"
        );
    }
}
