//! tabby's CNI plugin (network + IPAM), as kubelet/containerd run it: one
//! process per operation, config on stdin, environment variables, result
//! or error JSON on stdout.
//!
//! ```text
//! version, config, env, result, error   sans-IO: what the CNI spec defines
//! lock                                  the host-wide flock serialising ADD/DEL/GC
//! endpoint                              Node wait and WorkloadEndpoint records in etcd
//! ipam_role                             tabby-ipam: allocate, release, GC by handle
//! annotations                           per-pod pools and fixed addresses from the pod's annotations
//! delegate                              exec of another IPAM plugin from CNI_PATH
//! session, plugin                       one invocation: context and dispatch
//! add, del, check, gc                   the network half's commands (and STATUS)
//! log                                   the log file / stderr
//! ```
//!
//! What the node agent must do to cooperate:
//! - register `Node` at `/tabby/v1/nodes/<node>` (ADD waits for it, bounded,
//!   then fails with code 11; STATUS reports 50 while it is absent), and
//!   write `/var/lib/tabby/nodename` (and `/var/lib/tabby/mtu`) if the
//!   conflist does not carry `nodename` (`mtu`);
//! - adopt the host routes `<ip>/32 dev caliX proto 95` that ADD installs:
//!   its route reconciler owns every protocol-95 route, so its desired set
//!   must contain, for each WorkloadEndpoint under
//!   `/tabby/v1/workloadendpoints/<node>/`, `ipNetworks[i] -> Device(ifindex
//!   of interfaceName)`, or its next full sync deletes them;
//! - advertise borrowed addresses (`Assigned::borrowed`) as /32s, which it
//!   can find from the endpoints' addresses and the block affinities.

pub mod add;
pub mod annotations;
pub mod check;
pub mod config;
pub mod del;
pub mod delegate;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod gc;
pub mod ipam_role;
pub mod lock;
pub mod log;
pub mod plugin;
pub mod result;
pub mod session;
pub mod version;

pub use config::NetConf;
pub use env::{CniEnv, Command};
pub use error::CniError;
pub use plugin::{Role, run};
pub use result::CniResult;
