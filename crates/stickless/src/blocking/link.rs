//! Where each step goes, over which connection, and what happens when it
//! fails: the blocking half of routing (the decisions are in `route`).
//!
//! One plain `redis::Connection` per node, opened lazily and kept across
//! requests. Standalone has one node; Sentinel resolves the primary through
//! the sentinels and checks its role; Cluster routes by slot through a slot
//! map read with `CLUSTER SLOTS`. The cluster client of `redis` is not used:
//! see docs/ARCHITECTURE.md, "Topologies".
//!
//! Everything a step does stays within its budget: name lookups and
//! connects run on helper threads waited on until the deadline (`dial`),
//! and each exchange on a connection goes through a `Deadlined` wrapper
//! that gives every write and every reply only what is left of the
//! exchange's limit (`deadline`).

mod deadline;
mod dial;

use std::collections::HashMap;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, ConnectionLike, RedisError, RedisResult, Value};

use crate::cluster::SlotMap;
use crate::config::{Config, Endpoint, HostPort, Server, Topology};
use crate::connect::{self, Role};
use crate::error::Error;
use crate::route::{Attempts, Batch, Failed, Limit, Next, Op, Phase, Routing, Taken};
use deadline::{Deadlined, Timeouts};
use dial::{Dialing, Plan};

/// The value of a step, and whether it took more than one attempt (so the
/// caller can tell "already applied" from "refused" where that matters).
pub(super) struct Ran<T> {
    pub value: T,
    pub retried: bool,
}

struct Node {
    con: Connection,
    /// The socket timeouts currently set, so that an exchange sets them
    /// only when they differ from what it needs.
    timeouts: Timeouts,
}

/// What an exchange returned, and whether the connection is of no further
/// use: a send or a read failed or ran out of time, so it may still get a
/// late reply, which the next step would read as its own.
struct Exchanged<T> {
    result: RedisResult<T>,
    broken: bool,
}

impl Node {
    fn new(con: Connection) -> Self {
        Self {
            con,
            // Unknown (the connect set its own): the first exchange sets them.
            timeouts: Timeouts::default(),
        }
    }

    /// Runs `f` within `limit`, all its writes and replies together: a
    /// pipeline reads once per command, and would otherwise wait `limit`
    /// for each.
    fn exchange<T>(
        &mut self,
        limit: Limit,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Exchanged<T> {
        let deadline = Instant::now() + limit.time;
        let mut con = Deadlined::new(&mut self.con, &mut self.timeouts, deadline);
        let result = f(&mut con);
        Exchanged {
            result,
            broken: con.broken(),
        }
    }
}

pub(super) struct Link {
    server: Server,
    connect_timeout: Duration,
    io_timeout: Duration,
    budget: Duration,
    pid: u32,
    nodes: HashMap<Endpoint, Node>,
    /// Connects that outlived their step, for the next step to wait on
    /// instead of starting another.
    dialing: HashMap<(Endpoint, Role), Dialing>,
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
            dialing: HashMap::new(),
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

    /// The process this link last ran a step in (checked at the start of
    /// every step, so current right after one).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// Runs `op` on the node serving `slot`, within `budget_ms`.
    pub fn run(&mut self, slot: u16, op: Op<'_>) -> Result<Ran<Value>, Error> {
        self.run_waiting(slot, Duration::ZERO, op)
    }

    /// Like [`run`](Self::run), for a command the server holds back for up
    /// to `wait` on purpose (BLPOP, WAIT): the reply budget grows by that much.
    pub fn run_waiting(
        &mut self,
        slot: u16,
        wait: Duration,
        op: Op<'_>,
    ) -> Result<Ran<Value>, Error> {
        self.forget_if_forked();
        let mut attempts = Attempts::new(self.budget, wait);
        let mut batch = Batch::new(op);
        loop {
            attempts.count += 1;
            let asking = attempts.asking.take();
            let failed = match self.attempt(slot, asking, wait, &attempts, &mut batch) {
                Ok(()) if batch.is_complete() => {
                    return Ok(Ran {
                        value: batch.into_reply(),
                        retried: attempts.count > 1,
                    });
                }
                // What an ASK sent elsewhere is answered; the rest goes to
                // the slot's owner.
                Ok(()) => continue,
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

    /// One attempt: find the node, connect if needed, send what is still
    /// unanswered (loading a script the node does not know, and sending
    /// again, within the attempt).
    fn attempt(
        &mut self,
        slot: u16,
        asking: Option<Endpoint>,
        wait: Duration,
        attempts: &Attempts,
        batch: &mut Batch<'_>,
    ) -> Result<(), Failed> {
        let is_asking = asking.is_some();
        let node = match asking {
            Some(node) => node,
            None => self.target(slot, attempts)?,
        };
        let reused = self.nodes.contains_key(&node);
        if !reused {
            let fresh = self.open(&node, Role::Data, attempts)?;
            self.nodes.insert(node.clone(), fresh);
        }
        loop {
            let limit = attempts.limit(self.io_timeout + wait);
            let Some(entry) = self.nodes.get_mut(&node) else {
                // Dropped after a broken exchange: the step retries.
                let broke = io::Error::new(io::ErrorKind::BrokenPipe, "the connection broke");
                return Err(Failed::at(broke.into(), &node, Phase::Reply, reused));
            };
            let (pipe, sent) = batch.pipeline(is_asking, attempts.count > 1);
            self.round_trips += 1;
            let exchanged = entry.exchange(limit, |con| pipe.query::<Vec<Value>>(con));
            if exchanged.broken {
                self.nodes.remove(&node);
            }
            let replies = exchanged
                .result
                .map_err(|err| Failed::at(err, &node, Phase::Reply, reused).within(limit))?;
            let load = match batch.take(&sent, replies) {
                Taken::Complete | Taken::Partial => return Ok(()),
                Taken::Failed(err) => {
                    return Err(Failed::at(err, &node, Phase::Reply, reused).within(limit));
                }
                Taken::Load(script) => script,
            };
            let limit = attempts.limit(self.io_timeout);
            let Some(entry) = self.nodes.get_mut(&node) else {
                continue;
            };
            self.round_trips += 1;
            let exchanged = entry.exchange(limit, |con| load.load(con));
            if exchanged.broken {
                self.nodes.remove(&node);
            }
            exchanged
                .result
                .map_err(|err| Failed::at(err, &node, Phase::Reply, reused).within(limit))?;
        }
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
                .and_then(|mut node| {
                    self.round_trips += 1;
                    let limit = attempts.limit(self.io_timeout);
                    node.exchange(limit, |con| {
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(service)
                            .query::<Option<(String, u16)>>(con)
                    })
                    .result
                    .map_err(|e| Failed::at(e, &endpoint, Phase::Reply, false).within(limit))
                });
            match answer {
                Ok(Some((host, port))) => return Ok(HostPort::new(host, port)),
                Ok(None) => why.push(format!("{sentinel}: does not monitor `{service}`")),
                Err(failed) => why.push(format!("{sentinel}: {}", failed.brief())),
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
                Err(failed) => {
                    self.nodes.remove(&endpoint);
                    why.push(format!("{candidate}: {}", failed.brief()));
                }
            }
        }
        Err(Failed::everywhere(
            "no cluster node answered CLUSTER SLOTS",
            why,
        ))
    }

    fn cluster_slots(&mut self, endpoint: &Endpoint, attempts: &Attempts) -> Result<Value, Failed> {
        if !self.nodes.contains_key(endpoint) {
            let fresh = self.open(endpoint, Role::Data, attempts)?;
            self.nodes.insert(endpoint.clone(), fresh);
        }
        let limit = attempts.limit(self.io_timeout);
        let Some(node) = self.nodes.get_mut(endpoint) else {
            unreachable!("inserted just above");
        };
        self.round_trips += 1;
        let exchanged = node.exchange(limit, |con| redis::cmd("CLUSTER").arg("SLOTS").query(con));
        if exchanged.broken {
            self.nodes.remove(endpoint);
        }
        exchanged
            .result
            .map_err(|e| Failed::at(e, endpoint, Phase::Reply, false).within(limit))
    }

    /// Opens a connection within what is left of the budget. A sentinel's
    /// primary is checked to still be one: sentinels learn of a failover a
    /// little after it happens.
    fn open(
        &mut self,
        endpoint: &Endpoint,
        role: Role,
        attempts: &Attempts,
    ) -> Result<Node, Failed> {
        let con = self.dial(endpoint, role, attempts)?;
        let mut node = Node::new(con);
        if role == Role::Data && self.routing.is_sentinel() {
            self.round_trips += 1;
            let limit = attempts.limit(self.io_timeout);
            let role = node
                .exchange(limit, |con| redis::cmd("ROLE").query::<Vec<Value>>(con))
                .result
                .map_err(|e| Failed::at(e, endpoint, Phase::Reply, false).within(limit))?;
            if !connect::is_primary(&role) {
                return Err(Failed::at(
                    Failed::not_primary(),
                    endpoint,
                    Phase::Reply,
                    false,
                ));
            }
        }
        Ok(node)
    }

    /// A new connection to `endpoint`: the one a connect an earlier step
    /// left under way brings, or a new connect's; each waited on until the
    /// attempt's connect limit.
    fn dial(
        &mut self,
        endpoint: &Endpoint,
        role: Role,
        attempts: &Attempts,
    ) -> Result<Connection, Failed> {
        let key = (endpoint.clone(), role);
        if let Some(earlier) = self.dialing.remove(&key) {
            let limit = attempts.limit(self.connect_timeout);
            match earlier.finish(Instant::now() + limit.time) {
                Ok(Ok(con)) => return Ok(con),
                // That step's failure, not this one's: try afresh.
                Ok(Err(_)) => {}
                Err(still) => {
                    self.dialing.insert(key, still);
                    return Err(connect_timed_out(endpoint, limit));
                }
            }
        }
        let (dialing, limit) = self.start_dial(endpoint, role, attempts)?;
        match dialing.finish(Instant::now() + limit.time) {
            Ok(result) => {
                result.map_err(|e| Failed::at(e, endpoint, Phase::Connect, false).within(limit))
            }
            Err(still) => {
                self.dialing.insert(key, still);
                Err(connect_timed_out(endpoint, limit))
            }
        }
    }

    /// Resolves `endpoint` and starts connecting to it on a helper thread;
    /// each address gets its share of the connect limit (`route::address_share`).
    fn start_dial(
        &self,
        endpoint: &Endpoint,
        role: Role,
        attempts: &Attempts,
    ) -> Result<(Dialing, Limit), Failed> {
        let (addrs, addresses) = match endpoint {
            Endpoint::Unix(_) => (Vec::new(), 1),
            Endpoint::Tcp(hp) => {
                let addrs = dial::resolve(&hp.host, attempts.deadline)
                    .map_err(|e| Failed::at(e, endpoint, Phase::Resolve, false))?;
                let addresses = addrs.len();
                if self.server.tls.is_some() {
                    // Why not connect to `addrs`: TLS verifies the certificate
                    // against the name redis-rs is given, and it has no
                    // separate setting for it, so redis-rs gets the name and
                    // resolves it again by itself. Its whole connect then
                    // runs on the helper thread, waited on until the
                    // deadline, with each address's share as its timeout.
                    // The lookup above still fails a DNS outage within the
                    // budget, with a message that says so.
                    (Vec::new(), addresses)
                } else {
                    (addrs, addresses)
                }
            }
        };
        let n = u32::try_from(addresses.max(1)).unwrap_or(u32::MAX);
        let limit = attempts.limit(self.connect_timeout.saturating_mul(n));
        let plan = Plan {
            server: self.server.clone(),
            endpoint: endpoint.clone(),
            role,
            addrs,
            addresses,
            connect_timeout: self.connect_timeout,
            io_timeout: self.io_timeout,
            deadline: Instant::now() + limit.time,
        };
        Dialing::start(plan)
            .map(|dialing| (dialing, limit))
            .map_err(|e| Failed::at(e, endpoint, Phase::Connect, false))
    }

    /// Connections inherited across `fork()` belong to the parent: forget
    /// them without a QUIT, which would close the parent's sessions too.
    fn forget_if_forked(&mut self) {
        let pid = std::process::id();
        if self.pid != pid {
            self.forget_inherited();
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
            self.forget_inherited();
        }
    }
}

impl Link {
    /// Forgets the parent's connections, including any a connect thread
    /// had handed over but nobody had taken yet.
    fn forget_inherited(&mut self) {
        for (_, node) in self.nodes.drain() {
            std::mem::forget(node.con);
        }
        for (_, dialing) in self.dialing.drain() {
            std::mem::forget(dialing);
        }
    }
}

fn connect_timed_out(endpoint: &Endpoint, limit: Limit) -> Failed {
    let why = format!("could not connect within {} ms", limit.time.as_millis());
    Failed::at(timed_out(why), endpoint, Phase::Connect, false).within(limit)
}

fn timed_out(why: String) -> RedisError {
    io::Error::new(io::ErrorKind::TimedOut, why).into()
}
