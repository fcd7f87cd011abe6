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

use redis::{Cmd, ErrorKind, Pipeline, RedisError, Script, ServerErrorKind, Value};

use crate::cluster::{SlotMap, redirect_target};
use crate::config::{Endpoint, HostPort, Topology};
use crate::error::Error;
use crate::scripts::Call;

/// First pause before retrying a server that is busy or failing over; it
/// doubles up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_millis(200);
/// Pauses while a slot migrates (`TRYAGAIN`). Moving one slot's keys takes
/// milliseconds, and asking again costs the node one error reply, so these
/// stay short: a step should not sleep long past the end of the move.
const FIRST_SETTLE: Duration = Duration::from_millis(2);
const MAX_SETTLE: Duration = Duration::from_millis(50);
/// Redirections followed in a row, with no pause between them, before a
/// step gives up: nodes that keep sending each other the step disagree
/// about the slot, and only a pause (or a fresh map) can change that.
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

    /// Every candidate failed; `what` names the question asked. With no
    /// reasons, the budget ran out before anyone could be asked.
    pub fn everywhere(what: &'static str, why: Vec<String>) -> Self {
        let why = if why.is_empty() {
            "budget_ms was spent before any node could be asked".to_owned()
        } else {
            why.join("; ")
        };
        Self::routing(RedisError::from((ErrorKind::Io, what, why)), true)
    }
}

/// What one step sends: a command, a pipeline, or a script call (with a
/// command pipelined after it, the `WAIT` of a durable write).
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    Cmd(&'a Cmd),
    /// A script alone; replies the script's own reply.
    Script(&'a Call),
    Pipe(&'a Pipeline),
    /// Replies `[script, then]` (`then`'s reply `Nil` when there is none).
    Call {
        first: &'a Call,
        /// Sent instead of `first` on every later attempt.
        resend: &'a Call,
        then: Option<&'a Cmd>,
    },
    /// A `Call` whose script reads a key `stage` writes first (the staged
    /// commit): the two are sent together and answered together, and under
    /// `ASKING` they go to the named node in one pipeline, each after its
    /// own `ASKING`. Replies `[script, then]`, like `Call`.
    Staged {
        stage: &'a Cmd,
        first: &'a Call,
        resend: &'a Call,
        then: Option<&'a Cmd>,
    },
}

/// A step's commands and the replies each has had so far.
///
/// During a slot migration every key is on the source node or on the
/// importing one, and the source answers `ASK` for each key it no longer
/// has (or never had). So a command refused with `ASK` is resent on its own,
/// after `ASKING`, to the node named, and the commands after it go to the
/// slot's owner again once it is answered: sending the whole step to the
/// importing node would read a session there before its keys have arrived,
/// and an empty read followed by a write would replace the real session.
///
/// Commands are answered in order: once one is refused, the replies of
/// those after it are dropped and they are sent again after it. They ran
/// before it, and may rely on it having run: the data is read after the
/// lock is taken, and a `WAIT` counts the replicas of the write before it.
pub(crate) struct Batch<'a> {
    op: Op<'a>,
    replies: Vec<Option<Value>>,
    /// Loads of scripts a node did not know, so a node that keeps
    /// forgetting them (flushed in a loop) cannot hold the step forever.
    loads: u32,
}

/// What the replies of one send call for.
pub(crate) enum Taken {
    /// Every command has its reply.
    Complete,
    /// The commands an `ASK` sent to another node have their replies; the
    /// rest goes to the slot's owner next.
    Partial,
    /// The node does not know this script: load it there and send again.
    /// Nothing ran: an unknown script is refused before any effect.
    Load(&'static Script),
    /// The error that decides the next attempt ([`Attempts::absorb`]).
    Failed(RedisError),
}

impl<'a> Batch<'a> {
    pub fn new(op: Op<'a>) -> Self {
        let len = match op {
            Op::Cmd(_) | Op::Script(_) => 1,
            Op::Pipe(pipe) => pipe.len(),
            Op::Call { then, .. } => 1 + usize::from(then.is_some()),
            Op::Staged { then, .. } => 2 + usize::from(then.is_some()),
        };
        Self {
            op,
            replies: vec![None; len],
            loads: 0,
        }
    }

    /// The commands to send next and their indices: every one still
    /// without a reply; when `asking`, only the first of them (with the
    /// keyless commands that follow it), after `ASKING` (which holds for
    /// one command). `retried`: not the step's first attempt.
    pub fn pipeline(&self, asking: bool, retried: bool) -> (Pipeline, Vec<usize>) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let first = self.answered();
        let mut sent = Vec::with_capacity(self.replies.len() - first);
        for i in first..self.replies.len() {
            let keyless = self.keyless(i);
            if asking && i > first && !keyless && !self.bound(i) {
                break;
            }
            if asking && !keyless {
                pipe.cmd("ASKING").ignore();
            }
            pipe.add_command(self.command(i, retried));
            sent.push(i);
        }
        (pipe, sent)
    }

    /// How many commands, from the first, have their replies.
    fn answered(&self) -> usize {
        self.replies
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.replies.len())
    }

    pub fn is_complete(&self) -> bool {
        self.answered() == self.replies.len()
    }

    fn command(&self, i: usize, retried: bool) -> Cmd {
        match self.op {
            Op::Cmd(cmd) => cmd.clone(),
            Op::Script(call) => call.cmd(),
            Op::Pipe(pipe) => pipe.cmd_iter().nth(i).cloned().unwrap_or_default(),
            Op::Call {
                first,
                resend,
                then,
            } => match (i, then) {
                (0, _) if retried => resend.cmd(),
                (0, _) => first.cmd(),
                (_, Some(then)) => then.clone(),
                (_, None) => Cmd::default(),
            },
            Op::Staged {
                stage,
                first,
                resend,
                then,
            } => match (i, then) {
                (0, _) => stage.clone(),
                (1, _) if retried => resend.cmd(),
                (1, _) => first.cmd(),
                (_, Some(then)) => then.clone(),
                (_, None) => Cmd::default(),
            },
        }
    }

    /// Command `i` goes and is answered with the one before it: a staged
    /// script with its `SET`. The script reads what the `SET` wrote, so it
    /// must run where and after the `SET` ran; and a `SET` answered alone
    /// is sent again with the script, since a script that ran after it (its
    /// reply lost) may have consumed the stage.
    fn bound(&self, i: usize) -> bool {
        matches!(self.op, Op::Staged { .. }) && i == 1
    }

    /// A command without keys (`WAIT`) needs no `ASKING`, and goes to the
    /// node that took the write before it.
    fn keyless(&self, i: usize) -> bool {
        let name = |cmd: &Cmd| {
            cmd.args_iter().next().is_some_and(
                |arg| matches!(arg, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"WAIT")),
            )
        };
        i > 0
            && match self.op {
                Op::Cmd(_) | Op::Script(_) => false,
                Op::Pipe(pipe) => pipe.cmd_iter().nth(i).is_some_and(name),
                Op::Call { .. } => true,
                Op::Staged { .. } => i > 1,
            }
    }

    fn script(&self, i: usize) -> Option<&'static Script> {
        match self.op {
            Op::Call { first, .. } | Op::Script(first) if i == 0 => Some(first.script()),
            Op::Staged { first, .. } if i == 1 => Some(first.script()),
            _ => None,
        }
    }

    /// Takes the replies to the commands `sent` (as [`pipeline`](Self::pipeline)
    /// listed them) and says what they call for.
    pub fn take(&mut self, sent: &[usize], replies: Vec<Value>) -> Taken {
        let mut failed: Option<RedisError> = None;
        let mut load = None;
        for (&i, reply) in sent.iter().zip(replies) {
            match reply {
                Value::ServerError(err) => {
                    let err = RedisError::from(err);
                    if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) {
                        load = load.or(self.script(i));
                    }
                    // Any other error decides before an `ASK`: the step is
                    // paused or ended anyway, and the `ASK` comes again.
                    let ask = err.kind() == ErrorKind::Server(ServerErrorKind::Ask);
                    let replaces = failed.as_ref().is_none_or(|f| {
                        f.kind() == ErrorKind::Server(ServerErrorKind::Ask) && !ask
                    });
                    if replaces {
                        failed = Some(err);
                    }
                }
                other => {
                    if let Some(slot) = self.replies.get_mut(i) {
                        *slot = Some(other);
                    }
                }
            }
        }
        for i in 1..self.replies.len() {
            if self.bound(i) && self.replies[i].is_none() {
                self.replies[i - 1] = None;
            }
        }
        let first = self.answered();
        for later in self.replies.iter_mut().skip(first) {
            *later = None;
        }
        let short = sent.last().is_some_and(|&last| first <= last);
        match (load, failed) {
            (Some(script), _) if self.loads < 2 => {
                self.loads += 1;
                Taken::Load(script)
            }
            (_, Some(err)) => Taken::Failed(err),
            (None, None) if self.is_complete() => Taken::Complete,
            (None, None) if !short => Taken::Partial,
            (_, None) => Taken::Failed(RedisError::from((
                ErrorKind::Client,
                "the server sent fewer replies than commands",
            ))),
        }
    }

    /// The replies, shaped as the step expects: the command's own reply, a
    /// pipeline's array, or `[script, then]`.
    pub fn into_reply(self) -> Value {
        let mut replies: Vec<Value> = self
            .replies
            .into_iter()
            .map(|r| r.unwrap_or(Value::Nil))
            .collect();
        match self.op {
            Op::Cmd(_) | Op::Script(_) => replies.pop().unwrap_or(Value::Nil),
            Op::Pipe(_) => Value::Array(replies),
            Op::Call { .. } => {
                replies.resize(2, Value::Nil);
                Value::Array(replies)
            }
            Op::Staged { .. } => {
                // The `SET`'s reply is the script's business: it says
                // itself when the stage was gone.
                replies.resize(3, Value::Nil);
                Value::Array(replies.split_off(1))
            }
        }
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
    settle: Duration,
    /// Attempts a slot migration refused (`TRYAGAIN`), for the message.
    pub migrating: u32,
    /// The node an `ASK` redirection sent the next attempt to.
    pub asking: Option<Endpoint>,
}

/// What `decide` found, before the budget has its say.
enum Verdict {
    Now,
    /// A failover or a busy node: back off.
    Pause,
    /// A slot migration in progress: ask again shortly.
    Settle,
    GiveUp,
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
            settle: FIRST_SETTLE,
            migrating: 0,
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
            Verdict::GiveUp => Next::GiveUp,
            _ if self.left().is_zero() => Next::GiveUp,
            Verdict::Pause => {
                let pause = self.pause.min(self.left());
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                self.redirects = 0;
                Next::Pause(pause)
            }
            Verdict::Settle => {
                let pause = self.settle.min(self.left());
                self.settle = (self.settle * 2).min(MAX_SETTLE);
                self.redirects = 0;
                Next::Pause(pause)
            }
            Verdict::Now => Next::Now,
        };
        (next, drop_node)
    }

    fn decide(&mut self, failed: &Failed, routing: &mut Routing, slot: u16) -> Verdict {
        if failed.exhausted {
            return Verdict::GiveUp;
        }
        let err = &failed.err;
        let can_fail_over = routing.can_fail_over();
        match err.kind() {
            // Wrong credentials, a refused ACL, unreadable TLS files: every
            // node would say the same, so asking again only burns the budget.
            ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm) => Verdict::GiveUp,
            ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
                self.redirects += 1;
                if self.redirects > MAX_REDIRECTS {
                    return Verdict::GiveUp;
                }
                let target = err
                    .redirect_node()
                    .and_then(|(addr, _)| redirect_target(addr));
                let ask = err.kind() == ErrorKind::Server(ServerErrorKind::Ask);
                match (target, ask, routing) {
                    // For the commands that were refused only, and this
                    // once: the slot still belongs to the node that said it.
                    (Some(to), true, _) => self.asking = Some(Endpoint::Tcp(to)),
                    (Some(to), false, Routing::Cluster { map: Some(map), .. }) => {
                        map.moved(slot, to);
                    }
                    (_, _, routing) => routing.stale(),
                }
                Verdict::Now
            }
            // A script whose keys are split between the two nodes of a
            // migrating slot, or partly absent on the importing one: the
            // slot map is right, the move just has to finish.
            ErrorKind::Server(ServerErrorKind::TryAgain) => {
                self.migrating += 1;
                Verdict::Settle
            }
            ErrorKind::Server(
                ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading,
            ) => {
                routing.stale();
                Verdict::Pause
            }
            _ if demoted(err) => {
                // A primary turned replica under us (failover).
                routing.stale();
                Verdict::Pause
            }
            _ if err.is_timeout() => {
                if can_fail_over {
                    // The node may be hung; its peers may already have
                    // elected a new primary.
                    routing.stale();
                    Verdict::Now
                } else {
                    // A hung standalone server will not answer a second
                    // send either: give the caller its budget back.
                    Verdict::GiveUp
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
                    Verdict::Now
                } else if can_fail_over {
                    routing.stale();
                    Verdict::Pause
                } else {
                    Verdict::GiveUp
                }
            }
            _ => Verdict::GiveUp,
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
        if e.kind() == ErrorKind::Server(ServerErrorKind::TryAgain) {
            cause.push_str(
                "; the session's slot was being moved between nodes for the whole budget \
                 (a slot's move normally takes milliseconds: see `redis-cli --cluster check` \
                 for a migration left open)",
            );
        }
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

    fn server_error(code: &str, detail: &str) -> Value {
        // Parsed as redis-rs parses a reply line.
        let line = format!("-{code} {detail}\r\n");
        redis::parse_redis_value(line.as_bytes()).unwrap()
    }

    fn ask(port: u16) -> Value {
        server_error("ASK", &format!("42 127.0.0.1:{port}"))
    }

    fn names(pipe: &Pipeline) -> Vec<String> {
        pipe.cmd_iter()
            .map(|cmd| match cmd.args_iter().next() {
                Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => String::new(),
            })
            .collect()
    }

    fn lock_pipeline() -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("{t}:lock").arg("tok").arg("NX");
        pipe.cmd("GET").arg("{t}:data");
        pipe
    }

    #[test]
    fn a_lock_the_source_sends_elsewhere_is_taken_there_before_the_data_is_read_again() {
        let pipe = lock_pipeline();
        let mut batch = Batch::new(Op::Pipe(&pipe));
        let (first, sent) = batch.pipeline(false, false);
        assert_eq!(names(&first), ["SET", "GET"]);
        // The lock was free on the source, so it is made on the importing
        // node; the data has not moved yet. The GET ran before the lock was
        // ours, so its reply cannot be kept: another request may write
        // before the lock is taken.
        let taken = batch.take(&sent, vec![ask(7002), Value::BulkString(b"early".to_vec())]);
        let Taken::Failed(err) = taken else {
            panic!("an ASK must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let f = failed(err, false);
        assert_eq!(next(&mut attempts, &mut routing, &f), "now");
        assert_eq!(
            attempts.asking,
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7002)))
        );
        let (second, sent) = batch.pipeline(true, true);
        assert_eq!(
            names(&second),
            ["ASKING", "SET"],
            "only the refused command goes to the importing node"
        );
        assert!(matches!(
            batch.take(&sent, vec![Value::Okay]),
            Taken::Partial
        ));
        // The read goes to the slot's owner, where the data still is.
        let (third, sent) = batch.pipeline(false, true);
        assert_eq!(names(&third), ["GET"]);
        assert!(matches!(
            batch.take(&sent, vec![Value::BulkString(b"stored".to_vec())]),
            Taken::Complete
        ));
        assert_eq!(
            batch.into_reply(),
            Value::Array(vec![Value::Okay, Value::BulkString(b"stored".to_vec())])
        );
    }

    #[test]
    fn a_read_goes_to_the_importing_node_only_after_the_source_sent_it_there() {
        let pipe = lock_pipeline();
        let mut batch = Batch::new(Op::Pipe(&pipe));
        let (_, sent) = batch.pipeline(false, false);
        // The lock is held on the source (SET NX says nil), the data moved.
        assert!(matches!(
            batch.take(&sent, vec![Value::Nil, ask(7002)]),
            Taken::Failed(_)
        ));
        let (second, _) = batch.pipeline(true, true);
        assert_eq!(names(&second), ["ASKING", "GET"]);
    }

    #[test]
    fn a_wait_travels_with_the_write_it_counts() {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("{t}:data").arg("v").arg("NX");
        pipe.cmd("WAIT").arg(1).arg(100);
        let mut batch = Batch::new(Op::Pipe(&pipe));
        let (_, sent) = batch.pipeline(false, false);
        // The source has no such key: the write goes to the importing node,
        // and so must the WAIT, which needs no ASKING of its own.
        assert!(matches!(
            batch.take(&sent, vec![ask(7002), Value::Int(1)]),
            Taken::Failed(_)
        ));
        let (second, sent) = batch.pipeline(true, true);
        assert_eq!(names(&second), ["ASKING", "SET", "WAIT"]);
        assert!(matches!(
            batch.take(&sent, vec![Value::Okay, Value::Int(1)]),
            Taken::Complete
        ));
    }

    #[test]
    fn moved_in_a_pipeline_updates_the_map_and_resends_everything_unanswered() {
        let pipe = lock_pipeline();
        let mut batch = Batch::new(Op::Pipe(&pipe));
        let (_, sent) = batch.pipeline(false, false);
        let moved = || server_error("MOVED", "42 127.0.0.1:7001");
        let Taken::Failed(err) = batch.take(&sent, vec![moved(), moved()]) else {
            panic!("MOVED must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(err, false)),
            "now"
        );
        assert_eq!(attempts.asking, None);
        assert_eq!(
            routing.known(42),
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7001)))
        );
        let (second, _) = batch.pipeline(false, true);
        assert_eq!(names(&second), ["SET", "GET"]);
    }

    fn call(resent: bool) -> Call {
        Call::new(&crate::scripts::RELEASE_SCRIPT)
            .key("{t}:lock")
            .arg(u8::from(resent))
    }

    #[test]
    fn a_script_refused_during_a_migration_is_retried_shortly_without_rereading_the_map() {
        let (first, resend) = (call(false), call(true));
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        let mut batch = Batch::new(Op::Call {
            first: &first,
            resend: &resend,
            then: Some(&wait),
        });
        let (_, sent) = batch.pipeline(false, false);
        let tryagain = server_error("TRYAGAIN", "Multiple keys request during rehashing of slot");
        let Taken::Failed(err) = batch.take(&sent, vec![tryagain, Value::Int(0)]) else {
            panic!("TRYAGAIN must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        let f = failed(err, false);
        let (next, _) = attempts.absorb(&f, &mut routing, 42);
        let Next::Pause(pause) = next else {
            panic!("TRYAGAIN pauses")
        };
        assert!(pause <= MAX_SETTLE, "{pause:?}");
        assert!(routing.known(42).is_some(), "the map is still right");
        assert_eq!(attempts.migrating, 1);
        // The later attempt sends the resend variant, and the WAIT again.
        let (second, sent) = batch.pipeline(false, true);
        assert_eq!(
            second.cmd_iter().next().map(Cmd::get_packed_command),
            Some(resend.cmd().get_packed_command())
        );
        assert_eq!(sent, [0, 1]);
    }

    #[test]
    fn a_migration_that_keeps_refusing_is_retried_until_the_budget_not_the_redirect_limit() {
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_millis(300), Duration::ZERO);
        let ask = || {
            failed(
                RedisError::from((
                    ErrorKind::Server(ServerErrorKind::Ask),
                    "ASK",
                    "42 127.0.0.1:7002".to_owned(),
                )),
                false,
            )
        };
        let tryagain = || {
            failed(
                RedisError::from((ErrorKind::Server(ServerErrorKind::TryAgain), "TRYAGAIN")),
                false,
            )
        };
        // Source: ASK; importing node: TRYAGAIN; over and over, each pair
        // one attempt at the slot. Far more than MAX_REDIRECTS pairs fit.
        for _ in 0..(3 * MAX_REDIRECTS) {
            assert_eq!(next(&mut attempts, &mut routing, &ask()), "now");
            assert_eq!(next(&mut attempts, &mut routing, &tryagain()), "pause");
        }
        let f = tryagain();
        let message = match attempts.unavailable(
            &f,
            "redis+cluster://h:1",
            &routing,
            (
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(300),
            ),
        ) {
            Error::Unavailable { cause, .. } => cause,
            other => panic!("{other}"),
        };
        assert!(message.contains("being moved between nodes"), "{message}");
    }

    #[test]
    fn a_script_unknown_to_the_node_is_loaded_and_sent_again() {
        let first = call(false);
        let mut batch = Batch::new(Op::Script(&first));
        let (_, sent) = batch.pipeline(true, false);
        let noscript = server_error("NOSCRIPT", "No matching script.");
        assert!(matches!(
            batch.take(&sent, vec![noscript.clone()]),
            Taken::Load(_)
        ));
        // After ASKING again: the flag held for the refused call only.
        let (second, sent) = batch.pipeline(true, false);
        assert_eq!(names(&second), ["ASKING", "EVALSHA"]);
        assert!(matches!(
            batch.take(&sent, vec![noscript.clone()]),
            Taken::Load(_)
        ));
        // A node that keeps forgetting it ends the step.
        let (_, sent) = batch.pipeline(true, false);
        assert!(matches!(
            batch.take(&sent, vec![noscript]),
            Taken::Failed(_)
        ));
    }

    #[test]
    fn a_short_reply_is_never_taken_for_an_answer() {
        let pipe = lock_pipeline();
        let mut batch = Batch::new(Op::Pipe(&pipe));
        let (_, sent) = batch.pipeline(false, false);
        assert!(matches!(
            batch.take(&sent, vec![Value::Okay]),
            Taken::Failed(_)
        ));
    }

    #[test]
    fn an_ask_on_a_durable_script_resends_it_and_its_wait_after_asking() {
        let (first, resend) = (call(false), call(true));
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        let mut batch = Batch::new(Op::Call {
            first: &first,
            resend: &resend,
            then: Some(&wait),
        });
        let (_, sent) = batch.pipeline(false, false);
        let Taken::Failed(err) = batch.take(&sent, vec![ask(7002), Value::Int(1)]) else {
            panic!("an ASK must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(err, false)),
            "now"
        );
        let (second, sent) = batch.pipeline(true, true);
        assert_eq!(names(&second), ["ASKING", "EVALSHA", "WAIT"]);
        assert!(matches!(
            batch.take(
                &sent,
                vec![Value::Array(vec![Value::Int(1)]), Value::Int(1)]
            ),
            Taken::Complete
        ));
        assert_eq!(
            batch.into_reply(),
            Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Int(1)])
        );
    }

    fn stage_cmd() -> Cmd {
        let mut set = redis::cmd("SET");
        set.arg("{t}:stage:tok").arg("envelope").arg("PX").arg(3000);
        set
    }

    #[test]
    fn a_staged_write_and_its_script_go_to_the_asked_node_together() {
        let (stage, first, resend) = (stage_cmd(), call(false), call(true));
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(100);
        let mut batch = Batch::new(Op::Staged {
            stage: &stage,
            first: &first,
            resend: &resend,
            then: Some(&wait),
        });
        let (pipe, sent) = batch.pipeline(false, false);
        assert_eq!(names(&pipe), ["SET", "EVALSHA", "WAIT"]);
        // Every key of the session has moved: the source sends both on.
        let Taken::Failed(err) = batch.take(&sent, vec![ask(7002), ask(7002), Value::Int(0)])
        else {
            panic!("an ASK must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(err, false)),
            "now"
        );
        let (second, sent) = batch.pipeline(true, true);
        assert_eq!(
            names(&second),
            ["ASKING", "SET", "ASKING", "EVALSHA", "WAIT"],
            "the script must run where its stage was written"
        );
        assert!(matches!(
            batch.take(
                &sent,
                vec![
                    Value::Okay,
                    Value::Array(vec![Value::Int(1)]),
                    Value::Int(1)
                ]
            ),
            Taken::Complete
        ));
        assert_eq!(
            batch.into_reply(),
            Value::Array(vec![Value::Array(vec![Value::Int(1)]), Value::Int(1)]),
            "replies as a script call does, without the SET's"
        );
    }

    #[test]
    fn a_stage_is_written_again_whenever_its_script_is_sent_again() {
        let (stage, first, resend) = (stage_cmd(), call(false), call(true));
        let mut batch = Batch::new(Op::Staged {
            stage: &stage,
            first: &first,
            resend: &resend,
            then: None,
        });
        let (_, sent) = batch.pipeline(false, false);
        // The stage was written; the script met a migration.
        let tryagain = server_error("TRYAGAIN", "Multiple keys request during rehashing of slot");
        assert!(matches!(
            batch.take(&sent, vec![Value::Okay, tryagain]),
            Taken::Failed(_)
        ));
        let (second, sent) = batch.pipeline(false, true);
        assert_eq!(names(&second), ["SET", "EVALSHA"]);
        assert_eq!(
            second.cmd_iter().nth(1).map(Cmd::get_packed_command),
            Some(resend.cmd().get_packed_command())
        );
        // A node that forgot the script: loaded, then both sent again.
        let noscript = server_error("NOSCRIPT", "No matching script.");
        assert!(matches!(
            batch.take(&sent, vec![Value::Okay, noscript]),
            Taken::Load(_)
        ));
        let (third, _) = batch.pipeline(false, true);
        assert_eq!(names(&third), ["SET", "EVALSHA"]);
    }

    #[test]
    fn a_map_that_could_not_be_asked_for_says_the_budget_ran_out() {
        // Before, an empty list of reasons read "no cluster node answered
        // CLUSTER SLOTS - Io:" after a step had spent its budget elsewhere.
        let f = Failed::everywhere("no cluster node answered CLUSTER SLOTS", Vec::new());
        let text = f.err.to_string();
        assert!(
            text.contains("budget_ms was spent before any node could be asked"),
            "{text}"
        );
        let f = Failed::everywhere(
            "no cluster node answered CLUSTER SLOTS",
            vec!["127.0.0.1:7000: connection refused".into()],
        );
        assert!(f.err.to_string().contains("7000: connection refused"));
    }

    #[test]
    fn moved_on_a_script_resends_it_to_the_new_owner_without_asking() {
        let (first, resend) = (call(false), call(true));
        let mut batch = Batch::new(Op::Call {
            first: &first,
            resend: &resend,
            then: None,
        });
        let (_, sent) = batch.pipeline(false, false);
        let moved = server_error("MOVED", "42 127.0.0.1:7001");
        let Taken::Failed(err) = batch.take(&sent, vec![moved]) else {
            panic!("MOVED must lead to another attempt")
        };
        let mut routing = cluster_routing();
        let mut attempts = Attempts::new(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(
            next(&mut attempts, &mut routing, &failed(err, false)),
            "now"
        );
        assert_eq!(attempts.asking, None, "MOVED is no ASK");
        assert_eq!(
            routing.known(42),
            Some(Endpoint::Tcp(HostPort::new("127.0.0.1", 7001)))
        );
        let (second, _) = batch.pipeline(false, true);
        assert_eq!(names(&second), ["EVALSHA"]);
    }
}
