//! The measurements: throughput and latency with one session per
//! connection; correctness with several requests of one user in flight;
//! commands sent per request seen through MONITOR.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream as StdTcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Client;

/// The endpoint that creates a user's session before a measurement.
const SESSION_MAKER: &str = "/bench/counter.php";

/// Throughput and latency of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-200 replies or bodies that report a failure (`ok: false`).
    pub failed: u64,
}

/// Runs `connections` clients, each with its own session, against `path`
/// for `duration`.
pub async fn throughput(
    port: u16,
    path: &str,
    connections: u32,
    duration: Duration,
) -> Result<Throughput> {
    let mut clients = Vec::new();
    for _ in 0..connections {
        let mut c = Client::connect(port, None).await?;
        // A first request creates the session and sets the cookie (a
        // read-only endpoint would not store one).
        c.get(SESSION_MAKER).await?;
        clients.push(c);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for mut client in clients {
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("valid histogram bounds");
            let (mut errors, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                match client.get(&path).await {
                    Ok(reply) => {
                        let _ = hist.record(reply.latency.as_micros() as u64);
                        if reply.status != 200 || reply.body.get("ok") == Some(&false.into()) {
                            failed += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (hist, errors, failed)
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("valid histogram bounds");
    let (mut errors, mut failed) = (0, 0);
    for task in tasks {
        let (h, e, f) = task.await?;
        hist.add(h).context("merging histograms")?;
        errors += e;
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = hist.len();
    Ok(Throughput {
        requests,
        errors,
        seconds,
        rps: requests as f64 / seconds,
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        failed,
    })
}

/// Lost and duplicated updates when each user has several requests in flight.
#[derive(Debug, Clone, Serialize)]
pub struct Correctness {
    /// `counter` or `slow`.
    pub case: String,
    pub endpoint: String,
    pub clients: u32,
    pub increments_per_client: u32,
    pub in_flight: u32,
    /// Increments sent whose effect is missing from the final count, whether
    /// the request reported a failure or not (a PHP app usually cannot tell:
    /// a refused session write is only a warning).
    pub lost: u64,
    /// Counter values handed out twice to one user.
    pub duplicates: u64,
    /// Requests that failed outright.
    pub failed: u64,
    pub pods_per_client: f64,
    /// Wall time of a user's increments over the sum of their hold times
    /// (only for endpoints that hold the session; 1.0 is perfect hand-off).
    pub time_over_holds: Option<f64>,
}

/// `clients` users each send `increments` requests to `path`, `in_flight`
/// at a time on one cookie; then each reads its counter back. A `{lane}` in
/// `path` becomes the number of the request's lane: each lane then counts
/// in a key of its own, and the final count is their sum.
pub async fn correctness(
    port: u16,
    case: &str,
    path: &str,
    clients: u32,
    increments: u32,
    in_flight: u32,
    hold: Option<Duration>,
) -> Result<Correctness> {
    let mut users = Vec::new();
    for _ in 0..clients {
        let path = path.to_owned();
        users.push(tokio::spawn(async move {
            user(port, &path, increments, in_flight).await
        }));
    }
    let mut result = Correctness {
        case: case.to_owned(),
        endpoint: path.to_owned(),
        clients,
        increments_per_client: increments,
        in_flight,
        lost: 0,
        duplicates: 0,
        failed: 0,
        pods_per_client: 0.0,
        time_over_holds: None,
    };
    let mut ratios = Vec::new();
    for user in users {
        let u = user.await??;
        result.lost += u64::from(increments).saturating_sub(u.final_count);
        result.duplicates += u.duplicates;
        result.failed += u.failed;
        result.pods_per_client += u.pods as f64 / f64::from(clients);
        if let Some(hold) = hold {
            ratios.push(u.elapsed.as_secs_f64() / (hold.as_secs_f64() * f64::from(increments)));
        }
    }
    if !ratios.is_empty() {
        result.time_over_holds = Some(ratios.iter().sum::<f64>() / ratios.len() as f64);
    }
    Ok(result)
}

struct User {
    final_count: u64,
    duplicates: u64,
    failed: u64,
    pods: usize,
    elapsed: Duration,
}

async fn user(port: u16, path: &str, increments: u32, in_flight: u32) -> Result<User> {
    let per_lane = path.contains("{lane}");
    let lane_path = |lane: u32| path.replace("{lane}", &lane.to_string());
    // The first request makes the session; it is not one of the increments.
    let mut first = Client::connect(port, None).await?;
    let reply = first.get(&lane_path(0)).await?;
    let base = reply
        .body
        .get("n")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let cookie = first.cookie.clone();
    let started = Instant::now();
    let mut lanes = Vec::new();
    for lane in 0..in_flight {
        let path = lane_path(lane);
        let cookie = cookie.clone();
        let share = increments / in_flight + u32::from(lane < increments % in_flight);
        lanes.push(tokio::spawn(async move {
            let mut c = Client::connect(port, cookie).await?;
            let mut seen = Vec::new();
            let mut pods = HashSet::new();
            let mut failed = 0u64;
            for _ in 0..share {
                let reply = c.get(&path).await?;
                pods.insert(reply.pod.clone());
                match reply.body.get("n").and_then(serde_json::Value::as_u64) {
                    Some(n) if reply.status == 200 => seen.push(n),
                    _ => failed += 1,
                }
            }
            // With a key per lane, values repeat across lanes by design.
            let duplicates = if per_lane {
                seen.sort_unstable();
                let d = seen.windows(2).filter(|w| w[0] == w[1]).count() as u64;
                seen.clear();
                d
            } else {
                0
            };
            anyhow::Ok((seen, pods, failed, duplicates))
        }));
    }
    let mut seen = Vec::new();
    let mut pods: HashSet<String> = HashSet::from([reply.pod]);
    let mut failed = 0;
    let mut duplicates = 0;
    for lane in lanes {
        let (s, p, f, d) = lane.await??;
        seen.extend(s);
        pods.extend(p);
        failed += f;
        duplicates += d;
    }
    let elapsed = started.elapsed();
    seen.sort_unstable();
    duplicates += seen.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    // Read the counter back from the user's last-known session.
    let mut reader = Client::connect(port, cookie).await?;
    let final_count = reader
        .get("/bench/read.php")
        .await?
        .body
        .get(if per_lane { "k" } else { "n" })
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        .saturating_sub(base);
    Ok(User {
        final_count,
        duplicates,
        failed,
        pods: pods.len(),
        elapsed,
    })
}

/// Redis commands clients send per request of `path`, seen through MONITOR
/// over `requests` sequential requests of one session. Commands run inside
/// scripts (`lua`) are not counted; pipelined commands are, one each.
pub async fn commands_sent(port: u16, redis_port: u16, path: &str, requests: u32) -> Result<f64> {
    let mut stream =
        StdTcpStream::connect(("127.0.0.1", redis_port)).context("MONITOR connects")?;
    stream.write_all(b"MONITOR\r\n")?;
    let (tx, lines) = mpsc::channel::<String>();
    let reader = BufReader::new(stream.try_clone()?);
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // MONITOR answers +OK once it is live.
    let ok = lines
        .recv_timeout(Duration::from_secs(5))
        .context("MONITOR did not start")?;
    anyhow::ensure!(ok.starts_with("+OK"), "MONITOR refused: {ok}");
    let mut marker =
        redis::Client::open(format!("redis://127.0.0.1:{redis_port}/"))?.get_connection()?;
    let mut client = Client::connect(port, None).await?;
    client.get(SESSION_MAKER).await?;
    // Everything before the first marker belongs to creating the session.
    drain_until_marker(&lines, &mut marker, "bench-marker-start")?;
    for _ in 0..requests {
        client.get(path).await?;
    }
    let seen = drain_until_marker(&lines, &mut marker, "bench-marker-end")?;
    let count = seen
        .iter()
        .filter(|l| !l.contains(" lua] ") && l.contains('"'))
        .count();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(count as f64 / f64::from(requests))
}

/// Sends `ECHO marker` and returns the MONITOR lines seen before it.
fn drain_until_marker(
    lines: &mpsc::Receiver<String>,
    con: &mut redis::Connection,
    marker: &str,
) -> Result<Vec<String>> {
    let _: String = redis::cmd("ECHO").arg(marker).query(con)?;
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .context("MONITOR never showed the marker")?;
        if line.contains(marker) {
            return Ok(seen);
        }
        seen.push(line);
    }
}
