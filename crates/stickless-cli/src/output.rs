//! Writing results: text for people or one JSON document for scripts, to
//! stdout, with write errors (a closed pipe) reported instead of panicking
//! as `println!` would.

use std::io::Write;

use crate::error::CliError;

/// Where and how a command writes its result.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`.
    pub json: bool,
}

impl Output {
    /// Writes `text` as it is.
    pub fn text(self, text: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// Writes bytes as they are (`show --raw`).
    pub fn bytes(self, bytes: &[u8]) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        Ok(())
    }

    /// Writes one JSON document and a newline; `compact` puts it on one
    /// line (a stream of them, under `--watch`).
    pub fn json(self, value: &serde_json::Value, compact: bool) -> Result<(), CliError> {
        let text = if compact {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        }
        .map_err(std::io::Error::other)?;
        self.text(&format!("{text}\n"))
    }
}

/// Lines of `label  value`, the labels padded to one width.
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    /// Adds a row.
    pub fn row(&mut self, label: &str, value: impl Into<String>) {
        self.rows.push((label.to_owned(), value.into()));
    }

    /// The rows, aligned.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        self.rows
            .iter()
            .map(|(l, v)| format!("{l:<width$}  {v}\n"))
            .collect()
    }
}
