//! `stickless stats`: how many sessions, how big, how long they have left,
//! which are locked, scanned from every primary; `--watch` repeats it.

pub(crate) mod scan;
mod tally;

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use stickless::Config;

use crate::cli::StatsArgs;
use crate::error::{CliError, command};
use crate::nodes::Store;
use crate::output::Output;
use tally::Tally;

pub fn run(config: Config, args: &StatsArgs, out: Output) -> Result<(), CliError> {
    let mut store = Store::discover(config)?;
    let mut round = 0;
    loop {
        round += 1;
        let tally = scan_all(&mut store, args.count)?;
        if out.json {
            // Under --watch, one document per line: a stream a script reads.
            out.json(&tally.to_json(), args.watch.is_some())?;
        } else {
            let clear = args.watch.is_some() && std::io::stdout().is_terminal();
            out.text(&format!(
                "{}{}",
                if clear { "\x1b[2J\x1b[H" } else { "" },
                tally.to_text()
            ))?;
        }
        let Some(every) = args.watch else {
            return Ok(());
        };
        if args.rounds.is_some_and(|n| round >= n) {
            return Ok(());
        }
        if !out.json && !std::io::stdout().is_terminal() {
            out.text("\n")?;
        }
        std::thread::sleep(every);
    }
}

fn scan_all(store: &mut Store, count: u32) -> Result<Tally, CliError> {
    let started = Instant::now();
    let prefix = store.config.settings.prefix.clone();
    let mut total = 0;
    for i in 0..store.primary_count() {
        let node = store.node(i)?;
        let keys: u64 = redis::cmd("DBSIZE")
            .query(&mut node.con)
            .map_err(|e| command(&node.name, &e))?;
        total += keys;
    }
    // Drawn on stderr, and only when it is a terminal.
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("scanning {msg} [{bar:30}] {pos}/{len} keys")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut tally = Tally::default();
    for i in 0..store.primary_count() {
        let node = store.node(i)?;
        progress.set_message(node.name.clone());
        scan::node(node, &prefix, count, &mut tally, &progress)?;
    }
    progress.finish_and_clear();
    tally.finish(started.elapsed().as_millis() as u64);
    Ok(tally)
}
