//! Capture real BGP messages from BIRD 2, GoBGP and FRR for the codec's
//! golden tests:
//! `cargo run -p tabby-tests --bin capture-fixtures > bgp/tests/fixtures/peers.txt`.
//!
//! Prints each direction's messages as `<from> <to> <hex>` lines (one
//! KEEPALIVE per direction is enough). See `harness::capture::capture_reference_mesh`.

use anyhow::Result;
use harness::capture::{capture_reference_mesh, hex};

fn main() -> Result<()> {
    anyhow::ensure!(
        harness::require_live(
            "capture-fixtures",
            &["bird", "gobgpd", "/usr/lib/frr/bgpd", "tshark"]
        ),
        "needs root, the daemons and tshark"
    );
    for ((from, to), msgs) in capture_reference_mesh("fix")? {
        let mut keepalive_seen = false;
        for m in msgs {
            if m.get(18) == Some(&4) {
                if keepalive_seen {
                    continue;
                }
                keepalive_seen = true;
            }
            println!("{from} {to} {}", hex(&m));
        }
    }
    Ok(())
}
