//! `routectl`: the operator's view of a tabby node.
//!
//! `routectl peers` and `routectl routes` ask the local agent over its
//! control socket. Exit codes: 0 success, 1 the agent could not be asked,
//! 2 bad usage.

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
    let request = match cli.command {
        Command::Peers => "peers",
        Command::Routes => "routes",
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
