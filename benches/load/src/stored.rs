//! Bytes Redis holds per session: what compression saves, measured on the
//! keys one fresh session leaves behind.

use std::collections::HashSet;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::client::Client;

/// What one session written by an endpoint occupies in Redis.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StoredSize {
    /// Length of the session's values (`STRLEN`): what the handler wrote.
    pub value_bytes: u64,
    /// `MEMORY USAGE` of its keys: the value plus Redis's own overhead.
    pub memory_bytes: u64,
}

/// Requests `path` `requests` times in a session of its own and measures
/// the string keys that session created. Run while nothing else loads the
/// stack, so every new key is this session's. `None` when it stored no
/// string keys (a handler that keeps sessions outside Redis).
pub async fn per_session(
    port: u16,
    redis_port: u16,
    path: &str,
    requests: u32,
) -> Result<Option<StoredSize>> {
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/"))?
        .get_connection()
        .context("connecting to the stack's Redis")?;
    let before = keys(&mut con)?;
    let mut client = Client::connect(port, None).await?;
    for _ in 0..requests {
        client.get(path).await?;
    }
    let mut size = StoredSize {
        value_bytes: 0,
        memory_bytes: 0,
    };
    let mut found = false;
    for key in keys(&mut con)?.difference(&before) {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut con)?;
        if kind != "string" {
            continue;
        }
        found = true;
        size.value_bytes += redis::cmd("STRLEN").arg(key).query::<u64>(&mut con)?;
        size.memory_bytes += redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query::<Option<u64>>(&mut con)?
            .unwrap_or(0);
    }
    Ok(found.then_some(size))
}

fn keys(con: &mut redis::Connection) -> Result<HashSet<Vec<u8>>> {
    let mut out = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        out.extend(batch);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}
