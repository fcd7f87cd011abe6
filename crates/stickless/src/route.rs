//! Where a step goes and what a failure calls for, sans-IO: shared by the
//! blocking and the async driver, which only differ in how they connect and
//! send.
//!
//! [`Routing`] knows the topology's current view (the one server, the
//! primary the sentinels named, the cluster's slot map); [`Attempts`] keeps
//! one step's budget and decides, per failure, whether and when to try
//! again, and how long each part of an attempt may take. See
//! docs/CONFIGURATION.md, "Failures and retries".

use std::net::IpAddr;
use std::time::{Duration, Instant};

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::cluster::{SlotMap, redirect_target};
use crate::config::{Endpoint, HostPort, Topology};
use crate::error::Error;

/// First pause before retrying a server that is busy or failing over; it
/// doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);
/// Redirections followed by one step before it gives up (a slot that keeps
/// moving is a cluster being resharded in a loop, not a failover).
const MAX_REDIRECTS: u32 = 5;

/// The topology's current view.
pub(crate) enum Routing {
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

impl Routing {
    pub fn new(topology: &Topology) -> Self {
        match topology {
            Topology::Standalone(endpoint) => Self::Standalone(endpoint.clone()),
            Topology::Sentinel { .. } => Self::Sentinel { primary: None },
            Topology::Cluster(_) => Self::Cluster {
                map: None,
                stale: false,
            },
        }
    }

    /// The node serving `slot`, when known without asking anyone.
    pub fn known(&self, slot: u16) -> Option<Endpoint> {
        match self {
            Self::Standalone(endpoint) => Some(endpoint.clone()),
            Self::Sentinel { primary } => primary.clone().map(Endpoint::Tcp),
            Self::Cluster {
                map: Some(map),
                stale: false,
            } => map.primary(slot).cloned().map(Endpoint::Tcp),
            Self::Cluster { .. } => None,
        }
    }

    pub fn is_sentinel(&self) -> bool {
        matches!(self, Self::Sentinel { .. })
    }

    /// Where to ask for a fresh slot map: the nodes already connected,
    /// then the last known primaries, then the seeds; each once.
    pub fn map_candidates(
        &self,
        connected: impl Iterator<Item = HostPort>,
        seeds: &[HostPort],
    ) -> Vec<HostPort> {
        let mut out: Vec<HostPort> = Vec::new();
        let known = match self {
            Self::Cluster { map: Some(map), .. } => map.primaries().to_vec(),
            _ => Vec::new(),
        };
        for hp in connected.chain(known).chain(seeds.iter().cloned()) {
            if !out.contains(&hp) {
                out.push(hp);
            }
        }
        out
    }

    pub fn set_primary(&mut self, primary: HostPort) {
        *self = Self::Sentinel {
            primary: Some(primary),
        };
    }

    pub fn set_map(&mut self, map: SlotMap) {
        *self = Self::Cluster {
            map: Some(map),
            stale: false,
        };
    }

    /// Forget what may have changed: the primary, or the slot map.
    pub fn stale(&mut self) {
        match self {
            Self::Standalone(_) => {}
            Self::Sentinel { primary } => *primary = None,
            Self::Cluster { stale, .. } => *stale = true,
        }
    }

    fn can_fail_over(&self) -> bool {
        !matches!(self, Self::Standalone(_))
    }
}

/// Which part of an attempt failed, for the message.
#[derive(Clone, Copy)]
pub(crate) enum Phase {
    /// Looking up the node's host name.
    Resolve,
    Connect,
    Reply,
}

/// Shortest timeout a socket accepts (zero means "none" to the OS).
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// How long one part of an attempt (a connect, a reply) may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub time: Duration,
    /// Cut short by what is left of `budget_ms`, not its own timeout: the
    /// message then names the budget.
    pub by_budget: bool,
}

/// The address of a host given as an IP literal: those need no lookup.
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    host.parse().ok()
}

/// The connect timeout of one of `addresses_left` addresses of a name: its
/// own timeout, but no more than an even share of what is left, so a first
/// address that black-holes leaves time for the others.
pub(crate) fn address_share(
    connect_timeout: Duration,
    left: Duration,
    addresses_left: usize,
) -> Duration {
    let n = u32::try_from(addresses_left.max(1)).unwrap_or(u32::MAX);
    connect_timeout.min(left / n)
}

/// Why an attempt failed, and where.
pub(crate) struct Failed {
    pub err: RedisError,
    pub node: Option<Endpoint>,
    pub phase: Phase,
    /// The connection was kept from an earlier step (it may have died idle).
    pub reused: bool,
    /// Nothing else could be tried: every candidate refused.
    pub exhausted: bool,
    /// The part that failed had less than its own timeout: the budget was
    /// nearly spent.
    pub by_budget: bool,
}

impl Failed {
    pub fn at(err: RedisError, node: &Endpoint, phase: Phase, reused: bool) -> Self {
        Self {
            err,
            node: Some(node.clone()),
            phase,
            reused,
            exhausted: false,
            by_budget: false,
        }
    }

    /// What went wrong in a few words, for a list of the nodes tried.
    pub fn brief(&self) -> String {
        match self.phase {
            _ if !self.err.is_timeout() => self.err.to_string(),
            Phase::Resolve => "name lookup timed out".to_owned(),
            Phase::Connect => "connect timed out".to_owned(),
            Phase::Reply => "no reply in time".to_owned(),
        }
    }

    /// Notes the limit the failed part ran under.
    pub fn within(mut self, limit: Limit) -> Self {
        self.by_budget = limit.by_budget;
        self
    }

    /// Nothing to connect to: the topology could not be read.
    pub fn routing(err: RedisError, exhausted: bool) -> Self {
        Self {
            err,
            node: None,
            phase: Phase::Connect,
            reused: false,
            exhausted,
            by_budget: false,
        }
    }

    pub fn no_owner(slot: u16) -> Self {
        Self::routing(
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ClusterDown),
                "no node serves the session's slot",
                format!("slot {slot}"),
            )),
            false,
        )
    }

    pub fn not_primary() -> RedisError {
        RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the node the sentinels named is not a primary (yet)",
        ))
    }

    /// Every candidate failed; `what` names the question asked.
    pub fn everywhere(what: &'static str, why: Vec<String>) -> Self {
        Self::routing(
            RedisError::from((ErrorKind::Io, what, why.join("; "))),
            true,
        )
    }
}

/// What a failure calls for.
pub(crate) enum Next {
    /// Try again at once (`node` set: on that node, after `ASKING`).
    Now,
    /// Try again after this pause.
    Pause(Duration),
    /// Report the failure.
    GiveUp,
}

/// One step's attempts within its budget.
pub(crate) struct Attempts {
    pub started: Instant,
    pub deadline: Instant,
    pub count: u32,
    redirects: u32,
    resent: bool,
    pause: Duration,
    /// The node an `ASK` redirection sent the next attempt to.
    pub asking: Option<Endpoint>,
}

impl Attempts {
    /// A step with `budget`, plus `wait` the server may hold a reply back on
    /// purpose (a `BLPOP`, a `WAIT`).
    pub fn new(budget: Duration, wait: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + budget + wait,
            count: 0,
            redirects: 0,
            resent: false,
            pause: FIRST_PAUSE,
            asking: None,
        }
    }

    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// How long the next part of this attempt may take: `own` (its connect
    /// or reply timeout), or what is left of the budget when that is less.
    pub fn limit(&self, own: Duration) -> Limit {
        let left = self.left();
        if own <= left {
            Limit {
                time: own.max(MIN_TIMEOUT),
                by_budget: false,
            }
        } else {
            Limit {
                time: left.max(MIN_TIMEOUT),
                by_budget: true,
            }
        }
    }

    /// Learns from a failure (marks routes stale, notes redirections) and
    /// says whether to try again. `drop_node` is set when the failed node's
    /// connection is of no further use.
    pub fn absorb(&mut self, failed: &Failed, routing: &mut Routing, slot: u16) -> (Next, bool) {
        let next = self.decide(failed, routing, slot);
        let drop_node = !matches!(failed.err.kind(), ErrorKind::Server(_)) || demoted(&failed.err);
        let next = match next {
            Next::GiveUp => Next::GiveUp,
            _ if self.left().is_zero() => Next::GiveUp,
            Next::Pause(_) => {
                let pause = self.pause.min(self.left());
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                Next::Pause(pause)
            }
            Next::Now => Next::Now,
        };
        (next, drop_node)
    }

    fn decide(&mut self, failed: &Failed, routing: &mut Routing, slot: u16) -> Next {
        if failed.exhausted {
            return Next::GiveUp;
        }
        let err = &failed.err;
        let can_fail_over = routing.can_fail_over();
        match err.kind() {
            // Wrong credentials, a refused ACL, unreadable TLS files: every
            // node would say the same, so asking again only burns the budget.
            ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm) => Next::GiveUp,
            ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
                self.redirects += 1;
                if self.redirects > MAX_REDIRECTS {
                    return Next::GiveUp;
                }
                let target = err
                    .redirect_node()
                    .and_then(|(addr, _)| redirect_target(addr));
                let ask = err.kind() == ErrorKind::Server(ServerErrorKind::Ask);
                match (target, ask, routing) {
                    (Some(to), true, _) => self.asking = Some(Endpoint::Tcp(to)),
                    (Some(to), false, Routing::Cluster { map: Some(map), .. }) => {
                        map.moved(slot, to);
                    }
                    (_, _, routing) => routing.stale(),
                }
                Next::Now
            }
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading,
            ) => {
                routing.stale();
                Next::Pause(FIRST_PAUSE)
            }
            _ if demoted(err) => {
                // A primary turned replica under us (failover).
                routing.stale();
                Next::Pause(FIRST_PAUSE)
            }
            _ if err.is_timeout() => {
                if can_fail_over {
                    // The node may be hung; its peers may already have
                    // elected a new primary.
                    routing.stale();
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
                if failed.reused && !self.resent {
                    // A kept connection that died while idle (restart,
                    // idle timeout, failover behind a stable address).
                    self.resent = true;
                    routing.stale();
                    Next::Now
                } else if can_fail_over {
                    routing.stale();
                    Next::Pause(FIRST_PAUSE)
                } else {
                    Next::GiveUp
                }
            }
            _ => Next::GiveUp,
        }
    }

    /// The error a failed step reports.
    pub fn unavailable(
        &self,
        failed: &Failed,
        server: &str,
        routing: &Routing,
        timeouts: (Duration, Duration, Duration),
    ) -> Error {
        let (connect_timeout, io_timeout, budget) = timeouts;
        let e = &failed.err;
        let budget_ms = budget.as_millis();
        // The OS reports a socket timeout as EAGAIN ("Resource temporarily
        // unavailable"); say what it means, and which limit ran out.
        let mut cause = match (failed.phase, failed.by_budget) {
            _ if !e.is_timeout() => e.to_string(),
            (Phase::Resolve, _) => {
                let host = match &failed.node {
                    Some(Endpoint::Tcp(hp)) => hp.host.as_str(),
                    _ => "the host",
                };
                format!("could not resolve `{host}` within budget_ms ({budget_ms} ms)")
            }
            (Phase::Connect, true) => {
                format!("could not connect within budget_ms ({budget_ms} ms)")
            }
            (Phase::Connect, false) => format!(
                "could not connect within connect_timeout_ms ({} ms)",
                connect_timeout.as_millis()
            ),
            (Phase::Reply, true) => format!(
                "no reply within budget_ms ({budget_ms} ms); is the server hung or overloaded?"
            ),
            (Phase::Reply, false) => format!(
                "no reply within timeout_ms ({} ms); is the server hung or overloaded?",
                io_timeout.as_millis()
            ),
        };
        if let (Some(Endpoint::Tcp(node)), true) = (&failed.node, routing.can_fail_over()) {
            cause = format!("node {node}: {cause}");
        }
        if self.count > 1 {
            cause.push_str(&format!(
                "; gave up after {} attempts within budget_ms ({} ms)",
                self.count,
                budget.as_millis()
            ));
        }
        Error::Unavailable {
            server: server.to_owned(),
            cause,
            elapsed: self.started.elapsed(),
        }
    }
}

/// A write refused because the node is (now) a replica. Inside a script the
/// server reports it as a script error quoting `READONLY`.
fn demoted(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
        || (err.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
            && err.to_string().contains("READONLY"))
}

#[cfg(test)]
mod tests {
    use std::io;

    use redis::Value;

    use super::*;

    fn cluster_routing() -> Routing {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(16383),
            node(7000),
        ])]);
        let map = SlotMap::from_cluster_slots(&reply, &HostPort::new("127.0.0.1", 7000)).unwrap();
        let mut routing = Routing::new(&Topology::Cluster(vec![HostPort::new("127.0.0.1", 7000)]));
        routing.set_map(map);
        routing
    }

    fn standalone() -> Routing {
        Routing::new(&Topology::Standalone(Endpoint::Tcp(HostPort::new("h", 1))))
    }

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::new(kind, "test"))
    }

    fn failed(err: RedisError, reused: bool) -> Failed {
        Failed::at(
            err,
            &Endpoint::Tcp(HostPort::new("127.0.0.1", 7000)),
            Phase::Reply,
            reused,
        )
    }

    fn next(attempts: &mut Attempts, routing: &mut Routing, f: &Failed) -> &'static str {
        match attempts.absorb(f, routing, 42).0 {
            Next::Now => "now",
            Next::Pause(_) => "pause",
            Next::GiveUp => "give up",
        }
    }

    #[test]
    fn moved_updates_the_map_and_retries_at_once() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "MOVED",
            "42 127.0.0.1:7001".to_owned(),
        ));
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(moved, false)),
            "now"
        );
        assert_eq!(
            routing.known(42),
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7001)))
        );
        assert_eq!(
            routing.known(43),
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7000)))
        );
    }

    #[test]
    fn ask_goes_to_the_named_node_once() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let ask = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Ask),
            "ASK",
            "42 127.0.0.1:7002".to_owned(),
        ));
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(ask, false)),
            "now"
        );
        assert_eq!(
            attempts.asking,
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7002)))
        );
        // The map itself is unchanged: ASK is for one command only.
        assert_eq!(
            routing.known(42),
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7000)))
        );
    }

    #[test]
    fn redirect_loops_end() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let moved = || {
            failed(
                RedisError::from((
                    ErrorKind::Server(ServerErrorKind::Moved),
                    "MOVED",
                    "42 127.0.0.1:7001".to_owned(),
                )),
                false,
            )
        };
        for _ in 0..MAX_REDIRECTS {
            assert_eq!(next(&mut attempts, &mut routing, &moved()), "now");
        }
        assert_eq!(next(&mut attempts, &mut routing, &moved()), "give up");
    }

    #[test]
    fn a_timeout_is_retried_only_where_another_node_could_answer() {
        let timeout = || failed(io_error(io::ErrorKind::TimedOut), true);
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut standalone(), &timeout()),
            "give up"
        );
        let mut routing = cluster_routing();
        assert_eq!(next(&mut attempts, &mut routing, &timeout()), "now");
        assert_eq!(routing.known(42), None, "the map was not marked stale");
    }

    #[test]
    fn a_dead_kept_connection_is_resent_once_then_refusals_end_standalone_steps() {
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let mut routing = standalone();
        let reset = failed(io_error(io::ErrorKind::ConnectionReset), true);
        assert_eq!(next(&mut attempts, &mut routing, &reset), "now");
        let refused = failed(io_error(io::ErrorKind::ConnectionRefused), false);
        assert_eq!(next(&mut attempts, &mut routing, &refused), "give up");
        // On a cluster a refusal is a failover in progress: pause and retry.
        let mut routing = cluster_routing();
        assert_eq!(next(&mut attempts, &mut routing, &refused), "pause");
    }

    #[test]
    fn failovers_pause_and_credentials_never_retry() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        for kind in [
            ServerErrorKind::TryAgain,
            ServerErrorKind::ClusterDown,
            ServerErrorKind::ReadOnly,
            ServerErrorKind::BusyLoading,
        ] {
            let f = failed(RedisError::from((ErrorKind::Server(kind), "busy")), false);
            assert_eq!(next(&mut attempts, &mut routing, &f), "pause");
        }
        let auth = failed(
            RedisError::from((ErrorKind::AuthenticationFailed, "no")),
            false,
        );
        assert_eq!(next(&mut attempts, &mut routing, &auth), "give up");
        let acl = failed(
            RedisError::from((ErrorKind::Server(ServerErrorKind::NoPerm), "no")),
            false,
        );
        assert_eq!(next(&mut attempts, &mut routing, &acl), "give up");
        let mut exhausted = failed(io_error(io::ErrorKind::ConnectionRefused), false);
        exhausted.exhausted = true;
        assert_eq!(next(&mut attempts, &mut routing, &exhausted), "give up");
    }

    #[test]
    fn nothing_is_retried_once_the_budget_is_spent() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::ZERO, Duration::ZERO);
        let refused = failed(io_error(io::ErrorKind::ConnectionRefused), false);
        assert_eq!(next(&mut attempts, &mut routing, &refused), "give up");
    }
    #[test]
    fn a_part_gets_its_own_timeout_or_what_is_left_of_the_budget() {
        let attempts = Attempts::new(Duration::from_millis(1500), Duration::ZERO);
        let own = attempts.limit(Duration::from_millis(1000));
        assert_eq!(own.time, Duration::from_millis(1000));
        assert!(!own.by_budget);
        let cut = attempts.limit(Duration::from_secs(5));
        assert!(cut.by_budget);
        assert!(cut.time <= Duration::from_millis(1500));
        // A spent budget still yields a timeout the OS accepts (not zero,
        // which would mean "wait forever").
        let spent = Attempts::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(spent.limit(Duration::from_secs(1)).time, MIN_TIMEOUT);
    }

    #[test]
    fn each_address_gets_an_even_share_of_what_is_left() {
        let ms = Duration::from_millis;
        // Two addresses, 1500 ms left: neither may take more than 750.
        assert_eq!(address_share(ms(1000), ms(1500), 2), ms(750));
        // The connect timeout stays the cap when there is time enough.
        assert_eq!(address_share(ms(500), ms(1500), 2), ms(500));
        // The last address gets all that is left, up to its timeout.
        assert_eq!(address_share(ms(1000), ms(600), 1), ms(600));
        assert_eq!(address_share(ms(1000), ms(600), 0), ms(600));
        assert_eq!(address_share(ms(1000), Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn only_host_names_are_looked_up() {
        assert!(ip_literal("127.0.0.1").is_some());
        assert!(ip_literal("::1").is_some());
        assert!(ip_literal("redis.internal").is_none());
        assert!(ip_literal("localhost").is_none());
        // A zone index needs the resolver.
        assert!(ip_literal("fe80::1%eth0").is_none());
    }

    fn message(failed: Failed, routing: &Routing) -> String {
        let attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let timeouts = (
            Duration::from_millis(500),
            Duration::from_millis(1000),
            Duration::from_millis(1500),
        );
        match attempts.unavailable(&failed, "redis://h:1/0", routing, timeouts) {
            Error::Unavailable { cause, .. } => cause,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_timeout_names_the_limit_that_ran_out() {
        let node = Endpoint::Tcp(HostPort::new("redis.internal", 6379));
        let timeout = || io_error(io::ErrorKind::TimedOut);
        let routing = standalone();
        let resolve = Failed::at(timeout(), &node, Phase::Resolve, false);
        assert_eq!(
            message(resolve, &routing),
            "could not resolve `redis.internal` within budget_ms (1500 ms)"
        );
        let own = Limit {
            time: Duration::from_millis(1000),
            by_budget: false,
        };
        let cut = Limit {
            time: Duration::from_millis(300),
            by_budget: true,
        };
        let reply = Failed::at(timeout(), &node, Phase::Reply, true).within(own);
        assert!(message(reply, &routing).starts_with("no reply within timeout_ms (1000 ms)"));
        let reply = Failed::at(timeout(), &node, Phase::Reply, true).within(cut);
        assert!(message(reply, &routing).starts_with("no reply within budget_ms (1500 ms)"));
        let connect = Failed::at(timeout(), &node, Phase::Connect, false).within(cut);
        assert_eq!(
            message(connect, &routing),
            "could not connect within budget_ms (1500 ms)"
        );
        // Anything but a timeout keeps its own words.
        let refused = Failed::at(
            io_error(io::ErrorKind::ConnectionRefused),
            &node,
            Phase::Connect,
            false,
        );
        assert_eq!(message(refused, &routing), "test");
    }

    #[test]
    fn a_name_that_does_not_resolve_ends_a_standalone_step_and_is_retried_on_a_cluster() {
        let node = Endpoint::Tcp(HostPort::new("redis.internal", 6379));
        let unresolved = || {
            Failed::at(
                io_error(io::ErrorKind::TimedOut),
                &node,
                Phase::Resolve,
                false,
            )
        };
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut standalone(), &unresolved()),
            "give up"
        );
        // A cluster may name another node for the slot by the next attempt.
        assert_eq!(
            next(&mut attempts, &mut cluster_routing(), &unresolved()),
            "now"
        );
    }
}
