//! The control socket between `tabby-node` and `routectl`.
//!
//! A unix stream socket, mode 0600 (root only), in a directory that must
//! not be writable by others. One request line (`peers`, `routes`), one
//! JSON answer, then the agent closes. The types here are shared by both
//! ends.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;

use serde::{Deserialize, Serialize};

/// One row of `routectl peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRow {
    pub address: String,
    /// "node-to-node mesh", "global" or "node specific" (Calico's words).
    pub peer_type: String,
    pub state: String,
    /// Seconds since the last state change.
    pub since_secs: u64,
    /// Last error, or the negotiated summary while Established.
    pub info: String,
    pub prefixes_received: usize,
    pub prefixes_sent: usize,
}

/// One row of `routectl routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRow {
    pub prefix: String,
    pub target: String,
}

/// Why the control socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket directory {0} is writable by others; refusing to start")]
    UnsafeDirectory(String),
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Check the socket's directory (create it 0700 if missing) and remove a
/// stale socket file; the caller then binds.
pub fn prepare(path: &Path) -> Result<(), ControlError> {
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
    // Writable by group or others (sticky /tmp-like dirs included).
    if mode & 0o022 != 0 {
        return Err(ControlError::UnsafeDirectory(dir.display().to_string()));
    }
    if path.exists() {
        std::fs::remove_file(path).map_err(io)?;
    }
    Ok(())
}

/// Restrict the bound socket to its owner.
pub fn restrict(path: &Path) -> Result<(), ControlError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ControlError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

/// What the control socket reads: a copy the daemon refreshes each round.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub peers: Vec<PeerRow>,
    pub routes: Vec<RouteRow>,
}

/// Serve `view` on the control socket at `path` (see the module doc).
pub fn serve(path: &Path, view: watch::Receiver<View>) -> anyhow::Result<()> {
    let path = path.to_path_buf();
    prepare(&path)?;
    let listener = UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
    restrict(&path)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let view = view.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    return;
                }
                let v = view.borrow().clone();
                let answer = match line.trim() {
                    "peers" => serde_json::to_string(&v.peers),
                    "routes" => serde_json::to_string(&v.routes),
                    other => Ok(
                        serde_json::json!({"error": format!("unknown request {other:?}")})
                            .to_string(),
                    ),
                };
                if let Ok(text) = answer {
                    let _ = write.write_all(text.as_bytes()).await;
                }
            });
        }
    });
    Ok(())
}

/// Render peers like `calicoctl node status`.
pub fn peers_table(rows: &[PeerRow]) -> String {
    let mut out = String::from(
        "+--------------+-------------------+-------------+----------+-----+-----+----------------------------------+\n\
         | PEER ADDRESS |     PEER TYPE     |    STATE    |  SINCE   | RCV | SNT |               INFO               |\n\
         +--------------+-------------------+-------------+----------+-----+-----+----------------------------------+\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {:<12} | {:<17} | {:<11} | {:>8} | {:>3} | {:>3} | {:<32} |\n",
            r.address,
            r.peer_type,
            r.state,
            since(r.since_secs),
            r.prefixes_received,
            r.prefixes_sent,
            r.info
        ));
    }
    out.push_str(
        "+--------------+-------------------+-------------+----------+-----+-----+----------------------------------+\n",
    );
    out
}

/// `calicoctl node status`'s layout: `IPv4 BGP status` with a table of the
/// peers with IPv4 addresses (or `No IPv4 peers found.`), then the same for
/// IPv6. A dual-stack node's IPv6 routes travel over its IPv4 mesh
/// sessions (MP-BGP), so RCV/SNT there count both families.
pub fn peers_by_family(rows: &[PeerRow]) -> String {
    let is_v6 = |r: &&PeerRow| r.address.contains(':');
    let v4: Vec<PeerRow> = rows.iter().filter(|r| !is_v6(r)).cloned().collect();
    let v6: Vec<PeerRow> = rows.iter().filter(is_v6).cloned().collect();
    let mut out = String::new();
    for (family, rows) in [("IPv4", v4), ("IPv6", v6)] {
        out.push_str(&format!("{family} BGP status\n"));
        if rows.is_empty() {
            out.push_str(&format!("No {family} peers found.\n\n"));
        } else {
            out.push_str(&format!("{}\n", peers_table(&rows)));
        }
    }
    out
}

fn since(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_calicos_columns() {
        let t = peers_table(&[PeerRow {
            address: "10.200.0.2".into(),
            peer_type: "node-to-node mesh".into(),
            state: "Established".into(),
            since_secs: 3725,
            info: "hold 90s".into(),
            prefixes_received: 2,
            prefixes_sent: 1,
        }]);
        assert!(t.contains("PEER ADDRESS") && t.contains("PEER TYPE") && t.contains("INFO"));
        assert!(
            t.contains("| 10.200.0.2   | node-to-node mesh | Established | 01:02:05 |   2 |   1 |"),
            "{t}"
        );
    }

    #[test]
    fn peers_are_listed_per_family_as_calicoctl_does() {
        let row = |address: &str| PeerRow {
            address: address.into(),
            peer_type: "global".into(),
            state: "Established".into(),
            since_secs: 1,
            info: String::new(),
            prefixes_received: 0,
            prefixes_sent: 0,
        };
        let t = peers_by_family(&[row("10.200.0.2")]);
        let (v4, v6) = t.split_once("IPv6 BGP status\n").unwrap();
        assert!(
            v4.starts_with("IPv4 BGP status\n+---") && v4.contains("10.200.0.2"),
            "{t}"
        );
        assert_eq!(v6, "No IPv6 peers found.\n\n");
        let t = peers_by_family(&[row("fd00:200::9")]);
        assert!(
            t.starts_with("IPv4 BGP status\nNo IPv4 peers found.\n"),
            "{t}"
        );
        assert!(
            t.contains("IPv6 BGP status\n+---") && t.contains("| fd00:200::9 "),
            "{t}"
        );
    }

    #[test]
    fn a_world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&dir.path().join("tabby.sock")).unwrap_err();
        assert!(matches!(err, ControlError::UnsafeDirectory(_)), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        prepare(&dir.path().join("tabby.sock")).unwrap();
    }
}
