//! The blocking driver: one `redis::Connection` per node, opened lazily on
//! first use and reopened after `fork()` or a failure. This is what the PHP
//! extension uses; a php-fpm worker serves one request at a time, so a pool
//! or a runtime would only add cost.
//!
//! [`Store`] speaks the session protocol; `link` decides where each step
//! goes (standalone, Sentinel, Cluster) and what to do when it fails.

mod link;

use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use crate::SessionId;
use crate::cluster::slot;
use crate::config::{Config, Topology};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::{Call, DestroyReply};
use crate::session::{Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::steps::{self, Acquired, Created};
use crate::token::LockToken;
use link::{Link, Ran};

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
        let started = Instant::now();
        let deadline = started + self.config.settings.lock_wait;
        let wake = keys.wake(&token);
        let mut queued = false;
        loop {
            let last_try = Instant::now() >= deadline;
            let call = steps::acquire(&keys, &token, &self.config.settings, mode, last_try, queued);
            let reply = self.call(&keys, &call, None)?.value.0;
            let s = &self.config.settings;
            match Acquired::read(&reply, &keys, &token, last_try, queued, started, s)? {
                Acquired::Done(outcome) => return outcome,
                Acquired::Wait { pttl_ms } => {
                    queued = true;
                    let left = deadline.saturating_duration_since(Instant::now());
                    let nap = steps::nap(left, pttl_ms, &self.config.settings);
                    let cmd = steps::wait_for_wake(&wake, nap);
                    self.link
                        .run_waiting(slot(keys.tag()), nap, |con| cmd.query::<Value>(con))?;
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
        let pipe = steps::take_free_lock(keys, token, &self.config.settings);
        let (taken, stored): (Value, Option<Vec<u8>>) = self
            .link
            .run(slot(keys.tag()), |con| pipe.query(con))?
            .value;
        if taken == Value::Nil {
            return Ok(None);
        }
        let loaded = steps::loaded(&self.config.settings, stored, keys);
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
        Ok(steps::loaded(&self.config.settings, stored, &keys))
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
        let s = &self.config.settings;
        let sealed = check_size(&lease.keys, &payload, s.max_size)
            .and_then(|()| steps::seal(s, lease.next_envelope(payload), &lease.keys));
        let envelope = match sealed {
            Ok(bytes) => bytes,
            Err(refused) => {
                // The refusal is what the caller must hear about; a failed
                // release is remembered and retried by the next request.
                let _ = self.release(lease);
                return Err(refused);
            }
        };
        let first = steps::commit(&lease, &envelope, ttl, s, false);
        let resend = steps::commit(&lease, &envelope, ttl, s, true);
        let wait = steps::replica_wait(s);
        let pick = |attempt: usize| if attempt == 0 { &first } else { &resend };
        let ran = self.fenced_run(&lease, pick, wait.as_ref())?;
        steps::replicated(&self.config.settings, &lease.keys, &ran.value.1)?;
        steps::fenced_reply(&lease, &ran.value.0, false)
    }

    /// Extends the stored value's lifetime and releases the lock: the step for
    /// an unchanged session, in one round trip.
    pub fn touch(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        let call = steps::touch(&lease, ttl, &self.config.settings);
        let ran = self.fenced_run(&lease, |_| &call, None)?;
        // A resent touch that finds the lock gone most likely ran the first
        // time; either way the lock is not ours, which is what it is for.
        steps::fenced_reply(&lease, &ran.value.0, ran.retried)
    }

    /// Releases the lock without writing (session_abort, read_and_close).
    pub fn release(&mut self, lease: Lease) -> Result<(), Error> {
        let call = steps::release(&lease, &self.config.settings);
        let ran = self.fenced_run(&lease, |_| &call, None)?;
        steps::fenced_reply(&lease, &ran.value.0, ran.retried)
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
        let call = steps::destroy(&keys, token, &self.config.settings);
        let wait = steps::replica_wait(&self.config.settings);
        let ran = self.call(&keys, &call, wait.as_ref())?;
        steps::replicated(&self.config.settings, &keys, &ran.value.1)?;
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
        let s = &self.config.settings;
        check_size(&keys, &payload, s.max_size)?;
        let envelope = steps::seal(s, Envelope::new(payload, now_ms()), &keys)?;
        let pipe = steps::create(&keys, &envelope, ttl, s);
        let slot = slot(keys.tag());
        let ran = self.link.run_waiting(slot, steps::wait_budget(s), |con| {
            pipe.query::<Vec<Value>>(con)
        })?;
        match steps::created(&ran.value, ran.retried, &keys, &self.config.settings)? {
            Created::Done => Ok(()),
            Created::Check => {
                let key = keys.data();
                let stored: Option<Vec<u8>> = self
                    .link
                    .run(slot, |con| redis::cmd("GET").arg(&key).query(con))?
                    .value;
                steps::own_create(&keys, stored.as_deref(), &envelope)
            }
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
            steps::wait_budget(&self.config.settings)
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
            steps::wait_budget(&self.config.settings)
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
        let here = slot(keys.tag());
        let cluster = matches!(self.config.server.topology, Topology::Cluster(_));
        let mut i = self.orphans.len();
        while i > 0 {
            i -= 1;
            let (keys, token) = self.orphans[i].clone();
            if cluster && slot(keys.tag()) != here {
                continue;
            }
            let call = steps::abandon(&keys, &token, &self.config.settings);
            self.call(&keys, &call, None)?;
            self.orphans.remove(i);
        }
        Ok(())
    }
}
