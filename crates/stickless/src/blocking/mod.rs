//! The blocking driver: one `redis::Connection` per node, opened lazily on
//! first use and reopened after `fork()` or a failure. This is what the PHP
//! extension uses; a php-fpm worker serves one request at a time, so a pool
//! or a runtime would only add cost.
//!
//! [`Store`] speaks the session protocol; `link` decides where each step
//! goes (standalone, Sentinel, Cluster) and what to do when it fails.

mod keeper;
mod legacy;
mod link;
mod merge;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use crate::SessionId;
use crate::cluster::slot;
use crate::config::Config;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keeper::Claim;
use crate::keys::SessionKeys;
use crate::legacy::Legacy;
use crate::metrics::{self, Probe, Step};
use crate::route::Op;
use crate::scripts::{self, Call, DestroyReply};
use crate::session::{Committed, Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::steps::{self, Acquired, Created, FreeLock, OnFree, Stored};
use crate::token::LockToken;
use crate::users::{self, Bound, Meta, UserId, UserKeys, UserSession};
use keeper::Keeper;
use link::{Link, Ran};

/// A session store over blocking connections.
///
/// Held leases are renewed, and tokens of steps that got no reply are
/// cleared, by a background thread with connections of its own, started on
/// the first lock (see `crate::keeper`).
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
    keeper: Keeper,
    /// Round trips already counted in [`crate::metrics`].
    reported: AtomicU64,
}

impl Store {
    /// A store for `config`. Does no I/O: connections open on first use.
    pub fn new(config: Config) -> Self {
        Self {
            link: Link::new(&config),
            keeper: Keeper::new(&config),
            reported: AtomicU64::new(0),
            config,
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
        self.keeper.reconfigure(&config);
        self.config = config;
    }

    /// Round trips to Redis this store's requests have made (for statistics
    /// and tests); the background renewals are not counted.
    pub fn round_trips(&self) -> u64 {
        self.link.round_trips()
    }

    /// Round trips since the last step was counted in [`crate::metrics`].
    fn unreported(&self) -> u64 {
        metrics::unreported(&self.reported, self.link.round_trips())
    }

    /// Leases being renewed in the background, and tokens waiting to be
    /// cleared after a failure (for statistics and tests).
    pub fn background(&self) -> (usize, usize) {
        self.keeper.counts()
    }

    /// The keys of `id` under this store's prefix.
    pub fn keys(&self, id: &SessionId) -> SessionKeys {
        SessionKeys::derive(&self.config.settings.prefix, id)
    }

    /// Locks `id` and reads it in one round trip, waiting for other holders
    /// (woken in arrival order, no polling) for at most `lock_wait`.
    pub fn lock(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        let probe = Probe::start(Step::Lock);
        let result = self.lock_step(id, mode);
        probe.opened(&result, self.unreported());
        result
    }

    fn lock_step(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        if let Some(compat) = self.config.settings.compat.clone() {
            return self.lock_compat(id, mode, &compat);
        }
        self.lock_native(id, mode)
    }

    fn lock_native(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        let keys = self.keys(id);
        let token = LockToken::random()?;
        // Dropped unsettled (no reply), the claim's token is abandoned in
        // the background: the server may still take the lock for it.
        let claim = self.keeper.claim(keys.clone(), token.clone());
        let import = self.config.settings.import.clone().map(|from| (id, from));
        self.acquire(&keys, &token, claim, mode, import)
    }

    /// `import`: the session's ID and the handler to move it from on a miss.
    fn acquire(
        &mut self,
        keys: &SessionKeys,
        token: &LockToken,
        mut claim: Claim,
        mode: OpenMode,
        import: Option<(&SessionId, Legacy)>,
    ) -> Result<Opened, Error> {
        let s = &self.config.settings;
        // The common, uncontended case without a script: `SET NX PX` takes
        // a free lock and a pipelined `GET` reads the data, in one round
        // trip. Scripts cost Redis far more CPU than plain commands, and the
        // value does not cross into Lua. A newcomer cannot overtake waiters:
        // a hand-off reserves the lock, so it is never free while anyone
        // waits. Resending is safe: a `SET NX` that landed makes the lock
        // ours, which `ACQUIRE` recognises by the token.
        let pipe = steps::take_free_lock(keys, token, s);
        let reply = self.link.run(slot(keys.tag()), Op::Pipe(&pipe))?.value;
        match steps::free_lock(reply)? {
            FreeLock::Taken(Stored { value: None, .. })
                if mode != OpenMode::New
                    && let Some((id, from)) = &import =>
            {
                let (id, from) = (*id, from.clone());
                return self.import_locked(id, keys, claim, mode, Duration::ZERO, &from);
            }
            FreeLock::Taken(stored) => {
                let give_back = steps::on_free(mode, stored.value.as_deref(), keys);
                let opened = steps::opened_read(keys, claim, stored, Duration::ZERO, s);
                return match (give_back, opened) {
                    (OnFree::GiveBack(outcome), Opened::Locked { lease, .. }) => {
                        self.release(lease)?;
                        outcome
                    }
                    (_, opened) => Ok(opened),
                };
            }
            FreeLock::Held if mode == OpenMode::New => {
                claim.settle(self.link.pid());
                return Err(steps::held_new(keys));
            }
            FreeLock::Held => {}
        }
        let started = Instant::now();
        let deadline = started + s.lock_wait;
        let mut woken = false;
        loop {
            let s = &self.config.settings;
            let now = Instant::now();
            let last_try = now >= deadline;
            let cap = steps::nap_cap(deadline.saturating_duration_since(now), s);
            let call = steps::acquire(keys, token, s, mode, last_try, cap, woken);
            let reply = self.call(keys, &call, None)?.value.0;
            let s = &self.config.settings;
            match Acquired::read(&reply, keys, started, s)? {
                Acquired::Locked {
                    stored: Stored { value: None, .. },
                } if mode != OpenMode::New
                    && let Some((id, from)) = &import =>
                {
                    let (id, from) = (*id, from.clone());
                    return self.import_locked(id, keys, claim, mode, started.elapsed(), &from);
                }
                Acquired::Locked { stored } => {
                    return Ok(steps::opened_read(
                        keys,
                        claim,
                        stored,
                        started.elapsed(),
                        s,
                    ));
                }
                Acquired::Done(outcome) => {
                    claim.settle(self.link.pid());
                    return outcome;
                }
                Acquired::Wait { nap } => {
                    let cmd = steps::wait_for_wake(keys, nap);
                    let baton = self
                        .link
                        .run_waiting(slot(keys.tag()), nap, Op::Cmd(&cmd))?;
                    woken = steps::woken(&baton.value);
                }
            }
        }
    }

    /// Reads `id` without locking: one round trip, always from the primary.
    pub fn load(&mut self, id: &SessionId) -> Result<Loaded, Error> {
        let probe = Probe::start(Step::Load);
        let result = self.load_step(id);
        probe.loaded(&result, self.unreported());
        result
    }

    fn load_step(&mut self, id: &SessionId) -> Result<Loaded, Error> {
        if let Some(compat) = self.config.settings.compat.clone()
            && let Some(loaded) = self.load_compat(id, &compat)?
        {
            return Ok(loaded);
        }
        let keys = self.keys(id);
        let mut get = redis::cmd("GET");
        get.arg(keys.data());
        let reply = self.link.run(slot(keys.tag()), Op::Cmd(&get))?.value;
        let stored: Option<Vec<u8>> = steps::reply_as("load", reply)?;
        Ok(steps::loaded(
            &self.config.settings,
            stored.as_deref(),
            &keys,
        ))
    }

    /// Writes `payload` if `lease` still owns the lock, then releases it (or
    /// hands it to the next waiter), in one round trip.
    ///
    /// A lease that lapsed (its renewals could not reach Redis for a whole
    /// `lock_ttl_ms`) still writes when nobody changed the session since it
    /// was read: a compare-and-set on the revision. A payload over
    /// `max_size` is refused without touching the stored value; the lock is
    /// released all the same. A commit whose reply was lost is sent again
    /// only where the script can tell: a resend finds either its lock still
    /// held (not applied: apply it now) or its own envelope stored
    /// (applied: done).
    pub fn commit(
        &mut self,
        lease: Lease,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Committed, Error> {
        let probe = Probe::start(Step::Commit);
        let (written, new) = (payload.len(), !lease.was_stored());
        let bound = Bound::of(&lease);
        let result = self.commit_step(lease, payload, ttl);
        let result = match (result, bound) {
            (Ok(done), Some(bound)) => self.renew_entry(&bound, ttl).map(|()| done),
            (result, _) => result,
        };
        probe.committed(&result, written, new, self.unreported());
        result
    }

    fn commit_step(
        &mut self,
        lease: Lease,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Committed, Error> {
        if lease.keys.is_legacy() {
            return self.commit_compat(lease, &payload, ttl);
        }
        let s = &self.config.settings;
        let sealed = check_size(&lease.keys, &payload, s.max_size)
            .and_then(|()| steps::seal(s, lease.next_envelope(payload), &lease.keys));
        let envelope = match sealed {
            Ok(bytes) => bytes,
            Err(refused) => {
                // The refusal is what the caller must hear about; a failed
                // release is cleared in the background.
                let _ = self.release(lease);
                return Err(refused);
            }
        };
        let step = steps::commit(&lease, &envelope, ttl, s);
        let wait = steps::replica_wait(s);
        let started = Instant::now();
        for _ in 0..steps::STAGE_TRIES {
            let op = step.op(wait.as_ref());
            let ran = self.run_script(&lease.keys, op, wait.is_some())?;
            let Some(outcome) = steps::committed(&lease, &ran.value.0).transpose() else {
                continue;
            };
            let replicated = steps::replicated(&self.config.settings, &lease.keys, &ran.value.1);
            lease.settle(self.link.pid());
            return replicated.and(outcome);
        }
        let server = self.config.server.to_string();
        let unstaged = steps::unstaged(&server, &lease, started.elapsed());
        // Nothing was written: the lock is still ours to give back.
        let _ = self.release(lease);
        Err(unstaged)
    }

    /// Extends the stored value's lifetime and releases the lock: the step for
    /// an unchanged session, in one round trip. It never fails for a lapsed
    /// lease: renewing a lifetime is harmless whoever holds the lock.
    ///
    /// A session bound to a user since it was read is written instead (its
    /// envelope must name the user), and a bound session's entry in its
    /// user's index is renewed: one more round trip.
    pub fn touch(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        if lease.needs_write() {
            let payload = lease.read_payload();
            return self.commit(lease, payload, ttl).map(drop);
        }
        let probe = Probe::start(Step::Touch);
        let bound = Bound::of(&lease);
        let result = self.touch_step(lease, ttl);
        let result = match (result, bound) {
            (Ok(()), Some(bound)) => self.renew_entry(&bound, ttl),
            (result, _) => result,
        };
        probe.done(&result, self.unreported());
        result
    }

    fn touch_step(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        if lease.keys.is_legacy() {
            let call = crate::legacy::touch(&lease.keys, &lease.token, ttl);
            return self.ending(lease, &call);
        }
        let call = steps::touch(&lease, ttl, &self.config.settings);
        self.ending(lease, &call)
    }

    /// Releases the lock without writing (session_abort, read_and_close).
    pub fn release(&mut self, lease: Lease) -> Result<(), Error> {
        let probe = Probe::start(Step::Release);
        let result = self.release_step(lease);
        probe.done(&result, self.unreported());
        result
    }

    fn release_step(&mut self, lease: Lease) -> Result<(), Error> {
        if lease.keys.is_legacy() {
            let call = crate::legacy::release(&lease.keys.lock(), &lease.token);
            return self.ending(lease, &call);
        }
        let call = steps::release(&lease, &self.config.settings);
        self.ending(lease, &call)
    }

    fn ending(&mut self, lease: Lease, call: &Call) -> Result<(), Error> {
        // A lease whose step got no reply is dropped unsettled by `?`, so
        // its token is cleared in the background.
        let ran = self.script(&lease.keys, call, call, None)?;
        lease.settle(self.link.pid());
        scripts::parse_done("release", &ran.value.0)
    }

    /// Deletes a session in one round trip, releasing `lease` if given.
    /// Refused while another request holds the lock.
    ///
    /// A bound session also leaves its user's index (one more round trip).
    pub fn destroy(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let probe = Probe::start(Step::Destroy);
        let bound = lease.as_ref().and_then(Bound::of);
        let result = self.destroy_step(id, lease);
        let result = match (result, bound) {
            (Ok(()), Some(bound)) => self.drop_entries(&bound.user, &[bound.member]),
            (result, _) => result,
        };
        probe.done(&result, self.unreported());
        result
    }

    fn destroy_step(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        if let Some(compat) = self.config.settings.compat.clone() {
            return self.destroy_compat(id, lease, &compat);
        }
        self.destroy_native(id, lease)
    }

    fn destroy_native(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let keys = lease
            .as_ref()
            .map_or_else(|| self.keys(id), |l| l.keys.clone());
        let token = lease.as_ref().map_or("", |l| l.token.as_str());
        let call = steps::destroy(&keys, token, &self.config.settings);
        let wait = steps::replica_wait(&self.config.settings);
        let ran = self.call(&keys, &call, wait.as_ref())?;
        if let Some(lease) = lease {
            lease.settle(self.link.pid());
        }
        steps::replicated(&self.config.settings, &keys, &ran.value.1)?;
        match DestroyReply::parse(&ran.value.0)? {
            DestroyReply::Done => Ok(()),
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
        }
    }

    /// Stores a brand-new session in one round trip, refusing to overwrite an
    /// existing one, without taking its lock. For IDs nobody else can know
    /// yet; PHP's new sessions are locked instead ([`OpenMode::New`]), since
    /// their cookie can reach the browser before the request ends.
    pub fn create(&mut self, id: &SessionId, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        let probe = Probe::start(Step::Create);
        let written = payload.len();
        let result = self.create_step(id, payload, ttl);
        probe.created(&result, written, self.unreported());
        result
    }

    fn create_step(
        &mut self,
        id: &SessionId,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let keys = self.keys(id);
        let s = &self.config.settings;
        check_size(&keys, &payload, s.max_size)?;
        let envelope = steps::seal(s, Envelope::new(payload, now_ms()), &keys)?;
        let pipe = steps::create(&keys, &envelope, ttl, s);
        let slot = slot(keys.tag());
        let ran = self
            .link
            .run_waiting(slot, steps::wait_budget(s), Op::Pipe(&pipe))?;
        let replies: Vec<Value> = steps::reply_as("create", ran.value)?;
        match steps::created(&replies, ran.retried, &keys, &self.config.settings)? {
            Created::Done => Ok(()),
            Created::Check => {
                let mut get = redis::cmd("GET");
                get.arg(keys.data());
                let reply = self.link.run(slot, Op::Cmd(&get))?.value;
                let stored: Option<Vec<u8>> = steps::reply_as("create", reply)?;
                steps::own_create(&keys, stored.as_deref(), &envelope)
            }
        }
    }

    /// The index keys of `user` under this store's prefix.
    pub fn user_keys(&self, user: &UserId) -> UserKeys {
        UserKeys::derive(&self.config.settings.prefix, user)
    }

    /// Binds the session `lease` holds to `user`, with an optional `label`
    /// the application shows in a list of sessions (a device, say): one
    /// round trip to the user's slot, which adds the session to the user's
    /// index for `ttl`. The binding is stored with the session when the
    /// lease ends: a commit, or a touch, which then writes. From then on the
    /// session's commits and touches keep its entry current.
    ///
    /// A session bound to another user before leaves that user's index.
    pub fn bind_user(
        &mut self,
        lease: &mut Lease,
        user: &UserId,
        label: Option<&str>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let probe = Probe::start(Step::User);
        let result = self.bind_step(lease, user, label, ttl);
        probe.finished(&result, self.unreported());
        result
    }

    fn bind_step(
        &mut self,
        lease: &mut Lease,
        user: &UserId,
        label: Option<&str>,
        ttl: Duration,
    ) -> Result<(), Error> {
        users::check_label(label)?;
        let keys = self.user_keys(user);
        if let Some(old) = lease.user.clone().filter(|old| *old != keys) {
            self.drop_entries(&old, &[users::member(&lease.keys).to_owned()])?;
        }
        let meta = Meta::Bind {
            created_ms: lease.created_ms(),
            label,
        };
        let call = users::put(&keys, &lease.keys, ttl, meta);
        let reply = self.link.run(slot(keys.tag()), Op::Script(&call))?.value;
        users::parse_count("bind", &reply)?;
        lease.bind(keys);
        Ok(())
    }

    /// The live sessions of `user`: expired entries are dropped first, and
    /// an entry whose session is gone (destroyed where its binding was not
    /// known) is dropped rather than listed. `current` marks the caller's
    /// own session. One round trip to the user's slot, then one per session
    /// to check it still exists.
    pub fn user_sessions(
        &mut self,
        user: &UserId,
        current: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, Error> {
        let probe = Probe::start(Step::User);
        let result = self.user_sessions_step(user, current);
        probe.finished(&result, self.unreported());
        result
    }

    fn user_sessions_step(
        &mut self,
        user: &UserId,
        current: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, Error> {
        let keys = self.user_keys(user);
        let prefix = self.config.settings.prefix.clone();
        let reply = self
            .link
            .run(slot(keys.tag()), Op::Script(&users::list(&keys)))?
            .value;
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for entry in users::parse_list(&reply)? {
            let Some(session) = users::session_of(&prefix, &entry.member) else {
                stale.push(entry.member);
                continue;
            };
            // Its lock counts too: a session bound by a request whose first
            // write is still in flight has nothing stored yet.
            let mut exists = redis::cmd("EXISTS");
            exists.arg(session.data()).arg(session.lock());
            let reply = self.link.run(slot(session.tag()), Op::Cmd(&exists))?.value;
            if steps::reply_as::<i64>("user sessions", reply)? > 0 {
                live.push(entry);
            } else {
                stale.push(entry.member);
            }
        }
        self.drop_entries(&keys, &stale)?;
        let current = current.map(|id| self.keys(id));
        Ok(users::listing(live, current.as_ref().map(users::member)))
    }

    /// Destroys every session of `user` except `except` (usually the
    /// caller's own), whoever holds their locks: a request still running
    /// on one of them has its write refused. Returns how many sessions were
    /// destroyed. One round trip to the user's slot, one per session in its
    /// own slot, and one to drop the entries.
    pub fn logout_user(
        &mut self,
        user: &UserId,
        except: Option<&SessionId>,
    ) -> Result<usize, Error> {
        let keys = self.user_keys(user);
        let prefix = self.config.settings.prefix.clone();
        let keep = except.map(|id| users::member(&self.keys(id)).to_owned());
        let reply = self
            .link
            .run(slot(keys.tag()), Op::Script(&users::list(&keys)))?
            .value;
        let mut ended = Vec::new();
        let mut destroyed = 0;
        for entry in users::parse_list(&reply)? {
            if keep.as_ref() == Some(&entry.member) {
                continue;
            }
            if let Some(session) = users::session_of(&prefix, &entry.member) {
                let s = &self.config.settings;
                let call = users::logout(&session, steps::claim_window(s));
                let wait = steps::replica_wait(s);
                let ran = self.call(&session, &call, wait.as_ref())?;
                steps::replicated(&self.config.settings, &session, &ran.value.1)?;
                if users::parse_logout(&ran.value.0)? {
                    destroyed += 1;
                }
            }
            ended.push(entry.member);
        }
        self.drop_entries(&keys, &ended)?;
        Ok(destroyed)
    }

    /// Renews a bound session's entry after its commit or touch.
    fn renew_entry(&mut self, bound: &Bound, ttl: Duration) -> Result<(), Error> {
        let meta = Meta::Renew {
            created_ms: bound.created_ms,
        };
        let call = users::put(&bound.user, &bound.session, ttl, meta);
        let renewed = self
            .link
            .run(slot(bound.user.tag()), Op::Script(&call))
            .and_then(|ran| users::parse_count("renew", &ran.value));
        renewed.map(drop).map_err(|cause| bound.not_renewed(cause))
    }

    fn drop_entries(&mut self, user: &UserKeys, members: &[String]) -> Result<(), Error> {
        for batch in users::batches(members) {
            let call = users::drop_entries(user, batch);
            let reply = self.link.run(slot(user.tag()), Op::Script(&call))?.value;
            users::parse_count("drop", &reply)?;
        }
        Ok(())
    }

    /// Runs a script on the session's node (with `then` pipelined after it).
    fn call(
        &mut self,
        keys: &SessionKeys,
        call: &Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        self.script(keys, call, call, then)
    }

    /// Runs `first`, and `resend` on any later attempt (a commit that may
    /// have been applied already compares what is stored).
    fn script(
        &mut self,
        keys: &SessionKeys,
        first: &Call,
        resend: &Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let op = Op::Call {
            first,
            resend,
            then,
        };
        self.run_script(keys, op, then.is_some())
    }

    /// Runs a script step (`Op::Call` or `Op::Staged`), replying
    /// `[script, then]`; `waits` when `then` is a `WAIT`.
    fn run_script(
        &mut self,
        keys: &SessionKeys,
        op: Op<'_>,
        waits: bool,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let wait = if waits {
            steps::wait_budget(&self.config.settings)
        } else {
            Duration::ZERO
        };
        let ran = self.link.run_waiting(slot(keys.tag()), wait, op)?;
        Ok(Ran {
            value: steps::reply_as("script", ran.value)?,
            retried: ran.retried,
        })
    }
}
