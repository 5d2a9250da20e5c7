//! `tabby-node`: the node agent. Configuration by flags or the environment
//! variables calico-node uses; `tabby-node --help` lists them all.

use agent::node::{NodeConfig, daemon};
use clap::Parser;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line, not a backtrace: operators read this in
            // `kubectl logs`.
            eprintln!("tabby-node: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::parse();
    let json = std::env::var("TABBY_LOG_FORMAT").is_ok_and(|f| f == "json");
    let filter = tracing_subscriber::EnvFilter::try_from_env("TABBY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(daemon::run(cfg))
}
