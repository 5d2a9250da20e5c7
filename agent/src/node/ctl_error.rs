//! The errors of `routectl`'s datastore verbs (`apply`, `get`, `delete`,
//! `ipam check|release`), each knowing the exit code it ends the process
//! with.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the agent or etcd could not be asked or written (runtime error) |
//! | 2 | bad usage (unknown verb or kind, missing argument) |
//! | 3 | invalid input: a manifest or report was refused; the message names the document and field |
//! | 4 | the named resource does not exist |
//! | 5 | refused: the resource is still in use (`delete` says by how much; `--force` overrides) |

use crate::node::apply::ApplyError;

/// Why a `routectl` verb failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// etcd failed, timed out, or a stored value could not be decoded.
    #[error(transparent)]
    Ipam(#[from] ipam::IpamError),
    #[error(transparent)]
    Store(#[from] ipam::store::StoreError),
    /// A stored value that does not decode; never guessed at.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A compare-and-swap lost to a concurrent writer.
    #[error("{what} changed concurrently, try again")]
    Conflict { what: String },
    /// Reading a file or stdin failed.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Invalid(#[from] ApplyError),
    /// A report given to `ipam release` is not one `ipam check` wrote.
    #[error("{path}: not an `ipam check` report: {reason}")]
    BadReport { path: String, reason: String },
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} is in use: {reason}; use --force to delete it anyway")]
    InUse {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

impl CtlError {
    /// The process exit code (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            // A pool that overlaps another, an immutable field changed:
            // the input is at fault, not the datastore.
            CtlError::Ipam(ipam::IpamError::Pool(_) | ipam::IpamError::Config(_)) => 3,
            CtlError::Ipam(_)
            | CtlError::Store(_)
            | CtlError::Corrupt { .. }
            | CtlError::Conflict { .. }
            | CtlError::Io { .. } => 1,
            CtlError::Usage(_) => 2,
            CtlError::Invalid(_) | CtlError::BadReport { .. } => 3,
            CtlError::NotFound { .. } => 4,
            CtlError::InUse { .. } => 5,
        }
    }

    pub(crate) fn corrupt(key: &str, reason: impl std::fmt::Display) -> CtlError {
        CtlError::Corrupt {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}
