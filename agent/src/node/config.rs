//! tabby-node's configuration: flags and environment variables named like
//! calico-node's, so a DaemonSet's `env:` carries over.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Configuration of one node agent.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tabby-node",
    version,
    about = "tabby's node agent: BGP, IPAM and the dataplane of one node"
)]
pub struct NodeConfig {
    /// This node's name (the Kubernetes node name).
    #[arg(long, env = "NODENAME")]
    pub nodename: String,

    /// The node's IPv4 address with its prefix length (e.g. 10.200.0.1/24),
    /// or `autodetect` (see IP_AUTODETECTION_METHOD).
    #[arg(long = "ip", env = "IP", default_value = "autodetect")]
    pub ip: String,

    /// How to find the node address: first-found, interface=REGEX,
    /// skip-interface=REGEX, can-reach=ADDRESS, cidr=CIDR.
    #[arg(long, env = "IP_AUTODETECTION_METHOD", default_value = "first-found")]
    pub ip_autodetection_method: String,

    /// The node's IPv6 address with its prefix length (e.g.
    /// fd00:200::1/64), `autodetect` (see IP6_AUTODETECTION_METHOD) or
    /// `none` (IPv4 only). When set, the node is dual stack: its IPv6
    /// routes go over the same BGP sessions (MP-BGP IPv6 unicast) with this
    /// address as their next hop.
    #[arg(long = "ip6", env = "IP6", default_value = "none")]
    pub ip6: String,

    /// Like IP_AUTODETECTION_METHOD, for `IP6=autodetect`.
    #[arg(long, env = "IP6_AUTODETECTION_METHOD", default_value = "first-found")]
    pub ip6_autodetection_method: String,

    /// The node's AS number. Unset: the `default` BGPConfiguration's
    /// asNumber, else 64512 (read at start).
    #[arg(long = "as", env = "AS")]
    pub asn: Option<u32>,

    /// Comma-separated etcd endpoints, e.g. http://10.200.0.254:2379.
    #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,

    /// etcd client TLS: CA certificate, client certificate and key.
    #[arg(long, env = "ETCD_CA_CERT_FILE")]
    pub etcd_ca_cert_file: Option<PathBuf>,
    #[arg(long, env = "ETCD_CERT_FILE")]
    pub etcd_cert_file: Option<PathBuf>,
    #[arg(long, env = "ETCD_KEY_FILE")]
    pub etcd_key_file: Option<PathBuf>,

    /// Create this IPv4 pool (named default-ipv4-ippool) if no pool exists.
    #[arg(long, env = "TABBY_IPV4POOL_CIDR")]
    pub ipv4pool_cidr: Option<String>,
    /// Block size of the default pool.
    #[arg(long, env = "TABBY_IPV4POOL_BLOCK_SIZE", default_value_t = 26)]
    pub ipv4pool_block_size: u8,
    /// IPIP mode of the default pool: Never, Always, CrossSubnet.
    #[arg(long, env = "TABBY_IPV4POOL_IPIP", default_value = "Never")]
    pub ipv4pool_ipip: String,
    /// VXLAN mode of the default pool: Never, Always, CrossSubnet.
    #[arg(long, env = "TABBY_IPV4POOL_VXLAN", default_value = "Never")]
    pub ipv4pool_vxlan: String,

    /// Create this IPv6 pool (named default-ipv6-ippool) if no IPv6 pool
    /// exists (with `IP6` set; Calico's CALICO_IPV6POOL_CIDR).
    #[arg(long, env = "TABBY_IPV6POOL_CIDR")]
    pub ipv6pool_cidr: Option<String>,
    /// Block size of the default IPv6 pool.
    #[arg(long, env = "TABBY_IPV6POOL_BLOCK_SIZE", default_value_t = 122)]
    pub ipv6pool_block_size: u8,
    /// VXLAN mode of the default IPv6 pool: Never, Always, CrossSubnet.
    /// IPv6 VXLAN uses the node's one VXLAN device over its IPv4 address.
    #[arg(long, env = "TABBY_IPV6POOL_VXLAN", default_value = "Never")]
    pub ipv6pool_vxlan: String,
    /// natOutgoing of the default IPv6 pool (Calico's
    /// CALICO_IPV6POOL_NAT_OUTGOING; off by default, as there).
    #[arg(long, env = "TABBY_IPV6POOL_NAT_OUTGOING", default_value_t = false, action = clap::ArgAction::Set)]
    pub ipv6pool_nat_outgoing: bool,

    /// BGP port to listen on and connect to.
    #[arg(long, env = "TABBY_BGP_PORT", default_value_t = 179)]
    pub bgp_port: u16,

    /// BGP hold time in seconds (keepalive is a third of it).
    #[arg(long, env = "TABBY_BGP_HOLD_TIME", default_value_t = 90)]
    pub bgp_hold_time: u16,

    /// Graceful restart (RFC 4724) Restart Time in seconds, 0 to 4095:
    /// how long peers keep this agent's routes while it restarts (BIRD's
    /// `graceful restart time`; Calico's BIRD announces 120).
    #[arg(long, env = "TABBY_BGP_RESTART_TIME", default_value_t = 120,
          value_parser = clap::value_parser!(u16).range(0..=4095))]
    pub bgp_restart_time: u16,

    /// Long-lived graceful restart (RFC 9494) stale time in seconds: what
    /// this agent announces (peers keep its routes that long after the
    /// restart time, least preferred) and the longest it keeps a
    /// peer's routes after that peer's restart time. 0 turns it off (as
    /// Calico's BIRD); at most 16777215 (24 bits).
    #[arg(long, env = "TABBY_BGP_LLGR_STALE_TIME", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(0..=0xFF_FFFF))]
    pub bgp_llgr_stale_time: u32,

    /// The control socket routectl talks to (created mode 0600).
    #[arg(
        long,
        env = "TABBY_CONTROL_SOCKET",
        default_value = "/var/run/tabby/tabby-node.sock"
    )]
    pub control_socket: PathBuf,

    /// Where the agent keeps state between runs, and the files tabby-cni
    /// reads: `nodename` and `mtu` (the pods' MTU).
    #[arg(long, env = "TABBY_STATE_DIR", default_value = "/var/lib/tabby")]
    pub state_dir: PathBuf,

    /// Health endpoint (HTTP /liveness and /readiness).
    #[arg(long, env = "TABBY_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,

    /// Interface-name prefix of workload interfaces.
    #[arg(long, env = "TABBY_INTERFACE_PREFIX", default_value = "cali")]
    pub interface_prefix: String,

    /// MTU of pod interfaces; 0 picks it from the uplink and encapsulation
    /// (minus 50 for VXLAN, 20 for IPIP). Written to `<state dir>/mtu`.
    #[arg(long, env = "TABBY_MTU", default_value_t = 0)]
    pub mtu: u32,

    /// The periodic round, in ms: etcd watches and session changes start a
    /// round at once; this bounds how stale the agent can get otherwise
    /// (a lost watch, a route someone deleted from the kernel).
    #[arg(long, env = "TABBY_RESYNC_MS", default_value_t = 500)]
    pub resync_ms: u64,

    /// Log filter (tracing's EnvFilter syntax: `info`, `debug`,
    /// `info,bgp=debug`). Info logs one line per state change, never one
    /// per route.
    #[arg(long, env = "TABBY_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` (human-readable) or `json` (one JSON object per
    /// line, for log collectors).
    #[arg(long, env = "TABBY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Use the Kubernetes API: auto (when KUBERNETES_SERVICE_HOST is set,
    /// i.e. in a pod), on (also outside a pod, via KUBECONFIG), off. Used
    /// for the Node's labels and InternalIP, its NetworkUnavailable
    /// condition and annotations, and IPAM garbage collection.
    #[arg(long, env = "TABBY_KUBERNETES", default_value = "auto")]
    pub kubernetes: String,

    /// IPAM garbage collection (Kubernetes only): an address whose pod or
    /// node is gone is released once two scans this many seconds apart
    /// agree; 0 turns it off. One agent at a time collects (Lease
    /// tabby-ipam-gc).
    #[arg(long, env = "TABBY_IPAM_GC_GRACE_SECONDS", default_value_t = 900)]
    pub ipam_gc_grace_seconds: u64,

    /// The kubeconfig the agent writes (from its service account, with the
    /// cluster CA as tabby-ca.crt beside it) for tabby-cni, which reads pod
    /// annotations with it; empty: not written.
    #[arg(
        long,
        env = "TABBY_CNI_KUBECONFIG",
        default_value = "/etc/cni/net.d/tabby-kubeconfig"
    )]
    pub cni_kubeconfig: Option<PathBuf>,

    /// The namespace of the agent's pod, where the tabby-ipam-gc Lease is
    /// kept (the DaemonSet sets it from metadata.namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "tabby-system")]
    pub pod_namespace: String,
}
