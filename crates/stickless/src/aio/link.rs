//! The async half of routing: per node, a deadpool of multiplexed
//! connections for commands and another for blocking waits; the decisions
//! come from `route`, as for the blocking driver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult};
use deadpool_redis::Runtime;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, Value};
use tokio::time::timeout;

use crate::cluster::SlotMap;
use crate::config::{Config, Endpoint, HostPort, Server, Topology};
use crate::connect::{self, Role, is_primary};
use crate::error::Error;
use crate::route::{Attempts, Batch, Failed, Next, Op, Phase, Routing, Taken};

/// The value of a step, and whether it took more than one attempt.
pub(super) struct Ran<T> {
    pub value: T,
    pub retried: bool,
}

/// deadpool-redis's manager without its `PING` on every checkout: that
/// would double the round trips of every step. A connection that died while
/// idle shows at its first use instead, and the step is sent again once, as
/// the blocking driver does with a kept connection.
struct Quiet(deadpool_redis::Manager);

impl managed::Manager for Quiet {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        managed::Manager::create(&self.0).await
    }

    async fn recycle(
        &self,
        _: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        Ok(())
    }
}

type Pool = managed::Pool<Quiet>;
type Connection = Object<Quiet>;

/// A connection with a command in flight. Dropped before [`done`](Self::done)
/// (a timeout, a broken connection, or the caller's future cancelled
/// mid-command, say during a `BLPOP` or a `WAIT`), it is taken out of the
/// pool: its pending reply would reach the next user, who would also queue
/// behind a blocking command.
struct InFlight(Option<Connection>);

impl InFlight {
    fn get(&mut self) -> &mut Connection {
        match &mut self.0 {
            Some(con) => con,
            None => unreachable!("held until done or dropped"),
        }
    }

    /// The reply arrived: the connection may serve others again.
    fn done(mut self) {
        drop(self.0.take());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(con) = self.0.take() {
            drop(Object::take(con));
        }
    }
}

/// Which pool a step borrows from. A waiter holds its connection for the
/// whole wait, so waits have their own pool and never starve commands.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Use {
    Command,
    Wait,
}

/// Connections per node and use; enough for a busy service, bounded so a
/// pile-up cannot exhaust the server's `maxclients`.
const COMMAND_POOL: usize = 16;
const WAIT_POOL: usize = 64;

struct State {
    routing: Routing,
    pools: HashMap<(Endpoint, Use), Pool>,
}

pub(super) struct Link {
    server: Server,
    connect_timeout: Duration,
    io_timeout: Duration,
    budget: Duration,
    state: Mutex<State>,
    round_trips: AtomicU64,
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

impl Link {
    pub fn new(config: &Config) -> Self {
        let s = &config.settings;
        Self {
            server: config.server.clone(),
            connect_timeout: s.connect_timeout,
            io_timeout: s.timeout,
            budget: s.budget,
            state: Mutex::new(State {
                routing: Routing::new(&config.server.topology),
                pools: HashMap::new(),
            }),
            round_trips: AtomicU64::new(0),
        }
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a routing view that is at
        // worst stale, which every step can recover from.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `step` on the node serving `slot` within `budget_ms`, plus
    /// `wait` the server may hold the reply back on purpose.
    pub async fn run(
        &self,
        slot: u16,
        used: Use,
        wait: Duration,
        op: Op<'_>,
    ) -> Result<Ran<Value>, Error> {
        let mut attempts = Attempts::new(self.budget, wait);
        let mut batch = Batch::new(op);
        loop {
            attempts.count += 1;
            let asking = attempts.asking.take();
            let sent = self.attempt(slot, used, asking, wait, &attempts, &mut batch);
            let failed = match sent.await {
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
            let next = {
                let mut state = self.state();
                let (next, drop_node) = attempts.absorb(&failed, &mut state.routing, slot);
                if drop_node && let Some(node) = &failed.node {
                    // Idle connections to a dead node are of no use either.
                    state.pools.retain(|(endpoint, _), _| endpoint != node);
                }
                next
            };
            match next {
                Next::Now => {}
                Next::Pause(pause) => tokio::time::sleep(pause).await,
                Next::GiveUp => {
                    let state = self.state();
                    let timeouts = (self.connect_timeout, self.io_timeout, self.budget);
                    return Err(attempts.unavailable(
                        &failed,
                        &self.server.to_string(),
                        &state.routing,
                        timeouts,
                    ));
                }
            }
        }
    }

    /// One attempt: what is still unanswered goes to `asking` (after
    /// `ASKING`) or to the slot's owner; a script the node does not know is
    /// loaded there and the step sent again, within the attempt.
    async fn attempt(
        &self,
        slot: u16,
        used: Use,
        asking: Option<Endpoint>,
        wait: Duration,
        attempts: &Attempts,
        batch: &mut Batch<'_>,
    ) -> Result<(), Failed> {
        let is_asking = asking.is_some();
        let node = match asking {
            Some(node) => node,
            None => self.target(slot, attempts).await?,
        };
        let mut con = InFlight(Some(self.checkout(&node, used, attempts).await?));
        let reused = Object::metrics(con.get()).recycle_count > 0;
        loop {
            let reply_budget = attempts
                .left()
                .saturating_sub(wait)
                .min(self.io_timeout)
                .max(Duration::from_millis(1));
            let (pipe, sent) = batch.pipeline(is_asking, attempts.count > 1);
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let replies = timeout(
                reply_budget + wait,
                pipe.query_async::<Vec<Value>>(&mut **con.get()),
            )
            .await;
            let replies = match replies {
                Ok(Ok(replies)) => replies,
                // Broken: `con` keeps it out of the pool.
                Ok(Err(err)) => return Err(Failed::at(err, &node, Phase::Reply, reused)),
                Err(_) => {
                    // The reply may still arrive later, out of turn for the
                    // next user: `con` never hands this connection out again.
                    return Err(Failed::at(
                        timed_out("no reply within timeout_ms"),
                        &node,
                        Phase::Reply,
                        reused,
                    ));
                }
            };
            let script = match batch.take(&sent, replies) {
                Taken::Complete | Taken::Partial => {
                    con.done();
                    return Ok(());
                }
                Taken::Failed(err) => {
                    // A server's refusal leaves the connection in step.
                    con.done();
                    return Err(Failed::at(err, &node, Phase::Reply, reused));
                }
                Taken::Load(script) => script,
            };
            let budget = attempts
                .left()
                .min(self.io_timeout)
                .max(Duration::from_millis(1));
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match timeout(budget, script.load_async(&mut **con.get())).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(Failed::at(err, &node, Phase::Reply, reused)),
                Err(_) => {
                    return Err(Failed::at(
                        timed_out("no reply within timeout_ms"),
                        &node,
                        Phase::Reply,
                        reused,
                    ));
                }
            }
        }
    }

    /// A connection to `node` from its pool; a new one is opened within what
    /// is left of the budget.
    async fn checkout(
        &self,
        node: &Endpoint,
        used: Use,
        attempts: &Attempts,
    ) -> Result<Connection, Failed> {
        let pool = self
            .pool(node, used)
            .map_err(|err| Failed::at(err, node, Phase::Connect, false))?;
        let budget = attempts.left().min(self.connect_timeout + self.io_timeout);
        match timeout(budget.max(Duration::from_millis(1)), pool.get()).await {
            Ok(Ok(con)) => Ok(con),
            Ok(Err(PoolError::Backend(err))) => Err(Failed::at(err, node, Phase::Connect, false)),
            Ok(Err(other)) => Err(Failed::at(
                RedisError::from((ErrorKind::Io, "connection pool", other.to_string())),
                node,
                Phase::Connect,
                false,
            )),
            Err(_) => Err(Failed::at(
                timed_out("could not connect"),
                node,
                Phase::Connect,
                false,
            )),
        }
    }

    fn pool(&self, node: &Endpoint, used: Use) -> RedisResult<Pool> {
        let mut state = self.state();
        if let Some(pool) = state.pools.get(&(node.clone(), used)) {
            return Ok(pool.clone());
        }
        let info = connect::client(&self.server, node, Role::Data)?
            .get_connection_info()
            .clone();
        // Replies are bounded by the step's own timeout, which knows about
        // deliberate waits (BLPOP, WAIT); the connection's must not cut them.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let manager = Quiet(deadpool_redis::Manager::new_with_config(info, config)?);
        let size = match used {
            Use::Command => COMMAND_POOL,
            Use::Wait => WAIT_POOL,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| RedisError::from((ErrorKind::Client, "connection pool", e.to_string())))?;
        state.pools.insert((node.clone(), used), pool.clone());
        Ok(pool)
    }

    async fn target(&self, slot: u16, attempts: &Attempts) -> Result<Endpoint, Failed> {
        if let Some(node) = self.state().routing.known(slot) {
            return Ok(node);
        }
        match &self.server.topology {
            Topology::Standalone(endpoint) => Ok(endpoint.clone()),
            Topology::Sentinel { sentinels, service } => {
                let primary = self.ask_sentinels(sentinels, service, attempts).await?;
                let node = Endpoint::Tcp(primary.clone());
                // Sentinels learn of a failover a little after it happens.
                let mut con = self.checkout(&node, Use::Command, attempts).await?;
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                let budget = attempts
                    .left()
                    .min(self.io_timeout)
                    .max(Duration::from_millis(1));
                let role: Vec<Value> = timeout(budget, redis::cmd("ROLE").query_async(&mut *con))
                    .await
                    .unwrap_or_else(|_| Err(timed_out("no reply")))
                    .map_err(|e| {
                        drop(Object::take(con));
                        Failed::at(e, &node, Phase::Reply, false)
                    })?;
                if !is_primary(&role) {
                    return Err(Failed::at(
                        Failed::not_primary(),
                        &node,
                        Phase::Reply,
                        false,
                    ));
                }
                self.state().routing.set_primary(primary);
                Ok(node)
            }
            Topology::Cluster(seeds) => {
                let map = self.read_slot_map(seeds, attempts).await?;
                let primary = map.primary(slot).cloned();
                self.state().routing.set_map(map);
                primary
                    .map(Endpoint::Tcp)
                    .ok_or_else(|| Failed::no_owner(slot))
            }
        }
    }

    async fn ask_sentinels(
        &self,
        sentinels: &[HostPort],
        service: &str,
        attempts: &Attempts,
    ) -> Result<HostPort, Failed> {
        let mut why = Vec::new();
        for sentinel in sentinels {
            let endpoint = Endpoint::Tcp(sentinel.clone());
            let budget = attempts.left().min(self.connect_timeout + self.io_timeout);
            let asked = timeout(budget.max(Duration::from_millis(1)), async {
                let client = connect::client(&self.server, &endpoint, Role::Sentinel)?;
                let mut con = client.get_multiplexed_async_connection().await?;
                self.round_trips.fetch_add(1, Ordering::Relaxed);
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(service)
                    .query_async::<Option<(String, u16)>>(&mut con)
                    .await
            })
            .await
            .unwrap_or_else(|_| Err(timed_out("no reply")));
            match asked {
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

    async fn read_slot_map(
        &self,
        seeds: &[HostPort],
        attempts: &Attempts,
    ) -> Result<SlotMap, Failed> {
        let candidates = {
            let state = self.state();
            let connected = state.pools.keys().filter_map(|(e, _)| match e {
                Endpoint::Tcp(hp) => Some(hp.clone()),
                Endpoint::Unix(_) => None,
            });
            state.routing.map_candidates(connected, seeds)
        };
        let mut why = Vec::new();
        for candidate in candidates {
            if attempts.left().is_zero() {
                break;
            }
            let node = Endpoint::Tcp(candidate.clone());
            let reply = match self.checkout(&node, Use::Command, attempts).await {
                Ok(mut con) => {
                    self.round_trips.fetch_add(1, Ordering::Relaxed);
                    let budget = attempts
                        .left()
                        .min(self.io_timeout)
                        .max(Duration::from_millis(1));
                    timeout(
                        budget,
                        redis::cmd("CLUSTER")
                            .arg("SLOTS")
                            .query_async::<Value>(&mut *con),
                    )
                    .await
                    .unwrap_or_else(|_| Err(timed_out("no reply")))
                }
                Err(failed) => Err(failed.err),
            };
            match reply.map(|r| SlotMap::from_cluster_slots(&r, &candidate)) {
                Ok(Ok(map)) => return Ok(map),
                Ok(Err(e)) => why.push(format!("{candidate}: {e}")),
                Err(e) => {
                    self.state()
                        .pools
                        .retain(|(endpoint, _), _| *endpoint != node);
                    why.push(format!("{candidate}: {e}"));
                }
            }
        }
        Err(Failed::everywhere(
            "no cluster node answered CLUSTER SLOTS",
            why,
        ))
    }
}
