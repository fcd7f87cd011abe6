//! Results: JSON, a markdown table with ratios against the baseline, and an
//! SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use svg::Document;
use svg::node::element::{Line, Rectangle, Text};

use crate::handlers::BASELINE;
use crate::load::{Correctness, Throughput};
use crate::stored::StoredSize;
use crate::targets;

/// One endpoint measured for one handler in one round.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointRun {
    pub handler: String,
    pub endpoint: String,
    /// The round trip the delay proxy added between the pods and Redis.
    pub rtt_ms: f64,
    pub round: u32,
    pub throughput: Throughput,
    pub redis_commands_per_request: Option<f64>,
    /// Commands clients sent (MONITOR, scripts' own commands excluded);
    /// pipelined commands share a round trip, so this bounds round trips
    /// from above.
    pub redis_commands_sent_per_request: Option<f64>,
    pub redis_cpu_us_per_request: Option<f64>,
    /// What one session written by this endpoint occupies in Redis.
    pub stored: Option<StoredSize>,
    pub fpm_cpu_us_per_request: f64,
    pub worker_pss_kib: Option<u64>,
}

/// One correctness case for one handler in one round.
#[derive(Debug, Clone, Serialize)]
pub struct CorrectnessRun {
    pub handler: String,
    pub round: u32,
    pub result: Correctness,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub machine: String,
    pub setup: String,
    pub endpoints: Vec<EndpointRun>,
    pub correctness: Vec<CorrectnessRun>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Endpoints and handlers in first-seen order, and the medians per
/// (endpoint, handler).
type Summaries = (
    Vec<String>,
    Vec<String>,
    BTreeMap<(String, String), Summary>,
);

/// Medians over rounds of one (endpoint, handler).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub failed: u64,
    pub commands: Option<f64>,
    pub sent: Option<f64>,
    pub redis_cpu: Option<f64>,
    pub stored: Option<f64>,
    pub fpm_cpu: f64,
    pub pss_mib: Option<f64>,
}

impl Report {
    fn order<T: Clone + Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
        let mut seen = Vec::new();
        for item in items {
            if !seen.contains(&item) {
                seen.push(item);
            }
        }
        seen
    }

    fn summaries(&self) -> Summaries {
        let endpoints = Self::order(self.endpoints.iter().map(|r| r.endpoint.clone()));
        let handlers = Self::order(self.endpoints.iter().map(|r| r.handler.clone()));
        let mut out = BTreeMap::new();
        for e in &endpoints {
            for h in &handlers {
                let runs: Vec<&EndpointRun> = self
                    .endpoints
                    .iter()
                    .filter(|r| &r.endpoint == e && &r.handler == h)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let pick = |f: &dyn Fn(&EndpointRun) -> Option<f64>| {
                    median(runs.iter().filter_map(|r| f(r)).collect())
                };
                out.insert(
                    (e.clone(), h.clone()),
                    Summary {
                        rps: pick(&|r| Some(r.throughput.rps)).unwrap_or(0.0),
                        p50: pick(&|r| Some(r.throughput.p50_ms)).unwrap_or(0.0),
                        p99: pick(&|r| Some(r.throughput.p99_ms)).unwrap_or(0.0),
                        failed: runs
                            .iter()
                            .map(|r| r.throughput.failed + r.throughput.errors)
                            .sum(),
                        commands: pick(&|r| r.redis_commands_per_request),
                        sent: pick(&|r| r.redis_commands_sent_per_request),
                        redis_cpu: pick(&|r| r.redis_cpu_us_per_request),
                        stored: pick(&|r| r.stored.map(|s| s.value_bytes as f64)),
                        fpm_cpu: pick(&|r| Some(r.fpm_cpu_us_per_request)).unwrap_or(0.0),
                        pss_mib: pick(&|r| r.worker_pss_kib.map(|k| k as f64 / 1024.0)),
                    },
                );
            }
        }
        (endpoints, handlers, out)
    }

    /// The markdown tables.
    pub fn markdown(&self) -> String {
        let (endpoints, handlers, sums) = self.summaries();
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Measured {} on {}. {}\n",
            self.date, self.machine, self.setup
        );
        let _ = writeln!(
            md,
            "| endpoint | handler | req/s | × {BASELINE} | p50 ms | × {BASELINE} | p99 ms | failed | Redis cmds run/req | cmds sent/req | Redis CPU µs/req | × {BASELINE} | php-fpm CPU µs/req | worker PSS MiB | stored B/session | × {BASELINE} |"
        );
        let _ = writeln!(
            md,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("–".to_owned(), |v| format!("{v:.digits$}"));
        for e in &endpoints {
            let base = sums.get(&(e.clone(), BASELINE.to_owned()));
            for h in &handlers {
                let Some(s) = sums.get(&(e.clone(), h.clone())) else {
                    continue;
                };
                let ratio = base.map(|b| s.rps / b.rps);
                let of_base = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                };
                let cpu_ratio = of_base(s.redis_cpu, base.and_then(|b| b.redis_cpu));
                let p50_ratio = of_base(Some(s.p50), base.map(|b| b.p50));
                let stored_ratio = of_base(s.stored, base.and_then(|b| b.stored));
                let _ = writeln!(
                    md,
                    "| {e} | {h} | {:.0} | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                    s.rps,
                    opt(ratio, 2),
                    s.p50,
                    opt(p50_ratio, 2),
                    s.p99,
                    s.failed,
                    opt(s.commands, 1),
                    opt(s.sent, 1),
                    opt(s.redis_cpu, 1),
                    opt(cpu_ratio, 2),
                    s.fpm_cpu,
                    opt(s.pss_mib, 1),
                    opt(s.stored, 0),
                    opt(stored_ratio, 2),
                );
            }
        }
        let _ = writeln!(
            md,
            "\n| case | handler | lost updates | duplicated values | failed | pods per user | time ÷ hold times |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|");
        for c in &self.correctness {
            let r = &c.result;
            let _ = writeln!(
                md,
                "| {} ×{} users, {} in flight (round {}) | {} | {} of {} | {} | {} | {:.1} | {} |",
                r.endpoint,
                r.clients,
                r.in_flight,
                c.round,
                c.handler,
                r.lost,
                u64::from(r.clients) * u64::from(r.increments_per_client),
                r.duplicates,
                r.failed,
                r.pods_per_client,
                opt(r.time_over_holds, 3),
            );
        }
        md.push_str(&targets::markdown(&|e, h| {
            sums.get(&(e.to_owned(), h.to_owned())).copied()
        }));
        md.push_str(&targets::correctness_markdown(&self.correctness));
        md
    }

    /// Three panels: req/s and p99 per endpoint and handler, lost updates
    /// per correctness case and handler.
    pub fn svg(&self) -> String {
        let (endpoints, handlers, sums) = self.summaries();
        const COLORS: [&str; 8] = [
            "#2b8a3e", "#74b816", "#1c7ed6", "#74c0fc", "#f08c00", "#868e96", "#ae3ec9", "#e03131",
        ];
        let (width, panel_h, margin) = (960.0, 220.0, 60.0);
        let mut doc = Document::new();
        let mut y0 = 24.0;
        let mut panel = |doc: Document,
                         title: &str,
                         groups: &[String],
                         value: &dyn Fn(&str, &str) -> Option<f64>|
         -> Document {
            let max = groups
                .iter()
                .flat_map(|g| handlers.iter().filter_map(|h| value(g, h)))
                .fold(0.0f64, f64::max)
                .max(1e-9);
            let mut doc = doc.add(text(10.0, y0, title, 14.0).set("text-anchor", "start"));
            let base_y = y0 + panel_h - 30.0;
            doc = doc.add(
                Line::new()
                    .set("x1", margin)
                    .set("x2", width - 10.0)
                    .set("y1", base_y)
                    .set("y2", base_y)
                    .set("stroke", "#333"),
            );
            let group_w = (width - margin - 10.0) / groups.len().max(1) as f64;
            let bar_w = group_w * 0.8 / handlers.len().max(1) as f64;
            for (gi, g) in groups.iter().enumerate() {
                let gx = margin + gi as f64 * group_w;
                doc = doc.add(text(gx + group_w * 0.4, base_y + 16.0, g, 11.0));
                for (hi, h) in handlers.iter().enumerate() {
                    let Some(v) = value(g, h) else { continue };
                    let bh = (v / max) * (panel_h - 60.0);
                    let x = gx + group_w * 0.1 + hi as f64 * bar_w;
                    doc = doc.add(
                        Rectangle::new()
                            .set("x", x)
                            .set("y", base_y - bh)
                            .set("width", bar_w * 0.9)
                            .set("height", bh)
                            .set("fill", COLORS[hi % COLORS.len()]),
                    );
                    doc = doc.add(text(x + bar_w * 0.45, base_y - bh - 3.0, &short(v), 9.0));
                }
            }
            y0 += panel_h;
            doc
        };
        doc = panel(
            doc,
            "requests per second (higher is better)",
            &endpoints,
            &|e, h| sums.get(&(e.to_owned(), h.to_owned())).map(|s| s.rps),
        );
        doc = panel(
            doc,
            "p99 latency, ms (lower is better)",
            &endpoints,
            &|e, h| sums.get(&(e.to_owned(), h.to_owned())).map(|s| s.p99),
        );
        let cases = Self::order(
            self.correctness
                .iter()
                .map(|c| format!("{} ×{} in flight", c.result.endpoint, c.result.in_flight)),
        );
        doc = panel(doc, "lost updates (lower is better)", &cases, &|case, h| {
            let lost: u64 = self
                .correctness
                .iter()
                .filter(|c| {
                    c.handler == h
                        && format!("{} ×{} in flight", c.result.endpoint, c.result.in_flight)
                            == case
                })
                .map(|c| c.result.lost)
                .sum();
            Some(lost as f64)
        });
        // Legend.
        for (hi, h) in handlers.iter().enumerate() {
            let x = margin + hi as f64 * 140.0;
            doc = doc
                .add(
                    Rectangle::new()
                        .set("x", x)
                        .set("y", y0)
                        .set("width", 12)
                        .set("height", 12)
                        .set("fill", COLORS[hi % COLORS.len()]),
                )
                .add(text(x + 16.0, y0 + 11.0, h, 11.0).set("text-anchor", "start"));
        }
        doc.set("viewBox", (0, 0, width, y0 + 30.0))
            .set("width", width)
            .set("height", y0 + 30.0)
            .set("font-family", "sans-serif")
            .to_string()
    }
}

fn text(x: f64, y: f64, s: &str, size: f64) -> Text {
    Text::new(s)
        .set("x", x)
        .set("y", y)
        .set("font-size", size)
        .set("text-anchor", "middle")
}

fn short(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
