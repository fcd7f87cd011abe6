//! The async driver, for Rust services next to the PHP pods (feature
//! `tokio`): the same protocol as [`crate::Store`], so PHP and Rust lock,
//! read and write the very same sessions without losing each other's
//! updates.
//!
//! [`Store`] is cheap to clone and shared by all tasks. Commands go over a
//! [deadpool](deadpool_redis) of connections per node; a task waiting for a
//! lock blocks on a connection of a separate pool, so waiting never holds up
//! anyone else's commands.
//!
//! [`Store::open`] gives a [`SessionGuard`]: the session decoded from PHP's
//! format, locked until [`SessionGuard::commit`] or
//! [`SessionGuard::release`], which consume it (a released guard cannot be
//! used). A guard dropped without either releases its lock in a background
//! task, so the next request does not wait out `lock_ttl_ms`; outside a
//! tokio runtime the lease simply lapses.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use stickless::aio::Store;
//! use stickless::{Config, SessionId};
//!
//! #[derive(Deserialize)]
//! struct User { id: i64, name: String }
//! #[derive(Serialize, Deserialize, Default)]
//! struct Item { sku: String, qty: i64 }
//!
//! # async fn demo() -> Result<(), stickless::Error> {
//! let store = Store::new(Config::parse("redis://127.0.0.1:6379/0?prefix=shop:")?);
//! let id = SessionId::parse("q3e1cmd7fqq2c3cl1v2qktm3ht")?;
//! if let Some(mut session) = store.open(&id).await? {
//!     let user: Option<User> = session.get("user")?;
//!     let mut cart: Vec<Item> = session.get("cart")?.unwrap_or_default();
//!     cart.push(Item { sku: "tea".into(), qty: 1 });
//!     session.set("cart", &cart)?;
//!     session.commit().await?; // PHP sees the new cart on its next request
//! }
//! # Ok(())
//! # }
//! ```

mod guard;
mod keeper;
mod link;
mod merge;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

pub use guard::SessionGuard;

use crate::SessionId;
use crate::cluster::slot;
use crate::config::Config;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keeper::{Claim, Keeping};
use crate::keys::SessionKeys;
use crate::metrics::{self, Probe, Step};
use crate::php::SerializeHandler;
use crate::route::Op;
use crate::scripts::{self, Call, DestroyReply};
use crate::session::{Committed, Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::steps::{self, Acquired, Created, FreeLock, OnFree};
use crate::token::LockToken;
use crate::users::{self, Bound, Meta, UserId, UserKeys, UserSession};
use link::{Link, Ran, Use};

/// PHP's default `session.gc_maxlifetime`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(1440);

/// An async session store; clone it freely, all clones share connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    link: Link,
    handler: SerializeHandler,
    lifetime: Duration,
    /// Held leases to renew and tokens to clear, worked off by the keeper
    /// task (see `crate::keeper`).
    keeping: Arc<Keeping>,
    keeper_started: AtomicBool,
    /// Round trips already counted in [`crate::metrics`].
    reported: AtomicU64,
    /// A tokio runtime does not survive `fork()`, so neither does a store.
    pid: u32,
}

impl Store {
    /// A store for `config`. Does no I/O: connections open on first use.
    /// Sessions are read as PHP's default `php` serialize handler writes
    /// them, with PHP's default lifetime of 1440 s.
    pub fn new(config: Config) -> Self {
        Self::with_php(config, SerializeHandler::Php, DEFAULT_LIFETIME)
    }

    /// Like [`new`](Self::new), matching the PHP side's
    /// `session.serialize_handler` and `session.gc_maxlifetime`; for
    /// Laravel, [`SerializeHandler::LaravelPhp`] or
    /// [`SerializeHandler::LaravelJson`] after its `session.serialization`,
    /// and its `session.lifetime` in seconds.
    pub fn with_php(config: Config, handler: SerializeHandler, lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                link: Link::new(&config),
                keeping: Keeping::new(steps::renew_every(&config.settings)),
                config,
                handler,
                lifetime,
                keeper_started: AtomicBool::new(false),
                reported: AtomicU64::new(0),
                pid: std::process::id(),
            }),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Round trips made so far by all clones.
    pub fn round_trips(&self) -> u64 {
        self.inner.link.round_trips()
    }

    /// Round trips since the last step was counted in [`crate::metrics`].
    fn unreported(&self) -> u64 {
        metrics::unreported(&self.inner.reported, self.inner.link.round_trips())
    }

    /// The keys of `id` under this store's prefix.
    pub fn keys(&self, id: &SessionId) -> SessionKeys {
        SessionKeys::derive(&self.inner.config.settings.prefix, id)
    }

    /// Locks an existing session and decodes it; `None` when there is no
    /// such session (a Rust service does not create PHP's sessions). Fails
    /// with [`Error::LockTimeout`] when `lock_wait_ms` runs out.
    pub async fn open(&self, id: &SessionId) -> Result<Option<SessionGuard>, Error> {
        match self.lock(id, OpenMode::RequireExisting).await? {
            Opened::Locked { lease, loaded, .. } => {
                let handler = self.inner.handler;
                match SessionGuard::decode(&loaded, handler, lease.session()) {
                    Ok(session) => {
                        let read = loaded.payload().to_vec();
                        Ok(Some(SessionGuard::new(
                            self.clone(),
                            lease,
                            session,
                            read,
                            handler,
                        )))
                    }
                    Err(e) => {
                        let _ = self.release(lease).await;
                        Err(e)
                    }
                }
            }
            Opened::Missing => Ok(None),
            Opened::ReadOnly { waited, .. } => Err(Error::LockTimeout {
                session: self.keys(id).tag().to_owned(),
                waited,
            }),
        }
    }

    /// Reads and decodes a session without locking (one round trip), for
    /// a service that only looks.
    pub async fn read(&self, id: &SessionId) -> Result<Option<crate::php::Session>, Error> {
        match self.load(id).await? {
            Loaded::Empty => Ok(None),
            Loaded::Data(env) => Ok(Some(crate::php::Session::decode(
                self.inner.handler,
                &env.payload,
            )?)),
            Loaded::Corrupt(kind) => Err(Error::Unreadable {
                session: self.keys(id).tag().to_owned(),
                kind,
            }),
        }
    }

    /// Locks `id` and reads it in one round trip, waiting for other holders
    /// (woken in arrival order, no polling) for at most `lock_wait`.
    ///
    /// Cancel-safe: a future dropped at any await leaves no lock and no
    /// registration behind; its token is cleared in the background.
    pub async fn lock(&self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        let probe = Probe::start(Step::Lock);
        let result = self.lock_step(id, mode).await;
        probe.opened(&result, self.unreported());
        result
    }

    async fn lock_step(&self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        self.native_only()?;
        let keys = self.keys(id);
        let token = LockToken::random()?;
        let claim = self.claim(keys.clone(), token.clone());
        self.acquire(&keys, &token, claim, mode).await
    }

    /// The migration options (`compat`, `import`) are the blocking
    /// driver's: refused here rather than serving a session from the wrong
    /// keys.
    pub(super) fn native_only(&self) -> Result<(), Error> {
        let s = &self.inner.config.settings;
        let option = if s.compat.is_some() {
            "compat"
        } else if s.import.is_some() {
            "import"
        } else {
            return Ok(());
        };
        Err(Error::Config(crate::ConfigError::Conflict {
            option,
            reason: "is served by the PHP extension and the blocking Store only; give the async Store the native save_path (the PHP pods import the sessions)",
        }))
    }

    /// A claim on `token`, with the keeper task running to honour it.
    fn claim(&self, keys: SessionKeys, token: LockToken) -> Claim {
        if !self.inner.keeper_started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(keeper::run(
                        Arc::downgrade(&self.inner),
                        Arc::clone(&self.inner.keeping),
                    ));
                }
                // Not in a runtime (no future could be polled here anyway):
                // leases simply lapse; try again next time.
                Err(_) => self.inner.keeper_started.store(false, Ordering::Release),
            }
        }
        Claim::new(&self.inner.keeping, keys, token, self.inner.pid)
    }

    async fn acquire(
        &self,
        keys: &SessionKeys,
        token: &LockToken,
        mut claim: Claim,
        mode: OpenMode,
    ) -> Result<Opened, Error> {
        let s = &self.inner.config.settings;
        let slot = slot(keys.tag());
        let pipe = steps::take_free_lock(keys, token, s);
        let reply = self
            .run(slot, Use::Command, Duration::ZERO, Op::Pipe(&pipe))
            .await?;
        match steps::free_lock(reply.value)? {
            FreeLock::Taken(stored) => {
                let give_back = steps::on_free(mode, stored.value.as_deref(), keys);
                let opened = steps::opened_read(keys, claim, stored, Duration::ZERO, s);
                return match (give_back, opened) {
                    (OnFree::GiveBack(outcome), Opened::Locked { lease, .. }) => {
                        self.release(lease).await?;
                        outcome
                    }
                    (_, opened) => Ok(opened),
                };
            }
            FreeLock::Held if mode == OpenMode::New => {
                claim.settle(self.inner.pid);
                return Err(steps::held_new(keys));
            }
            FreeLock::Held => {}
        }
        let started = Instant::now();
        let deadline = started + s.lock_wait;
        let mut woken = false;
        loop {
            let now = Instant::now();
            let last_try = now >= deadline;
            let cap = steps::nap_cap(deadline.saturating_duration_since(now), s);
            let call = steps::acquire(keys, token, s, mode, last_try, cap, woken);
            let reply = self.call(keys, &call, None).await?.value.0;
            match Acquired::read(&reply, keys, started, s)? {
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
                    claim.settle(self.inner.pid);
                    return outcome;
                }
                Acquired::Wait { nap } => {
                    let cmd = steps::wait_for_wake(keys, nap);
                    let baton = self.run(slot, Use::Wait, nap, Op::Cmd(&cmd)).await?;
                    woken = steps::woken(&baton.value);
                }
            }
        }
    }

    /// Reads `id` without locking: one round trip, from the primary.
    pub async fn load(&self, id: &SessionId) -> Result<Loaded, Error> {
        let probe = Probe::start(Step::Load);
        let result = self.load_step(id).await;
        probe.loaded(&result, self.unreported());
        result
    }

    async fn load_step(&self, id: &SessionId) -> Result<Loaded, Error> {
        self.native_only()?;
        let keys = self.keys(id);
        let get = {
            let mut get = redis::cmd("GET");
            get.arg(keys.data());
            get
        };
        let reply = self
            .run(
                slot(keys.tag()),
                Use::Command,
                Duration::ZERO,
                Op::Cmd(&get),
            )
            .await?;
        let stored: Option<Vec<u8>> = steps::reply_as("load", reply.value)?;
        Ok(steps::loaded(
            &self.inner.config.settings,
            stored.as_deref(),
            &keys,
        ))
    }

    /// Writes `payload` if `lease` still owns the lock (or, after a lapsed
    /// lease, if nobody changed the session since it was read), then
    /// releases it (or hands it to the next waiter), in one round trip;
    /// resent only where the script can tell whether the first send was
    /// applied.
    pub async fn commit(
        &self,
        lease: Lease,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Committed, Error> {
        let probe = Probe::start(Step::Commit);
        let (written, new) = (payload.len(), !lease.was_stored());
        let bound = Bound::of(&lease);
        let result = self.commit_step(lease, payload, ttl).await;
        let result = match (result, bound) {
            (Ok(done), Some(bound)) => self.renew_entry(&bound, ttl).await.map(|()| done),
            (result, _) => result,
        };
        probe.committed(&result, written, new, self.unreported());
        result
    }

    async fn commit_step(
        &self,
        lease: Lease,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Committed, Error> {
        let s = &self.inner.config.settings;
        let sealed = check_size(&lease.keys, &payload, s.max_size)
            .and_then(|()| steps::seal(s, lease.next_envelope(payload), &lease.keys));
        let envelope = match sealed {
            Ok(bytes) => bytes,
            Err(refused) => {
                let _ = self.release(lease).await;
                return Err(refused);
            }
        };
        let step = steps::commit(&lease, &envelope, ttl, s);
        let wait = steps::replica_wait(s);
        let started = Instant::now();
        for _ in 0..steps::STAGE_TRIES {
            let op = step.op(wait.as_ref());
            let ran = self.run_script(&lease.keys, op, wait.is_some()).await?;
            let Some(outcome) = steps::committed(&lease, &ran.value.0).transpose() else {
                continue;
            };
            let replicated = steps::replicated(s, &lease.keys, &ran.value.1);
            lease.settle(self.inner.pid);
            return replicated.and(outcome);
        }
        let server = self.inner.config.server.to_string();
        let unstaged = steps::unstaged(&server, &lease, started.elapsed());
        // Nothing was written: the lock is still ours to give back.
        let _ = self.release(lease).await;
        Err(unstaged)
    }

    /// Extends the stored value's lifetime and releases the lock. A
    /// session bound to a user since it was read is written instead, and a
    /// bound session's index entry is renewed (one more round trip).
    pub async fn touch(&self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        if lease.needs_write() {
            let payload = lease.read_payload();
            return self.commit(lease, payload, ttl).await.map(drop);
        }
        let probe = Probe::start(Step::Touch);
        let bound = Bound::of(&lease);
        let result = self.touch_step(lease, ttl).await;
        let result = match (result, bound) {
            (Ok(()), Some(bound)) => self.renew_entry(&bound, ttl).await,
            (result, _) => result,
        };
        probe.done(&result, self.unreported());
        result
    }

    async fn touch_step(&self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        let call = steps::touch(&lease, ttl, &self.inner.config.settings);
        self.ending(lease, &call).await
    }

    /// Releases the lock without writing.
    pub async fn release(&self, lease: Lease) -> Result<(), Error> {
        let probe = Probe::start(Step::Release);
        let result = self.release_step(lease).await;
        probe.done(&result, self.unreported());
        result
    }

    async fn release_step(&self, lease: Lease) -> Result<(), Error> {
        let call = steps::release(&lease, &self.inner.config.settings);
        self.ending(lease, &call).await
    }

    async fn ending(&self, lease: Lease, call: &Call) -> Result<(), Error> {
        let ran = self.script(&lease.keys, call, call, None).await?;
        lease.settle(self.inner.pid);
        scripts::parse_done("release", &ran.value.0)
    }

    /// Deletes a session, releasing `lease` if given; refused while another
    /// request holds the lock.
    /// A bound session also leaves its user's index.
    pub async fn destroy(&self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let probe = Probe::start(Step::Destroy);
        let bound = lease.as_ref().and_then(Bound::of);
        let result = self.destroy_step(id, lease).await;
        let result = match (result, bound) {
            (Ok(()), Some(bound)) => self.drop_entries(&bound.user, &[bound.member]).await,
            (result, _) => result,
        };
        probe.done(&result, self.unreported());
        result
    }

    async fn destroy_step(&self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let keys = lease
            .as_ref()
            .map_or_else(|| self.keys(id), |l| l.keys.clone());
        let s = &self.inner.config.settings;
        let token = lease.as_ref().map_or("", |l| l.token.as_str());
        let call = steps::destroy(&keys, token, s);
        let wait = steps::replica_wait(s);
        let ran = self.call(&keys, &call, wait.as_ref()).await?;
        if let Some(lease) = lease {
            lease.settle(self.inner.pid);
        }
        steps::replicated(s, &keys, &ran.value.1)?;
        match DestroyReply::parse(&ran.value.0)? {
            DestroyReply::Done => Ok(()),
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
        }
    }

    /// Stores a brand-new session, never over an existing one, without
    /// taking its lock (for IDs nobody else can know yet).
    pub async fn create(
        &self,
        id: &SessionId,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let probe = Probe::start(Step::Create);
        let written = payload.len();
        let result = self.create_step(id, payload, ttl).await;
        probe.created(&result, written, self.unreported());
        result
    }

    async fn create_step(
        &self,
        id: &SessionId,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let keys = self.keys(id);
        let s = &self.inner.config.settings;
        check_size(&keys, &payload, s.max_size)?;
        let envelope = steps::seal(s, Envelope::new(payload, now_ms()), &keys)?;
        let pipe = steps::create(&keys, &envelope, ttl, s);
        let slot = slot(keys.tag());
        let ran = self
            .run(slot, Use::Command, steps::wait_budget(s), Op::Pipe(&pipe))
            .await?;
        let replies: Vec<Value> = steps::reply_as("create", ran.value)?;
        match steps::created(&replies, ran.retried, &keys, s)? {
            Created::Done => Ok(()),
            Created::Check => {
                let mut get = redis::cmd("GET");
                get.arg(keys.data());
                let raw = self
                    .run(slot, Use::Command, Duration::ZERO, Op::Cmd(&get))
                    .await?;
                let stored: Option<Vec<u8>> = steps::reply_as("create", raw.value)?;
                steps::own_create(&keys, stored.as_deref(), &envelope)
            }
        }
    }

    /// The index keys of `user` under this store's prefix.
    pub fn user_keys(&self, user: &UserId) -> UserKeys {
        UserKeys::derive(&self.inner.config.settings.prefix, user)
    }

    /// Binds the session `lease` holds to `user`, as
    /// [`crate::Store::bind_user`] does; for a guard, see
    /// [`SessionGuard::bind_user`].
    pub async fn bind_user(
        &self,
        lease: &mut Lease,
        user: &UserId,
        label: Option<&str>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let probe = Probe::start(Step::User);
        let result = self.bind_step(lease, user, label, ttl).await;
        probe.finished(&result, self.unreported());
        result
    }

    async fn bind_step(
        &self,
        lease: &mut Lease,
        user: &UserId,
        label: Option<&str>,
        ttl: Duration,
    ) -> Result<(), Error> {
        users::check_label(label)?;
        let keys = self.user_keys(user);
        if let Some(old) = lease.user.clone().filter(|old| *old != keys) {
            self.drop_entries(&old, &[users::member(&lease.keys).to_owned()])
                .await?;
        }
        let meta = Meta::Bind {
            created_ms: lease.created_ms(),
            label,
        };
        let call = users::put(&keys, &lease.keys, ttl, meta);
        let reply = self.user_script(&keys, &call).await?;
        users::parse_count("bind", &reply)?;
        lease.bind(keys);
        Ok(())
    }

    /// The live sessions of `user`, as [`crate::Store::user_sessions`]
    /// lists them.
    pub async fn user_sessions(
        &self,
        user: &UserId,
        current: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, Error> {
        let probe = Probe::start(Step::User);
        let result = self.user_sessions_step(user, current).await;
        probe.finished(&result, self.unreported());
        result
    }

    async fn user_sessions_step(
        &self,
        user: &UserId,
        current: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, Error> {
        let keys = self.user_keys(user);
        let prefix = &self.inner.config.settings.prefix;
        let reply = self.user_script(&keys, &users::list(&keys)).await?;
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for entry in users::parse_list(&reply)? {
            let Some(session) = users::session_of(prefix, &entry.member) else {
                stale.push(entry.member);
                continue;
            };
            // Its lock counts too: a session bound by a request whose first
            // write is still in flight has nothing stored yet.
            let mut exists = redis::cmd("EXISTS");
            exists.arg(session.data()).arg(session.lock());
            let reply = self
                .run(
                    slot(session.tag()),
                    Use::Command,
                    Duration::ZERO,
                    Op::Cmd(&exists),
                )
                .await?;
            if steps::reply_as::<i64>("user sessions", reply.value)? > 0 {
                live.push(entry);
            } else {
                stale.push(entry.member);
            }
        }
        self.drop_entries(&keys, &stale).await?;
        let current = current.map(|id| self.keys(id));
        Ok(users::listing(live, current.as_ref().map(users::member)))
    }

    /// Destroys every session of `user` except `except`, as
    /// [`crate::Store::logout_user`] does; returns how many were destroyed.
    pub async fn logout_user(
        &self,
        user: &UserId,
        except: Option<&SessionId>,
    ) -> Result<usize, Error> {
        let probe = Probe::start(Step::User);
        let result = self.logout_step(user, except).await;
        probe.finished(&result, self.unreported());
        result
    }

    async fn logout_step(&self, user: &UserId, except: Option<&SessionId>) -> Result<usize, Error> {
        let keys = self.user_keys(user);
        let s = &self.inner.config.settings;
        let keep = except.map(|id| users::member(&self.keys(id)).to_owned());
        let reply = self.user_script(&keys, &users::list(&keys)).await?;
        let mut ended = Vec::new();
        let mut destroyed = 0;
        for entry in users::parse_list(&reply)? {
            if keep.as_ref() == Some(&entry.member) {
                continue;
            }
            if let Some(session) = users::session_of(&s.prefix, &entry.member) {
                let call = users::logout(&session, steps::claim_window(s));
                let wait = steps::replica_wait(s);
                let ran = self.call(&session, &call, wait.as_ref()).await?;
                steps::replicated(s, &session, &ran.value.1)?;
                if users::parse_logout(&ran.value.0)? {
                    destroyed += 1;
                }
            }
            ended.push(entry.member);
        }
        self.drop_entries(&keys, &ended).await?;
        Ok(destroyed)
    }

    async fn user_script(&self, user: &UserKeys, call: &Call) -> Result<Value, Error> {
        let ran = self
            .run(
                slot(user.tag()),
                Use::Command,
                Duration::ZERO,
                Op::Script(call),
            )
            .await?;
        Ok(ran.value)
    }

    async fn renew_entry(&self, bound: &Bound, ttl: Duration) -> Result<(), Error> {
        let meta = Meta::Renew {
            created_ms: bound.created_ms,
        };
        let call = users::put(&bound.user, &bound.session, ttl, meta);
        let renewed = match self.user_script(&bound.user, &call).await {
            Ok(reply) => users::parse_count("renew", &reply),
            Err(e) => Err(e),
        };
        renewed.map(drop).map_err(|cause| bound.not_renewed(cause))
    }

    async fn drop_entries(&self, user: &UserKeys, members: &[String]) -> Result<(), Error> {
        for batch in users::batches(members) {
            let call = users::drop_entries(user, batch);
            let reply = self.user_script(user, &call).await?;
            users::parse_count("drop", &reply)?;
        }
        Ok(())
    }

    /// Leases being renewed in the background, and tokens waiting to be
    /// cleared after a failure or a cancellation (for statistics and tests).
    pub fn background(&self) -> (usize, usize) {
        self.inner.keeping.ledger().counts()
    }

    async fn run(
        &self,
        slot: u16,
        used: Use,
        wait: Duration,
        op: Op<'_>,
    ) -> Result<Ran<Value>, Error> {
        self.inner.link.run(slot, used, wait, op).await
    }

    /// Runs a script (with `then` pipelined after it) on the session's node.
    async fn call(
        &self,
        keys: &SessionKeys,
        call: &Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        self.script(keys, call, call, then).await
    }

    async fn script(
        &self,
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
        self.run_script(keys, op, then.is_some()).await
    }

    /// Runs a script step (`Op::Call` or `Op::Staged`), replying
    /// `[script, then]`; `waits` when `then` is a `WAIT`.
    async fn run_script(
        &self,
        keys: &SessionKeys,
        op: Op<'_>,
        waits: bool,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let wait = if waits {
            steps::wait_budget(&self.inner.config.settings)
        } else {
            Duration::ZERO
        };
        let ran = self.run(slot(keys.tag()), Use::Command, wait, op).await?;
        let value = steps::reply_as("script", ran.value)?;
        Ok(Ran {
            value,
            retried: ran.retried,
        })
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wake the keeper task so it notices at once that the store is gone.
        self.keeping.shut_down();
    }
}
