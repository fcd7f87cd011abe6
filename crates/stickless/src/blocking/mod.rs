//! The blocking driver: one `redis::Connection` per node, opened lazily on
//! first use and reopened after `fork()` or a failure. This is what the PHP
//! extension uses; a php-fpm worker serves one request at a time, so a pool
//! or a runtime would only add cost.
//!
//! [`Store`] speaks the session protocol; `link` decides where each step
//! goes (standalone, Sentinel, Cluster) and what to do when it fails.

mod connect;
mod link;

use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use crate::cluster::slot;
use crate::config::{Config, Durability, Topology};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::{
    ABANDON_SCRIPT, ACQUIRE_SCRIPT, AcquireReply, COMMIT_SCRIPT, Call, DESTROY_SCRIPT,
    DestroyReply, FencedReply, RELEASE_SCRIPT, TOUCH_SCRIPT,
};
use crate::session::{Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::token::LockToken;
use crate::{OnLockTimeout, SessionId};
use link::{Link, Ran};

/// Shortest BLPOP wait Redis accepts without meaning "forever".
const MIN_BLOCK: Duration = Duration::from_millis(1);

/// A session store over blocking connections.
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
    link: Link,
    /// Tokens whose request gave up on an unreachable or hung server. The
    /// server may still run their last script after the client stopped
    /// waiting (it was in its receive buffer), leaving a lock or a queue
    /// entry nobody owns; a later request clears them first.
    orphans: Vec<(SessionKeys, LockToken)>,
}

/// More abandoned tokens than this are left to their leases.
const MAX_ORPHANS: usize = 16;

impl Store {
    /// A store for `config`. Does no I/O: connections open on first use.
    pub fn new(config: Config) -> Self {
        Self {
            link: Link::new(&config),
            config,
            orphans: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Switches to `config`, keeping the connections when the server, the
    /// credentials and the database are the same.
    pub fn reconfigure(&mut self, config: Config) {
        self.link.reconfigure(&config);
        self.config = config;
    }

    /// Round trips to Redis this store has made (for statistics and tests).
    pub fn round_trips(&self) -> u64 {
        self.link.round_trips()
    }

    /// The keys of `id` under this store's prefix.
    pub fn keys(&self, id: &SessionId) -> SessionKeys {
        SessionKeys::derive(&self.config.settings.prefix, id)
    }

    /// Locks `id` and reads it in one round trip, waiting for other holders
    /// (woken in arrival order, no polling) for at most `lock_wait`.
    pub fn lock(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys)?;
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
            let call = Call::new(&ACQUIRE_SCRIPT)
                .key(keys.data())
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
            let reply = self.call(&keys, &call, None)?.value.0;
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
                    self.wait_for_wake(&keys, &wake, nap)?;
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
    /// oldest one, so it is never free while anyone waits.) Resending is
    /// safe: a `SET NX` that landed makes the lock ours, which `ACQUIRE`
    /// then recognises by the token.
    fn take_free_lock(
        &mut self,
        keys: &SessionKeys,
        token: &LockToken,
        mode: OpenMode,
    ) -> Result<Option<Opened>, Error> {
        let (lock, data) = (keys.lock(), keys.data());
        let ttl = ms(self.config.settings.lock_ttl);
        let (taken, stored): (Value, Option<Vec<u8>>) = self
            .link
            .run(slot(keys.tag()), |con| {
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
            })?
            .value;
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

    /// Reads `id` without locking: one round trip, always from the primary.
    pub fn load(&mut self, id: &SessionId) -> Result<Loaded, Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys)?;
        let key = keys.data();
        let stored: Option<Vec<u8>> = self
            .link
            .run(slot(keys.tag()), |con| {
                redis::cmd("GET").arg(&key).query(con)
            })?
            .value;
        Ok(self.loaded(stored, &keys))
    }

    /// Writes `payload` if `lease` still owns the lock, then releases it (or
    /// hands it to the next waiter), in one round trip.
    ///
    /// A payload over `max_size` is refused without touching the stored
    /// value; the lock is released all the same. A commit whose reply was
    /// lost is sent again only where the script can tell: a resend finds
    /// either its lock still held (not applied: apply it now) or its own
    /// envelope stored (applied: done).
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
        let keys = &lease.keys;
        let first = Call::new(&COMMIT_SCRIPT)
            .key(keys.data())
            .key(keys.lock())
            .key(keys.queue())
            .arg(lease.token.as_str())
            .arg(envelope.as_slice())
            .arg(ms(ttl))
            .arg(keys.wake_prefix())
            .arg(ms(claim));
        let resend = Call::new(&COMMIT_SCRIPT)
            .key(keys.data())
            .key(keys.lock())
            .key(keys.queue())
            .arg(lease.token.as_str())
            .arg(envelope.as_slice())
            .arg(ms(ttl))
            .arg(keys.wake_prefix())
            .arg(ms(claim))
            .arg(1);
        let wait = self.replica_wait();
        let ran = self.fenced_run(
            &lease,
            |attempt| if attempt == 0 { &first } else { &resend },
            wait.as_ref(),
        )?;
        self.replicated(&lease.keys, &ran)?;
        fenced_reply(&lease, &ran.value.0, false)
    }

    /// Extends the stored value's lifetime and releases the lock: the step for
    /// an unchanged session, in one round trip.
    pub fn touch(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        let claim = self.claim_window();
        let keys = &lease.keys;
        let call = Call::new(&TOUCH_SCRIPT)
            .key(keys.data())
            .key(keys.lock())
            .key(keys.queue())
            .arg(lease.token.as_str())
            .arg(ms(ttl))
            .arg(keys.wake_prefix())
            .arg(ms(claim));
        let ran = self.fenced_run(&lease, |_| &call, None)?;
        // A resent touch that finds the lock gone most likely ran the first
        // time; either way the lock is not ours, which is what it is for.
        fenced_reply(&lease, &ran.value.0, ran.retried)
    }

    /// Releases the lock without writing (session_abort, read_and_close).
    pub fn release(&mut self, lease: Lease) -> Result<(), Error> {
        let claim = self.claim_window();
        let keys = &lease.keys;
        let call = Call::new(&RELEASE_SCRIPT)
            .key(keys.lock())
            .key(keys.queue())
            .arg(lease.token.as_str())
            .arg(keys.wake_prefix())
            .arg(ms(claim));
        let ran = self.fenced_run(&lease, |_| &call, None)?;
        fenced_reply(&lease, &ran.value.0, ran.retried)
    }

    /// Deletes a session in one round trip, releasing `lease` if given.
    /// Refused while another request holds the lock.
    pub fn destroy(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let keys = lease
            .as_ref()
            .map_or_else(|| self.keys(id), |l| l.keys.clone());
        if lease.is_none() {
            self.settle_orphans(&keys)?;
        }
        let token = lease.as_ref().map_or("", |l| l.token.as_str());
        let claim = self.claim_window();
        let call = Call::new(&DESTROY_SCRIPT)
            .key(keys.data())
            .key(keys.lock())
            .key(keys.queue())
            .arg(token)
            .arg(keys.wake_prefix())
            .arg(ms(claim));
        let wait = self.replica_wait();
        let ran = self.call(&keys, &call, wait.as_ref())?;
        self.replicated(&keys, &ran)?;
        match DestroyReply::parse(&ran.value.0)? {
            DestroyReply::Done => Ok(()),
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
        }
    }

    /// Stores a brand-new session in one round trip, refusing to overwrite an
    /// existing one. Needs no lock: nobody else knows the new ID yet.
    pub fn create(&mut self, id: &SessionId, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys)?;
        check_size(&keys, &payload, self.config.settings.max_size)?;
        let envelope = self.seal(Envelope::new(payload, now_ms()), &keys)?;
        let mut set = redis::cmd("SET");
        set.arg(keys.data())
            .arg(envelope.as_slice())
            .arg("PX")
            .arg(ms(ttl))
            .arg("NX");
        let wait = self.replica_wait();
        let ran =
            self.link
                .run_waiting(slot(keys.tag()), self.wait_budget(), |con| match &wait {
                    None => Ok((set.query::<Value>(con)?, Value::Nil)),
                    Some(wait) => redis::pipe()
                        .add_command(set.clone())
                        .add_command(wait.clone())
                        .query::<(Value, Value)>(con),
                })?;
        self.replicated(&keys, &ran)?;
        match ran.value.0 {
            Value::Nil if ran.retried => {
                // The first send may have landed before its reply was lost:
                // the stored value is then our envelope, byte for byte.
                let key = keys.data();
                let stored: Option<Vec<u8>> = self
                    .link
                    .run(slot(keys.tag()), |con| {
                        redis::cmd("GET").arg(&key).query(con)
                    })?
                    .value;
                if stored.as_deref() == Some(envelope.as_slice()) {
                    Ok(())
                } else {
                    Err(Error::Collision {
                        session: keys.tag().to_owned(),
                    })
                }
            }
            Value::Nil => Err(Error::Collision {
                session: keys.tag().to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Runs a script on the session's node (with `then` pipelined after it).
    fn call(
        &mut self,
        keys: &SessionKeys,
        call: &Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let wait = if then.is_some() {
            self.wait_budget()
        } else {
            Duration::ZERO
        };
        self.link
            .run_waiting(slot(keys.tag()), wait, |con| call.run(con, then))
    }

    /// Runs a fenced step; `pick(attempt)` chooses what each attempt sends.
    /// A token whose step never got a reply is remembered for cleanup.
    fn fenced_run<'c>(
        &mut self,
        lease: &Lease,
        pick: impl Fn(usize) -> &'c Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let wait = if then.is_some() {
            self.wait_budget()
        } else {
            Duration::ZERO
        };
        let mut attempt = 0;
        let ran = self.link.run_waiting(slot(lease.keys.tag()), wait, |con| {
            let call = pick(attempt);
            attempt += 1;
            call.run(con, then)
        });
        if let Err(Error::Unavailable { .. }) = &ran {
            self.remember(lease.keys.clone(), lease.token.clone());
        }
        ran
    }

    /// `WAIT 1 <timeout_ms>` when writes must reach a replica.
    fn replica_wait(&self) -> Option<Cmd> {
        (self.config.settings.durability == Durability::Replica).then(|| {
            let mut wait = redis::cmd("WAIT");
            wait.arg(1).arg(ms(self.config.settings.timeout));
            wait
        })
    }

    /// How long the server may hold back a `WAIT` reply on purpose.
    fn wait_budget(&self) -> Duration {
        match self.config.settings.durability {
            Durability::Replica => self.config.settings.timeout,
            Durability::Primary => Duration::ZERO,
        }
    }

    /// Checks the `WAIT` reply of a durable write.
    fn replicated(&self, keys: &SessionKeys, ran: &Ran<(Value, Value)>) -> Result<(), Error> {
        if self.config.settings.durability != Durability::Replica {
            return Ok(());
        }
        match ran.value.1 {
            Value::Int(n) if n >= 1 => Ok(()),
            _ => Err(Error::NotReplicated {
                session: keys.tag().to_owned(),
                waited: self.config.settings.timeout,
            }),
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

    /// Clears what earlier failed requests may have left (see `orphans`)
    /// on the node that `keys` lives on. A failure here is the caller's
    /// failure too: that node is still not answering, and trying the
    /// caller's step as well would double the time budget. On a cluster,
    /// orphans on other nodes wait for a request that goes there (or for
    /// their leases): a node that is down must not fail requests for the
    /// others.
    fn settle_orphans(&mut self, keys: &SessionKeys) -> Result<(), Error> {
        let claim = self.claim_window();
        let here = slot(keys.tag());
        let cluster = matches!(self.config.server.topology, Topology::Cluster(_));
        let mut i = self.orphans.len();
        while i > 0 {
            i -= 1;
            let (keys, token) = self.orphans[i].clone();
            if cluster && slot(keys.tag()) != here {
                continue;
            }
            let call = Call::new(&ABANDON_SCRIPT)
                .key(keys.lock())
                .key(keys.queue())
                .arg(token.as_str())
                .arg(keys.wake_prefix())
                .arg(ms(claim));
            self.call(&keys, &call, None)?;
            self.orphans.remove(i);
        }
        Ok(())
    }

    /// How long a handed-over lock waits for its new owner to claim it.
    fn claim_window(&self) -> Duration {
        let s = &self.config.settings;
        (s.timeout * 2).min(s.lock_ttl)
    }

    /// Blocks until woken or `nap` passes. The server holds the reply back
    /// for `nap` on purpose, so the reply budget grows by that much.
    fn wait_for_wake(
        &mut self,
        keys: &SessionKeys,
        wake: &str,
        nap: Duration,
    ) -> Result<(), Error> {
        let secs = format!("{:.3}", nap.as_secs_f64());
        self.link.run_waiting(slot(keys.tag()), nap, |con| {
            redis::cmd("BLPOP").arg(wake).arg(&secs).query::<Value>(con)
        })?;
        Ok(())
    }
}

/// Reads a fenced step's reply. `lost_is_done` for steps whose purpose (not
/// holding the lock) a lost lock fulfils when the step had to be resent.
fn fenced_reply(lease: &Lease, reply: &Value, lost_is_done: bool) -> Result<(), Error> {
    match FencedReply::parse(reply)? {
        FencedReply::Done => Ok(()),
        FencedReply::Lost(_) if lost_is_done => Ok(()),
        FencedReply::Lost(reason) => Err(Error::LockLost {
            session: lease.session().to_owned(),
            reason,
        }),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
