//! IPAM against a real etcd 3.4 (started per test by the harness).
//!
//! - `etcd_backend_has_the_memory_backends_semantics`: one script of CAS,
//!   create-if-absent, delete-if-revision, range and watch gives the same
//!   answers (revisions taken relative to the start) on both backends.
//! - `eight_allocator_processes_hand_out_10000_addresses_without_duplicates`:
//!   8 processes for 4 nodes; each logs when it got an address and when it
//!   began to give it back, with a shared wall clock. The logged holding
//!   intervals are inside the true ones, so any two overlapping intervals
//!   for one address would prove a duplicate. Afterwards the store is clean.
//! - `sigkill_mid_run_is_reported_exactly_and_repaired`: one process killed
//!   with SIGKILL; `check` must report exactly its unreleased handles (give
//!   or take the one operation in flight), and `release_leaks` repairs it.
//! - `etcd_outage_fails_fast_and_recovers`: calls fail within the bound with
//!   an error naming etcd, then succeed after etcd restarts, leaving no leak.
//!
//! The allocator processes are this test binary re-executed with
//! `allocator_worker --ignored` and the job in `TABBY_IPAM_WORKER`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{Etcd, require_live};
use ipam::check::{self, LiveOwners};
use ipam::store::{Compare, Datastore, EventKind, Op, TxnOutcome};
use ipam::{AssignArgs, EtcdConfig, EtcdStore, IpPool, Ipam, IpamError, MemoryStore};

const WORKER_ENV: &str = "TABBY_IPAM_WORKER";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(endpoint: &str) -> EtcdConfig {
    let mut c = EtcdConfig::new([endpoint]);
    c.connect_timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(1);
    c
}

async fn connect(endpoint: &str) -> Ipam<EtcdStore> {
    Ipam::new(EtcdStore::connect(&config(endpoint)).await.unwrap())
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

// ---- backend parity ---------------------------------------------------------

async fn script<S: Datastore>(s: &S) -> Vec<String> {
    let p = "/tabby-parity/";
    let mut out = Vec::new();
    let base = s.range("/").await.unwrap().revision;
    let rel = |r: i64| r - base;
    let key = |k: &str| format!("{p}{k}");
    let TxnOutcome::Committed { revision: r1 } = s.create(&key("a"), b"1".to_vec()).await.unwrap()
    else {
        panic!("create")
    };
    out.push(format!("create a -> {}", rel(r1)));
    match s.create(&key("a"), b"x".to_vec()).await.unwrap() {
        TxnOutcome::Conflict { current } => {
            let kv = current[0].as_ref().unwrap();
            out.push(format!(
                "create again -> conflict value={:?} mod={}",
                kv.value,
                rel(kv.mod_revision)
            ));
        }
        other => out.push(format!("create again -> {other:?}")),
    }
    out.push(format!(
        "stale cas -> {:?}",
        matches!(
            s.update(&key("a"), b"2".to_vec(), r1 - 1).await.unwrap(),
            TxnOutcome::Conflict { .. }
        )
    ));
    let TxnOutcome::Committed { revision: r2 } =
        s.update(&key("a"), b"2".to_vec(), r1).await.unwrap()
    else {
        panic!("cas")
    };
    out.push(format!("cas -> {}", rel(r2)));
    let multi = s
        .txn(
            vec![Compare::at(key("a"), r2), Compare::absent(key("b"))],
            vec![Op::put(key("b"), b"b".to_vec()), Op::delete(key("a"))],
        )
        .await
        .unwrap();
    out.push(format!(
        "multi -> {:?}",
        matches!(multi, TxnOutcome::Committed { revision } if rel(revision) == 3)
    ));
    let failed = s
        .txn(
            vec![Compare::at(key("b"), 0), Compare::at(key("a"), 0)],
            vec![Op::delete(key("b"))],
        )
        .await
        .unwrap();
    if let TxnOutcome::Conflict { current } = failed {
        out.push(format!(
            "conflict current -> {:?}",
            current
                .iter()
                .map(|kv| kv.as_ref().map(|kv| (
                    kv.value.clone(),
                    rel(kv.create_revision),
                    rel(kv.mod_revision)
                )))
                .collect::<Vec<_>>()
        ));
    }
    out.push(format!(
        "delete stale -> {:?}",
        matches!(
            s.delete(&key("b"), 1).await.unwrap(),
            TxnOutcome::Conflict { .. }
        )
    ));
    let range = s.range(p).await.unwrap();
    out.push(format!(
        "range -> {:?} at {}",
        range
            .kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        rel(range.revision)
    ));
    let mut watch = s.watch(p, base + 2).await.unwrap();
    s.delete(&key("b"), base + 3).await.unwrap();
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let kind = if e.kind == EventKind::Put {
            "put"
        } else {
            "delete"
        };
        out.push(format!(
            "watch {kind} {} at {}",
            e.kv.key,
            rel(e.kv.mod_revision)
        ));
    }
    out
}

#[test]
fn etcd_backend_has_the_memory_backends_semantics() {
    if !require_live(
        "etcd_backend_has_the_memory_backends_semantics",
        &["etcd", "etcdctl"],
    ) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    rt().block_on(async {
        let memory = script(&MemoryStore::new()).await;
        let live = script(&EtcdStore::connect(&config(&etcd.endpoint())).await.unwrap()).await;
        assert_eq!(live, memory);
        assert!(memory.len() > 10, "{memory:?}");
    });
}

// ---- the allocator worker -----------------------------------------------------

#[test]
#[ignore = "allocator worker process, started by the multi-process tests below"]
fn allocator_worker() {
    let Ok(job) = std::env::var(WORKER_ENV) else {
        return;
    };
    let parts: Vec<&str> = job.split_whitespace().collect();
    let [endpoint, node, id, ops, hold, log] = parts[..] else {
        panic!("bad job {job:?}")
    };
    let (ops, hold): (usize, usize) = (ops.parse().unwrap(), hold.parse().unwrap());
    let mut log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    // one write per line: what was logged survives a SIGKILL
    let mut say = |line: String| log.write_all(format!("{line}\n").as_bytes()).unwrap();
    rt().block_on(async {
        let ipam = connect(endpoint).await;
        let mut held = std::collections::VecDeque::new();
        for k in 0..ops {
            let h = format!("w{id}-{k}");
            say(format!("B {} {h}", now_ns()));
            let a = ipam
                .auto_assign(&AssignArgs::new(h.clone(), node))
                .await
                .unwrap();
            say(format!("A {} {h} {}", now_ns(), a[0].ip));
            held.push_back(h);
            while held.len() > hold || (k + 1 == ops && !held.is_empty()) {
                let r = held.pop_front().unwrap();
                say(format!("R {} {r}", now_ns()));
                assert_eq!(ipam.release_by_handle(&r).await.unwrap().len(), 1);
                say(format!("D {} {r}", now_ns()));
            }
        }
        say("END".into());
    });
}

fn spawn_worker(
    endpoint: &str,
    node: &str,
    id: usize,
    ops: usize,
    hold: usize,
    log: &Path,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "allocator_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            WORKER_ENV,
            format!("{endpoint} {node} {id} {ops} {hold} {}", log.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A worker's log: per handle, (begin, assigned, release-begin, done) times
/// and the address.
#[derive(Debug, Default, Clone)]
struct Life {
    begin: Option<u128>,
    assigned: Option<(u128, IpAddr)>,
    release: Option<u128>,
    done: Option<u128>,
}

fn read_log(path: &Path) -> (BTreeMap<String, Life>, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lives: BTreeMap<String, Life> = BTreeMap::new();
    let mut ended = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["END"] => ended = true,
            ["B", t, h] => lives.entry(h.into()).or_default().begin = Some(t.parse().unwrap()),
            ["A", t, h, ip] => {
                lives.entry(h.into()).or_default().assigned =
                    Some((t.parse().unwrap(), ip.parse().unwrap()))
            }
            ["R", t, h] => lives.entry(h.into()).or_default().release = Some(t.parse().unwrap()),
            ["D", t, h] => lives.entry(h.into()).or_default().done = Some(t.parse().unwrap()),
            _ => panic!("bad log line {line:?} in {}", path.display()),
        }
    }
    (lives, ended)
}

/// Fail if two logged holding intervals of one address overlap.
fn assert_no_duplicates(all: &BTreeMap<String, Life>) -> usize {
    let mut by_ip: BTreeMap<IpAddr, Vec<(u128, u128, &str)>> = BTreeMap::new();
    for (h, l) in all {
        if let Some((from, ip)) = l.assigned {
            by_ip
                .entry(ip)
                .or_default()
                .push((from, l.release.unwrap_or(u128::MAX), h));
        }
    }
    let mut reuses = 0;
    for (ip, mut spans) in by_ip {
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{ip} held by {} and {} at once",
                w[0].2,
                w[1].2
            );
            reuses += 1;
        }
    }
    reuses
}

async fn setup_pool(ipam: &Ipam<EtcdStore>) {
    let mut pool = IpPool::new("live", "10.10.0.0/16");
    pool.spec.block_size = Some(28);
    ipam.apply_pool(&pool).await.unwrap();
}

fn wait_all(children: &mut [Child], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for c in children.iter_mut() {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "worker failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                for c in children.iter_mut() {
                    let _ = c.kill();
                }
                panic!("workers did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn eight_allocator_processes_hand_out_10000_addresses_without_duplicates() {
    if !require_live(
        "eight_allocator_processes_hand_out_10000_addresses_without_duplicates",
        &["etcd", "etcdctl"],
    ) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async { setup_pool(&connect(&etcd.endpoint()).await).await });
    let logs: Vec<PathBuf> = (0..8)
        .map(|i| dir.path().join(format!("w{i}.log")))
        .collect();
    let mut children: Vec<Child> = (0..8)
        .map(|i| {
            spawn_worker(
                &etcd.endpoint(),
                &format!("node{}", i % 4),
                i,
                1250,
                20,
                &logs[i],
            )
        })
        .collect();
    wait_all(&mut children, Duration::from_secs(540));
    let mut all = BTreeMap::new();
    for log in &logs {
        let (lives, ended) = read_log(log);
        assert!(ended, "{} did not finish", log.display());
        all.extend(lives);
    }
    assert_eq!(
        all.values().filter(|l| l.assigned.is_some()).count(),
        10_000
    );
    assert!(
        all.values().all(|l| l.done.is_some()),
        "every handle was released"
    );
    let reuses = assert_no_duplicates(&all);
    assert!(
        reuses > 1000,
        "addresses were reused ({reuses} times), so the overlap check had work to do"
    );
    rt().block_on(async {
        let ipam = connect(&etcd.endpoint()).await;
        let state = ipam.snapshot().await.unwrap();
        assert_eq!(check::invariants(&state), vec![]);
        let report = check::check(&state, &LiveOwners::default());
        assert_eq!(
            (report.allocations, report.is_clean()),
            (0, true),
            "{report:?}"
        );
        let nodes: BTreeSet<&str> = state.affinities.keys().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes.len(), 4, "each node claimed its own blocks");
    });
}

#[test]
fn sigkill_mid_run_is_reported_exactly_and_repaired() {
    if !require_live(
        "sigkill_mid_run_is_reported_exactly_and_repaired",
        &["etcd", "etcdctl"],
    ) {
        return;
    }
    let etcd = Etcd::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async { setup_pool(&connect(&etcd.endpoint()).await).await });
    let logs: Vec<PathBuf> = (0..8)
        .map(|i| dir.path().join(format!("w{i}.log")))
        .collect();
    let mut victim = spawn_worker(&etcd.endpoint(), "node0", 0, 100_000, 12, &logs[0]);
    let mut others: Vec<Child> = (1..8)
        .map(|i| {
            spawn_worker(
                &etcd.endpoint(),
                &format!("node{}", i % 4),
                i,
                300,
                12,
                &logs[i],
            )
        })
        .collect();
    // kill the victim in the middle of its run, whatever it is doing
    harness::wait_until(
        "victim made 150 allocations",
        Duration::from_secs(120),
        || {
            Ok(read_log(&logs[0])
                .0
                .values()
                .filter(|l| l.assigned.is_some())
                .count()
                >= 150)
        },
    )
    .unwrap();
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    wait_all(&mut others, Duration::from_secs(300));
    let (lives, ended) = read_log(&logs[0]);
    assert!(!ended);
    let mut all = lives.clone();
    for log in &logs[1..] {
        all.extend(read_log(log).0);
    }
    assert_no_duplicates(&all);
    // what the victim certainly still held, and the one operation in flight
    let certain: BTreeSet<String> = lives
        .iter()
        .filter(|(_, l)| l.assigned.is_some() && l.release.is_none())
        .map(|(h, _)| h.clone())
        .collect();
    let in_flight: BTreeSet<String> = lives
        .iter()
        .filter(|(_, l)| {
            (l.begin.is_some() && l.assigned.is_none()) || (l.release.is_some() && l.done.is_none())
        })
        .map(|(h, _)| h.clone())
        .collect();
    assert!(in_flight.len() <= 1, "{in_flight:?}");
    assert_eq!(certain.len(), 12, "the victim held its full window");
    rt().block_on(async {
        let ipam = connect(&etcd.endpoint()).await;
        let live = LiveOwners::default(); // every allocator has exited
        let first = ipam.check(&live).await.unwrap();
        let leaked: BTreeSet<String> = first
            .leaked
            .iter()
            .map(|l| l.handle.clone().unwrap())
            .collect();
        assert!(
            certain.is_subset(&leaked),
            "missing leaks: {:?}",
            certain.difference(&leaked).collect::<Vec<_>>()
        );
        assert!(
            leaked.difference(&certain).all(|h| in_flight.contains(h)),
            "spurious leaks: {leaked:?} vs {certain:?}"
        );
        assert!(
            first.orphaned_handles.is_empty() && first.blocks_without_affinities.is_empty(),
            "{first:?}"
        );
        assert_eq!(check::invariants(&ipam.snapshot().await.unwrap()), vec![]);
        // one report is not enough to act on
        let repair = ipam
            .release_leaks(&ipam::Report::default(), &first, &live)
            .await
            .unwrap();
        assert!(repair.released.is_empty());
        let second = ipam.check(&live).await.unwrap();
        let repair = ipam.release_leaks(&first, &second, &live).await.unwrap();
        assert_eq!(repair.released.len(), first.leaked.len(), "{repair:?}");
        let after = ipam.check(&live).await.unwrap();
        assert!(after.is_clean(), "{after:?}");
        assert_eq!(after.allocations, 0);
        assert_eq!(check::invariants(&ipam.snapshot().await.unwrap()), vec![]);
    });
}

#[test]
fn etcd_outage_fails_fast_and_recovers() {
    if !require_live("etcd_outage_fails_fast_and_recovers", &["etcd", "etcdctl"]) {
        return;
    }
    let mut etcd = Etcd::start().unwrap();
    let endpoint = etcd.endpoint();
    let rt = rt();
    let ipam = rt.block_on(connect(&endpoint));
    let mut owners = BTreeSet::new();
    let mut ips = BTreeSet::new();
    rt.block_on(async {
        setup_pool(&ipam).await;
        for i in 0..5 {
            let a = ipam
                .auto_assign(&AssignArgs::new(format!("before-{i}"), "n1"))
                .await
                .unwrap();
            owners.insert(format!("before-{i}"));
            assert!(ips.insert(a[0].ip));
        }
    });
    etcd.stop();
    rt.block_on(async {
        for (what, fresh) in [("cached client", false), ("new client", true)] {
            let started = Instant::now();
            let e = if fresh {
                connect(&endpoint)
                    .await
                    .auto_assign(&AssignArgs::new("during", "n1"))
                    .await
                    .unwrap_err()
            } else {
                ipam.auto_assign(&AssignArgs::new("during", "n1"))
                    .await
                    .unwrap_err()
            };
            let took = started.elapsed();
            assert!(matches!(e, IpamError::Store(_)), "{what}: {e:?}");
            assert!(
                e.to_string().contains(&endpoint),
                "{what}: the error names etcd: {e}"
            );
            assert!(
                took < Duration::from_secs(4),
                "{what}: failed after {took:?}, bound is ~1 s per call"
            );
        }
    });
    etcd.start_again().unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let a = loop {
            match ipam.auto_assign(&AssignArgs::new("after-0", "n1")).await {
                Ok(a) => break a,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    assert!(matches!(e, IpamError::Store(_)), "{e:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no recovery after 30 s: {e}"),
            }
        };
        owners.insert("after-0".into());
        assert!(ips.insert(a[0].ip), "{} handed out twice", a[0].ip);
        for i in 1..5 {
            let a = ipam
                .auto_assign(&AssignArgs::new(format!("after-{i}"), "n1"))
                .await
                .unwrap();
            owners.insert(format!("after-{i}"));
            assert!(ips.insert(a[0].ip), "{} handed out twice", a[0].ip);
        }
        let live = LiveOwners {
            workloads: owners.clone(),
            nodes: BTreeSet::new(),
        };
        let report = ipam.check(&live).await.unwrap();
        // the calls that failed during the outage left nothing behind
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.allocations, 10);
    });
}
