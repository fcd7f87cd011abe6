//! `--topology cluster`: a Redis Cluster of N primaries (no replicas, so
//! every server counted serves requests) on loopback, for the scale-out
//! figures. Slots are split evenly; a cluster of one holds them all.
//! Started in a directory of its own, killed by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::handlers::Handler;
use crate::metrics::RedisSample;

/// How long the nodes may take to answer and to agree on the slots.
const READY: Duration = Duration::from_secs(30);
const SLOTS: u32 = 16384;

/// A running cluster.
pub struct Cluster {
    nodes: Vec<(Child, u16)>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts `primaries` cluster-mode servers under `dir` and gives each an
    /// even share of the slots.
    pub fn start(dir: &Path, primaries: u32) -> Result<Self> {
        if primaries == 0 {
            bail!("--primaries: a cluster needs at least one primary");
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir: dir.to_path_buf(),
        };
        for i in 0..primaries {
            let port = crate::free_port()?;
            let node_dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"])
                .arg("--dir")
                .arg(&node_dir)
                .arg("--logfile")
                .arg(node_dir.join("redis.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server (apt-get install redis-server)")?;
            cluster.nodes.push((child, port));
        }
        for &port in &cluster.ports() {
            cluster.await_answer(port)?;
        }
        let ports = cluster.ports();
        let n = u32::try_from(ports.len()).unwrap_or(1);
        for (i, &port) in (0u32..).zip(&ports) {
            let (first, last) = (SLOTS * i / n, SLOTS * (i + 1) / n - 1);
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut con(port)?)
                .with_context(|| format!("CLUSTER ADDSLOTSRANGE on {port}"))?;
        }
        for &port in &ports[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(ports[0])
                .query(&mut con(port)?)
                .with_context(|| format!("CLUSTER MEET from {port}"))?;
        }
        cluster.await_agreement()?;
        Ok(cluster)
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(_, port)| *port).collect()
    }

    /// The seed list stickless is configured with.
    pub fn save_path(&self, query: &str) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}?prefix=bench:{query}", seeds.join(","))
    }

    /// Counters of each node, in the order of [`ports`](Self::ports).
    pub fn sample_nodes(&self) -> Result<Vec<RedisSample>> {
        self.ports().into_iter().map(RedisSample::take).collect()
    }

    /// Counters of every node, summed.
    pub fn sample(&self) -> Result<RedisSample> {
        let mut total = RedisSample::default();
        for one in self.sample_nodes()? {
            total.cpu_us += one.cpu_us;
            for (name, calls) in one.calls {
                *total.calls.entry(name).or_default() += calls;
            }
        }
        Ok(total)
    }

    fn await_answer(&self, port: u16) -> Result<()> {
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(mut c) = con(port)
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server on port {port} did not answer within {READY:?} (see {})",
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node knows every other and serves all slots.
    fn await_agreement(&self) -> Result<()> {
        let deadline = Instant::now() + READY;
        let n = self.nodes.len();
        loop {
            let agreed = self.ports().iter().all(|&port| {
                con(port)
                    .and_then(|mut c| {
                        Ok(redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c)?)
                    })
                    .is_ok_and(|info| {
                        info.contains("cluster_state:ok")
                            && info.contains(&format!("cluster_known_nodes:{n}\r"))
                    })
            });
            if agreed {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster's {n} nodes did not agree within {READY:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn con(port: u16) -> Result<redis::Connection> {
    let con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Our own children, by PID.
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// The stack's one redis-server.
    Standalone,
    /// A Redis Cluster of `--primaries` primaries.
    Cluster,
}

/// Whether `handler` can keep its sessions on a cluster: stickless can;
/// phpredis's `rediscluster` handler does not lock, memcached and files do
/// not use Redis.
pub fn serves(handler: &Handler) -> bool {
    handler
        .env
        .iter()
        .any(|(key, value)| *key == "SESSION_HANDLER" && value == "stickless")
}

/// `handler` with its save path's options on `cluster`'s seeds.
pub fn on(handler: &Handler, cluster: &Cluster) -> Handler {
    let mut handler = handler.clone();
    for (key, value) in &mut handler.env {
        if *key == "SESSION_SAVE_PATH" {
            let options = value.split_once("?prefix=bench:").map_or("", |(_, q)| q);
            *value = cluster.save_path(options);
        }
    }
    handler
}
