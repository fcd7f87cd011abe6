//! `stickless show <id>`: where a session lives, its envelope, its lock,
//! and its contents as PHP values.
//!
//! Everything that could be read is printed before a failure is reported,
//! so an unreadable value still shows its node, key, size and TTL.

use serde_json::{Value as Json, json};
use stickless::admin::{self, flag_names};
use stickless::php::{SerializeHandler, Session};
use stickless::{Config, Envelope, SessionId, SessionKeys, cluster};

use crate::cli::ShowArgs;
use crate::error::CliError;
use crate::inspect::{self, Lock, SessionState};
use crate::nodes::Store;
use crate::output::{Output, Table};
use crate::render::{self, time};

/// What the stored value turned out to be.
enum Reading {
    /// Nothing stored (a new session whose first write is still to come).
    Nothing,
    /// Not an envelope this build opens; `header` when at least that decoded.
    Unreadable {
        header: Option<Envelope>,
        error: CliError,
    },
    /// Opened: the envelope as stored, and the plain payload.
    Opened { header: Envelope, payload: Vec<u8> },
}

pub fn run(config: Config, args: &ShowArgs, out: Output) -> Result<(), CliError> {
    let id = SessionId::parse(&args.session.id)?;
    let keys = SessionKeys::derive(&config.settings.prefix, &id);
    let mut store = Store::discover(config)?;
    let state = inspect::read_keys(&mut store, keys)?;
    let settings = &store.config.settings;
    if !state.exists() {
        return Err(CliError::NotFound {
            tag: state.keys.tag().to_owned(),
            prefix: settings.prefix.clone(),
        });
    }
    let reading = read(&state, settings);
    if args.raw {
        return match reading {
            Reading::Opened { payload, .. } => out.bytes(&payload),
            Reading::Unreadable { error, .. } => Err(error),
            Reading::Nothing => Ok(()),
        };
    }
    let contents = match &reading {
        Reading::Opened { payload, .. } => Some(decode(payload, args.serialize_handler, &state)),
        _ => None,
    };
    if out.json {
        out.json(&as_json(&state, &reading, contents.as_ref()), false)?;
    } else {
        out.text(&as_text(&state, &reading, contents.as_ref()))?;
    }
    match (reading, contents) {
        (Reading::Unreadable { error, .. }, _) => Err(error),
        (_, Some(Err(error))) => Err(error),
        _ => Ok(()),
    }
}

fn read(state: &SessionState, settings: &stickless::Settings) -> Reading {
    let Some(stored) = &state.stored else {
        return Reading::Nothing;
    };
    let unreadable = |kind| CliError::Unreadable {
        key: state.keys.data(),
        kind,
    };
    let header = match Envelope::decode(stored) {
        Ok(header) => header,
        Err(kind) => {
            return Reading::Unreadable {
                header: None,
                error: unreadable(kind),
            };
        }
    };
    match admin::open_envelope(stored, &state.keys, settings) {
        Ok(opened) => Reading::Opened {
            header,
            payload: opened.payload,
        },
        Err(kind) => Reading::Unreadable {
            header: Some(header),
            error: unreadable(kind),
        },
    }
}

/// The payload as session variables: in the layout asked for, or the
/// first of PHP's and Laravel's that reads it.
fn decode(
    payload: &[u8],
    asked: Option<SerializeHandler>,
    state: &SessionState,
) -> Result<(SerializeHandler, Session), CliError> {
    let candidates: Vec<SerializeHandler> = match asked {
        Some(handler) => vec![handler],
        // laravel_php reads exactly as php_serialize: trying it adds nothing.
        None => vec![
            SerializeHandler::Php,
            SerializeHandler::PhpSerialize,
            SerializeHandler::LaravelJson,
        ],
    };
    let mut first_error = None;
    for handler in &candidates {
        match Session::decode(*handler, payload) {
            Ok(session) => return Ok((*handler, session)),
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(CliError::Undecodable {
        tag: state.keys.tag().to_owned(),
        tried: candidates
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cause: first_error.unwrap_or_default(),
    })
}

fn lock_json(state: &SessionState) -> Json {
    let (held, kind, ms) = match &state.lock {
        Lock::Free => (false, "free", None),
        Lock::Held { lease_ms, .. } => (true, "held", Some(*lease_ms)),
        Lock::Reserved { claim_ms } => (true, "handing_over", Some(*claim_ms)),
    };
    json!({
        "held": held,
        "state": kind,
        "expires_in_ms": ms,
        "waiters": state.waiters,
        "stale_waiters": state.stale_waiters,
    })
}

fn as_json(
    state: &SessionState,
    reading: &Reading,
    contents: Option<&Result<(SerializeHandler, Session), CliError>>,
) -> Json {
    let header = match reading {
        Reading::Opened { header, .. }
        | Reading::Unreadable {
            header: Some(header),
            ..
        } => Some(header),
        _ => None,
    };
    let flags = header.map(|h| flag_names(h.flags)).unwrap_or_default();
    let mut doc = json!({
        "session": state.keys.tag(),
        "node": state.node,
        "key": state.keys.data(),
        "slot": cluster::slot(&state.keys.data()),
        "exists": state.stored.is_some(),
        "ttl_ms": state.stored.as_ref().map(|_| state.ttl_ms),
        "size": state.stored.as_ref().map(Vec::len),
        "envelope": header.map(|h| json!({
            "version": admin::ENVELOPE_VERSION,
            "revision": h.revision,
            "created_ms": h.created_ms,
            "created": time::utc(h.created_ms),
            "updated_ms": h.updated_ms,
            "updated": time::utc(h.updated_ms),
            "flags": flags,
            "key_id": h.key_id,
        })),
        "encrypted": flags.iter().any(|f| f == "encrypted"),
        "compressed": header.is_some_and(|h| admin::is_compressed(h.flags)),
        "lock": lock_json(state),
    });
    if let Reading::Unreadable { error, .. } = reading {
        doc["error"] = json!(error.to_string());
    }
    if let Reading::Opened { payload, .. } = reading {
        doc["payload_size"] = json!(payload.len());
    }
    match contents {
        Some(Ok((handler, session))) => {
            doc["serialize_handler"] = json!(handler.as_str());
            doc["contents"] = render::json::session(session);
        }
        Some(Err(error)) => doc["error"] = json!(error.to_string()),
        None => {}
    }
    doc
}

fn as_text(
    state: &SessionState,
    reading: &Reading,
    contents: Option<&Result<(SerializeHandler, Session), CliError>>,
) -> String {
    let mut t = Table::default();
    let key = state.keys.data();
    t.row("session", state.keys.tag());
    t.row(
        "node",
        format!("{} (slot {})", state.node, cluster::slot(&key)),
    );
    t.row("key", key);
    match &state.stored {
        None => t.row(
            "stored",
            "nothing yet: a new session whose first write is still to come",
        ),
        Some(stored) => {
            t.row("ttl", ttl_text(state.ttl_ms));
            t.row("size", format!("{} bytes stored", stored.len()));
        }
    }
    let header = match reading {
        Reading::Opened { header, .. }
        | Reading::Unreadable {
            header: Some(header),
            ..
        } => Some(header),
        _ => None,
    };
    if let Some(h) = header {
        t.row(
            "format",
            format!(
                "envelope v{}, revision {}",
                admin::ENVELOPE_VERSION,
                h.revision
            ),
        );
        t.row("created", stamp(h.created_ms, state.server_ms));
        t.row("updated", stamp(h.updated_ms, state.server_ms));
        let names = flag_names(h.flags);
        let flags = if names.is_empty() {
            "none (plain, uncompressed)".to_owned()
        } else {
            let mut text = names.join(", ");
            if let Some(key) = &h.key_id {
                text.push_str(&format!(" (key `{key}`)"));
            }
            text
        };
        t.row("flags", flags);
    }
    t.row("lock", lock_text(state));
    if let Reading::Opened { payload, .. } = reading {
        t.row("data", format!("{} bytes", payload.len()));
    }
    let mut text = t.render();
    if let Some(Ok((handler, session))) = contents {
        text.push_str(&format!(
            "\ncontents ({handler}, {} variables):\n",
            session.len()
        ));
        text.push_str(&render::php::session(session));
    }
    text
}

fn ttl_text(ttl_ms: i64) -> String {
    match u64::try_from(ttl_ms) {
        Ok(ms) => format!("{} left", time::span(ms)),
        Err(_) => "none: the key never expires (stickless always sets one)".into(),
    }
}

fn stamp(ms: u64, now_ms: u64) -> String {
    format!(
        "{} ({} ago)",
        time::utc(ms),
        time::span(now_ms.saturating_sub(ms))
    )
}

fn lock_text(state: &SessionState) -> String {
    let waiters = match (state.waiters, state.stale_waiters) {
        (0, 0) => "no waiters".to_owned(),
        (n, 0) => format!("{n} waiting"),
        (n, stale) => format!("{n} waiting, {stale} gone (forgotten at the next hand-off)"),
    };
    match &state.lock {
        Lock::Free => format!("free, {waiters}"),
        Lock::Held { lease_ms, .. } => format!(
            "held by a request; its lease has {} left (renewed while the request runs), {waiters}",
            time::span(u64::try_from(*lease_ms).unwrap_or(0))
        ),
        Lock::Reserved { claim_ms } => format!(
            "being handed to the next waiter (claim window {} left), {waiters}",
            time::span(u64::try_from(*claim_ms).unwrap_or(0))
        ),
    }
}
