//! Name resolution and connecting, each within the step's deadline.
//!
//! Both run on helper threads that the step waits on until its deadline,
//! because neither has a timeout of its own: `getaddrinfo` waits out the
//! resolver's timeouts (seconds) when DNS is down, and a connection's setup
//! (a Unix socket's connect, AUTH and SELECT, a TLS name's second lookup)
//! is several blocking calls each with its own timeout. A helper that
//! outlives its step finishes by itself; what it finds serves the next step
//! that asks (the same lookup, or the same node's connect), so a DNS outage
//! or a hung server never piles up threads: at most one lookup per host
//! per process, and one connect per node per store, are under way at once.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, LazyLock, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, RedisError, RedisResult};

use crate::config::{Endpoint, Server};
use crate::connect::{self, Role};
use crate::route;

/// A helper's answer arriving right at the deadline is still taken: its
/// own error says more than "timed out".
const GRACE: Duration = Duration::from_millis(5);

/// The addresses of `host` (their ports unset: 0), looked up by at most
/// one thread per host at a time, waited on until `deadline`. Addresses,
/// not IPs: an IPv6 link-local one needs its scope.
pub(super) fn resolve(host: &str, deadline: Instant) -> RedisResult<Vec<SocketAddr>> {
    if let Some(ip) = route::ip_literal(host) {
        return Ok(vec![SocketAddr::new(ip, 0)]);
    }
    let lookup = Lookup::join(host)?;
    let mut answer = lookup.answer.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(answer) = answer.as_ref() {
            return answer.clone().map_err(|(kind, why)| {
                io::Error::new(kind, format!("could not resolve `{host}`: {why}")).into()
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let why = format!("could not resolve `{host}` in time");
            return Err(io::Error::new(io::ErrorKind::TimedOut, why).into());
        }
        answer = lookup
            .done
            .wait_timeout(answer, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

type Answer = Result<Vec<SocketAddr>, (io::ErrorKind, String)>;

/// One host name's lookup under way.
struct Lookup {
    /// The process that started it: one inherited across fork has no
    /// thread behind it.
    pid: u32,
    answer: Mutex<Option<Answer>>,
    done: Condvar,
}

static LOOKUPS: LazyLock<Mutex<HashMap<String, Arc<Lookup>>>> = LazyLock::new(Default::default);

impl Lookup {
    /// The lookup of `host` under way, or a new one.
    fn join(host: &str) -> RedisResult<Arc<Self>> {
        let pid = std::process::id();
        let mut lookups = LOOKUPS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lookup) = lookups.get(host).filter(|l| l.pid == pid) {
            return Ok(Arc::clone(lookup));
        }
        let lookup = Arc::new(Self {
            pid,
            answer: Mutex::new(None),
            done: Condvar::new(),
        });
        let (name, mine) = (host.to_owned(), Arc::clone(&lookup));
        thread::Builder::new()
            .name("stickless-dns".into())
            .spawn(move || mine.run(&name))
            .map_err(|e| helper_failed("a name lookup", &e))?;
        lookups.insert(host.to_owned(), Arc::clone(&lookup));
        Ok(lookup)
    }

    fn run(self: Arc<Self>, host: &str) {
        let answer = (host, 0)
            .to_socket_addrs()
            .map(dedup)
            .map_err(|e| (e.kind(), e.to_string()));
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
        self.done.notify_all();
        // Later steps look up afresh: no answer is cached beyond its lookup.
        let mut lookups = LOOKUPS.lock().unwrap_or_else(PoisonError::into_inner);
        if lookups.get(host).is_some_and(|l| Arc::ptr_eq(l, &self)) {
            lookups.remove(host);
        }
    }
}

/// The resolver may list an address more than once; keep the first.
fn dedup(addrs: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for addr in addrs {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// What one connect needs, owned, for its helper thread.
pub(super) struct Plan {
    pub server: Server,
    pub endpoint: Endpoint,
    pub role: Role,
    /// Resolved addresses (plain TCP); empty for TLS and Unix sockets.
    pub addrs: Vec<SocketAddr>,
    /// How many addresses the name has (for TLS, which resolves again).
    pub addresses: usize,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    pub deadline: Instant,
}

/// A connect under way on its helper thread.
pub(super) struct Dialing(Receiver<RedisResult<Connection>>);

impl Dialing {
    pub fn start(plan: Plan) -> RedisResult<Self> {
        let (tx, rx) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("stickless-connect".into())
            .spawn(move || {
                // Nobody waiting any more: the connection closes with the
                // thread, unless a later step has picked up `rx` meanwhile.
                let _ = tx.send(plan.run());
            })
            .map_err(|e| helper_failed("a connect", &e))?;
        Ok(Self(rx))
    }

    /// The connection, or its error; `Err(self)` back when `deadline`
    /// passed first, for a later step to wait on.
    pub fn finish(self, deadline: Instant) -> Result<RedisResult<Connection>, Self> {
        let left = deadline.saturating_duration_since(Instant::now()) + GRACE;
        match self.0.recv_timeout(left) {
            Ok(result) => Ok(result),
            Err(RecvTimeoutError::Timeout) => Err(self),
            Err(RecvTimeoutError::Disconnected) => Ok(Err(io::Error::other(
                "the connecting thread ended without an answer",
            )
            .into())),
        }
    }
}

impl Plan {
    fn run(self) -> RedisResult<Connection> {
        if self.addrs.is_empty() {
            return self.open(None, self.addresses);
        }
        let mut errors = Vec::new();
        for (i, addr) in self.addrs.iter().enumerate() {
            match self.open(Some(*addr), self.addrs.len() - i) {
                Ok(con) => return Ok(con),
                // Wrong credentials, unreadable TLS files: every address
                // would say the same.
                Err(e) if !e.is_io_error() => return Err(e),
                Err(e) => errors.push((addr.ip(), e)),
            }
        }
        Err(every_address_failed(errors))
    }

    /// One connect, with its share of what is left until the deadline.
    fn open(&self, addr: Option<SocketAddr>, addresses_left: usize) -> RedisResult<Connection> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let share = route::address_share(self.connect_timeout, left, addresses_left);
        if share.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no time left to connect").into());
        }
        connect::open(
            &self.server,
            &self.endpoint,
            addr,
            self.role,
            share,
            self.io_timeout.min(share),
        )
    }
}

/// One error for a name none of whose addresses answered: a timeout if
/// each timed out (so the step's message and retry decision are those of a
/// single address), otherwise a refusal; naming each address.
fn every_address_failed(mut errors: Vec<(IpAddr, RedisError)>) -> RedisError {
    if errors.len() <= 1 {
        return errors.pop().map_or_else(
            || io::Error::new(io::ErrorKind::NotFound, "the name has no address").into(),
            |(_, e)| e,
        );
    }
    let kind = if errors.iter().all(|(_, e)| e.is_timeout()) {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::ConnectionRefused
    };
    let why: Vec<String> = errors.iter().map(|(ip, e)| format!("{ip}: {e}")).collect();
    io::Error::new(kind, format!("no address answered ({})", why.join("; "))).into()
}

fn helper_failed(what: &str, e: &io::Error) -> RedisError {
    io::Error::other(format!("could not start a thread for {what}: {e}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_not_looked_up() {
        // An instant answer even with a deadline already passed.
        let past = Instant::now();
        let ips = |host| -> Vec<IpAddr> {
            let addrs = resolve(host, past).expect("a literal");
            addrs.iter().map(SocketAddr::ip).collect()
        };
        assert_eq!(ips("127.0.0.1"), vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(ips("::1"), vec!["::1".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn a_name_resolves_through_the_system_resolver() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let addrs = resolve("localhost", deadline).expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn duplicates_are_dropped_in_order() {
        let a = SocketAddr::from(([127, 0, 0, 2], 0));
        let b = SocketAddr::from(([127, 0, 0, 3], 0));
        assert_eq!(dedup([a, a, b, a, b].into_iter()), vec![a, b]);
    }
}
