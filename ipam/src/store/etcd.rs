//! The etcd v3 backend of [`Datastore`], over `etcd-client` 0.21.
//!
//! Every call is bounded: the connection attempt by
//! [`EtcdConfig::connect_timeout`] and each request by
//! [`EtcdConfig::request_timeout`] (enforced both by gRPC and by a local
//! timer), so an unreachable etcd surfaces as [`StoreError::Unavailable`] or
//! [`StoreError::Timeout`] naming the endpoints, never as a hang.
//!
//! CAS maps one to one onto etcd transactions: each [`Compare`] becomes
//! `mod_revision(key) == rev` (etcd compares an absent key as revision 0),
//! and the failure branch reads every compared key so a conflict carries the
//! current values.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, EventType, GetOptions, Identity, TlsOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use super::{
    Compare, Datastore, Event, EventKind, KeyValue, Op, Range, Revision, StoreError, TxnOutcome,
    WatchStream,
};

/// How to reach etcd. Field names follow calico-node's `ETCD_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `ETCD_ENDPOINTS`, e.g. `http://127.0.0.1:2379` (`https://` with TLS).
    pub endpoints: Vec<String>,
    /// `ETCD_CA_CERT_FILE` / `ETCD_CERT_FILE` / `ETCD_KEY_FILE`.
    pub tls: Option<EtcdTls>,
    /// `ETCD_USERNAME` / `ETCD_PASSWORD`.
    pub credentials: Option<(String, String)>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl EtcdConfig {
    /// Plain-text endpoints with the default bounds (2 s connect, 5 s request).
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> EtcdConfig {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            credentials: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// TLS material, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// CA bundle that signed the server certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Server name to verify, if it differs from the endpoint's host.
    pub domain: Option<String>,
}

impl EtcdTls {
    /// TLS from the `ETCD_CA_CERT_FILE`/`ETCD_CERT_FILE`/`ETCD_KEY_FILE`
    /// trio (calico-node's and the conflist's names); `None` when none of
    /// the three is given, i.e. plain text.
    pub fn from_files(
        ca_file: Option<PathBuf>,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Option<EtcdTls> {
        if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
            return None;
        }
        Some(EtcdTls {
            ca_file,
            cert_file,
            key_file,
            domain: None,
        })
    }

    fn options(&self) -> Result<TlsOptions, StoreError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| StoreError::Tls(format!("{}: {e}", p.display())))
        };
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?))
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Tls(
                    "cert_file and key_file must be given together".into(),
                ));
            }
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        Ok(tls)
    }
}

/// A [`Datastore`] on a real etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: String,
    request_timeout: Duration,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Set up a client. The connection itself is made lazily by the first
    /// request (and remade after an outage), so this succeeds while etcd is
    /// down; requests then fail within the configured bound.
    pub async fn connect(config: &EtcdConfig) -> Result<EtcdStore, StoreError> {
        let endpoints = config.endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(10), config.request_timeout);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls.options()?);
        }
        if let Some((user, password)) = &config.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        let bound = config.connect_timeout + config.request_timeout;
        let connect = Client::connect(&config.endpoints, Some(options));
        let client = match tokio::time::timeout(bound, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unavailable(&endpoints, "connect", e)),
            Err(_) => {
                return Err(StoreError::Timeout {
                    endpoints,
                    operation: "connect",
                    after: bound,
                });
            }
        };
        Ok(EtcdStore {
            client,
            endpoints,
            request_timeout: config.request_timeout,
        })
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(&self.endpoints, operation, e)),
            Err(_) => Err(StoreError::Timeout {
                endpoints: self.endpoints.clone(),
                operation,
                after: self.request_timeout,
            }),
        }
    }
}

fn unavailable(endpoints: &str, operation: &'static str, e: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled => StoreError::Unavailable {
                endpoints: endpoints.into(),
                detail: s.message().into(),
            },
            Code::DeadlineExceeded => StoreError::Timeout {
                endpoints: endpoints.into(),
                operation,
                after: Duration::ZERO,
            },
            _ => StoreError::Rejected {
                operation,
                detail: s.to_string(),
            },
        },
        E::TransportError(t) => StoreError::Unavailable {
            endpoints: endpoints.into(),
            detail: t.to_string(),
        },
        E::IoError(io) => StoreError::Unavailable {
            endpoints: endpoints.into(),
            detail: io.to_string(),
        },
        other => StoreError::Rejected {
            operation,
            detail: other.to_string(),
        },
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = kv
        .key_str()
        .map_err(|_| StoreError::NonUtf8Key(String::from_utf8_lossy(kv.key()).into_owned()))?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

impl Datastore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self.bounded("get", kv.get(key, None)).await?;
        resp.kvs().first().map(key_value).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = self
            .bounded(
                "range",
                kv.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let kvs = resp.kvs().iter().map(key_value).collect::<Result<_, _>>()?;
        Ok(Range {
            kvs,
            revision: resp.header().map_or(0, |h| h.revision()),
        })
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_prefix().with_keys_only();
        let resp = self.bounded("range", kv.get(prefix, Some(options))).await?;
        resp.kvs()
            .iter()
            .map(|kv| key_value(kv).map(|kv| kv.key))
            .collect()
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        let when: Vec<_> = compares
            .iter()
            .map(|c| {
                etcd_client::Compare::mod_revision(c.key.as_str(), CompareOp::Equal, c.mod_revision)
            })
            .collect();
        let then: Vec<_> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(key, value, None),
                Op::Delete { key } => TxnOp::delete(key, None),
            })
            .collect();
        let reads: Vec<_> = compares
            .iter()
            .map(|c| TxnOp::get(c.key.as_str(), None))
            .collect();
        let txn = Txn::new().when(when).and_then(then).or_else(reads);
        let mut kv = self.client.kv_client();
        let resp = self.bounded("txn", kv.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(TxnOutcome::Committed {
                revision: resp.header().map_or(0, |h| h.revision()),
            });
        }
        let mut current = Vec::with_capacity(compares.len());
        for op in resp.op_responses() {
            match op {
                TxnOpResponse::Get(get) => {
                    current.push(get.kvs().first().map(key_value).transpose()?)
                }
                _ => {
                    return Err(StoreError::Rejected {
                        operation: "txn",
                        detail: "failure branch answered with a non-range response".into(),
                    });
                }
            }
        }
        Ok(TxnOutcome::Conflict { current })
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream, StoreError> {
        let mut options = WatchOptions::new().with_prefix();
        if from != 0 {
            options = options.with_start_revision(from);
        }
        let mut watch = self.client.watch_client();
        let mut stream = self
            .bounded("watch", watch.watch(prefix, Some(options)))
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let endpoints = self.endpoints.clone();
        let task = tokio::spawn(async move {
            loop {
                let msg = match stream.message().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(unavailable(&endpoints, "watch", e)));
                        return;
                    }
                };
                if msg.canceled() {
                    let err = if msg.compact_revision() > 0 {
                        StoreError::Compacted {
                            requested: from,
                            compacted: msg.compact_revision(),
                        }
                    } else {
                        StoreError::Rejected {
                            operation: "watch",
                            detail: msg.cancel_reason().into(),
                        }
                    };
                    let _ = tx.send(Err(err));
                    return;
                }
                for event in msg.events() {
                    let Some(kv) = event.kv() else { continue };
                    let kind = match event.event_type() {
                        EventType::Put => EventKind::Put,
                        EventType::Delete => EventKind::Delete,
                    };
                    let item = key_value(kv).map(|kv| Event { kind, kv });
                    if tx.send(item).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(WatchStream::new(rx, Some(task.abort_handle())))
    }
}
