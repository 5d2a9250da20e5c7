//! `routectl ipam show`: pool and block usage, like `calicoctl ipam show`.

use std::fmt::Write as _;

use ipam::IpamState;
use ipnet::IpNet;

fn size(net: &IpNet) -> u128 {
    let bits = match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    };
    1u128 << (bits - u32::from(net.prefix_len())).min(127)
}

fn pct(part: u128, whole: u128) -> String {
    match (part * 100).checked_div(whole) {
        Some(p) => format!("{p}%"),
        None => "0%".into(),
    }
}

/// The table: one row per pool and, with `blocks`, one per block.
pub fn table(state: &IpamState, blocks: bool) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for pool in &state.pools {
        let total = size(&pool.cidr);
        let in_pool: Vec<_> = state
            .blocks
            .values()
            .filter(|b| pool.cidr.contains(&b.value.cidr()))
            .collect();
        let used: u128 = in_pool
            .iter()
            .map(|b| b.value.allocations().count() as u128)
            .sum();
        rows.push([
            "IP Pool".into(),
            pool.cidr.to_string(),
            total.to_string(),
            format!("{used} ({})", pct(used, total)),
            format!("{} ({})", total - used, pct(total - used, total)),
        ]);
        if blocks {
            for b in in_pool {
                let t = size(&b.value.cidr());
                let u = b.value.allocations().count() as u128;
                rows.push([
                    "Block".into(),
                    b.value.cidr().to_string(),
                    t.to_string(),
                    format!("{u} ({})", pct(u, t)),
                    format!("{} ({})", t - u, pct(t - u, t)),
                ]);
            }
        }
    }
    let heads = ["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([heads[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = line.clone();
    let row = |cells: &[String]| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(s, "| {c:<w$} ");
        }
        s + "|\n"
    };
    out += &row(&heads.map(String::from));
    out += &line;
    for r in &rows {
        out += &row(r);
    }
    out += &line;
    out
}
