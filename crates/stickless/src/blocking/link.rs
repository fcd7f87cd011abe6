//! Where each step goes, over which connection, and what happens when it
//! fails: the topology-aware half of the blocking driver.
//!
//! One plain `redis::Connection` per node, opened lazily and kept across
//! requests. Standalone has one node; Sentinel resolves the primary through
//! the sentinels and checks its role; Cluster routes by slot through a slot
//! map read with `CLUSTER SLOTS`, follows `MOVED` and `ASK`, and rereads the
//! map after a failover. The cluster client of `redis` is not used: its
//! built-in retries resend any command (a fenced write included) and sleep
//! outside any budget, while a session step must decide itself what may be
//! repeated and must end within `budget_ms`.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

use super::connect::{self, Role};
use crate::cluster::{SlotMap, redirect_target};
use crate::config::{Config, Endpoint, HostPort, Server, Topology};
use crate::error::Error;

/// First pause before retrying a server that is busy or failing over; it
/// doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);
/// Redirections followed by one step before it gives up (a slot that keeps
/// moving is a cluster being resharded in a loop, not a failover).
const MAX_REDIRECTS: u32 = 5;

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

enum Routing {
    Standalone(Endpoint),
    Sentinel {
        primary: Option<HostPort>,
    },
    Cluster {
        map: Option<SlotMap>,
        /// Reread the map before the next step.
        stale: bool,
    },
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

/// Which part of an attempt failed, for the message.
#[derive(Clone, Copy)]
enum Phase {
    Connect,
    Reply,
}

/// Why an attempt failed, and where.
struct Failed {
    err: RedisError,
    node: Option<Endpoint>,
    phase: Phase,
    /// The connection was kept from an earlier step (it may have died idle).
    reused: bool,
    /// Nothing else could be tried: every candidate refused.
    exhausted: bool,
}

impl Failed {
    fn at(err: RedisError, node: &Endpoint, phase: Phase, reused: bool) -> Self {
        Self {
            err,
            node: Some(node.clone()),
            phase,
            reused,
            exhausted: false,
        }
    }

    /// Nothing to connect to: the topology could not be read.
    fn routing(err: RedisError, exhausted: bool) -> Self {
        Self {
            err,
            node: None,
            phase: Phase::Connect,
            reused: false,
            exhausted,
        }
    }
}

/// What a failure calls for.
enum Next {
    Now,
    Pause,
    GiveUp,
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
            routing: routing(&config.server.topology),
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
    /// to `wait` on purpose (BLPOP): the reply budget grows by that much.
    pub fn run_waiting<T>(
        &mut self,
        slot: u16,
        wait: Duration,
        mut step: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<Ran<T>, Error> {
        self.forget_if_forked();
        let started = Instant::now();
        let deadline = started + self.budget + wait;
        let mut attempts = 0;
        let mut redirects = 0;
        let mut resent = false;
        let mut asking = None;
        let mut pause = FIRST_PAUSE;
        loop {
            attempts += 1;
            let failed = match self.attempt(slot, asking.take(), wait, deadline, &mut step) {
                Ok(value) => {
                    return Ok(Ran {
                        value,
                        retried: attempts > 1,
                    });
                }
                Err(failed) => failed,
            };
            let next = self.absorb(&failed, slot, &mut asking, &mut redirects, &mut resent);
            let left = deadline.saturating_duration_since(Instant::now());
            match next {
                Next::GiveUp => {}
                _ if left.is_zero() => {}
                Next::Now => continue,
                Next::Pause => {
                    thread::sleep(pause.min(left));
                    pause = (pause * 2).min(MAX_PAUSE);
                    if Instant::now() < deadline {
                        continue;
                    }
                }
            }
            return Err(self.unavailable(&failed, started, attempts));
        }
    }

    /// One attempt: find the node, connect if needed, send.
    fn attempt<T>(
        &mut self,
        slot: u16,
        asking: Option<Endpoint>,
        wait: Duration,
        deadline: Instant,
        step: &mut impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, Failed> {
        let is_asking = asking.is_some();
        let node = match asking {
            Some(node) => node,
            None => self.target(slot, deadline)?,
        };
        let reused = self.nodes.contains_key(&node);
        if !reused {
            let con = self
                .open(&node, Role::Data, deadline)
                .map_err(|err| Failed::at(err, &node, Phase::Connect, false))?;
            self.nodes.insert(
                node.clone(),
                Node {
                    con,
                    io_timeout: None,
                },
            );
        }
        let reply_budget = left(deadline).saturating_sub(wait).min(self.io_timeout);
        let Some(entry) = self.nodes.get_mut(&node) else {
            unreachable!("inserted just above");
        };
        let timeout = Some(reply_budget.max(Duration::from_millis(1)) + wait);
        let result = set_timeouts(entry, timeout).and_then(|()| {
            if is_asking {
                redis::cmd("ASKING").query::<()>(&mut entry.con)?;
                self.round_trips += 1;
            }
            self.round_trips += 1;
            step(&mut entry.con)
        });
        if !wait.is_zero() {
            // The socket now holds the longer timeout; set it afresh next time.
            entry.io_timeout = None;
        }
        result.map_err(|err| Failed::at(err, &node, Phase::Reply, reused))
    }

    /// Learns from a failure (drops a dead connection, marks routes stale,
    /// notes redirections) and says whether to try again.
    fn absorb(
        &mut self,
        failed: &Failed,
        slot: u16,
        asking: &mut Option<Endpoint>,
        redirects: &mut u32,
        resent: &mut bool,
    ) -> Next {
        if failed.exhausted {
            return Next::GiveUp;
        }
        let err = &failed.err;
        let can_fail_over = !matches!(self.routing, Routing::Standalone(_));
        match err.kind() {
            ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
                *redirects += 1;
                if *redirects > MAX_REDIRECTS {
                    return Next::GiveUp;
                }
                let target = err
                    .redirect_node()
                    .and_then(|(addr, _)| redirect_target(addr));
                let ask = err.kind() == ErrorKind::Server(ServerErrorKind::Ask);
                match (target, ask, &mut self.routing) {
                    (Some(to), true, _) => *asking = Some(Endpoint::Tcp(to)),
                    (Some(to), false, Routing::Cluster { map: Some(map), .. }) => {
                        map.moved(slot, to);
                    }
                    _ => self.stale(),
                }
                Next::Now
            }
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading,
            ) => {
                self.stale();
                Next::Pause
            }
            _ if demoted(err) => {
                // A primary turned replica under us (failover): its
                // connection is of no further use.
                self.drop_node(failed.node.as_ref());
                self.stale();
                Next::Pause
            }
            _ if err.is_timeout() => {
                self.drop_node(failed.node.as_ref());
                if can_fail_over {
                    // The node may be hung; its peers may already have
                    // elected a new primary.
                    self.stale();
                    Next::Now
                } else {
                    // A hung standalone server will not answer a second
                    // send either: give the caller its budget back.
                    Next::GiveUp
                }
            }
            _ if err.is_io_error()
                || err.is_connection_dropped()
                || err.is_unrecoverable_error() =>
            {
                self.drop_node(failed.node.as_ref());
                if failed.reused && !*resent {
                    // A kept connection that died while idle (restart,
                    // idle timeout, failover behind a stable address).
                    *resent = true;
                    if can_fail_over {
                        self.stale();
                    }
                    Next::Now
                } else if can_fail_over {
                    self.stale();
                    Next::Pause
                } else {
                    Next::GiveUp
                }
            }
            _ => Next::GiveUp,
        }
    }

    /// The node serving `slot`, asking the sentinels or reading the slot
    /// map first when the route is unknown or stale.
    fn target(&mut self, slot: u16, deadline: Instant) -> Result<Endpoint, Failed> {
        match &self.routing {
            Routing::Standalone(endpoint) => return Ok(endpoint.clone()),
            Routing::Sentinel { primary: Some(p) } => return Ok(Endpoint::Tcp(p.clone())),
            Routing::Cluster {
                map: Some(map),
                stale: false,
            } => {
                if let Some(p) = map.primary(slot) {
                    return Ok(Endpoint::Tcp(p.clone()));
                }
            }
            _ => {}
        }
        match &self.routing {
            Routing::Standalone(_) => unreachable!("returned above"),
            Routing::Sentinel { .. } => {
                let primary = self.ask_sentinels(deadline)?;
                self.routing = Routing::Sentinel {
                    primary: Some(primary.clone()),
                };
                Ok(Endpoint::Tcp(primary))
            }
            Routing::Cluster { .. } => {
                let map = self.read_slot_map(deadline)?;
                let primary = map.primary(slot).cloned();
                self.routing = Routing::Cluster {
                    map: Some(map),
                    stale: false,
                };
                primary.map(Endpoint::Tcp).ok_or_else(|| {
                    Failed::routing(
                        RedisError::from((
                            ErrorKind::Server(ServerErrorKind::ClusterDown),
                            "no node serves the session's slot",
                            format!("slot {slot}"),
                        )),
                        false,
                    )
                })
            }
        }
    }

    /// Asks each sentinel in turn for the current primary.
    fn ask_sentinels(&mut self, deadline: Instant) -> Result<HostPort, Failed> {
        let Topology::Sentinel { sentinels, service } = &self.server.topology else {
            unreachable!("sentinel routing comes from a sentinel topology");
        };
        let (sentinels, service) = (sentinels.clone(), service.clone());
        let mut why = Vec::new();
        for sentinel in &sentinels {
            let endpoint = Endpoint::Tcp(sentinel.clone());
            let answer = self
                .open(&endpoint, Role::Sentinel, deadline)
                .and_then(|mut con| {
                    self.round_trips += 1;
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&service)
                        .query::<Option<(String, u16)>>(&mut con)
                });
            match answer {
                Ok(Some((host, port))) => return Ok(HostPort::new(host, port)),
                Ok(None) => why.push(format!("{sentinel}: does not monitor `{service}`")),
                Err(e) => why.push(format!("{sentinel}: {e}")),
            }
            if left(deadline).is_zero() {
                break;
            }
        }
        Err(Failed::routing(
            RedisError::from((
                ErrorKind::Io,
                "no sentinel named the primary",
                why.join("; "),
            )),
            true,
        ))
    }

    /// Reads the slot map from the first node that answers: connected
    /// nodes first, then the last known primaries, then the seeds.
    fn read_slot_map(&mut self, deadline: Instant) -> Result<SlotMap, Failed> {
        let Topology::Cluster(seeds) = &self.server.topology else {
            unreachable!("cluster routing comes from a cluster topology");
        };
        let mut candidates: Vec<HostPort> = self
            .nodes
            .keys()
            .filter_map(|e| match e {
                Endpoint::Tcp(hp) => Some(hp.clone()),
                Endpoint::Unix(_) => None,
            })
            .collect();
        if let Routing::Cluster { map: Some(map), .. } = &self.routing {
            candidates.extend(map.primaries().iter().cloned());
        }
        candidates.extend(seeds.iter().cloned());
        let mut seen = Vec::new();
        let mut why = Vec::new();
        for candidate in candidates {
            if seen.contains(&candidate) {
                continue;
            }
            seen.push(candidate.clone());
            if left(deadline).is_zero() {
                break;
            }
            let endpoint = Endpoint::Tcp(candidate.clone());
            match self.cluster_slots(&endpoint, deadline) {
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
        Err(Failed::routing(
            RedisError::from((
                ErrorKind::Io,
                "no cluster node answered CLUSTER SLOTS",
                why.join("; "),
            )),
            true,
        ))
    }

    fn cluster_slots(&mut self, endpoint: &Endpoint, deadline: Instant) -> RedisResult<Value> {
        if !self.nodes.contains_key(endpoint) {
            let con = self.open(endpoint, Role::Data, deadline)?;
            self.nodes.insert(
                endpoint.clone(),
                Node {
                    con,
                    io_timeout: None,
                },
            );
        }
        let io = left(deadline)
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
        deadline: Instant,
    ) -> RedisResult<Connection> {
        let budget = left(deadline).max(Duration::from_millis(1));
        let mut con = connect::open(
            &self.server,
            endpoint,
            role,
            self.connect_timeout.min(budget),
            self.io_timeout.min(budget),
        )?;
        if role == Role::Data && matches!(self.routing, Routing::Sentinel { .. }) {
            self.round_trips += 1;
            let role: Vec<Value> = redis::cmd("ROLE").query(&mut con)?;
            let is_primary = matches!(role.first(), Some(Value::BulkString(r)) if r == b"master");
            if !is_primary {
                return Err(RedisError::from((
                    ErrorKind::Server(ServerErrorKind::ReadOnly),
                    "the node the sentinels named is not a primary (yet)",
                )));
            }
        }
        Ok(con)
    }

    fn stale(&mut self) {
        match &mut self.routing {
            Routing::Standalone(_) => {}
            Routing::Sentinel { primary } => *primary = None,
            Routing::Cluster { stale, .. } => *stale = true,
        }
    }

    fn drop_node(&mut self, node: Option<&Endpoint>) {
        if let Some(node) = node {
            self.nodes.remove(node);
        }
    }

    /// Connections inherited across `fork()` belong to the parent: forget
    /// them without a QUIT, which would close the parent's sessions too.
    fn forget_if_forked(&mut self) {
        let pid = std::process::id();
        if self.pid != pid {
            for (_, node) in self.nodes.drain() {
                std::mem::forget(node.con);
            }
            self.routing = routing(&self.server.topology);
            self.pid = pid;
        }
    }

    fn unavailable(&self, failed: &Failed, started: Instant, attempts: u32) -> Error {
        let e = &failed.err;
        // The OS reports a socket timeout as EAGAIN ("Resource temporarily
        // unavailable"); say what it means.
        let mut cause = match failed.phase {
            _ if !e.is_timeout() => e.to_string(),
            Phase::Connect => format!(
                "could not connect within connect_timeout_ms ({} ms)",
                self.connect_timeout.as_millis()
            ),
            Phase::Reply => format!(
                "no reply within timeout_ms ({} ms); is the server hung or overloaded?",
                self.io_timeout.as_millis()
            ),
        };
        if let (Some(Endpoint::Tcp(node)), false) =
            (&failed.node, matches!(self.routing, Routing::Standalone(_)))
        {
            cause = format!("node {node}: {cause}");
        }
        if attempts > 1 {
            cause.push_str(&format!(
                "; gave up after {attempts} attempts within budget_ms ({} ms)",
                self.budget.as_millis()
            ));
        }
        Error::Unavailable {
            server: self.server.to_string(),
            cause,
            elapsed: started.elapsed(),
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

fn routing(topology: &Topology) -> Routing {
    match topology {
        Topology::Standalone(endpoint) => Routing::Standalone(endpoint.clone()),
        Topology::Sentinel { .. } => Routing::Sentinel { primary: None },
        Topology::Cluster(_) => Routing::Cluster {
            map: None,
            stale: false,
        },
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn set_timeouts(node: &mut Node, timeout: Option<Duration>) -> RedisResult<()> {
    if node.io_timeout != timeout {
        node.con.set_read_timeout(timeout)?;
        node.con.set_write_timeout(timeout)?;
        node.io_timeout = timeout;
    }
    Ok(())
}

/// A write refused because the node is (now) a replica. Inside a script the
/// server reports it as a script error quoting `READONLY`.
fn demoted(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || (err.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
            && err.to_string().contains("READONLY"))
}
