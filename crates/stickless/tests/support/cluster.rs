//! A throw-away Redis Cluster: 3 primaries and 3 replicas on loopback,
//! joined with `redis-cli --cluster create`, killed by PID when dropped.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::RedisServer;
use super::deployment::{Client, Deployment};

/// How long a new cluster may take to agree on its slots.
const FORM_BUDGET: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    password: Option<String>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Node timeout 1 s: a dead primary is replaced within a few seconds.
    /// Full coverage off: the other primaries keep serving meanwhile.
    pub fn start_with(password: Option<&str>) -> Self {
        Self::start_with_node_args(password, 0, |_| Vec::new()).0
    }

    /// Every node also serves TLS (and speaks TLS on the cluster bus and for
    /// replication) with certificates from `ca`; `tls_ports()` lists the ports.
    pub fn start_tls(ca: &super::tls::TestCa) -> (Self, Vec<u16>) {
        Self::start_with_node_args(None, 1, |ports| {
            let mut args = ca.server_args(ports[0], false);
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
            args
        })
    }

    /// Six nodes, each listening on `extra` more ports that `node_args`
    /// gets (chosen per start attempt); returns those ports, node by node.
    fn start_with_node_args(
        password: Option<&str>,
        extra: usize,
        node_args: impl Fn(&[u16]) -> Vec<String>,
    ) -> (Self, Vec<u16>) {
        let args: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-require-full-coverage",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (nodes, extra_ports): (Vec<RedisServer>, Vec<Vec<u16>>) = (0..6)
            .map(|_| {
                RedisServer::start_with_ports(password, extra, |ports| {
                    let mut all = args.clone();
                    all.extend(node_args(ports));
                    all
                })
            })
            .unzip();
        let mut create = Command::new(super::redis_cli_binary());
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        if let Some(pw) = password {
            create.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = create.output().unwrap_or_else(|e| {
            panic!(
                "run {} (apt-get install redis-tools): {e}",
                super::redis_cli_binary()
            )
        });
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            nodes,
            password: password.map(str::to_owned),
        };
        cluster.await_formed();
        (cluster, extra_ports.concat())
    }

    /// Waits (bounded) until every node reports `cluster_state:ok` and
    /// knows all six nodes, and every primary counts its replica online.
    /// Valkey 8.1's replica reports its link up while its primary still
    /// lists it as `wait_bgsave`, for about 300 ms more (measured): until
    /// then a `WAIT` on the primary cannot count it.
    fn await_formed(&self) {
        let deadline = Instant::now() + FORM_BUDGET;
        loop {
            let ready = self.nodes.iter().all(|n| {
                let mut con = n.client();
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut con)
                    .unwrap_or_default();
                let repl: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_known_nodes:6")
                    && (repl.contains("master_link_status:up")
                        || (repl.contains("connected_slaves:1") && repl.contains("state=online")))
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not form in {FORM_BUDGET:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node currently serving `slot` as primary (asked of any live node).
    pub fn primary_index(&self, slot: u16) -> usize {
        for node in &self.nodes {
            let Ok(mut con) = node.try_client_pub(Duration::from_millis(300)) else {
                continue;
            };
            let Ok(reply) = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<redis::Value>(&mut con)
            else {
                continue;
            };
            let asked = stickless::config::HostPort::new("127.0.0.1", node.port());
            let Ok(map) = stickless::cluster::SlotMap::from_cluster_slots(&reply, &asked) else {
                continue;
            };
            if let Some(owner) = map.primary(slot)
                && let Some(i) = self.nodes.iter().position(|n| n.port() == owner.port)
            {
                return i;
            }
        }
        panic!("no live node knows who serves slot {slot}");
    }

    /// Waits (bounded) until a live node other than `dead` serves `slot`.
    pub fn await_failover(&self, slot: u16, dead: usize, budget: Duration) -> usize {
        let deadline = Instant::now() + budget;
        loop {
            let owner = self.primary_index(slot);
            if owner != dead {
                let mut con = self.nodes[owner].client();
                let role: Vec<redis::Value> =
                    redis::cmd("ROLE").query(&mut con).unwrap_or_default();
                if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                    return owner;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover of slot {slot} within {budget:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn seeds(&self) -> String {
        // Two seeds of six: any subset must do.
        self.nodes[..2]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Deployment for RedisCluster {
    fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis+cluster://:{pw}@{}", self.seeds()),
            None => format!("redis+cluster://{}", self.seeds()),
        }
    }

    fn url_with_password(&self, password: &str) -> String {
        format!("redis+cluster://:{password}@{}", self.seeds())
    }

    fn client(&self) -> Client {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &self.password {
                Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", n.port()),
                None => format!("redis://127.0.0.1:{}", n.port()),
            })
            .collect();
        let con = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .build()
            .and_then(|c| c.get_connection())
            .expect("cluster client for assertions");
        Client::Cluster(Box::new(con))
    }

    fn blocked_clients(&self, key: &str) -> i64 {
        let i = self.primary_index(stickless::cluster::slot(key));
        super::blocked_clients(&mut self.nodes[i].client())
    }

    fn stop_owner(&self, key: &str) {
        let i = self.primary_index(stickless::cluster::slot(key));
        self.nodes[i].stop();
    }

    fn cont_owner(&self, _key: &str) {
        for node in &self.nodes {
            node.cont();
        }
    }

    fn kill_clients(&self) -> i64 {
        self.nodes
            .iter()
            .filter_map(|n| n.try_client_pub(Duration::from_secs(2)).ok())
            .map(|mut con| super::kill_clients(&mut con))
            .sum()
    }

    fn name(&self) -> &'static str {
        "cluster"
    }
}
