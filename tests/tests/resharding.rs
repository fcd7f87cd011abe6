//! The cluster grows and shrinks under load: workers keep incrementing a few
//! dozen sessions on a 3+3 cluster while a fourth primary joins (`redis-cli
//! --cluster add-node`), a quarter of the slots move to it (`rebalance
//! --cluster-use-empty-masters`), then every slot moves back (`rebalance
//! --cluster-weight <new>=0`) and the node leaves (`del-node`). Run with PHP
//! workers (the extension, the blocking driver) and with async Rust workers
//! (`stickless::aio`).
//!
//! What users saw before: while a slot migrated, pipelined lock+reads
//! failed on `ASK`, commits failed on `TRYAGAIN` with the write lost and
//! the lock left behind, and hand-offs stopped halfway on the source node.
//!
//! Asserted: no request failed, no acknowledged increment is lost, no lock
//! is left, the slots really moved (and sessions with them). Printed (run
//! with `--nocapture`): requests, slots moved, and the slowest request
//! during each move.
//!
//! `cargo test --release -p stickless-e2e --test resharding -- --nocapture`

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stickless::cluster::{SlotMap, slot};
use stickless::config::HostPort;
use stickless::{Config, OpenMode, Opened, SessionId, SessionKeys};
use stickless_e2e::{Deployment, RedisCluster, RedisServer, final_count, new_session, php_session};

const PREFIX: &str = "rs:";
/// With a quarter of the slots moving, the chance that none of these
/// sessions moves is 0.75^32, about 1 in 10,000.
const SESSIONS: usize = 32;
/// Each session is shared by two workers, so hand-offs happen mid-move too.
const WORKERS: usize = 4;
/// Load before, between and after the moves.
const STEADY: Duration = Duration::from_millis(1000);
/// Hard bound on each worker's loop, whatever happens.
const WORKER_MAX_S: u64 = 100;
/// Other keys in each session's slot, as a real cluster has: moving them
/// makes a session's slot migrate for a while (milliseconds per batch of
/// `MIGRATE_BATCH`), so requests meet every moment of its move, not just
/// the instant an empty slot takes.
const FILLER_KEYS: usize = 1000;
const MIGRATE_BATCH: &str = "5";
/// Hard bound on each `redis-cli --cluster` command.
const CLI_BUDGET: Duration = Duration::from_secs(60);

/// Increments `n` in each of `SIDS` in turn until `STOP` exists; prints
/// `ok <sid> <start ms> <n> <end ms>` for an acknowledged write, `fail <sid>
/// <start ms>` otherwise.
const WORKER: &str = r#"
$sids = explode(',', getenv('SIDS'));
$stop = getenv('STOP');
$deadline = microtime(true) + (float) getenv('MAX_S');
for ($i = 0; $i < 10000000 && !file_exists($stop) && microtime(true) < $deadline; $i++) {
    $sid = $sids[$i % count($sids)];
    $t = (int) (microtime(true) * 1000);
    session_id($sid);
    if (!session_start()) { echo "fail $sid $t\n"; continue; }
    $n = ($_SESSION['n'] ?? 0) + 1;
    $_SESSION['n'] = $n;
    if (session_write_close()) {
        $done = (int) (microtime(true) * 1000);
        echo "ok $sid $t $n $done\n";
    } else { echo "fail $sid $t\n"; }
}
"#;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `redis-cli` with `args`, bounded by `CLI_BUDGET`, and returns its
/// output; fails the test when it fails.
fn cli(args: &[String]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let mut child = Command::new(cli_binary())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).expect("cli output"))
        .stderr(std::fs::File::create(out.with_extension("err")).expect("cli output"))
        .spawn()
        .expect("redis-cli runs");
    let deadline = Instant::now() + CLI_BUDGET;
    let status = loop {
        if let Some(status) = child.try_wait().expect("redis-cli status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-cli {args:?} took more than {CLI_BUDGET:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
    assert!(
        status.success() && !stdout.contains("[ERR]"),
        "redis-cli {args:?}: {status}\n{stdout}{stderr}"
    );
    stdout
}

/// The CLI the harness forms clusters with (`STICKLESS_REDIS_CLI`, or the
/// one next to `STICKLESS_REDIS_SERVER`).
fn cli_binary() -> String {
    if let Ok(cli) = std::env::var("STICKLESS_REDIS_CLI") {
        return cli;
    }
    let server =
        std::env::var("STICKLESS_REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    let sibling = server
        .strip_suffix("-server")
        .map(|stem| format!("{stem}-cli"))
        .filter(|cli| Path::new(cli).is_file());
    sibling.unwrap_or_else(|| "redis-cli".into())
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The slot map as the first answering node of `ports` sees it.
fn slot_map(ports: &[u16]) -> SlotMap {
    for &port in ports {
        let Ok(mut con) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        else {
            continue;
        };
        let reply: redis::RedisResult<redis::Value> =
            redis::cmd("CLUSTER").arg("SLOTS").query(&mut con);
        if let Ok(reply) = reply
            && let Ok(map) = SlotMap::from_cluster_slots(&reply, &HostPort::new("127.0.0.1", port))
        {
            return map;
        }
    }
    panic!("no node answered CLUSTER SLOTS");
}

fn slots_of(map: &SlotMap, port: u16) -> usize {
    (0..stickless::cluster::SLOTS)
        .filter(|&s| map.primary(s).is_some_and(|p| p.port == port))
        .count()
}

/// Waits (bounded) until every node of `ports` knows `n` nodes and says the
/// cluster is ok, as `redis-cli --cluster` requires before moving slots.
fn await_agreement(ports: &[u16], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agreed = ports.iter().all(|&port| {
            redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut con| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut con))
                .is_ok_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_known_nodes:{n}\r"))
                })
        });
        if agreed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not agree on {n} members"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until `redis-cli --cluster check` finds every node
/// agreeing on the slots, as it requires before it moves any.
fn await_consistent(seed: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(cli_binary())
            .args(["--cluster", "check", &addr(seed)])
            .output()
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success()
            && text.contains("[OK] All nodes agree")
            && !text.contains("[WARNING]")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed on the slots:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A seventh node started empty in cluster mode, as the others.
fn empty_node() -> RedisServer {
    let args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        "--cluster-require-full-coverage",
        "no",
    ]
    .map(String::from)
    .to_vec();
    RedisServer::start_with(None, &args)
}

/// What the workers do to the sessions.
#[derive(Clone, Copy, PartialEq)]
enum Workers {
    /// `php` CLI processes with the extension: the blocking driver.
    Php,
    /// Tasks of one tokio runtime over one `stickless::aio::Store`.
    Async,
}

/// Workers running until `stop`; their lines when joined.
enum Running {
    Php {
        children: Vec<Child>,
        dir: tempfile::TempDir,
    },
    Async {
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<Vec<String>>,
    },
}

fn shares(sids: &[String], w: usize) -> Vec<String> {
    // Worker w and worker w + WORKERS/2 share the same half of the sessions.
    let pairs = WORKERS / 2;
    sids.iter()
        .enumerate()
        .filter(|(i, _)| i % pairs == w % pairs)
        .map(|(_, s)| s.clone())
        .collect()
}

fn start(kind: Workers, url: &str, sids: &[String]) -> Running {
    match kind {
        Workers::Php => {
            let dir = tempfile::tempdir().expect("temp dir");
            let stop = dir.path().join("stop");
            let children = (0..WORKERS)
                .map(|w| {
                    let log = dir.path().join(format!("worker-{w}.out"));
                    // To files: a pipe nobody reads until the end would fill up.
                    php_session(url, WORKER)
                        .env("SIDS", shares(sids, w).join(","))
                        .env("STOP", &stop)
                        .env("MAX_S", WORKER_MAX_S.to_string())
                        .stdout(std::fs::File::create(&log).expect("worker log"))
                        .stderr(
                            std::fs::File::create(log.with_extension("err")).expect("worker log"),
                        )
                        .spawn()
                        .expect("php worker starts")
                })
                .collect();
            Running::Php { children, dir }
        }
        Workers::Async => {
            let stop = Arc::new(AtomicBool::new(false));
            let config = Config::parse(url).expect("URL parses");
            let sids = sids.to_vec();
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || async_workers(config, sids, flag));
            Running::Async { stop, thread }
        }
    }
}

/// The PHP worker's loop, in Rust over the async store; one task per worker.
fn async_workers(config: Config, sids: Vec<String>, stop: Arc<AtomicBool>) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let store = stickless::aio::Store::new(config);
    let deadline = Instant::now() + Duration::from_secs(WORKER_MAX_S);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (store, stop, mine) = (store.clone(), Arc::clone(&stop), shares(&sids, w));
                tokio::spawn(async move {
                    let mut lines = Vec::new();
                    for i in 0..10_000_000usize {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        let sid = &mine[i % mine.len()];
                        let t = now_ms();
                        let id = SessionId::parse(sid).expect("valid ID");
                        let done = async {
                            let Opened::Locked { lease, loaded, .. } =
                                store.lock(&id, OpenMode::CreateIfMissing).await?
                            else {
                                return Ok::<_, stickless::Error>(None);
                            };
                            let n: i64 = std::str::from_utf8(loaded.payload())
                                .ok()
                                .and_then(|p| p.parse().ok())
                                .unwrap_or(0)
                                + 1;
                            store
                                .commit(lease, n.to_string().into_bytes(), Duration::from_secs(600))
                                .await?;
                            Ok(Some(n))
                        };
                        match done.await {
                            Ok(Some(n)) => lines.push(format!("ok {sid} {t} {n} {}", now_ms())),
                            Ok(None) => lines.push(format!("fail {sid} {t}")),
                            Err(e) => {
                                lines.push(format!("fail {sid} {t}"));
                                lines.push(format!("warning {e}"));
                            }
                        }
                    }
                    lines
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("worker task"));
        }
        all
    })
}

/// Stops the workers; their output lines and warnings.
fn stop(running: Running) -> (Vec<String>, Vec<String>) {
    match running {
        Running::Php { children, dir } => {
            std::fs::write(dir.path().join("stop"), b"").expect("stop file");
            let (mut lines, mut warnings) = (Vec::new(), Vec::new());
            for (w, mut child) in children.into_iter().enumerate() {
                let status = child.wait().expect("worker exits");
                assert!(status.success(), "worker {w}: {status}");
                let log = dir.path().join(format!("worker-{w}.out"));
                lines.extend(
                    std::fs::read_to_string(&log)
                        .expect("worker output")
                        .lines()
                        .map(str::to_owned),
                );
                warnings.extend(
                    std::fs::read_to_string(log.with_extension("err"))
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(str::to_owned),
                );
            }
            (lines, warnings)
        }
        Running::Async { stop, thread } => {
            stop.store(true, Ordering::Relaxed);
            let all = thread.join().expect("async workers");
            let (warnings, lines): (Vec<String>, Vec<String>) =
                all.into_iter().partition(|l| l.starts_with("warning "));
            (lines, warnings)
        }
    }
}

/// The sessions of `kind`: made by PHP as a first request makes them, or
/// IDs of the right shape for the Rust store.
fn sessions(kind: Workers, url: &str) -> Vec<String> {
    match kind {
        Workers::Php => (0..SESSIONS).map(|_| new_session(url)).collect(),
        Workers::Async => (0..SESSIONS)
            .map(|i| format!("resharding-{i:04}-{}", now_ms()))
            .collect(),
    }
}

fn count(kind: Workers, url: &str, sid: &str) -> i64 {
    match kind {
        Workers::Php => final_count(url, sid),
        Workers::Async => {
            let mut store = stickless::Store::new(Config::parse(url).expect("URL parses"));
            let id = SessionId::parse(sid).expect("valid ID");
            let loaded = store.load(&id).expect("load");
            std::str::from_utf8(loaded.payload())
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        }
    }
}

/// `FILLER_KEYS` keys in the slot of each session, on its primary.
fn fill(ports: &[u16], sids: &[String]) {
    let map = slot_map(ports);
    for sid in sids {
        let id = SessionId::parse(sid).expect("a valid ID");
        let keys = SessionKeys::derive(PREFIX, &id);
        let owner = map
            .primary(slot(&keys.data()))
            .expect("every slot is served");
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{}/", owner.port))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("a connection to the slot's primary");
        let mut pipe = redis::pipe();
        for i in 0..FILLER_KEYS {
            pipe.cmd("SET")
                .arg(format!("filler:{}:{i}", keys.tag()))
                .arg(i)
                .ignore();
        }
        let () = pipe.query(&mut con).expect("filler keys stored");
    }
}

/// Lock, queue and wake keys left anywhere (a lock outliving its request).
fn leftovers(ports: &[u16]) -> Vec<String> {
    let mut out = Vec::new();
    for &port in ports {
        let Ok(mut con) = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        else {
            continue;
        };
        for pattern in ["*:lock", "*:queue", "*:wake"] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{PREFIX}{pattern}"))
                .query(&mut con)
                .unwrap_or_default();
            out.extend(keys.into_iter().map(|k| format!("{port}: {k}")));
        }
    }
    out
}

struct Window {
    from: u64,
    to: u64,
}

fn run(kind: Workers) {
    let cluster = RedisCluster::start();
    let url = format!("{}?prefix={PREFIX}", cluster.url());
    let sids = sessions(kind, &url);
    let seed = cluster.nodes[0].port();
    let mut ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port()).collect();
    let slot_of = |sid: &str| {
        let id = SessionId::parse(sid).expect("a valid ID");
        slot(&SessionKeys::derive(PREFIX, &id).data())
    };

    fill(&ports, &sids);
    let running = start(kind, &url, &sids);
    std::thread::sleep(STEADY);

    // Grow: a fourth primary joins and takes its share of the slots.
    let node = empty_node();
    let new = node.port();
    cli(&["--cluster".into(), "add-node".into(), addr(new), addr(seed)]);
    ports.push(new);
    await_agreement(&ports, 7);
    let grow = Window {
        from: now_ms(),
        to: 0,
    };
    cli(&[
        "--cluster".into(),
        "rebalance".into(),
        addr(seed),
        "--cluster-use-empty-masters".into(),
        "--cluster-pipeline".into(),
        MIGRATE_BATCH.into(),
    ]);
    let grow = Window {
        to: now_ms(),
        ..grow
    };
    await_consistent(seed);
    let grown = slot_map(&ports);
    let on_new = slots_of(&grown, new);
    let sessions_moved = sids
        .iter()
        .filter(|s| grown.primary(slot_of(s)).is_some_and(|p| p.port == new))
        .count();
    std::thread::sleep(STEADY);

    // Shrink: every slot goes back, and the node leaves.
    let new_id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node.client())
        .expect("CLUSTER MYID");
    let shrink = Window {
        from: now_ms(),
        to: 0,
    };
    cli(&[
        "--cluster".into(),
        "rebalance".into(),
        addr(seed),
        "--cluster-weight".into(),
        format!("{new_id}=0"),
        "--cluster-pipeline".into(),
        MIGRATE_BATCH.into(),
    ]);
    let shrink = Window {
        to: now_ms(),
        ..shrink
    };
    await_consistent(seed);
    let shrunk = slot_map(&ports);
    let left_on_new = slots_of(&shrunk, new);
    cli(&[
        "--cluster".into(),
        "del-node".into(),
        addr(seed),
        new_id.clone(),
    ]);
    ports.pop();
    std::thread::sleep(STEADY);
    let (lines, warnings) = stop(running);

    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut failures = Vec::new();
    let (mut slowest_grow, mut slowest_shrink, mut during) = (0, 0, 0);
    for line in &lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ok", sid, t, n, done] => {
                let n: i64 = n.parse().expect("count");
                let e = acked.entry((*sid).to_owned()).or_default();
                *e = (*e).max(n);
                let (t, done): (u64, u64) = (t.parse().expect("time"), done.parse().expect("time"));
                let took = done.saturating_sub(t);
                if done >= grow.from && t <= grow.to {
                    slowest_grow = slowest_grow.max(took);
                    during += 1;
                }
                if done >= shrink.from && t <= shrink.to {
                    slowest_shrink = slowest_shrink.max(took);
                    during += 1;
                }
            }
            ["fail", sid, t] => failures.push(format!("{sid} at {t}")),
            other => panic!("unexpected worker line {other:?}"),
        }
    }
    let mut lost = 0;
    for sid in &sids {
        let stored = count(kind, &url, sid);
        let want = acked.get(sid).copied().unwrap_or(0);
        lost += (want - stored).max(0);
    }
    let left = leftovers(&ports);
    println!(
        "{} workers: {} requests ({during} during the moves), {} failed, acknowledged increments lost: {lost}",
        match kind {
            Workers::Php => "PHP",
            Workers::Async => "async",
        },
        lines.len(),
        failures.len()
    );
    println!(
        "  grow: {on_new} slots to the new primary in {} ms ({sessions_moved} of {SESSIONS} sessions moved), slowest request meanwhile {slowest_grow} ms",
        grow.to - grow.from
    );
    println!(
        "  shrink: {} slots back in {} ms, slowest request meanwhile {slowest_shrink} ms",
        on_new - left_on_new,
        shrink.to - shrink.from
    );
    for w in warnings.iter().take(10) {
        println!("  warning: {}", w.chars().take(300).collect::<String>());
    }
    assert!(
        on_new > 3000,
        "only {on_new} slots moved to the new primary"
    );
    assert!(sessions_moved > 0, "no session's slot moved");
    assert_eq!(left_on_new, 0, "slots left on the node being removed");
    assert!(
        failures.is_empty() && warnings.is_empty(),
        "requests failed: {failures:?}\nwarnings: {warnings:?}"
    );
    assert_eq!(lost, 0, "acknowledged increments lost");
    assert!(left.is_empty(), "lock keys left behind: {left:?}");
    for sid in &sids {
        assert!(acked.contains_key(sid), "session {sid} never served");
    }
    assert!(during > 0, "no request ran while slots moved");
    drop(node);
}

#[test]
fn php_workers_lose_nothing_while_the_cluster_grows_and_shrinks() {
    run(Workers::Php);
}

#[test]
fn async_workers_lose_nothing_while_the_cluster_grows_and_shrinks() {
    run(Workers::Async);
}
