//! etcd over TLS with client certificates, against a real etcd serving
//! HTTPS only (`harness::Etcd::start_tls`): the IPAM store with the
//! settings tabby-node, tabby-cni and routectl build from
//! `ETCD_CA_CERT_FILE` / `ETCD_CERT_FILE` / `ETCD_KEY_FILE`; a client
//! without a certificate, or trusting another CA, is refused with an error
//! that says so.

use std::path::PathBuf;

use harness::{Etcd, require_live};
use ipam::{AssignArgs, EtcdConfig, EtcdStore, EtcdTls, IpPool, Ipam};

fn config(etcd: &Etcd, ca: Option<PathBuf>, identity: bool) -> EtcdConfig {
    let t = etcd.tls().expect("a TLS etcd");
    let mut c = EtcdConfig::new([etcd.endpoint()]);
    c.tls = EtcdTls::from_files(
        ca,
        identity.then(|| t.client_cert.clone()),
        identity.then(|| t.client_key.clone()),
    );
    c
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn ipam_works_over_mutual_tls_and_clients_without_the_right_certificates_are_refused() {
    if !require_live(
        "ipam_works_over_mutual_tls_and_clients_without_the_right_certificates_are_refused",
        &["etcd", "etcdctl", "openssl"],
    ) {
        return;
    }
    let etcd = Etcd::start_tls().unwrap();
    assert!(
        etcd.endpoint().starts_with("https://"),
        "{}",
        etcd.endpoint()
    );
    let ca = etcd.tls().unwrap().ca.clone();
    rt().block_on(async {
        // The full trio: pools and allocations work.
        let store = EtcdStore::connect(&config(&etcd, Some(ca.clone()), true))
            .await
            .expect("mutual TLS");
        let ipam = Ipam::new(store);
        ipam.apply_pool(&IpPool::new("tls-pool", "10.77.0.0/16"))
            .await
            .unwrap();
        let mut args = AssignArgs::new("tls-handle", "tls-node");
        args.num_v4 = 1;
        let got = ipam.auto_assign(&args).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            "10.77.0.0/16"
                .parse::<ipnet::IpNet>()
                .unwrap()
                .contains(&got[0].ip)
        );

        // No client certificate: etcd's --client-cert-auth refuses the
        // handshake; the error says it is etcd that could not be reached
        // (the connect bound itself is EtcdStore's, tested with the
        // outage in ipam_etcd.rs; tests do not time wall clocks).
        let without = config(&etcd, Some(ca.clone()), false);
        let refused = async {
            let store = EtcdStore::connect(&without)
                .await
                .map_err(|e| e.to_string())?;
            Ipam::new(store).pools().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let err = refused.await.expect_err("no client certificate");
        assert!(
            err.contains("etcd at https://127.0.0.1") && err.contains("unreachable"),
            "{err}"
        );

        // Trusting another CA (the client's own certificate as "CA"):
        // the server's certificate does not verify.
        let wrong_ca = etcd.tls().unwrap().client_cert.clone();
        let wrong = async {
            let store = EtcdStore::connect(&config(&etcd, Some(wrong_ca), true))
                .await
                .map_err(|e| e.to_string())?;
            Ipam::new(store).pools().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let err = wrong
            .await
            .expect_err("a server certificate from an untrusted CA");
        assert!(err.contains("UnknownIssuer"), "{err}");

        // A key without its certificate is a configuration error, before
        // any connection.
        let mut half = config(&etcd, Some(ca.clone()), true);
        if let Some(t) = half.tls.as_mut() {
            t.cert_file = None;
        }
        let Err(err) = EtcdStore::connect(&half).await else {
            panic!("half a pair must be refused")
        };
        assert!(err.to_string().contains("together"), "{err}");
    });
}

#[test]
fn routectl_reads_etcd_over_tls_with_the_calico_variables() {
    if !require_live(
        "routectl_reads_etcd_over_tls_with_the_calico_variables",
        &["etcd", "etcdctl", "openssl"],
    ) {
        return;
    }
    let etcd = Etcd::start_tls().unwrap();
    let t = etcd.tls().unwrap().clone();
    let routectl = harness::lab::workspace_binary("routectl").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pool.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: tls-pool\nspec:\n  cidr: 10.78.0.0/16\n",
    )
    .unwrap();
    let run = |args: &[&str], tls: bool| {
        let mut cmd = std::process::Command::new(&routectl);
        cmd.args(args).env("ETCD_ENDPOINTS", etcd.endpoint());
        if tls {
            cmd.env("ETCD_CA_CERT_FILE", &t.ca)
                .env("ETCD_CERT_FILE", &t.client_cert)
                .env("ETCD_KEY_FILE", &t.client_key);
        }
        cmd.output().unwrap()
    };
    let applied = run(&["apply", "-f", &manifest.to_string_lossy()], true);
    assert!(applied.status.success(), "{applied:?}");
    let shown = run(&["ipam", "show"], true);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success() && text.contains("10.78.0.0/16"),
        "{shown:?}"
    );
    // Without the TLS variables: exit 1 (etcd could not be asked), with a
    // message, and nothing on stdout.
    let plain = run(&["ipam", "show"], false);
    assert_eq!(plain.status.code(), Some(1), "{plain:?}");
    assert!(plain.stdout.is_empty());
    assert!(!plain.stderr.is_empty());
}
