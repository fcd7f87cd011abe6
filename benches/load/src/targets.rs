//! The performance targets, checked against one run's medians: each a ratio
//! of a stickless handler's figure to a baseline's, same run, interleaved.

use std::fmt::Write as _;

use crate::handlers::{BASELINE, BASELINE_6};
use crate::report::{CorrectnessRun, Summary};

/// What a target compares.
#[derive(Debug, Clone, Copy)]
enum Metric {
    Rps,
    P50,
    RedisCpu,
    /// php-fpm CPU per request minus that of the no-session /hello
    /// endpoint: what the session handling itself costs in the pod.
    SessionFpmCpu,
    Stored,
}

/// Which way a ratio has to go.
#[derive(Debug, Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => ratio >= bound,
            Goal::AtMost(bound) => ratio <= bound,
        }
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::AtLeast(b) => write!(f, "≥ {b}×"),
            Goal::AtMost(b) => write!(f, "≤ {b}×"),
        }
    }
}

struct Target {
    endpoint: &'static str,
    handler: &'static str,
    metric: Metric,
    goal: Goal,
}

const TARGETS: &[Target] = &[
    Target {
        endpoint: "counter",
        handler: "stickless",
        metric: Metric::Rps,
        goal: Goal::AtLeast(1.5),
    },
    Target {
        endpoint: "counter",
        handler: "stickless",
        metric: Metric::RedisCpu,
        goal: Goal::AtMost(0.35),
    },
    Target {
        endpoint: "counter",
        handler: "stickless-merge",
        metric: Metric::RedisCpu,
        goal: Goal::AtMost(0.25),
    },
    Target {
        endpoint: "counter",
        handler: "stickless",
        metric: Metric::SessionFpmCpu,
        goal: Goal::AtMost(0.5),
    },
    Target {
        endpoint: "big",
        handler: "stickless",
        metric: Metric::Rps,
        goal: Goal::AtLeast(1.2),
    },
    Target {
        endpoint: "big",
        handler: "stickless",
        metric: Metric::RedisCpu,
        goal: Goal::AtMost(0.6),
    },
    Target {
        endpoint: "big-text",
        handler: "stickless-zstd",
        metric: Metric::Stored,
        goal: Goal::AtMost(0.5),
    },
    Target {
        endpoint: "counter at 0.5 ms RTT",
        handler: "stickless",
        metric: Metric::P50,
        goal: Goal::AtMost(0.6),
    },
    Target {
        endpoint: "counter at 0.5 ms RTT",
        handler: "stickless",
        metric: Metric::Rps,
        goal: Goal::AtLeast(1.6),
    },
];

/// The figure `metric` of (endpoint, handler), if the run measured it.
fn figure(
    sums: &dyn Fn(&str, &str) -> Option<Summary>,
    endpoint: &str,
    handler: &str,
    metric: Metric,
) -> Option<f64> {
    let s = sums(endpoint, handler)?;
    match metric {
        Metric::Rps => Some(s.rps),
        Metric::P50 => Some(s.p50),
        Metric::RedisCpu => s.redis_cpu,
        Metric::Stored => s.stored,
        Metric::SessionFpmCpu => {
            let hello = sums("hello", handler)?;
            Some((s.fpm_cpu - hello.fpm_cpu).max(0.0))
        }
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Rps => "req/s",
        Metric::P50 => "p50 latency",
        Metric::RedisCpu => "Redis CPU/request",
        Metric::SessionFpmCpu => "session's own php-fpm CPU/request (minus /hello's)",
        Metric::Stored => "bytes stored/session",
    }
}

/// The targets table: one row per target whose handler ran, with its ratio
/// against each baseline that ran. Empty when no target applies.
pub fn markdown(sums: &dyn Fn(&str, &str) -> Option<Summary>) -> String {
    let baselines = [BASELINE, BASELINE_6];
    let mut rows = String::new();
    for t in TARGETS {
        let Some(ours) = figure(sums, t.endpoint, t.handler, t.metric) else {
            continue;
        };
        let mut cells = Vec::new();
        let mut verdicts = Vec::new();
        for base in baselines {
            match figure(sums, t.endpoint, base, t.metric) {
                Some(theirs) if theirs > 0.0 => {
                    let ratio = ours / theirs;
                    cells.push(format!("{ratio:.2}"));
                    verdicts.push(if t.goal.met(ratio) { "met" } else { "missed" });
                }
                _ => cells.push("–".to_owned()),
            }
        }
        if verdicts.is_empty() {
            continue;
        }
        let verdict = if verdicts.iter().all(|v| *v == "met") {
            "met".to_owned()
        } else {
            format!("**{}**", verdicts.join(" / "))
        };
        let _ = writeln!(
            rows,
            "| /{} {} | {} | {} | {} | {} |",
            t.endpoint,
            metric_name(t.metric),
            t.handler,
            cells.join(" | "),
            t.goal,
            verdict
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n| target | handler | × {BASELINE} | × {BASELINE_6} | goal | |\n|---|---|---:|---:|---|---|\n{rows}"
    )
}

/// The targets on the correctness cases: no stickless handler loses an
/// update in any case, and merge mode's 4-in-flight slow requests take at
/// most 0.35× the sum of their hold times. Absolute, not ratios.
pub fn correctness_markdown(runs: &[CorrectnessRun]) -> String {
    let ours: Vec<&CorrectnessRun> = runs
        .iter()
        .filter(|c| c.handler.starts_with("stickless"))
        .collect();
    if ours.is_empty() {
        return String::new();
    }
    let lost: u64 = ours.iter().map(|c| c.result.lost).sum();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| lost updates, every stickless handler and case | {} | {lost} | 0 | {} |",
        ours.len(),
        if lost == 0 { "met" } else { "**missed**" }
    );
    let merged: Vec<f64> = ours
        .iter()
        .filter(|c| c.handler == "stickless-merge" && c.result.case == "slow")
        .filter(|c| c.result.in_flight == 4)
        .filter_map(|c| c.result.time_over_holds)
        .collect();
    if let Some(worst) = merged.iter().copied().reduce(f64::max) {
        let _ = writeln!(
            md,
            "| slow ×4 in flight, stickless-merge: time ÷ hold times (worst round) | {} | {worst:.3} | ≤ 0.35 | {} |",
            merged.len(),
            if worst <= 0.35 { "met" } else { "**missed**" }
        );
    }
    format!("\n| correctness target | runs | figure | goal | |\n|---|---:|---:|---|---|\n{md}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rps: f64, redis_cpu: f64, fpm_cpu: f64) -> Summary {
        Summary {
            rps,
            p50: 1.0,
            p99: 2.0,
            failed: 0,
            commands: None,
            sent: None,
            redis_cpu: Some(redis_cpu),
            stored: None,
            fpm_cpu,
            pss_mib: None,
        }
    }

    #[test]
    fn ratios_are_against_each_baseline_and_the_session_cpu_subtracts_hello() {
        let sums = |e: &str, h: &str| match (e, h) {
            ("counter", "stickless") => Some(summary(300.0, 10.0, 500.0)),
            ("counter", "phpredis-lock") => Some(summary(100.0, 40.0, 900.0)),
            ("counter", "phpredis62-lock") => Some(summary(200.0, 20.0, 900.0)),
            ("hello", "stickless") => Some(summary(900.0, 0.0, 400.0)),
            ("hello", "phpredis-lock") | ("hello", "phpredis62-lock") => {
                Some(summary(900.0, 0.0, 500.0))
            }
            _ => None,
        };
        let md = markdown(&sums);
        // req/s 3× and 1.5×: met against both.
        assert!(
            md.contains("| /counter req/s | stickless | 3.00 | 1.50 | ≥ 1.5× | met |"),
            "{md}"
        );
        // Redis CPU 0.25× and 0.5×: missed against 6.2.
        assert!(
            md.contains("| 0.25 | 0.50 | ≤ 0.35× | **met / missed** |"),
            "{md}"
        );
        // (500-400) / (900-500) = 0.25.
        assert!(
            md.contains("| stickless | 0.25 | 0.25 | ≤ 0.5× | met |"),
            "{md}"
        );
        // No /big in this run: no row for it.
        assert!(!md.contains("/big"), "{md}");
    }

    #[test]
    fn no_baseline_no_table() {
        let sums = |_: &str, h: &str| (h == "stickless").then(|| summary(1.0, 1.0, 1.0));
        assert_eq!(markdown(&sums), "");
    }
}
