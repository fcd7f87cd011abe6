//! Switching a site from phpredis to stickless without logging anyone out
//! (docs/MIGRATION.md): first a mixed fleet, phpredis pods beside stickless
//! pods with `compat=phpredis` serving the same users; then every pod on the
//! native format with `import=phpredis`, moving each session on its first
//! request. Before these modes, the switch started every user afresh.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use stickless_e2e::{RedisServer, Stack, http_get, php, target_dir, wait_clean};

/// The phpredis builds to test against: the distribution's (5.3.7 on
/// Debian 12, 6.2 on Debian 13), and 6.2 where `make phpredis6` built it.
fn phpredis_builds() -> Vec<Phpredis> {
    let mut builds = vec![Phpredis::Distribution];
    let built = target_dir().join("phpredis/current/redis.so");
    if built.is_file() {
        builds.push(Phpredis::Built);
    } else {
        println!(
            "phpredis 6.2 is not built ({}): make phpredis6",
            built.display()
        );
    }
    builds
}

#[derive(Debug, Clone, Copy)]
enum Phpredis {
    /// What `extension=redis` loads.
    Distribution,
    /// `target/phpredis/current/redis.so` (scripts/build-phpredis.sh).
    Built,
}

impl Phpredis {
    fn module(self) -> String {
        match self {
            Self::Distribution => "redis".to_owned(),
            Self::Built => target_dir()
                .join("phpredis/current/redis.so")
                .display()
                .to_string(),
        }
    }

    /// stack.sh knobs for pods that load this build (and stickless).
    fn stack_env(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Distribution => Vec::new(),
            Self::Built => vec![
                (
                    "PHP_INI_SCAN_DIR",
                    target_dir()
                        .join("phpredis/fpm-conf.d")
                        .display()
                        .to_string(),
                ),
                (
                    "PHP_EXTENSION",
                    format!("{} {}", self.module(), stickless_e2e::ext().display()),
                ),
            ],
        }
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn cookie_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the first response sets the session cookie")
        .to_owned()
}

/// What a burst of parallel clients on one session saw.
#[derive(Debug, Default)]
struct Burst {
    requests: u64,
    ok: u64,
    failed: u64,
    lost: i64,
}

/// `clients` clients, each sending `each` requests to `path` with `cookie`,
/// all at once; the session's counter is read before and after.
fn burst(port: u16, cookie: &str, path: &str, clients: u64, each: u64) -> Burst {
    let read = |c: &str| {
        let (status, head, body) = http_get(port, "/bench/read.php", Some(c));
        assert_eq!(status, 200, "{head}\n{body}");
        json(&body)["n"].as_i64().unwrap_or(0)
    };
    let before = read(cookie);
    let ok = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                for _ in 0..each {
                    let (status, _, _) = http_get(port, path, Some(cookie));
                    if status == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let ok = ok.into_inner();
    let after = read(cookie);
    Burst {
        requests: clients * each,
        ok,
        failed: failed.into_inner(),
        lost: i64::try_from(ok).expect("a count") - (after - before),
    }
}

#[test]
fn a_mixed_fleet_of_phpredis_and_compat_pods_loses_no_update() {
    for build in phpredis_builds() {
        mixed_fleet(build);
    }
}

fn mixed_fleet(build: Phpredis) {
    // phpredis waits for its lock up to 5 s here (2,500 tries 2 ms apart),
    // as a site that runs it with locking is configured.
    let extra = build.stack_env();
    let mut env: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        (
            "POD_HANDLERS",
            "redis=tcp://127.0.0.1:{redis_port} stickless=redis://127.0.0.1:{redis_port}/0?compat=phpredis&lock_wait_ms=10000",
        ),
        (
            "PHP_DEFINES",
            "redis.session.locking_enabled=1 redis.session.lock_retries=2500 redis.session.lock_wait_time=2000 redis.session.lock_expire=10",
        ),
        ("GATEWAY", "0"),
        ("FPM_WORKERS", "3"),
    ]);
    let stack = Stack::up(4, &env);
    let port = stack.port();
    let (status, head, body) = http_get(port, "/bench/counter.php", None);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = cookie_of(&head);

    // Both kinds of pod serve the user, from phpredis's own key.
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, head, body) = http_get(port, "/bench/counter.php", Some(&cookie));
        assert_eq!(status, 200, "{head}\n{body}");
        pods.insert(json(&body)["pod"].as_str().expect("pod").to_owned());
    }
    assert_eq!(pods.len(), 4, "round-robin reaches every pod: {pods:?}");
    let versions: std::collections::BTreeSet<String> = (0..4)
        .map(|_| {
            let (_, _, body) = http_get(port, "/healthz.php", None);
            let health = json(&body);
            format!("{} {}", health["handler"], health["module"])
        })
        .collect();
    println!("mixed fleet ({build:?} phpredis): {versions:?}");
    if matches!(build, Phpredis::Built) {
        assert!(
            versions.iter().any(|v| v.starts_with("\"redis\" \"6.2")),
            "the phpredis pods run 6.2: {versions:?}"
        );
    }
    let sid = cookie.split_once('=').expect("name=value").1;
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:{}/", stack.redis_port()))
        .and_then(|c| c.get_connection())
        .expect("redis");
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("PHPREDIS_SESSION:{sid}"))
        .query(&mut redis)
        .expect("GET");
    let stored = String::from_utf8(stored.expect("phpredis's key holds the session")).unwrap();
    assert!(stored.starts_with("n|i:"), "raw session data: {stored}");
    let native: Vec<String> = redis::cmd("KEYS")
        .arg("stickless:*")
        .query(&mut redis)
        .expect("KEYS");
    assert!(
        native.is_empty(),
        "compat pods wrote native keys: {native:?}"
    );

    let quick = burst(port, &cookie, "/bench/counter.php", 8, 25);
    let held = burst(port, &cookie, "/bench/slow.php?ms=50", 4, 5);
    println!("mixed fleet ({build:?} phpredis), parallel increments: {quick:?}");
    println!("mixed fleet ({build:?} phpredis), 50 ms holds: {held:?}");
    for (case, b) in [("increments", &quick), ("50 ms holds", &held)] {
        assert_eq!(b.lost, 0, "{build:?}, {case}: an update was lost: {b:?}");
        assert_eq!(
            b.failed,
            0,
            "{build:?}, {case}: {b:?}\n{}",
            stack.php_errors()
        );
        assert_eq!(b.ok, b.requests, "{build:?}, {case}: {b:?}");
    }
}

// --- the second rollout: compat pods and import pods side by side ---------

/// phpredis 5.3 or 6.x, locking, waiting up to `retries` × 2 ms for a lock.
fn phpredis_session(build: Phpredis, port: u16, retries: u32, code: &str) -> Command {
    let mut cmd = php();
    cmd.args([
        "-d",
        "extension=igbinary",
        "-d",
        &format!("extension={}", build.module()),
        "-d",
        "session.save_handler=redis",
        "-d",
        &format!("session.save_path=tcp://127.0.0.1:{port}"),
        "-d",
        "redis.session.locking_enabled=1",
        "-d",
        &format!("redis.session.lock_retries={retries}"),
        "-d",
        "redis.session.lock_wait_time=2000",
        "-d",
        "session.use_cookies=0",
        "-d",
        "session.cache_limiter=",
        "-r",
        code,
    ]);
    cmd
}

fn stickless_session(url: &str, code: &str) -> Command {
    stickless_e2e::php_session(url, code)
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("php runs");
    stickless_e2e::assert_clean(&out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn increment(sid: &str) -> String {
    format!(
        "session_id('{sid}'); if (!session_start()) exit(2); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; $_SESSION['log'][] = 'x'; session_write_close();"
    )
}

fn read_count(sid: &str) -> String {
    format!(
        "session_id('{sid}'); session_start(['read_and_close' => true]); echo ($_SESSION['n'] ?? 0), ' ', count($_SESSION['log'] ?? []);"
    )
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts")
}

fn keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port()))
        .and_then(|c| c.get_connection())
        .expect("redis");
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut conn)
        .expect("KEYS")
}

#[test]
fn switching_every_pod_from_compat_to_import_keeps_every_session() {
    for build in phpredis_builds() {
        switching(build);
    }
}

fn switching(build: Phpredis) {
    let redis = RedisServer::start();
    let port = redis.port();
    let compat = format!("redis://127.0.0.1:{port}/0?compat=phpredis&lock_wait_ms=10000");
    let import = format!("redis://127.0.0.1:{port}/0?import=phpredis&lock_wait_ms=10000");
    // Users logged in under phpredis.
    let sids: Vec<String> = (0..6)
        .map(|_| {
            run(phpredis_session(
                build,
                port,
                2500,
                "session_start(); $_SESSION['n'] = 1; $_SESSION['log'] = ['x']; echo session_id();",
            ))
        })
        .collect();
    // The rollout: each user's requests land on compat and import pods at
    // once, three of each per user.
    let mut children = Vec::new();
    for sid in &sids {
        for url in [&compat, &import, &compat, &import, &compat, &import] {
            children.push(spawn(stickless_session(url, &increment(sid))));
        }
    }
    wait_clean(children);
    // Every pod on import now; every user has the session and every update.
    for sid in &sids {
        assert_eq!(
            run(stickless_session(&import, &read_count(sid))),
            "7 7",
            "{sid}"
        );
        assert_eq!(
            run(stickless_session(&compat, &read_count(sid))),
            "7 7",
            "{sid}"
        );
    }
    assert!(
        keys(&redis, "PHPREDIS_SESSION:*")
            .iter()
            .all(|k| k.ends_with("_LOCK")),
        "old session keys left: {:?}",
        keys(&redis, "PHPREDIS_SESSION:*")
    );
    // A straggling phpredis pod cannot bring a moved session back: the
    // marker keeps it from locking, so its write is refused.
    let out = phpredis_session(
        build,
        port,
        3,
        &format!(
            "session_id('{}'); session_start(); $_SESSION['n'] = 100; session_write_close();",
            sids[0]
        ),
    )
    .output()
    .expect("php runs");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lock"),
        "phpredis was refused its lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(keys(&redis, &format!("PHPREDIS_SESSION:{}", sids[0])).is_empty());
    assert_eq!(
        run(stickless_session(&import, &read_count(&sids[0]))),
        "7 7"
    );
}

#[test]
fn two_importers_racing_on_one_session_import_it_once() {
    let redis = RedisServer::start();
    let port = redis.port();
    let import = format!("redis://127.0.0.1:{port}/0?import=phpredis&lock_wait_ms=10000");
    let sid = run(phpredis_session(
        Phpredis::Distribution,
        port,
        2500,
        "session_start(); $_SESSION['n'] = 1; $_SESSION['log'] = ['x']; echo session_id();",
    ));
    let children = (0..8)
        .map(|_| spawn(stickless_session(&import, &increment(&sid))))
        .collect();
    wait_clean(children);
    assert_eq!(run(stickless_session(&import, &read_count(&sid))), "9 9");
    assert_eq!(
        keys(&redis, "stickless:*:data").len(),
        1,
        "one native session"
    );
    assert!(keys(&redis, &format!("PHPREDIS_SESSION:{sid}")).is_empty());
}

#[test]
fn symfony_sessions_are_imported_on_first_read() {
    let redis = RedisServer::start();
    let port = redis.port();
    let sid = "sfsessionabcdefghijklmnopqrstu";
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection())
        .expect("redis");
    // What Symfony's RedisSessionHandler stores: the raw data under sf_s<id>.
    let _: () = redis::cmd("SETEX")
        .arg(format!("sf_s{sid}"))
        .arg(1440)
        .arg("_sf2_attributes|a:1:{s:4:\"user\";s:3:\"ann\";}n|i:4;")
        .query(&mut conn)
        .expect("SETEX");
    let url = format!("redis://127.0.0.1:{port}/0?import=symfony");
    let n = run(stickless_session(
        &url,
        &format!(
            "session_id('{sid}'); session_start(); echo $_SESSION['_sf2_attributes']['user'], ' ', $_SESSION['n']; $_SESSION['n']++;"
        ),
    ));
    assert_eq!(n, "ann 4");
    assert!(
        keys(&redis, &format!("sf_s{sid}")).is_empty(),
        "the old key is gone"
    );
    assert_eq!(run(stickless_session(&url, &read_count(sid))), "5 0");
}

#[test]
fn on_a_cluster_the_import_moves_sessions_across_slots() {
    use stickless_e2e::{Deployment, RedisCluster};
    let cluster = RedisCluster::start();
    let mut client = cluster.client();
    let sids: Vec<String> = (0..8)
        .map(|i| format!("clustersession{i:02}abcdefgh"))
        .collect();
    for sid in &sids {
        // What phpredis's SETEX left: the old key, in a slot of its own.
        let _: () = redis::cmd("SETEX")
            .arg(format!("PHPREDIS_SESSION:{sid}"))
            .arg(1440)
            .arg("n|i:1;log|a:1:{i:0;s:1:\"x\";}")
            .query(&mut client)
            .expect("SETEX");
    }
    let url = format!("{}?import=phpredis&lock_wait_ms=10000", cluster.url());
    let children = sids
        .iter()
        .flat_map(|sid| [0, 1].map(|_| spawn(stickless_session(&url, &increment(sid)))))
        .collect();
    wait_clean(children);
    for sid in &sids {
        assert_eq!(
            run(stickless_session(&url, &read_count(sid))),
            "3 3",
            "{sid}"
        );
    }
    let left: Vec<String> = client
        .all_keys()
        .into_iter()
        .filter(|k| k.starts_with("PHPREDIS_SESSION:") && !k.ends_with("_LOCK"))
        .collect();
    assert!(left.is_empty(), "old keys left: {left:?}");
}

#[test]
fn a_merge_mode_request_imports_the_session_under_the_lock() {
    let redis = RedisServer::start();
    let port = redis.port();
    let sid = run(phpredis_session(
        Phpredis::Distribution,
        port,
        2500,
        "session_start(); $_SESSION['n'] = 1; $_SESSION['log'] = ['x']; echo session_id();",
    ));
    let url = format!("redis://127.0.0.1:{port}/0?import=phpredis&concurrency=merge");
    run(stickless_session(&url, &increment(&sid)));
    run(stickless_session(&url, &increment(&sid)));
    assert_eq!(run(stickless_session(&url, &read_count(&sid))), "3 3");
    assert!(keys(&redis, &format!("PHPREDIS_SESSION:{sid}")).is_empty());
}

#[test]
fn a_compat_request_longer_than_its_lease_keeps_phpredis_out() {
    // Without renewals a phpredis pod would take the lapsed lock after
    // 300 ms, and one of the two updates would be refused or lost.
    let redis = RedisServer::start();
    let port = redis.port();
    let compat = format!("redis://127.0.0.1:{port}/0?compat=phpredis&lock_ttl_ms=300");
    let sid = run(phpredis_session(
        Phpredis::Distribution,
        port,
        2500,
        "session_start(); $_SESSION['n'] = 1; $_SESSION['log'] = ['x']; echo session_id();",
    ));
    let long = spawn(stickless_session(
        &compat,
        &format!(
            "session_id('{sid}'); session_start(); usleep(1200000); $_SESSION['n']++; $_SESSION['log'][] = 'x'; session_write_close();"
        ),
    ));
    let lock = format!("PHPREDIS_SESSION:{sid}_LOCK");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while keys(&redis, &lock).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the compat request never locked"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    let phpredis = spawn(phpredis_session(
        Phpredis::Distribution,
        port,
        2500,
        &increment(&sid),
    ));
    wait_clean(vec![long, phpredis]);
    assert_eq!(run(stickless_session(&compat, &read_count(&sid))), "3 3");
}

#[test]
fn an_import_stopped_after_its_marker_is_finished_by_the_next_request() {
    // A worker killed between the marker and the native write leaves the
    // old value under the marker: the next request of that user, on a
    // compat pod or an import pod, moves it.
    let redis = RedisServer::start();
    let port = redis.port();
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection())
        .expect("redis");
    for (sid, url) in [
        (
            "stoppedimportcompat0123456789",
            format!("redis://127.0.0.1:{port}/0?compat=phpredis"),
        ),
        (
            "stoppedimportnative0123456789",
            format!("redis://127.0.0.1:{port}/0?import=phpredis"),
        ),
    ] {
        let _: () = redis::pipe()
            .cmd("SETEX")
            .arg(format!("PHPREDIS_SESSION:{sid}"))
            .arg(1440)
            .arg("n|i:1;log|a:1:{i:0;s:1:\"x\";}")
            .ignore()
            .cmd("SET")
            .arg(format!("PHPREDIS_SESSION:{sid}_LOCK"))
            .arg("stickless:moved")
            .arg("EX")
            .arg(1440)
            .ignore()
            .query(&mut conn)
            .expect("the state a stopped import leaves");
        run(stickless_session(&url, &increment(sid)));
        assert_eq!(
            run(stickless_session(&url, &read_count(sid))),
            "2 2",
            "{url}"
        );
        assert!(
            keys(&redis, &format!("PHPREDIS_SESSION:{sid}")).is_empty(),
            "{url}"
        );
    }
}
