//! `stickless-bench`: the multi-pod load benchmark.
//!
//! For every handler, in interleaved rounds: start nginx over N php-fpm pods
//! and the handler's store (deploy/local/stack.sh), measure throughput,
//! latency, server costs and correctness on the same PHP endpoints, stop
//! everything, and write a markdown table, JSON and an SVG chart to
//! `target/bench/`.

mod client;
mod cluster;
mod delay_proxy;
mod handlers;
mod load;
mod metrics;
mod report;
mod stack;
mod stored;
mod targets;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::{Cluster, Topology};
use crate::delay_proxy::DelayProxy;
use crate::handlers::Handler;
use crate::metrics::RedisSample;
use crate::report::{CorrectnessRun, EndpointRun, Report};
use crate::stack::{Detour, Stack};

/// The multi-pod session benchmark: stickless against phpredis, memcached
/// and local files, side by side on the same machine.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// php-fpm masters ("pods") behind nginx.
    #[arg(long, default_value_t = 3)]
    pods: u32,
    /// Workers per pod (pm=static).
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent connections, one session each.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Rounds; handlers are interleaved within each round to cancel drift.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Handlers to run (default: all).
    #[arg(long, value_delimiter = ',')]
    handlers: Vec<String>,
    /// Endpoints to load (default: all).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "counter,read,big,big-text,slow,hello"
    )]
    endpoints: Vec<String>,
    /// Round trips between the pods and Redis, in ms, each run in turn: 0
    /// is plain loopback; above 0 a delay proxy between them holds each
    /// direction for half of it. Only Redis-backed handlers run above 0.
    #[arg(long = "rtt-ms", value_delimiter = ',', default_value = "0,0.5")]
    rtt_ms: Vec<f64>,
    /// Endpoints loaded at round trips above 0 (the correctness cases run
    /// at the first round trip listed only).
    #[arg(long, value_delimiter = ',', default_value = "counter")]
    rtt_endpoints: Vec<String>,
    /// Handlers run at round trips above 0 (default: every Redis-backed
    /// one; with --smoke, stickless and the baseline).
    #[arg(long, value_delimiter = ',')]
    rtt_handlers: Vec<String>,
    /// Where the sessions live: the stack's redis-server, or a Redis
    /// Cluster of each of --primaries primaries in turn (no replicas;
    /// stickless handlers only, at --rtt-ms 0 only).
    #[arg(long, value_enum, default_value_t = Topology::Standalone)]
    topology: Topology,
    /// Primaries of the clusters run with --topology cluster.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    primaries: Vec<u32>,
    /// Users in the correctness runs.
    #[arg(long, default_value_t = 8)]
    users: u32,
    /// Increments per user in the correctness runs.
    #[arg(long, default_value_t = 24)]
    increments: u32,
    /// A few seconds per handler, for CI: keeps the harness from rotting.
    #[arg(long)]
    smoke: bool,
    /// Where results go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The stickless extension.
    #[arg(long, default_value = "target/release/libstickless_php.so")]
    extension: PathBuf,
    /// Where scripts/build-phpredis.sh put phpredis 6 (`phpredis/` under it).
    #[arg(long, default_value = "target")]
    phpredis6_under: PathBuf,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args.seconds = 1.0;
        args.rounds = 1;
        args.connections = 4;
        args.users = 2;
        args.increments = 8;
        if args.rtt_handlers.is_empty() {
            args.rtt_handlers = vec!["stickless".into(), handlers::BASELINE.into()];
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stickless-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; every process started was stopped")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stickless-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let root = std::env::current_dir()?;
    let extension = root.join(&args.extension);
    if !extension.is_file() {
        bail!("{} is missing: run `make build` first", extension.display());
    }
    if let Some(bad) = args.rtt_ms.iter().find(|r| !(0.0..=1000.0).contains(*r)) {
        bail!("--rtt-ms {bad}: expected milliseconds from 0 to 1000");
    }
    let phpredis6 = handlers::Phpredis6::under(&root.join(&args.phpredis6_under));
    let mut handlers = handlers::all(&extension, &phpredis6);
    if !args.handlers.is_empty() {
        handlers.extend(handlers::opt_in(&extension));
        for name in &args.handlers {
            if !handlers.iter().any(|h| h.name == name) {
                bail!("unknown handler `{name}`");
            }
        }
        handlers.retain(|h| args.handlers.iter().any(|n| n == h.name));
    }
    if !phpredis6.is_built() && handlers.iter().any(|h| handlers::needs_phpredis6(h.name)) {
        bail!(
            "{} is missing: run `bash scripts/build-phpredis.sh` (make bench does), \
             or leave out the phpredis62-* handlers with --handlers",
            phpredis6.module.display()
        );
    }
    // One scene per cluster size, or the stack's own server.
    let scenes: Vec<Option<u32>> = match args.topology {
        Topology::Standalone => vec![None],
        Topology::Cluster => {
            handlers.retain(cluster::serves);
            args.primaries.iter().copied().map(Some).collect()
        }
    };
    std::fs::create_dir_all(&args.out)?;
    let state = root.join(&args.out).join("stack");
    let per_round: usize = handlers
        .iter()
        .map(|h| {
            args.rtt_ms
                .iter()
                .enumerate()
                .filter(|(_, rtt)| **rtt == 0.0 || delayed(args, h))
                .map(|(i, rtt)| {
                    let endpoints = if *rtt > 0.0 {
                        &args.rtt_endpoints
                    } else {
                        &args.endpoints
                    };
                    endpoints.len() + usize::from(i == 0)
                })
                .sum::<usize>()
        })
        .sum();
    let steps = u64::from(args.rounds) * (per_round * scenes.len()) as u64;
    let bar = ProgressBar::new(steps).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = Report {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        setup: format!(
            "{} pods × {} workers behind nginx, {} connections, {} s per endpoint, {} round(s){}.",
            args.pods,
            args.workers,
            args.connections,
            args.seconds,
            args.rounds,
            match args.topology {
                Topology::Standalone => String::new(),
                Topology::Cluster => format!(
                    "; Redis Cluster of {:?} primaries, no replicas",
                    args.primaries
                ),
            }
        ),
        endpoints: Vec::new(),
        correctness: Vec::new(),
    };
    for round in 1..=args.rounds {
        for (handler, &primaries) in handlers
            .iter()
            .flat_map(|h| scenes.iter().map(move |p| (h, p)))
        {
            let cluster = primaries
                .map(|n| Cluster::start(&root.join(&args.out).join("cluster"), n))
                .transpose()?;
            let scene = Scene {
                label: match primaries {
                    Some(n) => format!("{} cluster×{n}", handler.name),
                    None => handler.name.to_owned(),
                },
                cluster: cluster.as_ref(),
            };
            let pointed = cluster.as_ref().map(|c| cluster::on(handler, c));
            let handler = pointed.as_ref().unwrap_or(handler);
            for (i, &rtt) in args.rtt_ms.iter().enumerate() {
                if rtt > 0.0 && (!delayed(args, handler) || scene.cluster.is_some()) {
                    continue;
                }
                let at = if rtt > 0.0 {
                    format!(" at {rtt} ms RTT")
                } else {
                    String::new()
                };
                bar.set_message(format!("round {round}: {}{at} starting", handler.name));
                let (proxy, via) = if rtt > 0.0 {
                    let redis_port = free_port()?;
                    let proxy = DelayProxy::start(
                        SocketAddr::from((Ipv4Addr::LOCALHOST, redis_port)),
                        Duration::from_secs_f64(rtt / 1000.0),
                    )?;
                    let proxy_port = proxy.addr().port();
                    (
                        Some(proxy),
                        Some(Detour {
                            redis_port,
                            proxy_port,
                        }),
                    )
                } else {
                    (None, None)
                };
                let stack = Stack::up(&root, &state, handler, args.pods, args.workers, via)?;
                if let Some(want) = handler.module_version {
                    let health = client::Client::connect(stack.port, None)
                        .await?
                        .get("/healthz.php")
                        .await?;
                    let got = health.body["module"].as_str().unwrap_or_default();
                    if !got.starts_with(want) {
                        bail!(
                            "{}: the pods run module version `{got}`, not {want}x",
                            handler.name
                        );
                    }
                }
                let endpoints = if rtt > 0.0 {
                    &args.rtt_endpoints
                } else {
                    &args.endpoints
                };
                for endpoint in endpoints {
                    bar.set_message(format!("round {round}: {}{at} /{endpoint}", handler.name));
                    report
                        .endpoints
                        .push(measure(args, &stack, handler, &scene, endpoint, rtt, round).await?);
                    bar.inc(1);
                }
                if i == 0 {
                    bar.set_message(format!("round {round}: {} correctness", handler.name));
                    correctness(args, &stack, handler, &scene.label, round, &mut report).await?;
                    bar.inc(1);
                }
                drop(stack);
                drop(proxy);
            }
        }
    }
    bar.finish_and_clear();
    write(&args.out, &report)?;
    check(&report)
}

async fn correctness(
    args: &Args,
    stack: &Stack,
    handler: &Handler,
    label: &str,
    round: u32,
    report: &mut Report,
) -> Result<()> {
    for (case, users, hold) in [
        ("counter", args.users, None),
        (
            "slow",
            args.users.min(args.pods * args.workers / 4).max(1),
            Some(Duration::from_millis(50)),
        ),
    ] {
        // Merge mode runs the user's requests side by side, each changing a
        // key of its own (`{lane}`); the counter and the slow case differ
        // only in the hold.
        let path = if handler.merge {
            let ms = hold.map_or(0, |h| h.as_millis());
            format!("/bench/merge.php?ms={ms}&slot={{lane}}")
        } else {
            endpoint_path(case)
        };
        let result =
            load::correctness(stack.port, case, &path, users, args.increments, 4, hold).await?;
        report.correctness.push(CorrectnessRun {
            handler: label.to_owned(),
            round,
            result,
        });
    }
    Ok(())
}

/// Whether `handler` runs at round trips above 0. Without Redis there is
/// nothing to put the proxy in front of.
fn delayed(args: &Args, handler: &Handler) -> bool {
    handler.redis
        && (args.rtt_handlers.is_empty() || args.rtt_handlers.iter().any(|n| n == handler.name))
}

/// A free loopback port for a server started next (never 6379, the
/// system's Redis).
fn free_port() -> Result<u16> {
    for _ in 0..8 {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if port != 6379 {
            return Ok(port);
        }
    }
    bail!("no free loopback port")
}

/// Where one run's sessions live, and its name in the tables.
struct Scene<'a> {
    label: String,
    cluster: Option<&'a Cluster>,
}

impl Scene<'_> {
    /// Redis's counters, summed over every node of a cluster.
    fn sample(&self, stack: &Stack) -> Result<RedisSample> {
        match self.cluster {
            Some(cluster) => cluster.sample(),
            None => RedisSample::take(stack.redis_port),
        }
    }
}

async fn measure(
    args: &Args,
    stack: &Stack,
    handler: &Handler,
    scene: &Scene<'_>,
    endpoint: &str,
    rtt: f64,
    round: u32,
) -> Result<EndpointRun> {
    let path = endpoint_path(endpoint);
    let workers = stack.fpm_workers();
    let redis_before = handler.redis.then(|| scene.sample(stack)).transpose()?;
    let nodes_before = scene.cluster.map(Cluster::sample_nodes).transpose()?;
    let cpu_before = metrics::cpu_us(&workers);
    let throughput = load::throughput(
        stack.port,
        &path,
        args.connections,
        Duration::from_secs_f64(args.seconds),
    )
    .await?;
    let fpm_cpu = metrics::cpu_us(&workers).saturating_sub(cpu_before);
    let requests = throughput.requests.max(1) as f64;
    let (commands, redis_cpu) = match redis_before {
        Some(before) => {
            let after = scene.sample(stack)?;
            (
                Some(after.commands_since(&before) as f64 / requests),
                Some(after.cpu_us.saturating_sub(before.cpu_us) as f64 / requests),
            )
        }
        None => (None, None),
    };
    if let (Some(cluster), Some(before)) = (scene.cluster, &nodes_before) {
        // How evenly the primaries share the work: the busiest one sets the
        // ceiling of a cluster that has a core per primary.
        let shares: Vec<String> = cluster
            .sample_nodes()?
            .iter()
            .zip(before)
            .map(|(after, before)| {
                let cpu = after.cpu_us.saturating_sub(before.cpu_us) as f64 / requests;
                format!("{cpu:.1}")
            })
            .collect();
        println!(
            "{} /{endpoint}: Redis CPU µs/req per primary: {}",
            scene.label,
            shares.join(", ")
        );
    }
    // What Redis is sent and stores does not depend on the round trip, nor
    // on the topology (and is watched on the stack's one server).
    let (sent, stored) = if handler.redis && rtt == 0.0 && scene.cluster.is_none() {
        (
            Some(load::commands_sent(stack.port, stack.redis_port, &path, 20).await?),
            stored::per_session(stack.port, stack.redis_port, &path, 3).await?,
        )
    } else {
        (None, None)
    };
    Ok(EndpointRun {
        handler: scene.label.clone(),
        endpoint: if rtt > 0.0 {
            format!("{endpoint} at {rtt} ms RTT")
        } else {
            endpoint.to_owned()
        },
        rtt_ms: rtt,
        round,
        throughput,
        redis_commands_per_request: commands,
        redis_commands_sent_per_request: sent,
        redis_cpu_us_per_request: redis_cpu,
        stored,
        fpm_cpu_us_per_request: fpm_cpu as f64 / requests,
        worker_pss_kib: metrics::mean_pss_kib(&workers),
    })
}

/// `hello` is the stack's no-session page; the rest live under /bench/.
fn endpoint_path(endpoint: &str) -> String {
    match endpoint {
        "hello" => "/hello.php".to_owned(),
        other => format!("/bench/{other}.php"),
    }
}

fn write(out: &Path, report: &Report) -> Result<()> {
    let md = report.markdown();
    std::fs::write(out.join("results.md"), &md)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(out.join("results.svg"), report.svg())?;
    println!("{md}");
    println!(
        "written: {0}/results.md, {0}/results.json, {0}/results.svg",
        out.display()
    );
    Ok(())
}

/// Correctness is not a performance figure: stickless must never lose or
/// duplicate an update, nor fail a request, whatever the machine.
fn check(report: &Report) -> Result<()> {
    let mut broken = Vec::new();
    for c in report
        .correctness
        .iter()
        .filter(|c| c.handler.starts_with("stickless"))
    {
        let r = &c.result;
        if r.lost + r.duplicates + r.failed > 0 {
            broken.push(format!(
                "{} /{}: {} lost, {} duplicated, {} failed",
                c.handler, r.endpoint, r.lost, r.duplicates, r.failed
            ));
        }
    }
    for e in report
        .endpoints
        .iter()
        .filter(|e| e.handler.starts_with("stickless"))
    {
        if e.throughput.failed + e.throughput.errors > 0 {
            broken.push(format!(
                "{} /{}: {} failed requests",
                e.handler,
                e.endpoint,
                e.throughput.failed + e.throughput.errors
            ));
        }
    }
    // Every request takes at least one round trip to Redis, so a proxy that
    // did not delay would show here, whichever handler.
    for e in report
        .endpoints
        .iter()
        .filter(|e| e.rtt_ms > 0.0 && e.throughput.p50_ms < e.rtt_ms)
    {
        broken.push(format!(
            "{} /{}: p50 {:.2} ms is below the {} ms round trip: the delay proxy did not delay",
            e.handler, e.endpoint, e.throughput.p50_ms, e.rtt_ms
        ));
    }
    if broken.is_empty() {
        Ok(())
    } else {
        bail!("stickless misbehaved:\n{}", broken.join("\n"))
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = command_output("sh", &["-c", ". /etc/os-release && echo $PRETTY_NAME"]);
    let redis = command_output("redis-server", &["--version"]);
    let redis = redis
        .split_whitespace()
        .find(|w| w.starts_with("v="))
        .unwrap_or("v=?")
        .trim_start_matches("v=")
        .to_owned();
    let php = command_output("php", &["-r", "echo PHP_VERSION;"]);
    format!("{cores} cores ({cpu}), {os}, PHP {php}, Redis {redis}")
}
