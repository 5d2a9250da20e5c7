//! A stand-in Kubernetes API server for lab tests: plain HTTP/1.1 on an
//! address inside a test namespace, serving just what tabby-node asks for
//! (its Node, the Node and Pod lists, the `tabby-ipam-gc` Lease) and what
//! tabby-cni asks for (a Pod and its Namespace, for their annotations), and
//! recording every request, so a test can check what the agent told
//! Kubernetes. No Kubernetes API server can be installed here; the exact
//! request encodings are checked separately against kube's mock service
//! (`agent/tests/k8s_mock.rs`), this checks the agent's wiring end to end.
//!
//! Semantics kept from the real thing: 404 Status for unknown objects, a
//! resourceVersion bumped on every write, 409 for a PUT with a stale one
//! and for a POST of an existing object. One request per connection
//! (`Connection: close`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::Netns;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: Value,
}

/// What the server holds: objects by path, and the requests so far.
#[derive(Debug, Default)]
pub struct State {
    pub nodes: BTreeMap<String, Value>,
    /// Namespace objects by name (a namespace not listed is served bare).
    pub namespaces: BTreeMap<String, Value>,
    pub pods: Vec<Value>,
    pub leases: BTreeMap<String, Value>,
    pub requests: Vec<Request>,
    version: u64,
}

/// The running server (its thread ends with the namespace's teardown; the
/// listener is non-blocking and polled, so it also ends when dropped).
pub struct ApiServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiServer({})", self.addr)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A Node object with `labels` and one InternalIP.
pub fn node_object(name: &str, internal_ip: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {}},
        "spec": {},
        "status": {"addresses": [
            {"type": "Hostname", "address": name},
            {"type": "InternalIP", "address": internal_ip}
        ], "conditions": []}
    })
}

/// A Pod object bound to `node`.
pub fn pod_object(namespace: &str, name: &str, node: &str) -> Value {
    annotated_pod(namespace, name, node, &[])
}

/// A Pod object bound to `node`, with `annotations`.
pub fn annotated_pod(
    namespace: &str,
    name: &str,
    node: &str,
    annotations: &[(&str, &str)],
) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations},
        "spec": {"nodeName": node, "containers": []}
    })
}

impl ApiServer {
    /// Listen on `addr` inside `ns`.
    pub fn start(ns: &Netns, addr: SocketAddr, state: State) -> Result<ApiServer> {
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, stopping) = (state.clone(), stop.clone());
        let listener = ns
            .spawn(move || {
                let l = TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })?
            .join()
            .map_err(|_| anyhow::anyhow!("bind thread panicked"))??;
        std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                while !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            if let Err(e) = serve(stream, &shared) {
                                eprintln!("fake apiserver: {e:#}");
                            }
                        }
                        Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    }
                }
            })?;
        Ok(ApiServer { addr, state, stop })
    }

    /// A kubeconfig pointing at this server (no auth).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: http://{}\n\
             users:\n- name: lab\n  user: {{}}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\n\
             current-context: lab\n",
            self.addr
        );
        std::fs::write(path, text).context("kubeconfig")
    }

    /// The requests so far with this method and path.
    pub fn requests(&self, method: &str, path: &str) -> Vec<Request> {
        self.state
            .lock()
            .map(|s| {
                s.requests
                    .iter()
                    .filter(|r| r.method == method && r.path == path)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn handle(state: &mut State, req: &Request) -> (u16, Value) {
    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/";
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    state.version += 1;
    let version = state.version.to_string();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["api", "v1", "nodes"]) => (
            200,
            json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": version},
                   "items": state.nodes.values().cloned().collect::<Vec<_>>()}),
        ),
        ("GET", ["api", "v1", "pods"]) => (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": version},
                   "items": state.pods.clone()}),
        ),
        ("GET", ["api", "v1", "namespaces", ns]) => (
            200,
            state.namespaces.get(*ns).cloned().unwrap_or_else(
                || json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            ),
        ),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => match state
            .pods
            .iter()
            .find(|p| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *name)
        {
            Some(p) => (200, p.clone()),
            None => status(404, "NotFound"),
        },
        ("GET", ["api", "v1", "nodes", name]) => match state.nodes.get(*name) {
            Some(n) => (200, n.clone()),
            None => status(404, "NotFound"),
        },
        ("PATCH", ["api", "v1", "nodes", name, ..]) => match state.nodes.get_mut(*name) {
            Some(n) => {
                if parts.len() == 4 {
                    merge(n, &req.body);
                }
                (200, n.clone())
            }
            None => status(404, "NotFound"),
        },
        (method, _) if req.path.starts_with(LEASES) => {
            let name = parts.get(6).copied().unwrap_or_default().to_string();
            match method {
                "GET" => match state.leases.get(&name) {
                    Some(l) => (200, l.clone()),
                    None => status(404, "NotFound"),
                },
                "POST" => {
                    let name = req.body["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if state.leases.contains_key(&name) {
                        return status(409, "AlreadyExists");
                    }
                    let mut l = req.body.clone();
                    l["metadata"]["resourceVersion"] = version.into();
                    state.leases.insert(name, l.clone());
                    (201, l)
                }
                "PUT" => {
                    let current = state
                        .leases
                        .get(&name)
                        .map(|l| l["metadata"]["resourceVersion"].clone());
                    if current != Some(req.body["metadata"]["resourceVersion"].clone()) {
                        return status(409, "Conflict");
                    }
                    let mut l = req.body.clone();
                    l["metadata"]["resourceVersion"] = version.into();
                    state.leases.insert(name, l.clone());
                    (200, l)
                }
                _ => status(405, "MethodNotAllowed"),
            }
        }
        _ => status(404, "NotFound"),
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "content-type" => content_type = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let req = Request {
        method,
        path,
        content_type,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let (code, reply) = {
        let mut s = state
            .lock()
            .map_err(|_| anyhow::anyhow!("state poisoned"))?;
        let out = handle(&mut s, &req);
        s.requests.push(req);
        out
    };
    let body = serde_json::to_vec(&reply)?;
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    Ok(())
}
