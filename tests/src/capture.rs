//! Packet captures with tshark, and the BGP messages in them.
//!
//! [`Capture::start`] runs `tshark` on one interface of a namespace (a
//! switch port, typically) with a capture filter; [`Capture::stop`] ends it
//! with SIGINT, by PID, and returns the pcap. [`bgp_messages`] reads the
//! TCP payloads back per direction, in order, and cuts them into whole BGP
//! messages on the Length field, so a message split over two segments (or
//! two in one segment) comes out whole.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::{Netns, wait_until};

/// A running tshark.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    pcap: PathBuf,
    dir: TempDir,
}

impl Capture {
    /// Capture on `iface` in `ns` with the capture filter `filter`
    /// (e.g. `tcp port 179`). Returns once tshark is capturing.
    pub fn start(ns: &Netns, iface: &str, filter: &str) -> Result<Capture> {
        Self::start_with(ns, iface, filter, None)
    }

    /// [`Capture::start`], keeping only the first `snaplen` octets of
    /// each packet (headers, for timing, without the payloads' bulk).
    pub fn start_headers(ns: &Netns, iface: &str, filter: &str, snaplen: u32) -> Result<Capture> {
        Self::start_with(ns, iface, filter, Some(snaplen))
    }

    fn start_with(ns: &Netns, iface: &str, filter: &str, snaplen: Option<u32>) -> Result<Capture> {
        let dir = tempfile::Builder::new().prefix("tabby-pcap-").tempdir()?;
        let pcap = dir.path().join("capture.pcapng");
        let log = std::fs::File::create(dir.path().join("tshark.log"))?;
        let mut cmd = ns.command("tshark");
        if let Some(n) = snaplen {
            cmd.args(["-s", &n.to_string()]);
        }
        let child = cmd
            .args(["-q", "-i", iface, "-f", filter, "-w"])
            .arg(&pcap)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start tshark")?;
        let cap = Capture {
            child: Some(child),
            pcap,
            dir,
        };
        let log_path = cap.dir.path().join("tshark.log");
        wait_until("tshark to capture", Duration::from_secs(20), || {
            Ok(std::fs::read_to_string(&log_path)?.contains("Capturing on"))
        })?;
        Ok(cap)
    }

    /// Stop tshark (SIGINT, so it finishes the file) and return the pcap.
    pub fn stop(mut self) -> Result<PathBuf> {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let _ = child.wait();
        }
        // Keep the file: move it out of the temp dir that is about to go.
        let out = std::env::temp_dir().join(format!(
            "tabby-capture-{}-{}.pcapng",
            std::process::id(),
            self.dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        std::fs::copy(&self.pcap, &out)?;
        Ok(out)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One direction of a TCP connection: (source, destination).
pub type Direction = (IpAddr, IpAddr);

/// The BGP messages in `pcap`, per direction, in the order sent.
pub fn bgp_messages(pcap: &Path) -> Result<BTreeMap<Direction, Vec<Vec<u8>>>> {
    let out = crate::run(
        "tshark",
        &[
            "-r",
            &pcap.to_string_lossy(),
            "-Y",
            "tcp.len > 0",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "tcp.payload",
        ],
    )?;
    let mut streams: BTreeMap<Direction, Vec<u8>> = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.split('\t');
        let (Some(src), Some(dst), Some(hex)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let key = (src.parse()?, dst.parse()?);
        streams.entry(key).or_default().extend(unhex(hex.trim())?);
    }
    let mut messages = BTreeMap::new();
    for (dir, bytes) in streams {
        messages.insert(dir, split_messages(&bytes)?);
    }
    Ok(messages)
}

/// Cut a TCP byte stream into BGP messages on their Length fields.
pub fn split_messages(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while bytes.len() >= 19 {
        let len = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        if !(19..=65535).contains(&len) || len > bytes.len() {
            bail!(
                "stream does not split into BGP messages (length {len}, {} left)",
                bytes.len()
            );
        }
        out.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    Ok(out)
}

/// Hex digits (optionally separated by `:`) to bytes.
pub fn unhex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair)?;
            Ok(u8::from_str_radix(s, 16)?)
        })
        .collect()
}

/// Bytes to lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run the reference mesh (BIRD, GoBGP, FRR) with tshark on its bridge,
/// give GoBGP a route with MED, communities and a large community, wait
/// until every route is everywhere, and return what was sent, per
/// direction. This is how `bgp/tests/fixtures/peers.txt` is made.
pub fn capture_reference_mesh(tag: &str) -> Result<BTreeMap<Direction, Vec<Vec<u8>>>> {
    use crate::mesh::{Mesh, MeshOptions};
    let (mesh, capture) = Mesh::start_with(tag, &MeshOptions::default(), |sw| {
        Capture::start(sw.netns(), "br0", "tcp port 179")
    })?;
    mesh.wait_established(2, Duration::from_secs(30))?;
    let (Some(bird), Some(gobgp), Some(frr)) = (&mesh.bird, &mesh.gobgp, &mesh.frr) else {
        bail!("the reference mesh runs all three daemons");
    };
    gobgp.gobgp(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "172.31.20.0/24",
        "community",
        "64512:100,no-export",
        "med",
        "10",
        "large-community",
        "64512:1:2",
    ])?;
    wait_until("routes everywhere", Duration::from_secs(20), || {
        let b = bird.birdc("show route")?;
        let f = frr.vtysh("show bgp ipv4 unicast json")?;
        Ok(["172.31.2.0", "172.31.3.0", "172.31.20.0"]
            .iter()
            .all(|p| b.contains(p))
            && ["172.31.1.0", "172.31.20.0"].iter().all(|p| f.contains(p)))
    })?;
    std::thread::sleep(Duration::from_secs(1));
    let pcap = capture.stop()?;
    let messages = bgp_messages(&pcap);
    let _ = std::fs::remove_file(&pcap);
    messages
}
