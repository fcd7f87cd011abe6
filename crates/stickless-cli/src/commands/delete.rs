//! `stickless delete <id>`: destroys a session, as `session_destroy()`
//! would: the data goes, and a held lock is handed on to the next waiter.
//!
//! A session held by a running request is only deleted with `--force`;
//! that request's write is then refused (its session changed under it), so
//! the session does not come back.

use serde_json::json;
use stickless::scripts::DestroyReply;
use stickless::{Config, SessionId, SessionKeys, admin};

use crate::error::{CliError, command};
use crate::inspect::{self, Lock};
use crate::nodes::Store;
use crate::output::Output;

pub fn run(config: Config, id: &str, force: bool, out: Output) -> Result<(), CliError> {
    let id = SessionId::parse(id)?;
    let keys = SessionKeys::derive(&config.settings.prefix, &id);
    let mut store = Store::discover(config)?;
    let state = inspect::read_keys(&mut store, keys)?;
    let tag = state.keys.tag().to_owned();
    if !state.exists() {
        return Err(CliError::NotFound {
            tag,
            prefix: store.config.settings.prefix.clone(),
        });
    }
    // DESTROY deletes on behalf of the lock's value as read: its holder, a
    // reservation (`~`) being handed over, or nobody.
    let holder = match &state.lock {
        Lock::Free => String::new(),
        Lock::Held { lease_ms, .. } if !force => {
            return Err(CliError::Locked {
                tag,
                lease_ms: *lease_ms,
            });
        }
        Lock::Held { token, .. } => token.clone(),
        Lock::Reserved { .. } => admin::RESERVED.to_owned(),
    };
    let settings = store.config.settings.clone();
    let node = store.node_for(&state.keys.data())?;
    let reply = admin::destroy_held(&mut node.con, &state.keys, &holder, &settings)
        .map_err(|e| command(&node.name, &e))?;
    let reply = DestroyReply::parse(&reply).map_err(|e| CliError::Command {
        node: node.name.clone(),
        cause: e.to_string(),
    })?;
    if reply == DestroyReply::Locked {
        return Err(CliError::Raced { tag });
    }
    let was_held = matches!(state.lock, Lock::Held { .. });
    let message = match (was_held, state.stored.is_some()) {
        (true, true) => {
            format!("deleted session {tag}; the request holding it will have its write refused")
        }
        // Its write finds nothing stored, as it expects: it is applied.
        (true, false) => format!(
            "released session {tag}, which had nothing stored yet; the request creating it may still write it"
        ),
        (false, _) => format!("deleted session {tag}"),
    };
    if out.json {
        out.json(
            &json!({ "session": tag, "deleted": true, "was_locked": was_held, "message": message }),
            false,
        )
    } else {
        out.text(&format!("{message}\n"))
    }
}
