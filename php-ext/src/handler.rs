//! One request's view of one session: which protocol step each PHP hook
//! takes. Shared by the native save handler and `Stickless\SessionHandler`.
//! Locking itself lives in the core crate; this file only keeps the lease
//! between hooks and turns outcomes into the warnings users see.

use std::cell::{RefCell, RefMut};
use std::rc::{Rc, Weak};
use std::time::Duration;

use stickless::metrics::Event;
use stickless::{
    Concurrency, Config, Error, Lease, Loaded, MergeBase, MergeOpened, Merged, OpenMode, Opened,
    SessionId, Store,
};

use crate::concurrency;

use crate::stats;
use crate::stores::{self, Shared};

/// A message for an E_WARNING; already free of session IDs and secrets.
#[derive(Debug)]
pub struct Warning(pub String);

/// The value of `r`, or None after emitting its warning: how every hook
/// and method reports a failed step to PHP.
pub fn reported<T>(r: Result<T, Warning>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Warning(w)) => {
            crate::warn(&w);
            None
        }
    }
}

impl From<Error> for Warning {
    /// The store has counted the failure already.
    fn from(e: Error) -> Self {
        Warning(e.to_string())
    }
}

/// A step whose session was saved even if it failed afterwards: a bound
/// session whose index entry could not be renewed is saved all the same,
/// so PHP hears a warning, not a failed write.
fn saved<T>(r: Result<T, Error>) -> Result<(), Warning> {
    match r {
        Ok(_) => Ok(()),
        Err(e @ Error::IndexNotUpdated { .. }) => {
            crate::warn(&e.to_string());
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Where this request stands with its session.
// One per handler, replaced in place: boxing the lease would only add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
enum Active {
    Idle,
    /// Locked by us; `seen` is the payload PHP was given.
    Locked {
        id: SessionId,
        lease: Lease,
        seen: Vec<u8>,
    },
    /// Read without a lock to merge its changes (`concurrency=merge`).
    Merging {
        id: SessionId,
        base: MergeBase,
        seen: Vec<u8>,
    },
    /// Opened without a lock (`on_lock_timeout=readonly`).
    ReadOnly {
        id: SessionId,
        seen: Vec<u8>,
    },
    /// Loaded without a lock for `read_and_close`: PHP closes it right away.
    Snapshot {
        id: SessionId,
        seen: Vec<u8>,
    },
    /// validate_sid failed for a reason read() must report (Redis down, lock
    /// timeout): answering "invalid" would silently start a new session.
    Failed {
        id: SessionId,
        why: String,
    },
}

/// One handler's state: the worker's shared store for its configuration
/// (connections and keeper kept across requests and objects), and the
/// current request's session.
pub struct Handler {
    store: Shared,
    /// Shared with [`CURRENT`] while a session is locked, so that
    /// `Stickless\bind_user()` reaches the lease of whichever handler
    /// (native or object) holds the request's session.
    active: Rc<RefCell<Active>>,
    /// IDs made by create_sid in this request.
    created: Vec<SessionId>,
    /// The configuration `store` was last checked against: the same `Rc`
    /// again (the ini cache's) needs no comparison.
    checked: Option<Rc<Config>>,
}

fn parse_id(raw: &[u8]) -> Result<SessionId, Warning> {
    SessionId::from_bytes(raw).map_err(|e| {
        stats::count(&Event::Error("invalid_id"));
        Warning(format!("{e}; rejected without contacting Redis"))
    })
}

impl Handler {
    /// A handler for `config`; no I/O.
    pub fn new(config: &Config) -> Self {
        Self {
            store: stores::shared(config),
            active: Rc::new(RefCell::new(Active::Idle)),
            created: Vec::new(),
            checked: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.store.borrow().config().clone()
    }

    /// Swaps in a new configuration (ini_set between session starts, another
    /// pool's settings): the worker's store for it.
    pub fn reconfigure(&mut self, config: Rc<Config>) {
        if self
            .checked
            .as_ref()
            .is_some_and(|c| Rc::ptr_eq(c, &config))
        {
            return;
        }
        if *self.store.borrow().config() != *config {
            self.end_quietly();
            self.store = stores::shared(&config);
        }
        self.checked = Some(config);
    }

    /// The session state, left idle.
    fn take(&self) -> Active {
        std::mem::replace(&mut *self.active.borrow_mut(), Active::Idle)
    }

    /// Moves to `active`; a locked session becomes the request's current
    /// one for `Stickless\bind_user()`.
    fn set(&self, active: Active) {
        let locked = matches!(active, Active::Locked { .. });
        *self.active.borrow_mut() = active;
        if locked {
            CURRENT.with(|c| {
                *c.borrow_mut() = Some(Current {
                    store: Rc::clone(&self.store),
                    active: Rc::downgrade(&self.active),
                });
            });
        }
    }

    /// The shared store, for one step. Nothing re-enters the extension while
    /// a step runs: warnings are raised after the call returns.
    fn store(&self) -> RefMut<'_, Store> {
        self.store.borrow_mut()
    }

    /// A session ID this request created (create_sid).
    pub fn created(&mut self, raw: &[u8]) {
        if let Ok(id) = SessionId::from_bytes(raw) {
            self.created.push(id);
        }
    }

    fn is_created(&self, id: &SessionId) -> bool {
        self.created.contains(id)
    }

    /// validate_sid: does the session exist? Strict mode asks this before
    /// read, so the lock is taken here and read() costs no round trip.
    pub fn validate(&mut self, raw: &[u8]) -> bool {
        let Ok(id) = parse_id(raw) else {
            return false;
        };
        if self.is_created(&id) {
            // Freshly made from 128+ random bits: cannot exist yet.
            return false;
        }
        if self.holds(&id) {
            return true;
        }
        self.end_quietly();
        if crate::read_and_close::requested() {
            return match self.snapshot(&id) {
                Ok(exists) => exists,
                Err(Warning(why)) => {
                    self.set(Active::Failed { id, why });
                    true
                }
            };
        }
        match self.open_as_chosen(&id, OpenMode::RequireExisting) {
            Ok(true) => true,
            Ok(false) => false,
            Err(Warning(why)) => {
                self.set(Active::Failed { id, why });
                true
            }
        }
    }

    fn holds(&self, id: &SessionId) -> bool {
        match &*self.active.borrow() {
            Active::Locked { id: held, .. }
            | Active::Merging { id: held, .. }
            | Active::ReadOnly { id: held, .. }
            | Active::Snapshot { id: held, .. } => held == id,
            _ => false,
        }
    }

    /// Opens `id` as this request's concurrency says: locked, or read for a
    /// merge. Ok(false) when it must exist and does not.
    fn open_as_chosen(&mut self, id: &SessionId, mode: OpenMode) -> Result<bool, Warning> {
        let site = self.store().config().settings.concurrency;
        match concurrency::chosen(site) {
            Concurrency::Lock => self.open(id, mode),
            Concurrency::Merge => self.open_merge(id, mode),
        }
    }

    /// Reads `id` without a lock for a merge, or locks it when its data
    /// cannot be merged key by key.
    fn open_merge(&mut self, id: &SessionId, mode: OpenMode) -> Result<bool, Warning> {
        let handler = concurrency::serialize_handler();
        let lifetime = concurrency::lifetime();
        let opened = self.store().open_merge(id, handler, mode, lifetime)?;
        match opened {
            MergeOpened::Unlocked(base) => {
                if mode == OpenMode::RequireExisting && !base.was_stored() {
                    return Ok(false);
                }
                let seen = base.payload().to_vec();
                self.set(Active::Merging {
                    id: id.clone(),
                    base,
                    seen,
                });
                Ok(true)
            }
            MergeOpened::Locked { opened, .. } => self.opened(id, opened),
        }
    }

    /// Locks and loads `id`; Ok(false) when it must exist and does not.
    fn open(&mut self, id: &SessionId, mode: OpenMode) -> Result<bool, Warning> {
        let opened = self.store().lock(id, mode)?;
        self.opened(id, opened)
    }

    /// Keeps what a lock step returned.
    fn opened(&mut self, id: &SessionId, opened: Opened) -> Result<bool, Warning> {
        let loaded = match opened {
            Opened::Missing => return Ok(false),
            Opened::Locked { lease, loaded, .. } => {
                let seen = loaded.payload().to_vec();
                self.set(Active::Locked {
                    id: id.clone(),
                    lease,
                    seen,
                });
                loaded
            }
            Opened::ReadOnly { loaded, waited } => {
                crate::warn(&format!(
                    "session {} is locked by another request; opened read-only after {} ms (on_lock_timeout=readonly), changes will not be saved",
                    self.store().keys(id).tag(),
                    waited.as_millis()
                ));
                let seen = loaded.payload().to_vec();
                self.set(Active::ReadOnly {
                    id: id.clone(),
                    seen,
                });
                loaded
            }
        };
        if let Loaded::Corrupt(kind) = &loaded {
            crate::warn(&format!(
                "session {} holds an unreadable value ({kind}); starting empty, the stored value is kept until the application writes",
                self.store().keys(id).tag()
            ));
        }
        Ok(true)
    }

    /// Loads `id` without a lock (read_and_close); Ok(false) when nothing is stored.
    fn snapshot(&mut self, id: &SessionId) -> Result<bool, Warning> {
        let loaded = self.store().load(id)?;
        if let Loaded::Corrupt(kind) = &loaded {
            crate::warn(&format!(
                "session {} holds an unreadable value ({kind}); starting empty",
                self.store().keys(id).tag()
            ));
        }
        let exists = loaded != Loaded::Empty;
        self.set(Active::Snapshot {
            id: id.clone(),
            seen: loaded.payload().to_vec(),
        });
        Ok(exists)
    }

    /// read: the session payload, locking it first unless validate did.
    pub fn read(&mut self, raw: &[u8]) -> Result<Vec<u8>, Warning> {
        let id = parse_id(raw)?;
        let failed = match &*self.active.borrow() {
            Active::Locked { id: held, seen, .. }
            | Active::Merging { id: held, seen, .. }
            | Active::ReadOnly { id: held, seen }
            | Active::Snapshot { id: held, seen }
                if *held == id =>
            {
                return Ok(seen.clone());
            }
            Active::Failed { id: held, why } if *held == id => Some(why.clone()),
            _ => None,
        };
        if let Some(why) = failed {
            self.set(Active::Idle);
            return Err(Warning(why));
        }
        self.end_quietly();
        let read_and_close = crate::read_and_close::requested();
        match (self.is_created(&id), read_and_close) {
            // Closed right after this read, never written: nothing to lock.
            (true, true) => return Ok(Vec::new()),
            // A new session is locked like any other: its cookie can reach
            // the browser (flush(), fastcgi_finish_request(), a redirect)
            // before this request ends, and the next request with it must
            // wait for this one's data rather than start a second session.
            // That round trip is also where a server that is down shows, so
            // session_start() fails before the page is rendered.
            (true, false) => {
                self.open_as_chosen(&id, OpenMode::New)?;
            }
            (false, true) => {
                self.snapshot(&id)?;
            }
            (false, false) => {
                self.open_as_chosen(&id, OpenMode::CreateIfMissing)?;
            }
        }
        match &*self.active.borrow() {
            Active::Locked { seen, .. }
            | Active::Merging { seen, .. }
            | Active::ReadOnly { seen, .. }
            | Active::Snapshot { seen, .. } => Ok(seen.clone()),
            _ => Ok(Vec::new()),
        }
    }

    /// write: a fenced write that also releases the lock. Unchanged data is
    /// only touched, so a value PHP could not read is never replaced by the
    /// empty session PHP was given instead; a new session is always stored,
    /// even empty, so its ID is known from the next request on.
    pub fn write(&mut self, raw: &[u8], data: &[u8], ttl: Duration) -> Result<(), Warning> {
        let id = parse_id(raw)?;
        match self.take() {
            Active::Locked {
                id: held,
                lease,
                seen,
            } if held == id => {
                self.created.retain(|c| *c != id);
                if seen == data && lease.was_stored() {
                    saved(self.store().touch(lease, ttl))?;
                } else {
                    saved(self.store().commit(lease, data.to_vec(), ttl))?;
                }
                Ok(())
            }
            Active::Merging { id: held, base, .. } if held == id => {
                self.created.retain(|c| *c != id);
                self.merge(base, data, ttl)
            }
            Active::ReadOnly { id: held, seen } if held == id => {
                if seen == data {
                    return Ok(());
                }
                stats::count(&Event::Error("read_only_write"));
                Err(Warning(format!(
                    "session {} was opened read-only after a lock timeout; the write was refused",
                    self.store().keys(&id).tag()
                )))
            }
            other => {
                // A write without a matching read (some frameworks write
                // blind): lock first, so it is still fenced.
                self.set(other);
                self.end_quietly();
                let mode = if self.is_created(&id) {
                    OpenMode::New
                } else {
                    OpenMode::CreateIfMissing
                };
                let opened = self.store().lock(&id, mode)?;
                match opened {
                    Opened::Locked { lease, .. } => {
                        self.created.retain(|c| *c != id);
                        saved(self.store().commit(lease, data.to_vec(), ttl))?;
                        Ok(())
                    }
                    Opened::ReadOnly { .. } | Opened::Missing => {
                        stats::count(&Event::Error("read_only_write"));
                        Err(Warning(format!(
                            "session {} is locked by another request; the write was refused",
                            self.store().keys(&id).tag()
                        )))
                    }
                }
            }
        }
    }

    /// A merge-mode write; each key another request changed too is
    /// reported (its change here is not saved), the rest is applied.
    fn merge(&mut self, base: MergeBase, data: &[u8], ttl: Duration) -> Result<(), Warning> {
        let session = base.session().to_owned();
        let Merged { conflicts, .. } = self.store().commit_merge(base, data.to_vec(), ttl)?;
        for key in conflicts {
            crate::warn(&format!(
                "session {session}: `{key}` was changed by another request since this one read it; this request's change of `{key}` was not saved (concurrency=merge), its other changes were"
            ));
        }
        Ok(())
    }

    /// update_timestamp (lazy_write, unchanged data): touch and release.
    pub fn touch(&mut self, raw: &[u8], data: &[u8], ttl: Duration) -> Result<(), Warning> {
        let id = parse_id(raw)?;
        match self.take() {
            Active::Locked {
                id: held, lease, ..
            } if held == id && lease.was_stored() => {
                saved(self.store().touch(lease, ttl))?;
                Ok(())
            }
            Active::ReadOnly { .. } => Ok(()),
            // The read renewed the lifetime already: unchanged data costs
            // nothing more (commit_merge sends nothing for it).
            Active::Merging { id: held, base, .. } if held == id => self.merge(base, data, ttl),
            other => {
                // Same as a write for anything not held.
                self.set(other);
                self.write(raw, data, ttl)
            }
        }
    }

    /// destroy: delete in one round trip, releasing our lock if we hold it.
    pub fn destroy(&mut self, raw: &[u8]) -> Result<(), Warning> {
        let id = parse_id(raw)?;
        self.created.retain(|c| *c != id);
        let lease = match self.take() {
            Active::Locked {
                id: held, lease, ..
            } if held == id => Some(lease),
            // Nothing held: a merge read takes no lock.
            Active::Merging { id: held, .. } if held == id => None,
            other => {
                self.set(other);
                None
            }
        };
        self.store().destroy(&id, lease)?;
        Ok(())
    }

    /// close: release whatever is still held (read_and_close, session_abort,
    /// a failed write already released nothing more).
    pub fn close(&mut self) -> Result<(), Warning> {
        match self.take() {
            Active::Locked { lease, .. } => {
                self.store().release(lease)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// End of request: release any lock the application never closed
    /// (frameworks that call only read/write/destroy), and forget the IDs
    /// made this request.
    pub fn finish_request(&mut self) {
        self.end_quietly();
        self.created.clear();
    }

    fn end_quietly(&mut self) {
        if let Err(Warning(w)) = self.close() {
            crate::warn(&w);
        }
    }
}

/// The request's current session: the store and state of the handler that
/// locked a session last in this process.
struct Current {
    store: Shared,
    active: Weak<RefCell<Active>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Why `Stickless\bind_user()` did not bind.
pub enum BindError {
    /// No session of this handler is active and locked.
    NoSession(&'static str),
    /// The step failed (Redis down, a bad label).
    Store(Error),
}

/// Binds the request's active session to `user` (see `Store::bind_user`).
pub fn bind_current(
    user: &stickless::UserId,
    label: Option<&str>,
    ttl: Duration,
) -> Result<(), BindError> {
    const NONE: &str = "no active stickless session; call session_start() first";
    let current = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|c| (Rc::clone(&c.store), c.active.upgrade()))
    });
    let Some((store, Some(active))) = current else {
        return Err(BindError::NoSession(NONE));
    };
    let Ok(mut active) = active.try_borrow_mut() else {
        return Err(BindError::NoSession(NONE));
    };
    let Active::Locked { lease, .. } = &mut *active else {
        return Err(BindError::NoSession(
            "the session is not locked by this request (closed, read_and_close or read-only); it cannot be bound",
        ));
    };
    let Ok(mut store) = store.try_borrow_mut() else {
        return Err(BindError::NoSession(NONE));
    };
    store
        .bind_user(lease, user, label, ttl)
        .map_err(BindError::Store)
}

/// The store of the session this process used last, for the user
/// functions called outside a session.
pub fn current_store() -> Option<Shared> {
    CURRENT.with(|c| c.borrow().as_ref().map(|c| Rc::clone(&c.store)))
}
