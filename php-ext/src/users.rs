//! `Stickless\bind_user()`, `Stickless\user_sessions()` and
//! `Stickless\logout_user()`: sessions per user, for "your active
//! sessions" and "log out everywhere". The index itself is the core
//! crate's (`Store::bind_user`); this file converts arguments and errors.
//!
//! Bad arguments throw `ValueError`, as PHP's own functions do for an
//! empty or oversize string; a step that fails (no active session, Redis
//! down) throws `Exception` naming the cause. Nothing is half done: a bind
//! that failed left the session unbound, a logout that failed can be
//! called again.

use std::time::Duration;

use ext_php_rs::boxed::ZBox;
use ext_php_rs::exception::{PhpException, PhpResult};
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ce;
use stickless::{Error, SessionId, Store, UserId};

use crate::handler::{self, BindError, Warning};
use crate::{ini, stores};

fn value_error(message: String) -> PhpException {
    PhpException::new(format!("stickless: {message}"), 0, ce::value_error())
}

fn failed(e: impl std::fmt::Display) -> PhpException {
    PhpException::from_message(format!("stickless: {e}"))
}

/// A user ID as PHP passes it: a string, or an int (`$user->id`).
fn user_id(zv: &Zval) -> PhpResult<UserId> {
    let raw = match (zv.zend_str(), zv.long()) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(n)) => n.to_string().into_bytes(),
        _ => {
            return Err(PhpException::new(
                "stickless: the user ID must be a string or an int".into(),
                0,
                ce::type_error(),
            ));
        }
    };
    UserId::from_bytes(&raw).map_err(|e| value_error(e.to_string()))
}

fn lifetime() -> Duration {
    Duration::from_secs(
        u64::try_from(ini::long("session.gc_maxlifetime"))
            .unwrap_or(0)
            .max(1),
    )
}

/// Runs `f` on the store of the session used last in this process, or on
/// `session.save_path`'s when there was none.
fn with_store<T>(f: impl FnOnce(&mut Store) -> Result<T, Error>) -> PhpResult<T> {
    let store = match handler::current_store() {
        Some(store) => store,
        None => {
            let path = ini::string("session.save_path").unwrap_or_default();
            let config = ini::config(&path)
                .map_err(|Warning(w)| failed(format!("session.save_path: {w}")))?;
            stores::shared(&config)
        }
    };
    let mut store = store
        .try_borrow_mut()
        .map_err(|_| failed("the store is busy"))?;
    f(&mut store).map_err(|e| match e {
        Error::InvalidUser(e) => value_error(e.to_string()),
        other => failed(other),
    })
}

/// PHP's current session ID (`session_id()`), if it is a valid one.
fn session_id() -> Option<SessionId> {
    let id = crate::engine(|| {
        let f = ext_php_rs::types::ZendCallable::try_from_name("session_id").ok()?;
        f.try_call(vec![]).ok()?.str().map(str::to_owned)
    })
    .flatten()?;
    SessionId::parse(&id).ok()
}

/// `Stickless\bind_user(string|int $userId, ?string $label = null): void`:
/// ties the active session to a user, so that `user_sessions()` lists it
/// and `logout_user()` ends it. The binding is saved with the session at
/// the end of the request (an unchanged session is written for it).
pub fn bind_user(user_id: &Zval, label: Option<String>) -> PhpResult<()> {
    let user = self::user_id(user_id)?;
    if let Some(l) = &label
        && l.len() > stickless::MAX_LABEL_LEN
    {
        return Err(value_error(format!(
            "session label has {} bytes; at most {} are accepted",
            l.len(),
            stickless::MAX_LABEL_LEN
        )));
    }
    handler::bind_current(&user, label.as_deref(), lifetime()).map_err(|e| match e {
        BindError::NoSession(why) => failed(why),
        BindError::Store(Error::InvalidUser(e)) => value_error(e.to_string()),
        BindError::Store(e) => failed(e),
    })
}

/// `Stickless\user_sessions(string|int $userId): array`: the user's live
/// sessions, each `['session' => '{tag}', 'created' => int, 'last_seen' =>
/// int, 'expires' => int, 'label' => ?string, 'current' => bool]` (Unix
/// seconds). Never a session ID: the tag names a session, and `current`
/// marks the caller's own.
pub fn user_sessions(user_id: &Zval) -> PhpResult<ZBox<ZendHashTable>> {
    let user = self::user_id(user_id)?;
    let current = session_id();
    let sessions = with_store(|store| store.user_sessions(&user, current.as_ref()))?;
    let mut list = ZendHashTable::new();
    for s in sessions {
        let mut row = ZendHashTable::new();
        let secs = |ms: u64| i64::try_from(ms / 1000).unwrap_or(i64::MAX);
        let inserted = row
            .insert("session", s.session)
            .and_then(|()| row.insert("created", secs(s.created_ms)))
            .and_then(|()| row.insert("last_seen", secs(s.last_seen_ms)))
            .and_then(|()| row.insert("expires", secs(s.expires_ms)))
            .and_then(|()| row.insert("label", s.label))
            .and_then(|()| row.insert("current", s.current))
            .and_then(|()| list.push(row));
        inserted.map_err(failed)?;
    }
    Ok(list)
}

/// `Stickless\logout_user(string|int $userId, ?string $exceptCurrent = null): int`:
/// destroys every session of the user but `$exceptCurrent` (usually
/// `session_id()`), wherever it is and whoever holds it; returns how many.
pub fn logout_user(user_id: &Zval, except_current: Option<String>) -> PhpResult<i64> {
    let user = self::user_id(user_id)?;
    let except = match except_current.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(SessionId::parse(raw).map_err(|e| value_error(e.to_string()))?),
    };
    let ended = with_store(|store| store.logout_user(&user, except.as_ref()))?;
    Ok(i64::try_from(ended).unwrap_or(i64::MAX))
}
