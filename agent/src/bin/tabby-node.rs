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
    let json = cfg.log_format == "json";
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log)
        .map_err(|e| anyhow::anyhow!("TABBY_LOG {:?}: {e}", cfg.log))?;
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
