//! Server-side costs: Redis commands and CPU from INFO, php-fpm CPU and
//! memory from /proc.

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result};

/// PIDs whose parent is one of `parents`.
pub fn children_of(parents: &[u32]) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                .is_some_and(|ppid| parents.contains(&ppid))
        })
        .collect()
}

/// Fields of /proc/<pid>/stat after the command name (state is field 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time (user + system) of `pids`, in microseconds.
pub fn cpu_us(pids: &[u32]) -> u64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| stat_fields(*pid))
        // utime and stime are fields 14 and 15 of stat, 11 and 12 here.
        .map(|f| {
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum();
    ticks * 1_000_000 / ticks_per_second()
}

/// Mean proportional set size of `pids` in KiB: shared pages counted once
/// across the processes sharing them.
pub fn mean_pss_kib(pids: &[u32]) -> Option<u64> {
    let values: Vec<u64> = pids
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<u64>() / values.len() as u64)
}

/// Counters read from a Redis server's INFO.
#[derive(Debug, Clone, Default)]
pub struct RedisSample {
    /// Calls per command name (top level and inside scripts).
    pub calls: HashMap<String, u64>,
    /// used_cpu_user + used_cpu_sys, in microseconds.
    pub cpu_us: u64,
}

impl RedisSample {
    /// Reads INFO from the server on `port`.
    pub fn take(port: u16) -> Result<Self> {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
            .get_connection()
            .context("connecting to the stack's Redis")?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .arg("cpu")
            .query(&mut con)?;
        let mut sample = Self::default();
        let mut cpu = 0.0f64;
        for line in info.lines() {
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                let (name, stats) = rest.split_once(':').unwrap_or((rest, ""));
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                sample.calls.insert(name.to_owned(), calls);
            } else if let Some(v) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                cpu += v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
        sample.cpu_us = (cpu * 1e6) as u64;
        Ok(sample)
    }

    /// Commands executed since `before`, INFO's own excluded.
    pub fn commands_since(&self, before: &Self) -> u64 {
        self.calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(name, n)| n - before.calls.get(name).copied().unwrap_or(0))
            .sum()
    }
}
