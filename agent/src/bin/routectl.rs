//! `routectl`: the operator's view of a tabby node.
//!
//! `routectl peers` and `routectl routes` ask the local agent over its
//! control socket; `routectl ipam show [--show-blocks]` reads etcd;
//! `routectl apply -f FILE` writes IPPool and BGPPeer resources to etcd.
//! Exit codes: 0 success, 1 the agent or etcd could not be asked or
//! written, 2 bad usage, 3 the manifest was refused (the message names the
//! document and field).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use agent::node::control::{PeerRow, RouteRow, peers_table};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "routectl", version, about = "Inspect and configure tabby")]
struct Cli {
    /// The agent's control socket.
    #[arg(
        long,
        env = "TABBY_CONTROL_SOCKET",
        default_value = "/var/run/tabby/tabby-node.sock",
        global = true
    )]
    socket: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// BGP peers of this node, like `calicoctl node status`.
    Peers,
    /// Routes this node programs.
    Routes,
    /// Create or update IPPool and BGPPeer resources from a YAML or JSON
    /// file (`-` for stdin); Calico v3 manifests are accepted as they are.
    Apply {
        /// The manifest file, or `-`.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// etcd endpoints, comma-separated.
        #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
        etcd_endpoints: Vec<String>,
    },
    /// IP address management (reads etcd directly).
    Ipam {
        #[command(subcommand)]
        verb: IpamVerb,
        /// etcd endpoints, comma-separated.
        #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',', global = true)]
        etcd_endpoints: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IpamVerb {
    /// Pool usage, like `calicoctl ipam show`.
    Show {
        /// Also one row per block.
        #[arg(long)]
        show_blocks: bool,
    },
}

fn apply(file: &PathBuf, endpoints: &[String]) -> Result<Vec<String>, (u8, String)> {
    let text = if file.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .map_err(|e| (1, format!("stdin: {e}")))?;
        t
    } else {
        std::fs::read_to_string(file).map_err(|e| (1, format!("{}: {e}", file.display())))?
    };
    let resources = agent::node::apply::parse(&text).map_err(|e| (3, e.to_string()))?;
    if endpoints.is_empty() {
        return Err((
            2,
            "ETCD_ENDPOINTS (or --etcd-endpoints) is required for apply".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (1, e.to_string()))?;
    rt.block_on(async {
        let store = ipam::EtcdStore::connect(&ipam::EtcdConfig::new(endpoints.to_vec()))
            .await
            .map_err(|e| (1, format!("etcd: {e}")))?;
        agent::node::apply::apply(&ipam::Ipam::new(store), &resources)
            .await
            .map_err(|e| (1, e))
    })
}

fn ipam_show(endpoints: &[String], blocks: bool) -> Result<String, String> {
    if endpoints.is_empty() {
        return Err("ETCD_ENDPOINTS (or --etcd-endpoints) is required for ipam commands".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let store = ipam::EtcdStore::connect(&ipam::EtcdConfig::new(endpoints.to_vec()))
            .await
            .map_err(|e| format!("etcd: {e}"))?;
        let state = ipam::Ipam::new(store)
            .snapshot()
            .await
            .map_err(|e| format!("etcd: {e}"))?;
        Ok(agent::node::ipam_show::table(&state, blocks))
    })
}

fn ask(socket: &PathBuf, request: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach tabby-node at {}: {e}", socket.display()))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let request = match &cli.command {
        Command::Apply {
            file,
            etcd_endpoints,
        } => {
            return match apply(file, etcd_endpoints) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err((code, e)) => {
                    eprintln!("routectl: {e}");
                    ExitCode::from(code)
                }
            };
        }
        Command::Peers => "peers",
        Command::Routes => "routes",
        Command::Ipam {
            verb: IpamVerb::Show { show_blocks },
            etcd_endpoints,
        } => {
            return match ipam_show(etcd_endpoints, *show_blocks) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("routectl: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let answer = match ask(&cli.socket, request) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("routectl: {e}");
            return ExitCode::from(1);
        }
    };
    let text = match (cli.output, &cli.command) {
        (Output::Json, _) => answer,
        (Output::Table, Command::Peers) => match serde_json::from_str::<Vec<PeerRow>>(&answer) {
            Ok(rows) => format!("IPv4 BGP status\n{}", peers_table(&rows)),
            Err(e) => {
                eprintln!("routectl: unexpected answer from the agent: {e}");
                return ExitCode::from(1);
            }
        },
        (Output::Table, Command::Ipam { .. } | Command::Apply { .. }) => String::new(),
        (Output::Table, Command::Routes) => match serde_json::from_str::<Vec<RouteRow>>(&answer) {
            Ok(rows) => rows
                .iter()
                .map(|r| format!("{:<20} {}\n", r.prefix, r.target))
                .collect(),
            Err(e) => {
                eprintln!("routectl: unexpected answer from the agent: {e}");
                return ExitCode::from(1);
            }
        },
    };
    print!("{text}");
    ExitCode::SUCCESS
}
