//! The blocking driver: one `redis::Connection` per process, opened lazily on
//! first use and reopened after `fork()` or a failure. This is what the PHP
//! extension uses; a php-fpm worker serves one request at a time, so a pool
//! or a runtime would only add cost.

use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};

use crate::config::{Config, Endpoint, Topology};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::{
    ABANDON_SCRIPT, ACQUIRE_SCRIPT, AcquireReply, COMMIT_SCRIPT, DESTROY_SCRIPT, DestroyReply,
    FencedReply, RELEASE_SCRIPT, TOUCH_SCRIPT,
};
use crate::session::{Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::token::LockToken;
use crate::{OnLockTimeout, SessionId};

/// Shortest BLPOP wait Redis accepts without meaning "forever".
const MIN_BLOCK: Duration = Duration::from_millis(1);

/// A session store over one blocking connection.
///
/// ```no_run
/// use std::time::Duration;
/// use stickless::{Config, OpenMode, Opened, SessionId, Store};
///
/// let mut store = Store::new(Config::parse("redis://127.0.0.1:6379/0?prefix=app:")?);
/// let id = SessionId::parse("0123456789abcdef0123456789abcdef")?;
/// if let Opened::Locked { lease, loaded, .. } = store.lock(&id, OpenMode::CreateIfMissing)? {
///     let mut payload = loaded.payload().to_vec();
///     payload.extend_from_slice(b"seen|b:1;");
///     store.commit(lease, payload, Duration::from_secs(1440))?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Store {
    config: Config,
    conn: Option<Live>,
    /// Round trips sent so far (each step, each resend).
    round_trips: u64,
    /// Tokens whose request gave up on an unreachable or hung server. The
    /// server may still run their last script after the client stopped
    /// waiting (it was in its receive buffer), leaving a lock or a queue
    /// entry nobody owns; the next request clears them first.
    orphans: Vec<(SessionKeys, LockToken)>,
}

/// More abandoned tokens than this are left to their leases.
const MAX_ORPHANS: usize = 16;

struct Live {
    pid: u32,
    con: Connection,
}

impl Store {
    /// A store for `config`. Does no I/O: the connection opens on first use.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            conn: None,
            round_trips: 0,
            orphans: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Switches to `config`, keeping the connection when the server, the
    /// credentials and the database are the same.
    pub fn reconfigure(&mut self, config: Config) {
        if config.server != self.config.server {
            self.conn = None;
        }
        self.config = config;
    }

    /// Round trips to Redis this store has made (for statistics and tests).
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// The keys of `id` under this store's prefix.
    pub fn keys(&self, id: &SessionId) -> SessionKeys {
        SessionKeys::derive(&self.config.settings.prefix, id)
    }

    /// Locks `id` and reads it in one round trip, waiting for other holders
    /// (woken in arrival order, no polling) for at most `lock_wait`.
    pub fn lock(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        self.settle_orphans()?;
        let keys = self.keys(id);
        let token = LockToken::random()?;
        match self.acquire(keys.clone(), token.clone(), mode) {
            Err(e @ Error::Unavailable { .. }) => {
                self.remember(keys, token);
                Err(e)
            }
            other => other,
        }
    }

    fn acquire(
        &mut self,
        keys: SessionKeys,
        token: LockToken,
        mode: OpenMode,
    ) -> Result<Opened, Error> {
        if let Some(opened) = self.take_free_lock(&keys, &token, mode)? {
            return Ok(opened);
        }
        let s = &self.config.settings;
        let (lock_wait, lock_ttl, on_timeout) = (s.lock_wait, s.lock_ttl, s.on_lock_timeout);
        let max_waiters = s.max_waiters;
        let claim = self.claim_window();
        let queue_ttl = lock_wait + lock_ttl;
        let started = Instant::now();
        let deadline = started + lock_wait;
        let wake = format!("{}{}", keys.wake_prefix(), token.as_str());
        let mut queued = false;
        loop {
            let last_try = Instant::now() >= deadline;
            let mut inv = ACQUIRE_SCRIPT.prepare_invoke();
            inv.key(keys.data())
                .key(keys.lock())
                .key(keys.queue())
                .arg(token.as_str())
                .arg(ms(lock_ttl))
                .arg(u8::from(mode == OpenMode::RequireExisting))
                .arg(u8::from(last_try))
                .arg(ms(queue_ttl))
                .arg(keys.wake_prefix())
                .arg(ms(claim))
                .arg(u8::from(queued))
                .arg(max_waiters);
            let reply = self.run(|con| inv.invoke::<Value>(con))?;
            match AcquireReply::parse(&reply)? {
                AcquireReply::Acquired(stored) => {
                    let loaded = self.loaded(stored, &keys);
                    let lease = Lease::new(keys, token, &loaded);
                    let waited = if queued {
                        started.elapsed()
                    } else {
                        Duration::ZERO
                    };
                    return Ok(Opened::Locked {
                        lease,
                        loaded,
                        waited,
                    });
                }
                AcquireReply::Missing => return Ok(Opened::Missing),
                AcquireReply::Crowded => {
                    return Err(Error::TooManyWaiters {
                        session: keys.tag().to_owned(),
                        limit: max_waiters,
                    });
                }
                AcquireReply::Busy { data, .. } if last_try => {
                    let waited = started.elapsed();
                    return match on_timeout {
                        OnLockTimeout::Readonly => Ok(Opened::ReadOnly {
                            loaded: self.loaded(data, &keys),
                            waited,
                        }),
                        OnLockTimeout::Fail => Err(Error::LockTimeout {
                            session: keys.tag().to_owned(),
                            waited,
                        }),
                    };
                }
                AcquireReply::Busy { pttl_ms, .. } => {
                    queued = true;
                    // Wake on hand-off; or when the holder's lease would lapse
                    // (a crashed holder never hands off); or after a claim
                    // window, in case the lock went to a waiter that died
                    // meanwhile and lapses unclaimed. Whichever is first.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let nap = left
                        .min(Duration::from_millis(pttl_ms))
                        .min(claim)
                        .max(MIN_BLOCK);
                    self.wait_for_wake(&wake, nap)?;
                }
            }
        }
    }

    /// The common, uncontended case without a script: `SET NX PX` takes a
    /// free lock and a pipelined `GET` reads the data, in one round trip.
    /// Scripts cost Redis far more CPU than plain commands, and the value
    /// does not cross into Lua. `None` when the lock is held: the caller
    /// queues through the `ACQUIRE` script. (A newcomer cannot overtake
    /// queued waiters: a releasing request hands the lock straight to the
    /// oldest one, so it is never free while anyone waits.)
    fn take_free_lock(
        &mut self,
        keys: &SessionKeys,
        token: &LockToken,
        mode: OpenMode,
    ) -> Result<Option<Opened>, Error> {
        let (lock, data) = (keys.lock(), keys.data());
        let ttl = ms(self.config.settings.lock_ttl);
        let (taken, stored): (Value, Option<Vec<u8>>) = self.run(|con| {
            redis::pipe()
                .cmd("SET")
                .arg(&lock)
                .arg(token.as_str())
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .cmd("GET")
                .arg(&data)
                .query(con)
        })?;
        if taken == Value::Nil {
            return Ok(None);
        }
        let loaded = self.loaded(stored, keys);
        let lease = Lease::new(keys.clone(), token.clone(), &loaded);
        if mode == OpenMode::RequireExisting && loaded == Loaded::Empty {
            // Strict mode met an unknown ID: give the lock back.
            self.release(lease)?;
            return Ok(Some(Opened::Missing));
        }
        Ok(Some(Opened::Locked {
            lease,
            loaded,
            waited: Duration::ZERO,
        }))
    }

    /// Reads `id` without locking: one round trip.
    pub fn load(&mut self, id: &SessionId) -> Result<Loaded, Error> {
        self.settle_orphans()?;
        let keys = self.keys(id);
        let key = keys.data();
        let stored: Option<Vec<u8>> = self.run(|con| redis::cmd("GET").arg(&key).query(con))?;
        Ok(self.loaded(stored, &keys))
    }

    /// Writes `payload` if `lease` still owns the lock, then releases it (or
    /// hands it to the next waiter), in one round trip.
    ///
    /// A payload over `max_size` is refused without touching the stored
    /// value; the lock is released all the same.
    pub fn commit(&mut self, lease: Lease, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        if let Err(too_large) = check_size(&lease.keys, &payload, self.config.settings.max_size) {
            // The refusal is what the caller must hear about; a failed
            // release is remembered and retried by the next request.
            let _ = self.release(lease);
            return Err(too_large);
        }
        let envelope = match self.seal(lease.next_envelope(payload), &lease.keys) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = self.release(lease);
                return Err(e);
            }
        };
        let claim = self.claim_window();
        let mut inv = COMMIT_SCRIPT.prepare_invoke();
        inv.key(lease.keys.data())
            .key(lease.keys.lock())
            .key(lease.keys.queue())
            .arg(lease.token.as_str())
            .arg(envelope)
            .arg(ms(ttl))
            .arg(lease.keys.wake_prefix())
            .arg(ms(claim));
        self.fenced(&lease, |con| inv.invoke(con))
    }

    /// Extends the stored value's lifetime and releases the lock: the step for
    /// an unchanged session, in one round trip.
    pub fn touch(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        let claim = self.claim_window();
        let mut inv = TOUCH_SCRIPT.prepare_invoke();
        inv.key(lease.keys.data())
            .key(lease.keys.lock())
            .key(lease.keys.queue())
            .arg(lease.token.as_str())
            .arg(ms(ttl))
            .arg(lease.keys.wake_prefix())
            .arg(ms(claim));
        self.fenced(&lease, |con| inv.invoke(con))
    }

    /// Releases the lock without writing (session_abort, read_and_close).
    pub fn release(&mut self, lease: Lease) -> Result<(), Error> {
        let claim = self.claim_window();
        let mut inv = RELEASE_SCRIPT.prepare_invoke();
        inv.key(lease.keys.lock())
            .key(lease.keys.queue())
            .arg(lease.token.as_str())
            .arg(lease.keys.wake_prefix())
            .arg(ms(claim));
        self.fenced(&lease, |con| inv.invoke(con))
    }

    /// Deletes a session in one round trip, releasing `lease` if given.
    /// Refused while another request holds the lock.
    pub fn destroy(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        if lease.is_none() {
            self.settle_orphans()?;
        }
        let keys = lease
            .as_ref()
            .map_or_else(|| self.keys(id), |l| l.keys.clone());
        let token = lease.as_ref().map_or("", |l| l.token.as_str());
        let claim = self.claim_window();
        let mut inv = DESTROY_SCRIPT.prepare_invoke();
        inv.key(keys.data())
            .key(keys.lock())
            .key(keys.queue())
            .arg(token)
            .arg(keys.wake_prefix())
            .arg(ms(claim));
        let reply = self.run(|con| inv.invoke::<Value>(con))?;
        match DestroyReply::parse(&reply)? {
            DestroyReply::Done => Ok(()),
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
        }
    }

    /// Stores a brand-new session in one round trip, refusing to overwrite an
    /// existing one. Needs no lock: nobody else knows the new ID yet.
    pub fn create(&mut self, id: &SessionId, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        self.settle_orphans()?;
        let keys = self.keys(id);
        check_size(&keys, &payload, self.config.settings.max_size)?;
        let envelope = self.seal(Envelope::new(payload, now_ms()), &keys)?;
        let set: Value = self.run(|con| {
            redis::cmd("SET")
                .arg(keys.data())
                .arg(envelope.as_slice())
                .arg("PX")
                .arg(ms(ttl))
                .arg("NX")
                .query(con)
        })?;
        match set {
            Value::Nil => Err(Error::Collision {
                session: keys.tag().to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn loaded(&self, stored: Option<Vec<u8>>, keys: &SessionKeys) -> Loaded {
        let ring = self.config.settings.encryption_keys.as_ref();
        Loaded::from_stored(stored, ring, keys.tag())
    }

    fn seal(&self, envelope: Envelope, keys: &SessionKeys) -> Result<Vec<u8>, Error> {
        envelope.seal(self.config.settings.encryption_keys.as_ref(), keys.tag())
    }

    fn remember(&mut self, keys: SessionKeys, token: LockToken) {
        if self.orphans.len() >= MAX_ORPHANS {
            self.orphans.remove(0);
        }
        self.orphans.push((keys, token));
    }

    /// Clears what earlier failed requests may have left (see `orphans`).
    /// A failure here is the caller's failure too: the server is still not
    /// answering, and trying the caller's step as well would double the
    /// time budget.
    fn settle_orphans(&mut self) -> Result<(), Error> {
        let claim = self.claim_window();
        while let Some((keys, token)) = self.orphans.last().cloned() {
            let mut inv = ABANDON_SCRIPT.prepare_invoke();
            inv.key(keys.lock())
                .key(keys.queue())
                .arg(token.as_str())
                .arg(keys.wake_prefix())
                .arg(ms(claim));
            self.run(|con| inv.invoke::<Value>(con))?;
            self.orphans.pop();
        }
        Ok(())
    }

    /// How long a handed-over lock waits for its new owner to claim it.
    fn claim_window(&self) -> Duration {
        let s = &self.config.settings;
        (s.timeout * 2).min(s.lock_ttl)
    }

    fn fenced(
        &mut self,
        lease: &Lease,
        step: impl FnMut(&mut Connection) -> redis::RedisResult<Value>,
    ) -> Result<(), Error> {
        let reply = match self.run(step) {
            Ok(reply) => reply,
            Err(e) => {
                if matches!(e, Error::Unavailable { .. }) {
                    self.remember(lease.keys.clone(), lease.token.clone());
                }
                return Err(e);
            }
        };
        match FencedReply::parse(&reply)? {
            FencedReply::Done => Ok(()),
            FencedReply::Lost(reason) => Err(Error::LockLost {
                session: lease.session().to_owned(),
                reason,
            }),
        }
    }

    fn wait_for_wake(&mut self, wake: &str, nap: Duration) -> Result<(), Error> {
        let timeout = self.config.settings.timeout;
        let secs = format!("{:.3}", nap.as_secs_f64());
        self.run(|con| {
            // The reply comes when woken or after `nap`: give the socket that
            // long plus the normal reply budget, then restore it.
            con.set_read_timeout(Some(nap + timeout))?;
            let woken: redis::RedisResult<Value> =
                redis::cmd("BLPOP").arg(wake).arg(&secs).query(con);
            con.set_read_timeout(Some(timeout))?;
            woken
        })?;
        Ok(())
    }

    /// Runs one step on the live connection, connecting first if needed. Any
    /// I/O failure drops the connection so the next step starts clean.
    ///
    /// A connection kept from an earlier request may have died meanwhile
    /// (Redis restarted, an idle timeout, a failover behind a stable
    /// address); its first use then fails with a dropped connection, and the
    /// step is sent once more on a new one. Repeating a step never does
    /// harm: the scripts are fenced by the lock token, and a repeated ACQUIRE
    /// with the same token finds the lock already ours. (In the rare case
    /// that the first send was applied before the connection died, a
    /// repeated COMMIT reports the lock lost although the write landed.) A
    /// timeout is never repeated: a hung server must cost at most the
    /// configured budget.
    fn run<T>(
        &mut self,
        mut step: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let pid = std::process::id();
        if self.conn.as_ref().is_some_and(|live| live.pid != pid) {
            // Inherited across fork(): the parent owns this socket. Forget it
            // without a QUIT, which would close the parent's session too.
            if let Some(live) = self.conn.take() {
                std::mem::forget(live.con);
            }
        }
        let mut reused = self.conn.is_some();
        loop {
            if self.conn.is_none() {
                let con = self
                    .connect()
                    .map_err(|e| self.unavailable(&e, started, Phase::Connect))?;
                self.conn = Some(Live { pid, con });
            }
            let Some(live) = self.conn.as_mut() else {
                unreachable!("connected just above");
            };
            self.round_trips += 1;
            match step(&mut live.con) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let broken = e.is_unrecoverable_error() || e.is_timeout() || e.is_io_error();
                    if broken {
                        self.conn = None;
                    }
                    if reused && broken && !e.is_timeout() {
                        reused = false;
                        continue;
                    }
                    return Err(self.unavailable(&e, started, Phase::Reply));
                }
            }
        }
    }

    fn unavailable(&self, e: &redis::RedisError, started: Instant, phase: Phase) -> Error {
        let s = &self.config.settings;
        // The OS reports a socket timeout as EAGAIN ("Resource temporarily
        // unavailable"); say what it means.
        let cause = match phase {
            _ if !e.is_timeout() => e.to_string(),
            Phase::Connect => format!(
                "could not connect within connect_timeout_ms ({} ms)",
                s.connect_timeout.as_millis()
            ),
            Phase::Reply => format!(
                "no reply within timeout_ms ({} ms); is the server hung or overloaded?",
                s.timeout.as_millis()
            ),
        };
        Error::Unavailable {
            server: self.config.server.to_string(),
            cause,
            elapsed: started.elapsed(),
        }
    }

    fn connect(&self) -> redis::RedisResult<Connection> {
        let s = &self.config.settings;
        let server = &self.config.server;
        let addr = match &server.topology {
            Topology::Standalone(Endpoint::Tcp { host, port, tls }) if *tls => {
                install_crypto_provider();
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            }
            Topology::Standalone(Endpoint::Tcp { host, port, .. }) => {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
            Topology::Standalone(Endpoint::Unix(path)) => ConnectionAddr::Unix(path.clone()),
        };
        let mut redis = RedisConnectionInfo::default()
            .set_db(server.db)
            .set_skip_set_lib_name();
        if let Some(user) = &server.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &server.password {
            redis = redis.set_password(password.expose());
        }
        let info = addr.into_connection_info()?.set_redis_settings(redis);
        let con = Client::open(info)?.get_connection_with_timeout(s.connect_timeout)?;
        con.set_read_timeout(Some(s.timeout))?;
        con.set_write_timeout(Some(s.timeout))?;
        Ok(con)
    }
}

impl Drop for Store {
    /// A forked child that never used its inherited connection must not
    /// close it in a way that could reach the parent's session.
    fn drop(&mut self) {
        if let Some(live) = self.conn.take()
            && live.pid != std::process::id()
        {
            std::mem::forget(live.con);
        }
    }
}

/// Which part of a step failed, for the message.
#[derive(Clone, Copy)]
enum Phase {
    Connect,
    Reply,
}

fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
