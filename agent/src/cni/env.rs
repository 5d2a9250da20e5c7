//! The CNI environment variables (SPEC §"Parameters"), parsed and checked
//! per command. Sans-IO: [`CniEnv::parse`] takes a lookup function, so
//! tests never touch the process environment.
//!
//! `CNI_ARGS` is `K=V;K=V`. The keys Kubernetes runtimes send are known
//! (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID`,
//! `K8S_POD_UID`); any other key is refused with code 2 unless
//! `IgnoreUnknown=1` (or `true`) is present, as in the Go `types.LoadArgs`.

use std::path::PathBuf;

use super::config::is_cni_name;
use super::error::CniError;

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Version,
    Status,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            other => {
                return Err(CniError::env(
                    "CNI_COMMAND",
                    format!("unknown command {other:?}"),
                ));
            }
        })
    }
}

/// What `CNI_ARGS` said about the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ignore_unknown: bool,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub infra_container_id: Option<String>,
    pub pod_uid: Option<String>,
}

impl CniArgs {
    /// Parse `K=V;K=V`.
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut args = CniArgs::default();
        let mut unknown = Vec::new();
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::env(
                    "CNI_ARGS",
                    format!("{pair:?} is not KEY=VALUE"),
                ));
            };
            let v = Some(v.to_string()).filter(|v| !v.is_empty());
            match k {
                "IgnoreUnknown" => {
                    args.ignore_unknown = matches!(v.as_deref(), Some("1" | "true" | "True"))
                }
                "K8S_POD_NAMESPACE" => args.pod_namespace = v,
                "K8S_POD_NAME" => args.pod_name = v,
                "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = v,
                "K8S_POD_UID" => args.pod_uid = v,
                _ => unknown.push(pair.to_string()),
            }
        }
        if let Some(first) = unknown.first()
            && !args.ignore_unknown
        {
            let (k, v) = first.split_once('=').unwrap_or((first, ""));
            return Err(CniError::unsupported(
                format!("CNI_ARGS {k}"),
                v,
                "unknown argument (set IgnoreUnknown=1 to ignore it)",
            ));
        }
        for (field, value) in [
            ("K8S_POD_NAMESPACE", &args.pod_namespace),
            ("K8S_POD_NAME", &args.pod_name),
        ] {
            if let Some(v) = value
                && !ipam::keys::is_segment(v)
            {
                return Err(CniError::env(
                    "CNI_ARGS",
                    format!("{field}={v:?} is not a name"),
                ));
            }
        }
        Ok(args)
    }
}

/// The environment of one invocation, with what the command needs checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
}

/// The identity of one attachment (ADD, DEL, CHECK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    pub container_id: String,
    /// Optional on DEL.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// Kubernetes namespace (`default` outside Kubernetes, as in Calico).
    pub namespace: String,
    /// Pod name; outside Kubernetes the container ID, as in Calico.
    pub pod: String,
    pub orchestrator: &'static str,
}

impl CniEnv {
    /// Read the variables through `var` and check those `CNI_COMMAND` needs
    /// (code 4 naming every missing one).
    pub fn parse(var: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let command = get("CNI_COMMAND")
            .ok_or_else(|| CniError::env("CNI_COMMAND", "required"))
            .and_then(|c| Command::parse(&c))?;
        let needs: &[&str] = match command {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc | Command::Version | Command::Status => &[],
        };
        let missing: Vec<&str> = needs.iter().copied().filter(|k| get(k).is_none()).collect();
        if !missing.is_empty() {
            return Err(CniError::env(
                missing.join(", "),
                format!("required for {command:?}"),
            ));
        }
        let container_id = get("CNI_CONTAINERID");
        if let Some(id) = &container_id
            && needs.contains(&"CNI_CONTAINERID")
            && !is_cni_name(id)
        {
            return Err(CniError::env(
                "CNI_CONTAINERID",
                format!("{id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),
            ));
        }
        let ifname = get("CNI_IFNAME");
        if let Some(name) = &ifname
            && needs.contains(&"CNI_IFNAME")
            && !is_ifname(name)
        {
            return Err(CniError::env(
                "CNI_IFNAME",
                format!("{name:?} is not an interface name (1-15 bytes, no '/', ':' or space)"),
            ));
        }
        let args = match command {
            Command::Add | Command::Del | Command::Check => {
                CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?
            }
            _ => CniArgs::default(),
        };
        Ok(CniEnv {
            command,
            container_id,
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            path: get("CNI_PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        })
    }

    /// The attachment an ADD, DEL or CHECK is about.
    pub fn attach(&self) -> Result<Attach, CniError> {
        let container_id = self
            .container_id
            .clone()
            .ok_or_else(|| CniError::env("CNI_CONTAINERID", "required"))?;
        let ifname = self
            .ifname
            .clone()
            .ok_or_else(|| CniError::env("CNI_IFNAME", "required"))?;
        let (namespace, pod, orchestrator) = match &self.args.pod_name {
            Some(pod) => (
                self.args
                    .pod_namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                pod.clone(),
                "k8s",
            ),
            None => ("default".to_string(), container_id.clone(), "cni"),
        };
        Ok(Attach {
            container_id,
            netns: self.netns.clone(),
            ifname,
            namespace,
            pod,
            orchestrator,
        })
    }
}

/// A Linux interface name: 1..=15 bytes, no `/`, `:`, whitespace, not `.`/`..`.
pub fn is_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::parse(|k| map.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/cni-1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1;OTHER=x",
        ),
    ];

    fn refused(pairs: &[(&str, &str)], code: u32, names: &str) {
        let e = env(pairs).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert!(e.to_string().contains(names), "{e} does not name {names}");
    }

    fn replace(key: &str, value: &str) -> Vec<(&'static str, String)> {
        ADD.iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == key {
                        value.to_string()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect()
    }

    fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(k, s)| (*k, s.as_str())).collect()
    }

    #[test]
    fn containerd_environment_parses() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.path.len(), 2);
        let a = e.attach().unwrap();
        assert_eq!((a.namespace.as_str(), a.pod.as_str()), ("default", "nginx"));
        assert_eq!(a.orchestrator, "k8s");
        assert_eq!(e.args.pod_uid.as_deref(), Some("u-1"));
    }

    #[test]
    fn missing_or_bad_variables_are_code_4_naming_them() {
        refused(&[], 4, "CNI_COMMAND");
        refused(&[("CNI_COMMAND", "BOGUS")], 4, "CNI_COMMAND");
        refused(
            &[("CNI_COMMAND", "ADD")],
            4,
            "CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME",
        );
        refused(&ADD[..2], 4, "CNI_NETNS, CNI_IFNAME");
        refused(
            &as_refs(&replace("CNI_CONTAINERID", "-x")),
            4,
            "CNI_CONTAINERID",
        );
        refused(&as_refs(&replace("CNI_IFNAME", "a/b")), 4, "CNI_IFNAME");
        refused(
            &as_refs(&replace("CNI_IFNAME", "sixteen-chars-xx")),
            4,
            "CNI_IFNAME",
        );
        refused(
            &as_refs(&replace("CNI_ARGS", "K8S_POD_NAME")),
            4,
            "CNI_ARGS",
        );
        refused(
            &as_refs(&replace("CNI_ARGS", "K8S_POD_NAME=a/b")),
            4,
            "CNI_ARGS",
        );
    }

    #[test]
    fn unknown_args_need_ignore_unknown() {
        refused(
            &as_refs(&replace("CNI_ARGS", "K8S_POD_NAME=p;FOO=bar")),
            2,
            "FOO=bar",
        );
        let ok = replace("CNI_ARGS", "FOO=bar;IgnoreUnknown=true");
        env(&as_refs(&ok)).unwrap();
    }

    #[test]
    fn del_needs_no_netns_and_version_needs_nothing() {
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
        ];
        let e = env(&del).unwrap();
        let a = e.attach().unwrap();
        assert_eq!(a.netns, None);
        assert_eq!((a.pod.as_str(), a.orchestrator), ("c", "cni"));
        // libcni's VERSION probe
        env(&[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
        ])
        .unwrap();
        env(&[("CNI_COMMAND", "GC")]).unwrap();
        env(&[("CNI_COMMAND", "STATUS")]).unwrap();
    }
}
