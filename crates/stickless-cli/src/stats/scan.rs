//! Walks one primary's keys under the prefix with `SCAN`, and measures each
//! batch in one pipeline: `STRLEN`, `PTTL` and the header (`GETRANGE`) of
//! each session, `GET` of each lock, `ZCOUNT` of live waiters per queue.
//!
//! A call's cost is bounded by `COUNT` (keys the server examines per SCAN)
//! and by the batch it returns; nothing reads a payload or a whole key set.

use std::time::Instant;

use indicatif::ProgressBar;
use redis::Value;
use stickless::SessionKeys;
use stickless::admin::RESERVED;

use crate::error::{CliError, command};
use crate::header::{self, HEADER_BYTES};
use crate::nodes::Node;
use crate::stats::tally::Tally;

/// What a key under the prefix is.
enum Kind {
    Data,
    Lock,
    Queue,
    /// `:wake`, `:void` and a staged envelope: part of a session, not counted.
    Other,
    Foreign,
}

fn kind(prefix: &str, key: &str) -> Kind {
    if SessionKeys::from_data_key(prefix, key).is_some() {
        return Kind::Data;
    }
    // Every session key is `<prefix>{<tag>}:<suffix>` (a staged envelope's
    // `:stage:<token>`); check the shape through the data key that would
    // go with it.
    let (key, staged) = match key.rsplit_once(":stage:") {
        Some((base, _token)) => (base, true),
        None => (key, false),
    };
    if staged {
        return match SessionKeys::from_data_key(prefix, &format!("{key}:data")) {
            Some(_) => Kind::Other,
            None => Kind::Foreign,
        };
    }
    let Some((base, suffix)) = key.rsplit_once(':') else {
        return Kind::Foreign;
    };
    if SessionKeys::from_data_key(prefix, &format!("{base}:data")).is_none() {
        return Kind::Foreign;
    }
    match suffix {
        "lock" => Kind::Lock,
        "queue" => Kind::Queue,
        "wake" | "void" => Kind::Other,
        _ => Kind::Foreign,
    }
}

/// `MATCH` pattern for keys that start with `prefix{`: glob characters in
/// the prefix are escaped.
pub fn pattern(prefix: &str) -> String {
    format!("{}{{*", escape(prefix))
}

/// `text` as a `MATCH` pattern that matches it literally.
pub fn escape(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

/// Scans `node`, adding what it finds to `tally`.
pub fn node(
    node: &mut Node,
    prefix: &str,
    count: u32,
    tally: &mut Tally,
    progress: &ProgressBar,
) -> Result<(), CliError> {
    let name = node.name.clone();
    let fail = |e: redis::RedisError| command(&name, &e);
    tally.start_node(&name);
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut node.con).map_err(fail)?;
    let (server_start_ms, started) = (secs * 1000 + micros / 1000, Instant::now());
    let pattern = pattern(prefix);
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(count)
            .query(&mut node.con)
            .map_err(fail)?;
        tally.scanned(keys.len());
        // COUNT is what the server examines per call, roughly: the bar
        // moves by that much, never past the keys DBSIZE reported.
        let moved = progress.position() + u64::from(count);
        progress.set_position(moved.min(progress.length().unwrap_or(moved)));
        let now_ms = server_start_ms + started.elapsed().as_millis() as u64;
        measure(node, prefix, &keys, now_ms, tally)?;
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// One pipeline for the keys of one SCAN call.
fn measure(
    node: &mut Node,
    prefix: &str,
    keys: &[Vec<u8>],
    now_ms: u64,
    tally: &mut Tally,
) -> Result<(), CliError> {
    let mut pipe = redis::pipe();
    let mut asked = Vec::new();
    for raw in keys {
        let Ok(key) = std::str::from_utf8(raw) else {
            tally.foreign();
            continue;
        };
        match kind(prefix, key) {
            Kind::Data => {
                pipe.cmd("STRLEN").arg(key).cmd("PTTL").arg(key);
                pipe.cmd("GETRANGE").arg(key).arg(0).arg(HEADER_BYTES - 1);
                asked.push(Kind::Data);
            }
            Kind::Lock => {
                pipe.cmd("GET").arg(key);
                asked.push(Kind::Lock);
            }
            Kind::Queue => {
                // A waiter's score is the server time until which it is alive.
                pipe.cmd("ZCOUNT")
                    .arg(key)
                    .arg(format!("({now_ms}"))
                    .arg("+inf");
                asked.push(Kind::Queue);
            }
            Kind::Other => {}
            Kind::Foreign => tally.foreign(),
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    // A command refused for one key (a key of another type under a
    // session's name, a slot moving away) must not abort the scan: its
    // reply is an error value, counted below as unreadable or gone.
    let replies: Vec<Value> = pipe
        .ignore_errors()
        .query(&mut node.con)
        .map_err(|e| command(&node.name, &e))?;
    let mut replies = replies.into_iter();
    for kind in asked {
        match kind {
            Kind::Data => {
                let (Some(size), Some(ttl), Some(start)) =
                    (replies.next(), replies.next(), replies.next())
                else {
                    break;
                };
                let size = int(&size).unwrap_or(0).max(0) as u64;
                let ttl = int(&ttl).unwrap_or(-2);
                // Gone between SCAN and now: expired or destroyed.
                if ttl == -2 {
                    continue;
                }
                let start = match start {
                    Value::BulkString(b) => b,
                    _ => Vec::new(),
                };
                tally.session(size, ttl, header::peek(&start));
            }
            Kind::Lock => {
                if let Some(Value::BulkString(v)) = replies.next() {
                    tally.lock(v == RESERVED.as_bytes());
                }
            }
            Kind::Queue => {
                let live = replies.next().as_ref().and_then(int).unwrap_or(0);
                tally.waiters(live.max(0) as u64);
            }
            Kind::Other | Kind::Foreign => {}
        }
    }
    Ok(())
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use stickless::SessionId;

    use super::*;

    #[test]
    fn keys_are_told_apart_by_shape() {
        let id = SessionId::parse("0123456789abcdefghijklmnop").unwrap();
        let keys = SessionKeys::derive("app:", &id);
        assert!(matches!(kind("app:", &keys.data()), Kind::Data));
        assert!(matches!(kind("app:", &keys.lock()), Kind::Lock));
        assert!(matches!(kind("app:", &keys.queue()), Kind::Queue));
        assert!(matches!(kind("app:", &keys.wake()), Kind::Other));
        let stage = keys.stage("0123456789abcdef0123456789abcdef");
        assert!(matches!(kind("app:", &stage), Kind::Other));
        assert!(matches!(
            kind("app:", "app:{nothex}:stage:t"),
            Kind::Foreign
        ));
        assert!(matches!(kind("app:", "app:{nothex}:data"), Kind::Foreign));
        assert!(matches!(
            kind("app:", &format!("{}x", keys.data())),
            Kind::Foreign
        ));
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(pattern("app:"), "app:{*");
        assert_eq!(pattern("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:{*");
    }
}
