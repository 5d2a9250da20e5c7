//! Running a delegated IPAM plugin (SPEC §4 "Plugin Delegation"): the
//! binary named by `ipam.type`, found in `CNI_PATH`, gets the same
//! environment (with `CNI_COMMAND` set to the operation) and the same whole
//! config on stdin; its stderr goes to ours. Its error JSON is passed on
//! with its own code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::env::Command;
use super::error::{CniError, code};

/// The plugin `name` in the first `CNI_PATH` directory that has it.
pub fn find(name: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if path.is_empty() {
        return Err(CniError::env(
            "CNI_PATH",
            format!("required to find the IPAM plugin {name:?}"),
        ));
    }
    path.iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::config(
                "ipam.type",
                format!("no plugin {name:?} in CNI_PATH {path:?}"),
            )
        })
}

fn command_name(c: Command) -> &'static str {
    match c {
        Command::Add => "ADD",
        Command::Del => "DEL",
        Command::Check => "CHECK",
        Command::Gc => "GC",
        Command::Version => "VERSION",
        Command::Status => "STATUS",
    }
}

/// Run `plugin` for `command` with `stdin`; its stdout as JSON (`Null` when
/// it printed nothing, as CHECK, DEL, GC and STATUS do).
pub fn run(plugin: &Path, command: Command, stdin: &[u8]) -> Result<Value, CniError> {
    let name = plugin.file_name().map_or_else(
        || plugin.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let failed = |msg: String| CniError::Delegate {
        plugin: name.clone(),
        code: code::DELEGATE,
        msg,
        details: String::new(),
    };
    let mut child = Process::new(plugin)
        .env("CNI_COMMAND", command_name(command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", plugin.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .map_err(|e| failed(format!("cannot write its stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("cannot wait for it: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| failed(format!("printed no JSON ({e}): {text}")))?
    };
    if out.status.success() {
        return Ok(value);
    }
    Err(CniError::Delegate {
        plugin: name.clone(),
        code: value["code"]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(code::DELEGATE),
        msg: format!(
            "{name}: {}",
            value["msg"].as_str().unwrap_or("failed without a message")
        ),
        details: value["details"].as_str().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_plugin_names_cni_path_or_ipam_type() {
        assert!(
            find("host-local", &[])
                .unwrap_err()
                .to_string()
                .contains("CNI_PATH")
        );
        let e = find("nope", &[PathBuf::from("/nonexistent")]).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("ipam.type"), "{e}");
    }

    #[test]
    fn a_delegates_error_keeps_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-ipam");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\necho '{\"code\":999,\"msg\":\"no addresses\"}'\nexit 1\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        let e = run(&script, Command::Add, b"{}").unwrap_err();
        assert_eq!(e.code(), 999);
        assert!(e.to_string().contains("no addresses"), "{e}");
    }
}
