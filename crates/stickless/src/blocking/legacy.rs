//! The blocking driver's migration steps (`crate::legacy` has the protocol):
//! `compat=phpredis`, where a request locks and writes phpredis's own keys,
//! and the import that moves an old session into the native format on a
//! miss, for `import=...` and for a compat pod that finds a session moved.
//!
//! The native steps never come here unless one of those options is set; a
//! native miss costs one more check of a setting.

use std::thread;
use std::time::{Duration, Instant};

use redis::Value;

use super::Store;
use crate::SessionId;
use crate::cluster::slot;
use crate::config::OnLockTimeout;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keeper::Claim;
use crate::keys::SessionKeys;
use crate::legacy::{self, Legacy, OldLock, Stored};
use crate::route::Op;
use crate::scripts::DestroyReply;
use crate::session::{Lease, Loaded, OpenMode, Opened, check_size, now_ms};
use crate::steps;
use crate::token::LockToken;

/// How a phpredis lock attempt ended.
enum Polled {
    Taken(Option<Vec<u8>>),
    Moved,
    TimedOut(Option<Vec<u8>>),
}

impl Store {
    /// `compat=phpredis`: phpredis's lock and key, polled like phpredis
    /// polls (its pods take no part in the queue). A session an importer
    /// moved, or one that only exists in the native format (made by a
    /// native pod during the second rollout), is served natively.
    pub(super) fn lock_compat(
        &mut self,
        id: &SessionId,
        mode: OpenMode,
        compat: &Legacy,
    ) -> Result<Opened, Error> {
        let keys = compat.keys(&self.config.settings.prefix, id);
        let token = LockToken::random()?;
        let mut claim = self.keeper.claim(keys.clone(), token.clone());
        let started = Instant::now();
        let (lock, data) = (keys.lock(), keys.data());
        let stored = match self.poll_old_lock(&lock, Some(&data), &token, started)? {
            Polled::Taken(stored) => stored,
            Polled::Moved => {
                claim.settle(self.link.pid());
                return self.lock_moved(id, mode, compat);
            }
            Polled::TimedOut(stored) => {
                claim.settle(self.link.pid());
                return self.timed_out(&keys, stored, started);
            }
        };
        let waited = started.elapsed();
        match (stored, mode) {
            (Some(_), OpenMode::New) => {
                self.release_old(&lock, &token, claim)?;
                Err(Error::Collision {
                    session: keys.tag().to_owned(),
                })
            }
            (Some(bytes), _) => Ok(compat_opened(keys, claim, Some(bytes), waited)),
            (None, OpenMode::New) => Ok(compat_opened(keys, claim, None, waited)),
            (None, _) => {
                // Not in phpredis's keys: perhaps in stickless's. Look
                // without waiting for the native lock while holding the old
                // one (an importer holds them in the other order).
                let native = self.keys(id);
                let mut get = redis::cmd("GET");
                get.arg(native.data());
                let reply = self.link.run(slot(native.tag()), Op::Cmd(&get))?.value;
                let found: Option<Vec<u8>> = steps::reply_as("compat lookup", reply)?;
                if found.is_some() {
                    self.release_old(&lock, &token, claim)?;
                    return self.lock_native(id, mode);
                }
                if mode == OpenMode::RequireExisting {
                    self.release_old(&lock, &token, claim)?;
                    return Ok(Opened::Missing);
                }
                Ok(compat_opened(keys, claim, None, waited))
            }
        }
    }

    /// A compat request for a session an importer moved: the native lock,
    /// importing if the move was interrupted before the native write.
    fn lock_moved(
        &mut self,
        id: &SessionId,
        mode: OpenMode,
        compat: &Legacy,
    ) -> Result<Opened, Error> {
        let keys = self.keys(id);
        let token = LockToken::random()?;
        let claim = self.keeper.claim(keys.clone(), token.clone());
        self.acquire(&keys, &token, claim, mode, Some((id, compat.clone())))
    }

    /// The lock wait ran out on a lock a phpredis pod holds.
    fn timed_out(
        &mut self,
        keys: &SessionKeys,
        stored: Option<Vec<u8>>,
        started: Instant,
    ) -> Result<Opened, Error> {
        match self.config.settings.on_lock_timeout {
            OnLockTimeout::Fail => Err(Error::LockTimeout {
                session: keys.tag().to_owned(),
                waited: started.elapsed(),
            }),
            OnLockTimeout::Readonly => Ok(Opened::ReadOnly {
                loaded: raw_loaded(stored),
                waited: started.elapsed(),
            }),
        }
    }

    /// Tries phpredis's lock until it is ours, the session turns out moved,
    /// or `lock_wait_ms` runs out, pausing `legacy_lock_poll_ms` between
    /// tries.
    fn poll_old_lock(
        &mut self,
        lock: &str,
        data: Option<&str>,
        token: &LockToken,
        started: Instant,
    ) -> Result<Polled, Error> {
        let s = &self.config.settings;
        let (ttl, poll) = (s.lock_ttl, s.legacy_lock_poll);
        let deadline = started + s.lock_wait;
        let pipe = legacy::take_lock(lock, data, token, ttl);
        loop {
            let reply = self.link.run(slot(lock), Op::Pipe(&pipe))?.value;
            match legacy::old_lock(reply, token)? {
                OldLock::Taken(stored) => return Ok(Polled::Taken(stored)),
                OldLock::Moved => return Ok(Polled::Moved),
                OldLock::Held(stored) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Polled::TimedOut(stored));
                    }
                    thread::sleep(poll.min(left));
                }
            }
        }
    }

    /// Releases phpredis's lock held for `claim`.
    fn release_old(
        &mut self,
        lock: &str,
        token: &LockToken,
        mut claim: Claim,
    ) -> Result<(), Error> {
        let call = legacy::release(lock, token);
        let reply = self.link.run(slot(lock), Op::Script(&call))?.value;
        claim.settle(self.link.pid());
        crate::scripts::parse_done("release", &reply)
    }

    /// read_and_close in compat mode: phpredis's key, else the native one
    /// (`None`: read it natively).
    pub(super) fn load_compat(
        &mut self,
        id: &SessionId,
        compat: &Legacy,
    ) -> Result<Option<Loaded>, Error> {
        let keys = compat.keys(&self.config.settings.prefix, id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(keys.data()).cmd("GET").arg(keys.lock());
        let reply = self.link.run(slot(&keys.data()), Op::Pipe(&pipe))?.value;
        let (stored, owner): (Option<Vec<u8>>, Option<Vec<u8>>) = steps::reply_as("load", reply)?;
        // Under the marker an old value left by an interrupted import is
        // stale: the session lives natively.
        if owner.as_deref() == Some(legacy::MOVED.as_bytes()) {
            return Ok(None);
        }
        Ok(stored.map(|bytes| raw_loaded(Some(bytes))))
    }

    /// phpredis's write, fenced by its lock, and the release, in one
    /// round trip.
    pub(super) fn commit_compat(
        &mut self,
        lease: Lease,
        payload: &[u8],
        ttl: Duration,
    ) -> Result<crate::Committed, Error> {
        let s = &self.config.settings;
        if let Err(refused) = check_size(&lease.keys, payload, s.max_size) {
            let _ = self.release(lease);
            return Err(refused);
        }
        let first = legacy::commit(&lease.keys, &lease.token, payload, ttl, false);
        let resend = legacy::commit(&lease.keys, &lease.token, payload, ttl, true);
        let ran = self.script(&lease.keys, &first, &resend, None)?;
        let outcome = legacy::committed(&lease.keys, &ran.value.0);
        lease.settle(self.link.pid());
        outcome.map(|()| crate::Committed::UnderLock)
    }

    /// session_destroy() in compat mode: the session wherever it is.
    pub(super) fn destroy_compat(
        &mut self,
        id: &SessionId,
        lease: Option<Lease>,
        compat: &Legacy,
    ) -> Result<(), Error> {
        let (keys, token) = match &lease {
            Some(held) if !held.keys.is_legacy() => return self.destroy_native(id, lease),
            Some(held) => (held.keys.clone(), held.token.as_str().to_owned()),
            None => (compat.keys(&self.config.settings.prefix, id), String::new()),
        };
        let call = legacy::destroy(&keys, &token);
        let ran = self.script(&keys, &call, &call, None)?;
        let held = lease.is_some();
        if let Some(lease) = lease {
            lease.settle(self.link.pid());
        }
        match DestroyReply::parse(&ran.value.0)? {
            DestroyReply::Locked => Err(Error::DestroyLocked {
                session: keys.tag().to_owned(),
            }),
            // A session this request did not hold may live natively.
            DestroyReply::Done if !held => self.destroy_native(id, None),
            DestroyReply::Done => Ok(()),
        }
    }

    /// A native miss with `import` set, holding the native lock: moves the
    /// old session in, or goes on as the native step would.
    pub(super) fn import_locked(
        &mut self,
        id: &SessionId,
        keys: &SessionKeys,
        claim: Claim,
        mode: OpenMode,
        waited: Duration,
        source: &Legacy,
    ) -> Result<Opened, Error> {
        let token = claim.token().clone();
        let moved = match self.import(id, keys, &token, source) {
            Ok(moved) => moved,
            Err(failed) => {
                let lease = Lease::new(keys.clone(), claim, None, &Loaded::Empty);
                let _ = self.release(lease);
                return Err(failed);
            }
        };
        let s = &self.config.settings;
        match moved {
            Some(envelope) => {
                let opened = steps::opened(keys, claim, Some(envelope), waited, s);
                Ok(mark_imported(opened))
            }
            None if mode == OpenMode::RequireExisting => {
                let lease = Lease::new(keys.clone(), claim, None, &Loaded::Empty);
                self.release(lease)?;
                Ok(Opened::Missing)
            }
            None => Ok(steps::opened(keys, claim, None, waited, s)),
        }
    }

    /// Moves `id` from `source`'s key into the native format, holding the
    /// native lock `token` (which serialises importers). Returns the stored
    /// envelope, or `None` when there was nothing to move. Each command
    /// touches one key, so on a cluster none spans two slots; the order:
    ///
    /// 1. phpredis's lock on the old key (waiting for a phpredis or compat
    ///    pod that holds it), so no old-format write can land meanwhile;
    /// 2. the old value and its lifetime;
    /// 3. the old lock becomes the `moved` marker, for as long as the old
    ///    session could live: no phpredis or compat pod locks it again, and
    ///    compat pods turn to the native session;
    /// 4. the envelope is stored, if the native lock is still ours;
    /// 5. the old key is deleted.
    ///
    /// Interrupted after 3, the marker stands and the old value is still
    /// there: the next request (which then holds the native lock) moves it.
    fn import(
        &mut self,
        id: &SessionId,
        keys: &SessionKeys,
        token: &LockToken,
        source: &Legacy,
    ) -> Result<Option<Vec<u8>>, Error> {
        let old = source.data_key(id);
        let lock = source.lock_key(id);
        let old_token = LockToken::random()?;
        let mut held = false;
        if let Some(lock) = &lock {
            match self.poll_old_lock(lock, None, &old_token, Instant::now())? {
                Polled::Taken(_) => held = true,
                // An import was interrupted, or done: the native lock we hold
                // makes this importer the only one.
                Polled::Moved => {}
                Polled::TimedOut(_) => {
                    return Err(Error::LockTimeout {
                        session: keys.tag().to_owned(),
                        waited: self.config.settings.lock_wait,
                    });
                }
            }
        }
        let reply = self
            .link
            .run(slot(&old), Op::Pipe(&legacy::read_old(&old)))?
            .value;
        let (value, left) = legacy::old_value(reply)?;
        let Some(payload) = value else {
            if held && let Some(lock) = &lock {
                let call = legacy::release(lock, &old_token);
                self.link.run(slot(lock), Op::Script(&call))?;
            }
            return Ok(None);
        };
        let ttl = left.unwrap_or(legacy::UNEXPIRING_TTL);
        // Refused before the marker, so a session too large to move stays
        // where phpredis pods can still serve it.
        let sealed = check_size(keys, &payload, self.config.settings.max_size).and_then(|()| {
            steps::seal(
                &self.config.settings,
                Envelope::new(payload, now_ms()),
                keys,
            )
        });
        let envelope = match sealed {
            Ok(envelope) => envelope,
            Err(refused) => {
                if held && let Some(lock) = &lock {
                    let call = legacy::release(lock, &old_token);
                    self.link.run(slot(lock), Op::Script(&call))?;
                }
                return Err(refused);
            }
        };
        if let Some(lock) = &lock {
            let call = legacy::mark_moved(lock, &old_token, ttl, &self.config.settings);
            let reply = self.link.run(slot(lock), Op::Script(&call))?.value;
            if reply != Value::Int(1) {
                // Our hold lapsed and someone else has the old session now.
                return Err(Error::LockTimeout {
                    session: keys.tag().to_owned(),
                    waited: self.config.settings.lock_wait,
                });
            }
        }
        let call = legacy::store_imported(keys, token, &envelope, ttl);
        let reply = self.link.run(slot(keys.tag()), Op::Script(&call))?.value;
        if legacy::stored(keys, &reply)? == Stored::Exists {
            return Ok(None);
        }
        let mut del = redis::cmd("DEL");
        del.arg(&old);
        self.link.run(slot(&old), Op::Cmd(&del))?;
        Ok(Some(envelope))
    }
}

fn raw_loaded(stored: Option<Vec<u8>>) -> Loaded {
    match stored {
        None => Loaded::Empty,
        Some(bytes) => Loaded::Data(Envelope::new(bytes, 0)),
    }
}

fn compat_opened(
    keys: SessionKeys,
    claim: Claim,
    stored: Option<Vec<u8>>,
    waited: Duration,
) -> Opened {
    let loaded = raw_loaded(stored.clone());
    let lease = Lease::new(keys, claim, stored.as_deref(), &loaded);
    Opened::Locked {
        lease,
        loaded,
        waited,
    }
}

fn mark_imported(opened: Opened) -> Opened {
    match opened {
        Opened::Locked {
            mut lease,
            loaded,
            waited,
        } => {
            lease.imported = true;
            Opened::Locked {
                lease,
                loaded,
                waited,
            }
        }
        other => other,
    }
}
