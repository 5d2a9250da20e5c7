//! The binaries' command lines. (This integration test also makes
//! `cargo test --workspace` build the agent's binaries, which the lab tests
//! in `tests/` run.)
#![allow(clippy::unwrap_used)] // tests

use std::process::Command;

#[test]
fn tabby_node_help_documents_every_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tabby-node"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "NODENAME",
        "IP",
        "IP_AUTODETECTION_METHOD",
        "AS",
        "ETCD_ENDPOINTS",
        "ETCD_CA_CERT_FILE",
        "ETCD_CERT_FILE",
        "ETCD_KEY_FILE",
        "TABBY_IPV4POOL_CIDR",
        "TABBY_IPV4POOL_BLOCK_SIZE",
        "TABBY_IPV4POOL_IPIP",
        "TABBY_IPV4POOL_VXLAN",
        "TABBY_CONTROL_SOCKET",
        "TABBY_STATE_DIR",
    ] {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "--help lacks {var}:\n{help}"
        );
    }
}

#[test]
fn routectl_without_an_agent_fails_with_exit_code_1_and_says_where_it_looked() {
    let out = Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args(["--socket", "/nonexistent/tabby.sock", "peers"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/tabby.sock"), "{err}");
}

#[test]
fn routectl_rejects_an_unknown_output_format_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_routectl"))
        .args(["peers", "-o", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("xml"));
}
