//! How a live test says it cannot run here.
//!
//! A test that lacks root or a binary prints a visible `SKIP` line and
//! returns. The line is written straight to the process's stderr, so the
//! test runner's output capture does not hide it. Under CI (`CI` set in the
//! environment) a missing prerequisite is a failure, not a skip: CI runs as
//! root and installs every binary. The one accepted skip is a kernel feature
//! this machine lacks, reported by name with [`skip_for_kernel_feature`].

use std::io::Write;
use std::path::Path;

/// Whether the live test `test` can run: root, and every binary in `bins`
/// found (a bare name is looked up on `PATH`, a path is checked as is).
///
/// Returns `false` after printing `SKIP <test>: <reason>`; panics instead
/// when running under CI.
pub fn require_live(test: &str, bins: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    missing.extend(
        bins.iter()
            .filter(|b| !binary_exists(b))
            .map(|b| format!("binary `{b}`")),
    );
    if missing.is_empty() {
        return true;
    }
    let reason = format!("needs {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}; CI must provide it (install it in .ci/run)");
    }
    say(&format!("SKIP {test}: {reason}"));
    false
}

/// Report that `test` skips because the running kernel lacks `feature`
/// (for example `ipip`). This is the one skip CI accepts.
pub fn skip_for_kernel_feature(test: &str, feature: &str) {
    say(&format!("SKIP {test}: kernel lacks {feature}"));
}

/// Whether the kernel can create a link of `kind` (`ip link add ... type kind`).
pub fn kernel_has_link_kind(kind: &str) -> bool {
    let probe = crate::Netns::new("probe");
    match probe {
        Ok(ns) => ns
            .exec("ip", &["link", "add", "probe0", "type", kind])
            .is_ok(),
        Err(_) => false,
    }
}

fn binary_exists(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
        .unwrap_or(false)
}

fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
