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
mod link;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::{Cmd, Value};

pub use guard::SessionGuard;

use crate::SessionId;
use crate::cluster::slot;
use crate::config::{Config, Topology};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::php::SerializeHandler;
use crate::scripts::{Call, DestroyReply};
use crate::session::{Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::steps::{self, Acquired, Created};
use crate::token::LockToken;
use link::{Link, Op, Ran, Use};

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
    /// Tokens whose step got no reply; see the blocking `Store`.
    orphans: Mutex<Vec<(SessionKeys, LockToken)>>,
}

/// More abandoned tokens than this are left to their leases.
const MAX_ORPHANS: usize = 64;

impl Store {
    /// A store for `config`. Does no I/O: connections open on first use.
    /// Sessions are read as PHP's default `php` serialize handler writes
    /// them, with PHP's default lifetime of 1440 s.
    pub fn new(config: Config) -> Self {
        Self::with_php(config, SerializeHandler::Php, DEFAULT_LIFETIME)
    }

    /// Like [`new`](Self::new), matching the PHP side's
    /// `session.serialize_handler` and `session.gc_maxlifetime`.
    pub fn with_php(config: Config, handler: SerializeHandler, lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                link: Link::new(&config),
                config,
                handler,
                lifetime,
                orphans: Mutex::new(Vec::new()),
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
    pub async fn lock(&self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys).await?;
        let token = LockToken::random()?;
        match self.acquire(&keys, &token, mode).await {
            Err(e @ Error::Unavailable { .. }) => {
                self.remember(keys, token);
                Err(e)
            }
            other => other,
        }
    }

    async fn acquire(
        &self,
        keys: &SessionKeys,
        token: &LockToken,
        mode: OpenMode,
    ) -> Result<Opened, Error> {
        let s = &self.inner.config.settings;
        let slot = slot(keys.tag());
        let pipe = steps::take_free_lock(keys, token, s);
        let reply = self
            .run(slot, Use::Command, Duration::ZERO, Op::Pipe(&pipe))
            .await?;
        let (taken, stored): (Value, Option<Vec<u8>>) = reply_as(reply.value)?;
        if taken != Value::Nil {
            let loaded = steps::loaded(s, stored, keys);
            let lease = Lease::new(keys.clone(), token.clone(), &loaded);
            if mode == OpenMode::RequireExisting && loaded == Loaded::Empty {
                self.release(lease).await?;
                return Ok(Opened::Missing);
            }
            return Ok(Opened::Locked {
                lease,
                loaded,
                waited: Duration::ZERO,
            });
        }
        let started = Instant::now();
        let deadline = started + s.lock_wait;
        let wake = keys.wake(token);
        let mut queued = false;
        loop {
            let last_try = Instant::now() >= deadline;
            let call = steps::acquire(keys, token, s, mode, last_try, queued);
            let reply = self.call(keys, &call, None).await?.value.0;
            match Acquired::read(&reply, keys, token, last_try, queued, started, s)? {
                Acquired::Done(outcome) => return outcome,
                Acquired::Wait { pttl_ms } => {
                    queued = true;
                    let left = deadline.saturating_duration_since(Instant::now());
                    let nap = steps::nap(left, pttl_ms, s);
                    let cmd = steps::wait_for_wake(&wake, nap);
                    self.run(slot, Use::Wait, nap, Op::Cmd(&cmd)).await?;
                }
            }
        }
    }

    /// Reads `id` without locking: one round trip, from the primary.
    pub async fn load(&self, id: &SessionId) -> Result<Loaded, Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys).await?;
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
        let stored: Option<Vec<u8>> = reply_as(reply.value)?;
        Ok(steps::loaded(&self.inner.config.settings, stored, &keys))
    }

    /// Writes `payload` if `lease` still owns the lock, then releases it (or
    /// hands it to the next waiter), in one round trip; resent only where
    /// the script can tell whether the first send was applied.
    pub async fn commit(&self, lease: Lease, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
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
        let first = steps::commit(&lease, &envelope, ttl, s, false);
        let resend = steps::commit(&lease, &envelope, ttl, s, true);
        let wait = steps::replica_wait(s);
        let ran = self
            .fenced_run(&lease, &first, &resend, wait.as_ref())
            .await?;
        steps::replicated(s, &lease.keys, &ran.value.1)?;
        steps::fenced_reply(&lease, &ran.value.0, false)
    }

    /// Extends the stored value's lifetime and releases the lock.
    pub async fn touch(&self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        let call = steps::touch(&lease, ttl, &self.inner.config.settings);
        let ran = self.fenced_run(&lease, &call, &call, None).await?;
        steps::fenced_reply(&lease, &ran.value.0, ran.retried)
    }

    /// Releases the lock without writing.
    pub async fn release(&self, lease: Lease) -> Result<(), Error> {
        let call = steps::release(&lease, &self.inner.config.settings);
        let ran = self.fenced_run(&lease, &call, &call, None).await?;
        steps::fenced_reply(&lease, &ran.value.0, ran.retried)
    }

    /// Deletes a session, releasing `lease` if given; refused while another
    /// request holds the lock.
    pub async fn destroy(&self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        let keys = lease
            .as_ref()
            .map_or_else(|| self.keys(id), |l| l.keys.clone());
        if lease.is_none() {
            self.settle_orphans(&keys).await?;
        }
        let s = &self.inner.config.settings;
        let token = lease.as_ref().map_or("", |l| l.token.as_str());
        let call = steps::destroy(&keys, token, s);
        let wait = steps::replica_wait(s);
        let ran = self.call(&keys, &call, wait.as_ref()).await?;
        steps::replicated(s, &keys, &ran.value.1)?;
        match DestroyReply::parse(&ran.value.0)? {
            DestroyReply::Done => Ok(()),
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
        }
    }

    /// Stores a brand-new session, never over an existing one.
    pub async fn create(
        &self,
        id: &SessionId,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let keys = self.keys(id);
        self.settle_orphans(&keys).await?;
        let s = &self.inner.config.settings;
        check_size(&keys, &payload, s.max_size)?;
        let envelope = steps::seal(s, Envelope::new(payload, now_ms()), &keys)?;
        let pipe = steps::create(&keys, &envelope, ttl, s);
        let slot = slot(keys.tag());
        let ran = self
            .run(slot, Use::Command, steps::wait_budget(s), Op::Pipe(&pipe))
            .await?;
        let replies: Vec<Value> = reply_as(ran.value)?;
        match steps::created(&replies, ran.retried, &keys, s)? {
            Created::Done => Ok(()),
            Created::Check => {
                let mut get = redis::cmd("GET");
                get.arg(keys.data());
                let raw = self
                    .run(slot, Use::Command, Duration::ZERO, Op::Cmd(&get))
                    .await?;
                let stored: Option<Vec<u8>> = reply_as(raw.value)?;
                steps::own_create(&keys, stored.as_deref(), &envelope)
            }
        }
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
        let wait = match then {
            Some(_) => steps::wait_budget(&self.inner.config.settings),
            None => Duration::ZERO,
        };
        let op = Op::Call {
            first,
            resend,
            then,
        };
        let ran = self.run(slot(keys.tag()), Use::Command, wait, op).await?;
        let value = reply_as(ran.value)?;
        Ok(Ran {
            value,
            retried: ran.retried,
        })
    }

    /// A fenced step; a token whose step got no reply is remembered.
    async fn fenced_run(
        &self,
        lease: &Lease,
        first: &Call,
        resend: &Call,
        then: Option<&Cmd>,
    ) -> Result<Ran<(Value, Value)>, Error> {
        let ran = self.script(&lease.keys, first, resend, then).await;
        if let Err(Error::Unavailable { .. }) = &ran {
            self.remember(lease.keys.clone(), lease.token.clone());
        }
        ran
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, Vec<(SessionKeys, LockToken)>> {
        self.inner
            .orphans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, keys: SessionKeys, token: LockToken) {
        let mut orphans = self.orphans();
        if orphans.len() >= MAX_ORPHANS {
            orphans.remove(0);
        }
        orphans.push((keys, token));
    }

    /// Clears tokens left by steps that got no reply, on the node `keys`
    /// lives on (as the blocking driver does).
    async fn settle_orphans(&self, keys: &SessionKeys) -> Result<(), Error> {
        let here = slot(keys.tag());
        let cluster = matches!(self.inner.config.server.topology, Topology::Cluster(_));
        let due: Vec<(SessionKeys, LockToken)> = {
            let mut orphans = self.orphans();
            let (due, keep) = orphans
                .drain(..)
                .partition(|(k, _)| !cluster || slot(k.tag()) == here);
            *orphans = keep;
            due
        };
        for (i, (keys, token)) in due.iter().enumerate() {
            let call = steps::abandon(keys, token, &self.inner.config.settings);
            if let Err(e) = self.call(keys, &call, None).await {
                for (keys, token) in due.into_iter().skip(i) {
                    self.remember(keys, token);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }
}

/// A reply as the type a step expects; anything else is a protocol error.
fn reply_as<T: redis::FromRedisValue>(value: Value) -> Result<T, Error> {
    redis::from_redis_value(value).map_err(|e| Error::Protocol(e.to_string()))
}
