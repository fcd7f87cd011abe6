//! Replays one request's changes onto a value another request wrote
//! meanwhile, top-level key by top-level key.
//!
//! Three versions of the session take part: `base`, what this request read;
//! `mine`, what it wants to store; `current`, what is stored now. A key this
//! request did not change (same in `base` and `mine`) keeps its current
//! value. A key it changed (added, modified, removed) takes its new value
//! when nobody else changed it (`current` equals `base`). Otherwise both
//! changed it: the current value stays and the key is reported, never
//! resolved silently. That holds when both made the very same change too:
//! two requests that each raise a counter from 5 to 6 store 6, one increment
//! is lost, and only the key's history, which the bytes do not carry, could
//! tell that apart from two requests setting a flag alike. (A resend that
//! finds its own earlier write is told apart by the whole envelope, before
//! any replay.)
//!
//! Values are compared as `serialize()` writes them, which is exact for
//! sessions without references; a session whose values hold references is
//! never merged (slot numbers run across variables, so a value's bytes do not
//! say what it points to).

use crate::php::{Key, SerializeHandler, Session, serialize};

/// The outcome of a replay.
#[derive(Debug, PartialEq)]
pub(crate) struct Replayed {
    /// The payload to store.
    pub(crate) payload: Vec<u8>,
    /// Keys both requests changed (alike or not), left as `current` has them.
    pub(crate) conflicts: Vec<String>,
}

/// Why a replay is not possible; the write is refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unmergeable;

/// A session decoded for merging: ref-free, or refused.
pub(crate) fn decode(handler: SerializeHandler, data: &[u8]) -> Result<Session, Unmergeable> {
    let session = Session::decode(handler, data).map_err(|_| Unmergeable)?;
    if session.has_references() {
        return Err(Unmergeable);
    }
    Ok(session)
}

fn bytes_of(session: &Session, key: &Key) -> Result<Option<Vec<u8>>, Unmergeable> {
    session
        .get_value(key.clone())
        .map(|v| serialize(v).map_err(|_| Unmergeable))
        .transpose()
}

/// A key as a warning names it.
pub(crate) fn key_name(key: &Key) -> String {
    match key {
        Key::String(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Key::Int(i) => i.to_string(),
    }
}

/// Replays the keys `mine` changed against `base` onto `current`.
pub(crate) fn replay(
    handler: SerializeHandler,
    base: &[u8],
    mine: &[u8],
    current: &[u8],
) -> Result<Replayed, Unmergeable> {
    let base = decode(handler, base)?;
    let mine = decode(handler, mine)?;
    // The stored value may hold references (a locked request wrote them):
    // inserting and removing ref-free variables renumbers them correctly.
    let mut result = Session::decode(handler, current).map_err(|_| Unmergeable)?;
    let stored = result.clone();
    let mut keys: Vec<&Key> = base.iter().map(|(k, _)| k).collect();
    for (key, _) in mine.iter() {
        if base.get_value(key.clone()).is_none() {
            keys.push(key);
        }
    }
    let mut conflicts = Vec::new();
    for key in keys {
        let before = bytes_of(&base, key)?;
        let after = bytes_of(&mine, key)?;
        if before == after {
            continue;
        }
        if bytes_of(&stored, key)? != before {
            conflicts.push(key_name(key));
            continue;
        }
        match mine.get_value(key.clone()) {
            Some(value) => {
                result.insert(key.clone(), value.clone());
            }
            None => {
                result.remove(key.clone());
            }
        }
    }
    let payload = result.encode(handler).map_err(|_| Unmergeable)?;
    Ok(Replayed { payload, conflicts })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHP: SerializeHandler = SerializeHandler::Php;

    fn run(base: &str, mine: &str, current: &str) -> Result<Replayed, Unmergeable> {
        replay(PHP, base.as_bytes(), mine.as_bytes(), current.as_bytes())
    }

    #[test]
    fn changes_to_different_keys_both_survive() {
        let out = run("a|i:1;b|i:1;", "a|i:2;b|i:1;", "a|i:1;b|i:5;").unwrap();
        assert_eq!(out.payload, b"a|i:2;b|i:5;");
        assert!(out.conflicts.is_empty());
    }

    #[test]
    fn added_and_removed_keys_are_replayed() {
        let out = run(
            "a|i:1;gone|b:1;",
            "a|i:1;new|s:1:\"x\";",
            "a|i:1;gone|b:1;c|i:3;",
        )
        .unwrap();
        assert_eq!(out.payload, b"a|i:1;c|i:3;new|s:1:\"x\";");
        assert!(out.conflicts.is_empty());
    }

    #[test]
    fn a_key_both_changed_keeps_the_stored_value_and_is_named() {
        let out = run("cart|i:1;x|i:0;", "cart|i:2;x|i:1;", "cart|i:7;x|i:0;").unwrap();
        assert_eq!(out.payload, b"cart|i:7;x|i:1;");
        assert_eq!(out.conflicts, ["cart"]);
    }

    #[test]
    fn the_same_change_made_by_both_is_a_conflict_too() {
        // Two increments from 1: storing 2 once loses one of them.
        let out = run("n|i:1;a|i:0;", "n|i:2;a|i:1;", "n|i:2;a|i:0;").unwrap();
        assert_eq!(out.payload, b"n|i:2;a|i:1;");
        assert_eq!(out.conflicts, ["n"]);
    }

    #[test]
    fn a_key_removed_by_the_other_request_and_changed_here_conflicts() {
        let out = run("a|i:1;", "a|i:2;", "").unwrap();
        assert_eq!(out.payload, b"");
        assert_eq!(out.conflicts, ["a"]);
    }

    #[test]
    fn php_serialize_keys_may_be_integers() {
        let out = replay(
            SerializeHandler::PhpSerialize,
            b"a:2:{i:0;s:1:\"a\";s:1:\"k\";i:1;}",
            b"a:2:{i:0;s:1:\"b\";s:1:\"k\";i:1;}",
            b"a:2:{i:0;s:1:\"a\";s:1:\"k\";i:9;}",
        )
        .unwrap();
        assert_eq!(out.payload, b"a:2:{i:0;s:1:\"b\";s:1:\"k\";i:9;}");
    }

    #[test]
    fn references_in_this_request_are_not_merged() {
        assert_eq!(
            run("a|i:1;", "a|a:1:{i:0;i:1;}b|R:2;", "a|i:5;"),
            Err(Unmergeable)
        );
    }

    #[test]
    fn data_in_another_layout_is_not_merged() {
        assert_eq!(run("a|i:1;", "a|i:2;", "a:1:{}"), Err(Unmergeable));
    }
}
