//! A throw-away Sentinel set-up: a primary, a replica and three sentinels
//! watching it as `mymaster`, all on loopback, killed by PID when dropped.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::deployment::{Client, Deployment};
use super::{RedisServer, free_port, redis_server_binary};

pub const SERVICE: &str = "mymaster";
const READY_BUDGET: Duration = Duration::from_secs(30);

pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SentinelSet {
    /// `servers[0]` starts as primary, `servers[1]` as its replica.
    pub servers: Vec<RedisServer>,
    pub sentinels: Vec<Sentinel>,
    password: Option<String>,
}

impl SentinelSet {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    pub fn start_with(password: Option<&str>) -> Self {
        let primary = RedisServer::start_with(password, &[]);
        let replica_args = vec![
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            primary.port().to_string(),
        ];
        let replica = RedisServer::start_with(password, &replica_args);
        let sentinels = (0..3)
            .map(|_| start_sentinel(primary.port(), password))
            .collect();
        let set = Self {
            servers: vec![primary, replica],
            sentinels,
            password: password.map(str::to_owned),
        };
        set.await_ready();
        set
    }

    /// Waits (bounded) until the primary counts its replica online and every sentinel
    /// names the primary and knows the replica and its peers.
    fn await_ready(&self) {
        let deadline = Instant::now() + READY_BUDGET;
        loop {
            let replication = |server: &RedisServer| -> String {
                let mut con = server.client();
                redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut con)
                    .unwrap_or_default()
            };
            // Valkey 8.1's primary counts its replica online about 300 ms
            // after the replica reports its link up (see RedisCluster).
            let replicated = replication(&self.servers[1]).contains("master_link_status:up")
                && replication(&self.servers[0]).contains("state=online");
            let sentinels_ready = self.sentinels.iter().all(|s| {
                sentinel_client(s.port)
                    .and_then(|mut c| {
                        redis::cmd("SENTINEL")
                            .arg("MASTER")
                            .arg(SERVICE)
                            .query::<std::collections::HashMap<String, String>>(&mut c)
                    })
                    .is_ok_and(|m| {
                        m.get("num-slaves").is_some_and(|n| n == "1")
                            && m.get("num-other-sentinels").is_some_and(|n| n == "2")
                    })
            });
            if replicated && sentinels_ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel set not ready in {READY_BUDGET:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Index into `servers` of the current primary, as the sentinels say.
    pub fn primary_index(&self) -> usize {
        for s in &self.sentinels {
            let Ok(mut c) = sentinel_client(s.port) else {
                continue;
            };
            if let Ok((_, port)) = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(SERVICE)
                .query::<(String, u16)>(&mut c)
                && let Some(i) = self.servers.iter().position(|n| n.port() == port)
            {
                return i;
            }
        }
        panic!("no sentinel names a primary");
    }

    fn sentinel_list(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn sentinel_client(port: u16) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_millis(500))?;
    con.set_read_timeout(Some(Duration::from_secs(1)))?;
    Ok(con)
}

fn start_sentinel(primary_port: u16, password: Option<&str>) -> Sentinel {
    let dir = tempfile::Builder::new()
        .prefix("stickless-sentinel-")
        .tempdir()
        .expect("temp dir");
    let port = free_port();
    let conf = dir.path().join("sentinel.conf");
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel.log\n\
         sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
         sentinel down-after-milliseconds {SERVICE} 1000\n\
         sentinel failover-timeout {SERVICE} 5000\n",
        dir = dir.path().display()
    );
    if let Some(pw) = password {
        text.push_str(&format!("sentinel auth-pass {SERVICE} {pw}\n"));
    }
    fs::write(&conf, text).expect("write sentinel.conf");
    let child = Command::new(redis_server_binary())
        .arg(&conf)
        .arg("--sentinel")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server --sentinel");
    let sentinel = Sentinel {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + READY_BUDGET;
    while sentinel_client(port)
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "sentinel on {port} did not start"
        );
        thread::sleep(Duration::from_millis(5));
    }
    sentinel
}

impl Deployment for SentinelSet {
    fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis+sentinel://:{pw}@{}/{SERVICE}", self.sentinel_list()),
            None => format!("redis+sentinel://{}/{SERVICE}", self.sentinel_list()),
        }
    }

    fn url_with_password(&self, password: &str) -> String {
        format!(
            "redis+sentinel://:{password}@{}/{SERVICE}",
            self.sentinel_list()
        )
    }

    fn client(&self) -> Client {
        Client::Single(self.servers[self.primary_index()].client())
    }

    fn blocked_clients(&self, _key: &str) -> i64 {
        super::blocked_clients(&mut self.servers[self.primary_index()].client())
    }

    fn stop_owner(&self, _key: &str) {
        self.servers[self.primary_index()].stop();
    }

    fn cont_owner(&self, _key: &str) {
        for s in &self.servers {
            s.cont();
        }
    }

    fn kill_clients(&self) -> i64 {
        super::kill_clients(&mut self.servers[self.primary_index()].client())
    }

    fn name(&self) -> &'static str {
        "sentinel"
    }
}
