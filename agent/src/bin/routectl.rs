//! `routectl`: the operator's view of a tabby node.
//!
//! `routectl peers` and `routectl routes` ask the local agent over its
//! control socket. The datastore verbs talk to etcd directly
//! (`--etcd-endpoints` or `ETCD_ENDPOINTS`):
//!
//! - `ipam show [--show-blocks]`, `ipam check [-o report.json]` and
//!   `ipam release --from-report report.json`, like calicoctl's;
//! - `apply -f FILE|-`, `get <kind> [name] [-o table|json|yaml]` and
//!   `delete <kind> <name> [--force]` for IPPool, BGPPeer,
//!   BGPConfiguration, Node and IPAMConfig (kind names case-insensitive,
//!   singular or plural). `get -o json|yaml` prints what `apply -f` takes
//!   back.
//!
//! Exit codes (also in `routectl --help`; see
//! [`agent::node::ctl_error`]): 0 success; 1 the agent or etcd could not
//! be asked or written; 2 bad usage; 3 invalid input (a manifest or report
//! refused, the message names the document and field); 4 the named
//! resource does not exist; 5 refused because the resource is in use
//! (`delete` without `--force`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent::node::control::{PeerRow, RouteRow, peers_by_family};
use agent::node::ctl_error::CtlError;
use agent::node::kind::Kind;
use clap::{Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the agent or etcd could not be asked or written
  2  bad usage
  3  invalid input: a manifest or report was refused (the message names the document and field)
  4  the named resource does not exist
  5  refused: the resource is in use (delete without --force)";

#[derive(Debug, Parser)]
#[command(
    name = "routectl",
    version,
    about = "Inspect and configure tabby",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The agent's control socket.
    #[arg(
        long,
        env = "TABBY_CONTROL_SOCKET",
        default_value = "/var/run/tabby/tabby-node.sock",
        global = true
    )]
    socket: PathBuf,
    /// etcd endpoints, comma-separated (datastore verbs).
    #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',', global = true)]
    etcd_endpoints: Vec<String>,
    /// etcd client TLS (as tabby-node's): the CA of etcd's server
    /// certificate; any of the three turns TLS on (https:// endpoints).
    #[arg(long, env = "ETCD_CA_CERT_FILE", global = true)]
    etcd_ca_cert_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (with --etcd-key-file).
    #[arg(long, env = "ETCD_CERT_FILE", global = true)]
    etcd_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS (with --etcd-cert-file).
    #[arg(long, env = "ETCD_KEY_FILE", global = true)]
    etcd_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// BGP peers of this node, like `calicoctl node status`.
    Peers {
        #[arg(long, short, value_enum, default_value = "table")]
        output: Output,
    },
    /// Routes this node programs.
    Routes {
        #[arg(long, short, value_enum, default_value = "table")]
        output: Output,
    },
    /// Create or update IPPool, BGPPeer, BGPConfiguration, Node and
    /// IPAMConfig resources from a YAML or JSON file (`-` for stdin);
    /// Calico v3 manifests are accepted as they are. A Node is merged into
    /// the stored one (labels and spec fields given replace, others stay).
    Apply {
        /// The manifest file, or `-`.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// Show resources: ippool, bgppeer, bgpconfiguration, node, ipamconfig.
    Get {
        /// The kind (case-insensitive, singular or plural).
        kind: Kind,
        /// Only this resource.
        name: Option<String>,
        #[arg(long, short, value_enum, default_value = "table")]
        output: Output,
    },
    /// Delete a resource. An IPPool with allocations or a Node with
    /// workload endpoints is refused unless --force.
    Delete {
        kind: Kind,
        name: String,
        /// Delete even if in use.
        #[arg(long)]
        force: bool,
    },
    /// IP address management (reads etcd directly).
    Ipam {
        #[command(subcommand)]
        verb: IpamVerb,
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
    /// Look for leaked addresses and inconsistent IPAM data, like
    /// `calicoctl ipam check`.
    Check {
        /// Also write the report as JSON, for `ipam release --from-report`.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Release what a report from `ipam check` and a fresh check both
    /// list identically.
    Release {
        #[arg(long)]
        from_report: PathBuf,
    },
}

fn read_input(file: &Path) -> Result<String, CtlError> {
    let io = |e: std::io::Error| CtlError::Io {
        path: file.display().to_string(),
        reason: e.to_string(),
    };
    if file.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin().read_to_string(&mut t).map_err(io)?;
        Ok(t)
    } else {
        std::fs::read_to_string(file).map_err(io)
    }
}

/// The etcd client settings from the options.
fn etcd_config(cli: &Cli) -> ipam::EtcdConfig {
    let mut c = ipam::EtcdConfig::new(cli.etcd_endpoints.clone());
    c.tls = ipam::EtcdTls::from_files(
        cli.etcd_ca_cert_file.clone(),
        cli.etcd_cert_file.clone(),
        cli.etcd_key_file.clone(),
    );
    c
}

/// Connect to etcd and run `verb` against IPAM and the store.
fn with_etcd<T, F>(
    config: &ipam::EtcdConfig,
    verb: impl FnOnce(ipam::Ipam<ipam::EtcdStore>) -> F,
) -> Result<T, CtlError>
where
    F: std::future::Future<Output = Result<T, CtlError>>,
{
    if config.endpoints.is_empty() {
        return Err(CtlError::Usage(
            "ETCD_ENDPOINTS (or --etcd-endpoints) is required for this command".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::Io {
            path: "tokio runtime".into(),
            reason: e.to_string(),
        })?;
    rt.block_on(async {
        let store = ipam::EtcdStore::connect(config).await?;
        verb(ipam::Ipam::new(store)).await
    })
}

fn datastore(cli: &Cli) -> Result<String, CtlError> {
    let endpoints = &etcd_config(cli);
    match &cli.command {
        Command::Apply { file } => {
            let resources = agent::node::apply::parse(&read_input(file)?)?;
            let lines = with_etcd(endpoints, |ipam| async move {
                agent::node::apply::apply(&ipam, &resources).await
            })?;
            Ok(lines.iter().map(|l| format!("{l}\n")).collect())
        }
        Command::Get { kind, name, output } => {
            let (kind, name) = (*kind, name.as_deref());
            let items = with_etcd(endpoints, |ipam| async move {
                agent::node::get::fetch(ipam.store(), kind, name).await
            })?;
            let single = name.is_some() || kind == Kind::IpamConfig;
            let doc = agent::node::get::document(kind, &items, single);
            match output {
                Output::Table => Ok(agent::node::get::table(kind, &items)),
                Output::Json => Ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                )),
                Output::Yaml => serde_saphyr::to_string(&doc).map_err(|e| CtlError::Io {
                    path: "stdout".into(),
                    reason: e.to_string(),
                }),
            }
        }
        Command::Delete { kind, name, force } => {
            let (kind, force) = (*kind, *force);
            let lines = with_etcd(endpoints, |ipam| async move {
                agent::node::delete::delete(&ipam, kind, name, force).await
            })?;
            Ok(lines.iter().map(|l| format!("{l}\n")).collect())
        }
        Command::Ipam { verb } => match verb {
            IpamVerb::Show { show_blocks } => with_etcd(endpoints, |ipam| async move {
                let state = ipam.snapshot().await?;
                Ok(agent::node::ipam_show::table(&state, *show_blocks))
            }),
            IpamVerb::Check { output } => {
                let (report, _) = with_etcd(endpoints, |ipam| async move {
                    agent::node::ipam_check::check(&ipam).await
                })?;
                let mut text = agent::node::ipam_check::summary(&report);
                if let Some(path) = output {
                    std::fs::write(path, agent::node::ipam_check::to_json(&report)).map_err(
                        |e| CtlError::Io {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        },
                    )?;
                    text += &format!("Report written to {}\n", path.display());
                }
                Ok(text)
            }
            IpamVerb::Release { from_report } => {
                let path = from_report.display().to_string();
                let earlier = agent::node::ipam_check::from_json(&path, &read_input(from_report)?)?;
                with_etcd(endpoints, |ipam| async move {
                    agent::node::ipam_check::release(&ipam, &earlier).await
                })
            }
        },
        Command::Peers { .. } | Command::Routes { .. } => Ok(String::new()),
    }
}

fn ask(socket: &Path, request: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach tabby-node at {}: {e}", socket.display()))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `peers` and `routes`, from the agent.
fn agent_view(socket: &Path, command: &Command) -> Result<String, String> {
    let (request, output) = match command {
        Command::Peers { output } => ("peers", *output),
        Command::Routes { output } => ("routes", *output),
        _ => return Ok(String::new()),
    };
    let answer = ask(socket, request)?;
    let unexpected = |e: serde_json::Error| format!("unexpected answer from the agent: {e}");
    match (output, command) {
        (Output::Json, _) => Ok(answer),
        (Output::Yaml, _) => {
            let v: serde_json::Value = serde_json::from_str(&answer).map_err(unexpected)?;
            serde_saphyr::to_string(&v).map_err(|e| e.to_string())
        }
        (Output::Table, Command::Peers { .. }) => {
            let rows: Vec<PeerRow> = serde_json::from_str(&answer).map_err(unexpected)?;
            Ok(peers_by_family(&rows))
        }
        (Output::Table, _) => {
            let rows: Vec<RouteRow> = serde_json::from_str(&answer).map_err(unexpected)?;
            Ok(rows
                .iter()
                .map(|r| format!("{:<20} {}\n", r.prefix, r.target))
                .collect())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Peers { .. } | Command::Routes { .. } = cli.command {
        return match agent_view(&cli.socket, &cli.command) {
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
    match datastore(&cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("routectl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
