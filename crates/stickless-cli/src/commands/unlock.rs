//! `stickless unlock <id>`: frees a session stuck behind a lock, handing it
//! to the oldest live waiter as the holder's own release would.
//!
//! The release names the holder's token as read, so a lock that changed
//! hands meanwhile (the holder finished, a waiter took it) is left alone.
//! The holder's write afterwards is handled as after a lapsed lease: it is
//! applied if nobody changed the session meanwhile, and refused with a
//! warning in its log otherwise.

use serde_json::json;
use stickless::{Config, SessionId, SessionKeys, admin, scripts};

use crate::error::{CliError, command};
use crate::inspect::{self, Lock};
use crate::nodes::Store;
use crate::output::Output;

pub fn run(config: Config, id: &str, out: Output) -> Result<(), CliError> {
    let id = SessionId::parse(id)?;
    let keys = SessionKeys::derive(&config.settings.prefix, &id);
    let mut store = Store::discover(config)?;
    let state = inspect::read_keys(&mut store, keys)?;
    let tag = state.keys.tag().to_owned();
    let (released, message) = match &state.lock {
        Lock::Free => (false, format!("session {tag} is not locked; nothing to do")),
        Lock::Reserved { .. } => (
            false,
            format!("session {tag} is being handed to a waiter; nothing to unlock"),
        ),
        Lock::Held { token, lease_ms } => {
            let settings = store.config.settings.clone();
            let node = store.node_for(&state.keys.lock())?;
            let reply = admin::release_held(&mut node.con, &state.keys, token, &settings)
                .map_err(|e| command(&node.name, &e))?;
            scripts::parse_done("RELEASE", &reply).map_err(|e| CliError::Command {
                node: node.name.clone(),
                cause: e.to_string(),
            })?;
            let after = inspect::read_keys(&mut store, state.keys.clone())?;
            if matches!(&after.lock, Lock::Held { token: now, .. } if now == token) {
                return Err(CliError::Raced { tag });
            }
            let next = match state.waiters {
                0 => "nobody was waiting".to_owned(),
                n => format!("the oldest of {n} waiters gets it next"),
            };
            (
                true,
                format!(
                    "released the lock of session {tag} ({lease_ms} ms of lease were left); {next}; the holder's write is refused if the session changes meanwhile"
                ),
            )
        }
    };
    if out.json {
        out.json(
            &json!({ "session": tag, "released": released, "waiters": state.waiters, "message": message }),
            false,
        )
    } else {
        out.text(&format!("{message}\n"))
    }
}
