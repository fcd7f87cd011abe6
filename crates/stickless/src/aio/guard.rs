//! A locked session with its decoded PHP data.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Store;
use crate::error::Error;
use crate::php::{Key, SerializeHandler, Session};
use crate::session::{Lease, Loaded};

/// A session locked by this task, decoded from PHP's format.
///
/// [`commit`](Self::commit) and [`release`](Self::release) consume the
/// guard, so nothing can touch the session after its lock is gone. While it
/// lives, the store's keeper task renews its lease, however long the
/// handler takes. Dropped without either (a panic, a cancelled handler), its
/// lock is released by the keeper task: the user's next PHP request does
/// not wait out `lock_ttl_ms`.
pub struct SessionGuard {
    store: Store,
    lease: Option<Lease>,
    session: Session,
    handler: SerializeHandler,
    /// The payload as read, to tell a changed session from an unchanged one.
    read: Vec<u8>,
}

impl SessionGuard {
    pub(super) fn new(
        store: Store,
        lease: Lease,
        session: Session,
        read: Vec<u8>,
        handler: SerializeHandler,
    ) -> Self {
        Self {
            store,
            lease: Some(lease),
            session,
            handler,
            read,
        }
    }

    /// Decodes what was read; `session` names it in errors.
    pub(super) fn decode(
        loaded: &Loaded,
        handler: SerializeHandler,
        session: &str,
    ) -> Result<Session, Error> {
        match loaded {
            Loaded::Corrupt(kind) => Err(Error::Unreadable {
                session: session.to_owned(),
                kind: kind.clone(),
            }),
            _ => Ok(Session::decode(handler, loaded.payload())?),
        }
    }

    /// The top-level entry `name` (`$_SESSION[name]`) as a `T`.
    pub fn get<T: DeserializeOwned>(&self, name: impl Into<Key>) -> Result<Option<T>, Error> {
        Ok(self.session.get(name)?)
    }

    /// Sets `$_SESSION[name]` to `value`.
    pub fn set<T: Serialize>(&mut self, name: impl Into<Key>, value: &T) -> Result<(), Error> {
        Ok(self.session.set(name, value)?)
    }

    /// The whole decoded session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The whole decoded session, to change.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Binds this session to `user` (see [`crate::Store::bind_user`]),
    /// for the store's lifetime; the binding is stored at
    /// [`commit`](Self::commit), which then writes even an unchanged
    /// session.
    pub async fn bind_user(
        &mut self,
        user: &crate::UserId,
        label: Option<&str>,
    ) -> Result<(), Error> {
        let Some(lease) = self.lease.as_mut() else {
            unreachable!("a guard holds its lease until consumed");
        };
        let ttl = self.store.lifetime();
        self.store.bind_user(lease, user, label, ttl).await
    }

    /// Writes the session back if it changed (or only renews its lifetime
    /// if not, as PHP's lazy_write does) and releases the lock.
    pub async fn commit(mut self) -> Result<(), Error> {
        let Some(lease) = self.lease.take() else {
            unreachable!("a guard holds its lease until consumed");
        };
        let payload = match self.session.encode(self.handler) {
            Ok(payload) => payload,
            Err(e) => {
                let _ = self.store.release(lease).await;
                return Err(e.into());
            }
        };
        let ttl = self.store.lifetime();
        if payload == self.read && !lease.needs_write() {
            self.store.touch(lease, ttl).await
        } else {
            self.store.commit(lease, payload, ttl).await.map(drop)
        }
    }

    /// Releases the lock without writing.
    pub async fn release(mut self) -> Result<(), Error> {
        match self.lease.take() {
            Some(lease) => self.store.release(lease).await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("lease", &self.lease)
            .field("entries", &self.session.len())
            .finish_non_exhaustive()
    }
}
