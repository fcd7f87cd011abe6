//! Where each step goes, over which connection, and what happens when it
//! fails: the blocking half of routing (the decisions are in `route`).
//!
//! One plain `redis::Connection` per node, opened lazily and kept across
//! requests. Standalone has one node; Sentinel resolves the primary through
//! the sentinels and checks its role; Cluster routes by slot through a slot
//! map read with `CLUSTER SLOTS`. The cluster client of `redis` is not used:
//! see docs/ARCHITECTURE.md, "Topologies".

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use redis::{Connection, RedisResult, Value};

use crate::cluster::SlotMap;
use crate::config::{Config, Endpoint, HostPort, Server, Topology};
use crate::connect::{self, Role};
use crate::error::Error;
use crate::route::{Attempts, Failed, Next, Phase, Routing};

/// The value of a step, and whether it took more than one attempt (so the
/// caller can tell "already applied" from "refused" where that matters).
pub(super) struct Ran<T> {
    pub value: T,
    pub retried: bool,
}

struct Node {
    con: Connection,
    /// Read/write timeout currently set on the socket.
    io_timeout: Option<Duration>,
}

pub(super) struct Link {
    server: Server,
    connect_timeout: Duration,
    io_timeout: Duration,
    budget: Duration,
    pid: u32,
    nodes: HashMap<Endpoint, Node>,
    routing: Routing,
    round_trips: u64,
}

impl Link {
    pub fn new(config: &Config) -> Self {
        let s = &config.settings;
        Self {
            server: config.server.clone(),
            connect_timeout: s.connect_timeout,
            io_timeout: s.timeout,
            budget: s.budget,
            pid: std::process::id(),
            nodes: HashMap::new(),
            routing: Routing::new(&config.server.topology),
            round_trips: 0,
        }
    }

    /// Applies new settings; connections survive unless the server changed.
    pub fn reconfigure(&mut self, config: &Config) {
        if config.server != self.server {
            let fresh = Self::new(config);
            let old = std::mem::replace(self, fresh);
            self.round_trips = old.round_trips;
            drop(old);
        } else {
            let s = &config.settings;
            self.connect_timeout = s.connect_timeout;
            self.io_timeout = s.timeout;
            self.budget = s.budget;
        }
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// Runs `step` on the node serving `slot`, within `budget_ms`.
    pub fn run<T>(
        &mut self,
        slot: u16,
        step: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<Ran<T>, Error> {
        self.run_waiting(slot, Duration::ZERO, step)
    }

    /// Like [`run`](Self::run), for a command the server holds back for up
    /// to `wait` on purpose (BLPOP, WAIT): the reply budget grows by that much.
    pub fn run_waiting<T>(
        &mut self,
        slot: u16,
        wait: Duration,
        mut step: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<Ran<T>, Error> {
        self.forget_if_forked();
        let mut attempts = Attempts::new(self.budget, wait);
        loop {
            attempts.count += 1;
            let asking = attempts.asking.take();
            let failed = match self.attempt(slot, asking, wait, &attempts, &mut step) {
                Ok(value) => {
                    return Ok(Ran {
                        value,
                        retried: attempts.count > 1,
                    });
                }
                Err(failed) => failed,
            };
            let (next, drop_node) = attempts.absorb(&failed, &mut self.routing, slot);
            if drop_node && let Some(node) = &failed.node {
                self.nodes.remove(node);
            }
            match next {
                Next::Now => {}
                Next::Pause(pause) => thread::sleep(pause),
                Next::GiveUp => {
                    let timeouts = (self.connect_timeout, self.io_timeout, self.budget);
                    return Err(attempts.unavailable(
                        &failed,
                        &self.server.to_string(),
                        &self.routing,
                        timeouts,
                    ));
                }
            }
        }
    }

    /// One attempt: find the node, connect if needed, send.
    fn attempt<T>(
        &mut self,
        slot: u16,
        asking: Option<Endpoint>,
        wait: Duration,
        attempts: &Attempts,
        step: &mut impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, Failed> {
        let is_asking = asking.is_some();
        let node = match asking {
            Some(node) => node,
            None => self.target(slot, attempts)?,
        };
        let reused = self.nodes.contains_key(&node);
        if !reused {
            let con = self
                .open(&node, Role::Data, attempts)
                .map_err(|err| Failed::at(err, &node, Phase::Connect, false))?;
            self.nodes.insert(
                node.clone(),
                Node {
                    con,
                    io_timeout: None,
                },
            );
        }
        let reply_budget = attempts.left().saturating_sub(wait).min(self.io_timeout);
        let Some(entry) = self.nodes.get_mut(&node) else {
            unreachable!("inserted just above");
        };
        let timeout = Some(reply_budget.max(Duration::from_millis(1)) + wait);
        self.round_trips += 1 + u64::from(is_asking);
        let result = set_timeouts(entry, timeout).and_then(|()| {
            if is_asking {
                redis::cmd("ASKING").query::<()>(&mut entry.con)?;
            }
            step(&mut entry.con)
        });
        if !wait.is_zero() {
            // The socket now holds the longer timeout; set it afresh next time.
            entry.io_timeout = None;
        }
        result.map_err(|err| Failed::at(err, &node, Phase::Reply, reused))
    }

    /// The node serving `slot`, asking the sentinels or reading the slot
    /// map first when the route is unknown or stale.
    fn target(&mut self, slot: u16, attempts: &Attempts) -> Result<Endpoint, Failed> {
        if let Some(node) = self.routing.known(slot) {
            return Ok(node);
        }
        match &self.server.topology {
            Topology::Standalone(endpoint) => Ok(endpoint.clone()),
            Topology::Sentinel { sentinels, service } => {
                let (sentinels, service) = (sentinels.clone(), service.clone());
                let primary = self.ask_sentinels(&sentinels, &service, attempts)?;
                self.routing.set_primary(primary.clone());
                Ok(Endpoint::Tcp(primary))
            }
            Topology::Cluster(seeds) => {
                let seeds = seeds.clone();
                let map = self.read_slot_map(&seeds, attempts)?;
                let primary = map.primary(slot).cloned();
                self.routing.set_map(map);
                primary
                    .map(Endpoint::Tcp)
                    .ok_or_else(|| Failed::no_owner(slot))
            }
        }
    }

    /// Asks each sentinel in turn for the current primary.
    fn ask_sentinels(
        &mut self,
        sentinels: &[HostPort],
        service: &str,
        attempts: &Attempts,
    ) -> Result<HostPort, Failed> {
        let mut why = Vec::new();
        for sentinel in sentinels {
            let endpoint = Endpoint::Tcp(sentinel.clone());
            let answer = self
                .open(&endpoint, Role::Sentinel, attempts)
                .and_then(|mut con| {
                    self.round_trips += 1;
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(service)
                        .query::<Option<(String, u16)>>(&mut con)
                });
            match answer {
                Ok(Some((host, port))) => return Ok(HostPort::new(host, port)),
                Ok(None) => why.push(format!("{sentinel}: does not monitor `{service}`")),
                Err(e) => why.push(format!("{sentinel}: {e}")),
            }
            if attempts.left().is_zero() {
                break;
            }
        }
        Err(Failed::everywhere("no sentinel named the primary", why))
    }

    /// Reads the slot map from the first node that answers.
    fn read_slot_map(
        &mut self,
        seeds: &[HostPort],
        attempts: &Attempts,
    ) -> Result<SlotMap, Failed> {
        let connected = self.nodes.keys().filter_map(|e| match e {
            Endpoint::Tcp(hp) => Some(hp.clone()),
            Endpoint::Unix(_) => None,
        });
        let candidates = self.routing.map_candidates(connected, seeds);
        let mut why = Vec::new();
        for candidate in candidates {
            if attempts.left().is_zero() {
                break;
            }
            let endpoint = Endpoint::Tcp(candidate.clone());
            match self.cluster_slots(&endpoint, attempts) {
                Ok(reply) => match SlotMap::from_cluster_slots(&reply, &candidate) {
                    Ok(map) => return Ok(map),
                    Err(e) => why.push(format!("{candidate}: {e}")),
                },
                Err(e) => {
                    self.nodes.remove(&endpoint);
                    why.push(format!("{candidate}: {e}"));
                }
            }
        }
        Err(Failed::everywhere(
            "no cluster node answered CLUSTER SLOTS",
            why,
        ))
    }

    fn cluster_slots(&mut self, endpoint: &Endpoint, attempts: &Attempts) -> RedisResult<Value> {
        if !self.nodes.contains_key(endpoint) {
            let con = self.open(endpoint, Role::Data, attempts)?;
            self.nodes.insert(
                endpoint.clone(),
                Node {
                    con,
                    io_timeout: None,
                },
            );
        }
        let io = attempts
            .left()
            .min(self.io_timeout)
            .max(Duration::from_millis(1));
        let Some(node) = self.nodes.get_mut(endpoint) else {
            unreachable!("inserted just above");
        };
        set_timeouts(node, Some(io))?;
        self.round_trips += 1;
        redis::cmd("CLUSTER").arg("SLOTS").query(&mut node.con)
    }

    /// Opens a connection within what is left of the budget. A sentinel's
    /// primary is checked to still be one: sentinels learn of a failover a
    /// little after it happens.
    fn open(
        &mut self,
        endpoint: &Endpoint,
        role: Role,
        attempts: &Attempts,
    ) -> RedisResult<Connection> {
        let budget = attempts.left().max(Duration::from_millis(1));
        let mut con = connect::open(
            &self.server,
            endpoint,
            role,
            self.connect_timeout.min(budget),
            self.io_timeout.min(budget),
        )?;
        if role == Role::Data && self.routing.is_sentinel() {
            self.round_trips += 1;
            let role: Vec<Value> = redis::cmd("ROLE").query(&mut con)?;
            if !connect::is_primary(&role) {
                return Err(Failed::not_primary());
            }
        }
        Ok(con)
    }

    /// Connections inherited across `fork()` belong to the parent: forget
    /// them without a QUIT, which would close the parent's sessions too.
    fn forget_if_forked(&mut self) {
        let pid = std::process::id();
        if self.pid != pid {
            for (_, node) in self.nodes.drain() {
                std::mem::forget(node.con);
            }
            self.routing = Routing::new(&self.server.topology);
            self.pid = pid;
        }
    }
}

impl Drop for Link {
    /// A forked child that never used its inherited connections must not
    /// close them in a way that could reach the parent's sessions.
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            for (_, node) in self.nodes.drain() {
                std::mem::forget(node.con);
            }
        }
    }
}

fn set_timeouts(node: &mut Node, timeout: Option<Duration>) -> RedisResult<()> {
    if node.io_timeout != timeout {
        node.con.set_read_timeout(timeout)?;
        node.con.set_write_timeout(timeout)?;
        node.io_timeout = timeout;
    }
    Ok(())
}
