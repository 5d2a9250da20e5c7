//! `tabby-cni`: the CNI plugin binary. Installed as `tabby` (network
//! plugin) and as `tabby-ipam` (IPAM plugin); see [`agent::cni`].
//!
//! Reads the config on stdin (at most 4 MiB) and the CNI_* environment,
//! prints the result or the error JSON on stdout, logs on stderr (or the
//! configured log file), and exits 0 on success, 1 on error.

use std::io::{Read, Write};
use std::process::ExitCode;

use agent::cni::plugin::{self, Role, reply_version};
use agent::cni::{CniError, Command};
use anyhow::Context;

/// Larger configs are refused (code 6) instead of read without bound.
const MAX_STDIN: u64 = 4 << 20;

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    let role = Role::from_argv0(&argv0);
    let mut stdin = Vec::new();
    let env = match plugin::process_env() {
        Ok(env) => env,
        Err(e) => return fail(&e, &stdin),
    };
    if let Err(e) = read_stdin(&mut stdin, env.command) {
        return fail(&e, &stdin);
    }
    let outcome = runtime().map(|rt| rt.block_on(plugin::run(role, &env, &stdin)));
    match outcome {
        Ok(Ok(Some(json))) => print(&json),
        Ok(Ok(None)) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(&e, &stdin),
        Err(e) => fail(
            &CniError::Io {
                what: "starting the runtime".into(),
                detail: format!("{e:#}"),
            },
            &stdin,
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

fn read_stdin(buf: &mut Vec<u8>, command: Command) -> Result<(), CniError> {
    let mut limited = std::io::stdin().lock().take(MAX_STDIN + 1);
    if let Err(e) = limited.read_to_end(buf) {
        // VERSION may come without a config at all
        if command == Command::Version {
            return Ok(());
        }
        return Err(CniError::Io {
            what: "reading stdin".into(),
            detail: e.to_string(),
        });
    }
    if buf.len() as u64 > MAX_STDIN {
        buf.clear();
        return Err(CniError::Decode(format!(
            "the config is larger than {MAX_STDIN} bytes"
        )));
    }
    Ok(())
}

fn print(json: &serde_json::Value) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, json)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn fail(e: &CniError, stdin: &[u8]) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "tabby-cni: error {}: {e}", e.code());
    let _ = print(&e.to_json(&reply_version(stdin)));
    ExitCode::FAILURE
}
