//! `stickless import --from phpredis|symfony[:prefix]`: moves every old
//! session into stickless's format ahead of the lazy import, which
//! `import=...` in the pods' save path does on each session's first request.
//!
//! Each session goes through the store's own lock with the import on, the
//! code a request runs, so the bulk and the lazy import cannot disagree and
//! race safely. A moved session's old key is gone, so running the command
//! again (after an interruption, or twice) goes on with what is left and
//! imports nothing twice. Cost per call: one `SCAN` of `--count` keys, then a
//! few round trips per session found.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stickless::legacy::{Legacy, MOVED};
use stickless::{Config, Error, OpenMode, Opened, SessionId, SessionKeys};

use crate::cli::ImportArgs;
use crate::error::{CliError, command};
use crate::nodes::Store;
use crate::output::{Output, Table};
use crate::stats::scan;

/// What the run found, per key.
#[derive(Debug, Default)]
struct Count {
    scanned: u64,
    imported: u64,
    /// A native session exists already (imported before, or made natively).
    native: u64,
    /// Expired, destroyed or moved by a request between SCAN and now.
    gone: u64,
    /// A request held it for longer than lock_wait_ms; the lazy import or
    /// the next run takes it.
    busy: u64,
    /// Larger than max_size.
    too_large: u64,
    /// Keys under the prefix that name no valid session ID.
    not_a_session: u64,
    /// phpredis's lock keys and the markers of moved sessions.
    locks: u64,
    /// Old keys of sessions moved before, whose deletion was interrupted.
    cleaned: u64,
}

impl Count {
    fn skipped(&self) -> u64 {
        self.native + self.gone + self.busy + self.too_large + self.not_a_session
    }
}

pub fn run(config: Config, args: &ImportArgs, out: Output) -> Result<(), CliError> {
    if config.settings.compat.is_some() {
        return Err(CliError::ImportFromCompat);
    }
    let started = Instant::now();
    let mut nodes = Store::discover(config.clone())?;
    let mut config = config;
    config.settings.import = Some(args.from.clone());
    let mut store = stickless::Store::new(config);
    let total = key_total(&mut nodes)?;
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("importing {msg} [{bar:30}] {pos}/{len} keys")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let pattern = format!("{}*", scan::escape(&args.from.prefix));
    let mut count = Count::default();
    for i in 0..nodes.primary_count() {
        let mut cursor: u64 = 0;
        loop {
            let node = nodes.node(i)?;
            progress.set_message(node.name.clone());
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(args.count)
                .query(&mut node.con)
                .map_err(|e| command(&node.name, &e))?;
            for key in keys {
                count.scanned += 1;
                let key = String::from_utf8_lossy(&key);
                if key.ends_with("_LOCK") && args.from.source.locks() {
                    count.locks += 1;
                    continue;
                }
                let Some(id) = args.from.id_of(&key) else {
                    count.not_a_session += 1;
                    continue;
                };
                if args.dry_run {
                    look(&mut nodes, &id, &mut count)?;
                } else {
                    move_one(&mut store, &mut nodes, &args.from, &id, &mut count)?;
                }
            }
            let moved = progress.position() + u64::from(args.count);
            progress.set_position(moved.min(progress.length().unwrap_or(moved)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    progress.finish_and_clear();
    report(&count, args, started.elapsed().as_millis() as u64, out)
}

/// Keys on every primary, for the progress bar.
fn key_total(nodes: &mut Store) -> Result<u64, CliError> {
    let mut total = 0;
    for i in 0..nodes.primary_count() {
        let node = nodes.node(i)?;
        let keys: u64 = redis::cmd("DBSIZE")
            .query(&mut node.con)
            .map_err(|e| command(&node.name, &e))?;
        total += keys;
    }
    Ok(total)
}

/// `--dry-run`: would this session be imported?
fn look(nodes: &mut Store, id: &SessionId, count: &mut Count) -> Result<(), CliError> {
    let native = SessionKeys::derive(&nodes.config.settings.prefix, id).data();
    let node = nodes.node_for(&native)?;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&native)
        .query(&mut node.con)
        .map_err(|e| command(&node.name, &e))?;
    if exists {
        count.native += 1;
    } else {
        count.imported += 1;
    }
    Ok(())
}

/// Imports one session the way a request's lock does, and lets go at once.
fn move_one(
    store: &mut stickless::Store,
    nodes: &mut Store,
    from: &Legacy,
    id: &SessionId,
    count: &mut Count,
) -> Result<(), CliError> {
    match store.lock(id, OpenMode::RequireExisting) {
        Ok(Opened::Locked { lease, .. }) => {
            let imported = lease.imported();
            store.release(lease).map_err(CliError::Import)?;
            if imported {
                count.imported += 1;
            } else {
                count.native += 1;
                clean(nodes, from, id, count)?;
            }
        }
        Ok(Opened::Missing) => count.gone += 1,
        Ok(Opened::ReadOnly { .. }) | Err(Error::LockTimeout { .. }) => count.busy += 1,
        Err(Error::TooLarge { .. }) => count.too_large += 1,
        Err(e) => return Err(CliError::Import(e)),
    }
    Ok(())
}

/// A native session and an old key under the `moved` marker: an import
/// that stored the session but was stopped before deleting the old key.
/// Nothing reads that key any more; it is deleted. Without the marker the
/// old key is another session's business (a pod still writing it) and is
/// left alone.
fn clean(
    nodes: &mut Store,
    from: &Legacy,
    id: &SessionId,
    count: &mut Count,
) -> Result<(), CliError> {
    let Some(lock) = from.lock_key(id) else {
        return Ok(());
    };
    let node = nodes.node_for(&lock)?;
    let marker: Option<String> = redis::cmd("GET")
        .arg(&lock)
        .query(&mut node.con)
        .map_err(|e| command(&node.name, &e))?;
    if marker.as_deref() != Some(MOVED) {
        return Ok(());
    }
    let old = from.data_key(id);
    let node = nodes.node_for(&old)?;
    let deleted: u64 = redis::cmd("DEL")
        .arg(&old)
        .query(&mut node.con)
        .map_err(|e| command(&node.name, &e))?;
    count.cleaned += deleted;
    Ok(())
}

fn report(count: &Count, args: &ImportArgs, elapsed_ms: u64, out: Output) -> Result<(), CliError> {
    let from = format!("{}:{}", args.from.source.name(), args.from.prefix);
    if out.json {
        return out.json(
            &json!({
                "from": from,
                "dry_run": args.dry_run,
                "scanned": count.scanned,
                "imported": count.imported,
                "skipped": {
                    "total": count.skipped(),
                    "native_exists": count.native,
                    "gone": count.gone,
                    "busy": count.busy,
                    "too_large": count.too_large,
                    "not_a_session": count.not_a_session,
                },
                "locks": count.locks,
                "cleaned": count.cleaned,
                "elapsed_ms": elapsed_ms,
            }),
            false,
        );
    }
    let mut table = Table::default();
    table.row("from", from);
    table.row(
        "scanned",
        format!("{} keys in {} ms", count.scanned, elapsed_ms),
    );
    let verb = if args.dry_run {
        "would import"
    } else {
        "imported"
    };
    table.row(verb, count.imported.to_string());
    table.row(
        "skipped",
        format!(
            "{} (a stickless session exists {}, gone meanwhile {}, locked past lock_wait_ms {}, over max_size {}, not a session ID {})",
            count.skipped(),
            count.native,
            count.gone,
            count.busy,
            count.too_large,
            count.not_a_session
        ),
    );
    table.row(
        "lock keys",
        format!(
            "{} (phpredis locks and moved markers; they expire)",
            count.locks
        ),
    );
    if count.cleaned > 0 {
        table.row(
            "cleaned",
            format!("{} old keys of sessions moved before", count.cleaned),
        );
    }
    out.text(&table.render())
}
