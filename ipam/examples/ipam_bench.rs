//! IPAM allocation rate against the raw CAS rate of the same etcd, measured
//! side by side in one run (absolute numbers on a shared machine mean
//! little; the ratios are the result).
//!
//! ```text
//! cargo run --release -p tabby-ipam --example ipam_bench -- [--endpoint URL] [--ops N] [--rounds R] [--block-size B]
//! ```
//!
//! Without `--endpoint` it starts its own etcd (data on /dev/shm, free
//! loopback ports) and stops it by PID at the end. Each round measures:
//! 1. raw CAS: N sequential `mod_revision`-guarded txns on one key;
//! 2. one allocator: N sequential `auto_assign` calls for one node —
//!    1 and 2 interleaved in batches of 50, so both see the same load;
//! 3. eight allocators for eight nodes, each on its own thread and
//!    connection, N calls each, started together once all are warm;
//!    aggregate rate = all calls over the longest allocator's time;
//! 4. eight raw CAS chains at once, timed the same way: how far this etcd
//!    on this machine scales with concurrency at all (the ceiling of 3).
//!
//! Goals (issue 6): (2) ≥ 0.8 × (1); (3) ≥ 2 × (2).
//!
//! With its own etcd it also prints the CPU each kind of operation cost,
//! etcd's and the bench's own (from `/proc/<pid>/stat`, 10 ms ticks summed
//! over the whole phase): on a machine where etcd and the allocators share
//! the cores, `cores / (CPU per op)` bounds the concurrent rates.
//! `--disk` puts etcd's data in a directory on disk (its WAL fsyncs then
//! wait for the device, as in production) instead of `/dev/shm`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipam::store::{Datastore, TxnOutcome};
use ipam::{AssignArgs, EtcdConfig, EtcdStore, IpPool, Ipam};

struct OwnEtcd {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_etcd(on_disk: bool) -> Result<(OwnEtcd, String)> {
    let (client, peer) = (free_port()?, free_port()?);
    let base = if on_disk { "/var/tmp" } else { "/dev/shm" };
    let dir = std::path::PathBuf::from(format!("{base}/tabby-ipam-bench-{}", std::process::id()));
    let curl = format!("http://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("data"))
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args([
            "--initial-cluster",
            &format!("bench={purl}"),
            "--initial-cluster-state",
            "new",
        ])
        .args(["--log-level", "error", "--logger", "zap"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start etcd (is etcd-server installed?)")?;
    Ok((OwnEtcd { child, dir }, curl))
}

/// CPU time (user + system) a process has used, in 10 ms ticks (Linux's
/// `USER_HZ` is 100), all its threads together; 0 when unreadable.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // the command name may hold spaces: fields count from after its ')'
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU used by etcd and by this bench while a phase ran.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    etcd: u64,
    bench: u64,
}

impl Cpu {
    fn add(&mut self, other: Cpu) {
        self.etcd += other.etcd;
        self.bench += other.bench;
    }

    /// Microseconds of CPU per operation, etcd's and the bench's.
    fn per_op(self, ops: usize) -> (f64, f64) {
        let us = |ticks: u64| ticks as f64 * 10_000.0 / ops as f64;
        (us(self.etcd), us(self.bench))
    }
}

/// Counts the CPU of etcd (when the bench started it) and of the bench.
#[derive(Debug, Clone, Copy)]
struct CpuMeter {
    etcd: Option<u32>,
}

impl CpuMeter {
    fn now(self) -> Cpu {
        Cpu {
            etcd: self.etcd.map_or(0, cpu_ticks),
            bench: cpu_ticks(std::process::id()),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        let now = self.now();
        Cpu {
            etcd: now.etcd - start.etcd,
            bench: now.bench - start.bench,
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn store(endpoint: &str) -> Result<EtcdStore> {
    Ok(EtcdStore::connect(&EtcdConfig::new([endpoint])).await?)
}

/// `ops` sequential CAS updates of one tiny key, the chain checked.
async fn raw_cas_on(
    endpoint: &str,
    name: &str,
    ops: usize,
    start_together: Option<Arc<Barrier>>,
) -> Result<f64> {
    let key = format!("/tabby-bench/cas-{name}");
    let warm = async {
        let s = store(endpoint).await?;
        let TxnOutcome::Committed { revision } = s.create(&key, b"0".to_vec()).await? else {
            bail!("cas key exists")
        };
        Ok((s, revision))
    }
    .await;
    // reached also after a failed set-up, so nobody waits for this thread
    if let Some(b) = start_together {
        b.wait();
    }
    let (s, mut revision) = warm?;
    let start = Instant::now();
    for i in 1..=ops {
        match s.update(&key, i.to_string().into_bytes(), revision).await? {
            TxnOutcome::Committed { revision: r } => revision = r,
            TxnOutcome::Conflict { .. } => bail!("CAS chain broken at {i}"),
        }
    }
    Ok(ops as f64 / start.elapsed().as_secs_f64())
}

/// Phases 1 and 2 interleaved: batches of [`BATCH`] raw CAS updates and
/// [`BATCH`] allocations for one node, alternating, each kind's time
/// summed, so that both rates see the same machine (a neighbour's build
/// starting mid-run slows both, not one). Returns the rate and CPU of each:
/// (CAS/s, CAS CPU, allocations/s, allocation CPU).
async fn interleaved(
    endpoint: &str,
    round: usize,
    ops: usize,
    meter: CpuMeter,
) -> Result<(f64, Cpu, f64, Cpu)> {
    let cas = store(endpoint).await?;
    let key = format!("/tabby-bench/cas-{round}");
    let TxnOutcome::Committed { mut revision } = cas.create(&key, b"0".to_vec()).await? else {
        bail!("cas key exists")
    };
    let ipam = Ipam::new(store(endpoint).await?);
    let node = format!("r{round}-single");
    ipam.auto_assign(&AssignArgs::new(format!("{node}-warm"), node.clone()))
        .await?;
    let (mut cas_time, mut alloc_time) = (Duration::ZERO, Duration::ZERO);
    let (mut cas_cpu, mut alloc_cpu) = (Cpu::default(), Cpu::default());
    let mut done = 0;
    while done < ops {
        let n = BATCH.min(ops - done);
        let cpu = meter.now();
        let start = Instant::now();
        for i in done..done + n {
            match cas
                .update(&key, i.to_string().into_bytes(), revision)
                .await?
            {
                TxnOutcome::Committed { revision: r } => revision = r,
                TxnOutcome::Conflict { .. } => bail!("CAS chain broken at {i}"),
            }
        }
        cas_time += start.elapsed();
        cas_cpu.add(meter.since(cpu));
        let cpu = meter.now();
        let start = Instant::now();
        for i in done..done + n {
            ipam.auto_assign(&AssignArgs::new(format!("{node}-{i}"), node.clone()))
                .await?;
        }
        alloc_time += start.elapsed();
        alloc_cpu.add(meter.since(cpu));
        done += n;
    }
    Ok((
        ops as f64 / cas_time.as_secs_f64(),
        cas_cpu,
        ops as f64 / alloc_time.as_secs_f64(),
        alloc_cpu,
    ))
}

/// Operations per batch of [`interleaved`].
const BATCH: usize = 50;

/// `ops` allocations for `node`, timed after a warm-up (connect, first
/// block claim) and, with `start_together`, after every allocator of the
/// run is warm: concurrent allocators are timed over the same interval.
async fn allocate(
    endpoint: String,
    node: String,
    ops: usize,
    start_together: Option<Arc<Barrier>>,
) -> Result<(usize, Duration)> {
    // warm-up: connect, and the first call claims a block
    let warm = async {
        let ipam = Ipam::new(store(&endpoint).await?);
        ipam.auto_assign(&AssignArgs::new(format!("{node}-warm"), node.clone()))
            .await?;
        anyhow::Ok(ipam)
    }
    .await;
    // reached also after a failed warm-up, so nobody waits for this thread
    if let Some(b) = start_together {
        b.wait();
    }
    let ipam = warm?;
    let start = Instant::now();
    for i in 0..ops {
        ipam.auto_assign(&AssignArgs::new(format!("{node}-{i}"), node.clone()))
            .await?;
    }
    Ok((ops, start.elapsed()))
}

/// Eight allocators for eight nodes, each on its own thread, runtime and
/// connection, started together once all are warm: total allocations over
/// the longest one's time, and the CPU used from the start.
fn parallel(endpoint: &str, round: usize, ops: usize, meter: CpuMeter) -> Result<(f64, Cpu)> {
    let barrier = Arc::new(Barrier::new(9));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (endpoint, node) = (endpoint.to_string(), format!("r{round}-multi-{i}"));
            let b = Some(Arc::clone(&barrier));
            std::thread::spawn(move || runtime()?.block_on(allocate(endpoint, node, ops, b)))
        })
        .collect();
    join_rate(threads, &barrier, meter)
}

/// Eight raw CAS chains on eight keys at once, as [`parallel`]: how far
/// concurrency can take this etcd on this machine at all (the ceiling of
/// the 8-allocator figure).
fn parallel_cas(endpoint: &str, round: usize, ops: usize, meter: CpuMeter) -> Result<(f64, Cpu)> {
    let barrier = Arc::new(Barrier::new(9));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let endpoint = endpoint.to_string();
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                runtime()?.block_on(async {
                    let key = format!("r{round}-multi-{i}");
                    let rate = raw_cas_on(&endpoint, &key, ops, Some(b)).await?;
                    Ok((ops, Duration::from_secs_f64(ops as f64 / rate)))
                })
            })
        })
        .collect();
    join_rate(threads, &barrier, meter)
}

/// Release the threads (waiting on `barrier` once warm), then total their
/// operations over the longest one's time, with the CPU used meanwhile.
fn join_rate(
    threads: Vec<std::thread::JoinHandle<Result<(usize, Duration)>>>,
    barrier: &Barrier,
    meter: CpuMeter,
) -> Result<(f64, Cpu)> {
    // every thread reaches the barrier, warm or failed (see `allocate`)
    barrier.wait();
    let cpu = meter.now();
    let mut total = 0;
    let mut longest = Duration::ZERO;
    for t in threads {
        let (n, took) = t
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
        total += n;
        longest = longest.max(took);
    }
    Ok((total as f64 / longest.as_secs_f64(), meter.since(cpu)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut endpoint, mut ops, mut rounds, mut block_size) = (None, 1000usize, 3usize, 26u8);
    let mut on_disk = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--disk" => on_disk = true,
            "--endpoint" => endpoint = args.next(),
            "--ops" => ops = args.next().context("--ops N")?.parse()?,
            "--rounds" => rounds = args.next().context("--rounds R")?.parse()?,
            "--block-size" => block_size = args.next().context("--block-size B")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let _own;
    let mut meter = CpuMeter { etcd: None };
    let endpoint = match endpoint {
        Some(e) => e,
        None => {
            let (own, url) = start_etcd(on_disk)?;
            meter.etcd = Some(own.child.id());
            _own = own;
            url
        }
    };
    let rt = runtime()?;
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match async {
                store(&endpoint)
                    .await?
                    .get("/tabby-bench/ready")
                    .await
                    .map_err(anyhow::Error::from)
            }
            .await
            {
                Ok(_) => break Ok(()),
                Err(e) if Instant::now() > deadline => break Err(e.context("etcd not ready")),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })?;
    rt.block_on(async {
        let ipam = Ipam::new(store(&endpoint).await?);
        let mut pool = IpPool::new("bench", "10.64.0.0/12");
        pool.spec.block_size = Some(block_size);
        ipam.apply_pool(&pool).await?;
        anyhow::Ok(())
    })?;
    let (mut cas, mut one, mut eight, mut cas8) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // CPU per phase, summed over the rounds: CAS, 1 allocator, 8, 8 chains
    let mut cpu = [Cpu::default(); 4];
    for round in 0..rounds {
        let (c, c_cpu, s, s_cpu) = rt.block_on(interleaved(&endpoint, round, ops, meter))?;
        let (m, m_cpu) = parallel(&endpoint, round, ops, meter)?;
        let (c8, c8_cpu) = parallel_cas(&endpoint, round, ops, meter)?;
        println!(
            "round {round}: raw CAS {c:.0}/s, 1 allocator {s:.0}/s ({:.2}x CAS), 8 allocators {m:.0}/s ({:.2}x single); 8 raw CAS chains {c8:.0}/s ({:.2}x one chain)",
            s / c,
            m / s,
            c8 / c
        );
        cas.push(c);
        one.push(s);
        eight.push(m);
        cas8.push(c8);
        for (sum, phase) in cpu.iter_mut().zip([c_cpu, s_cpu, m_cpu, c8_cpu]) {
            sum.add(phase);
        }
    }
    let ceiling = median(cas8.iter().zip(&cas).map(|(m, c)| m / c).collect());
    let ratio1 = median(one.iter().zip(&cas).map(|(s, c)| s / c).collect());
    let ratio8 = median(eight.iter().zip(&one).map(|(m, s)| m / s).collect());
    println!(
        "median of {rounds} rounds, {ops} ops each: raw CAS {:.0}/s; 1 allocator {:.0}/s = {ratio1:.2} x CAS (goal >= 0.8); 8 allocators {:.0}/s = {ratio8:.2} x single (goal >= 2)",
        median(cas),
        median(one),
        median(eight)
    );
    println!(
        "  the same etcd's own concurrency ceiling: 8 raw CAS chains at once = {ceiling:.2} x one chain"
    );
    if meter.etcd.is_some() {
        let names = ["raw CAS", "1 allocator", "8 allocators", "8 CAS chains"];
        let counts = [
            ops * rounds,
            ops * rounds,
            8 * ops * rounds,
            8 * ops * rounds,
        ];
        let per_op: Vec<String> = names
            .iter()
            .zip(cpu.iter().zip(counts))
            .map(|(name, (c, n))| {
                let (etcd, bench) = c.per_op(n);
                format!("{name} {etcd:.0} + {bench:.0}")
            })
            .collect();
        println!(
            "  CPU per operation, etcd + client, microseconds ({} cores here): {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            per_op.join("; ")
        );
    }
    Ok(())
}
