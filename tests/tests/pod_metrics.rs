//! One pod, four php-fpm workers: whichever worker answers `/metrics.php`
//! reports every worker's requests. Before the counters were shared, a
//! scrape saw only the requests of the worker it happened to reach, a
//! quarter of the truth on a pool of four, and a different quarter each time.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use stickless_e2e::{RedisServer, Stack, http_get, new_session, php_session, workspace};

const WORKERS: usize = 4;
const REQUESTS: usize = 40;

/// The test's own document root: the stack's readiness probes, the
/// one-line `/metrics.php` the docs give, and two pages that say which
/// worker served them. Each holds its worker for a moment so that
/// parallel requests must be served by different workers.
fn doc_root(dir: &Path) {
    let www = workspace().join("deploy/local/www");
    for file in ["hello.php", "healthz.php", "metrics.php"] {
        std::fs::copy(www.join(file), dir.join(file)).expect("copy a page");
    }
    std::fs::write(
        dir.join("count.php"),
        "<?php session_start(); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; \
         usleep(20000); header('X-Worker: ' . getmypid());\n",
    )
    .expect("write count.php");
    std::fs::write(
        dir.join("worker-metrics.php"),
        "<?php usleep(20000); header('X-Worker: ' . getmypid()); echo Stickless\\metrics();\n",
    )
    .expect("write worker-metrics.php");
}

fn worker(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("X-Worker: "))
        .unwrap_or_else(|| panic!("no X-Worker header in\n{head}"))
        .trim()
        .to_owned()
}

/// The value of the sample line that starts with `series ` in `text`.
fn sample(text: &str, series: &str) -> u64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// `requests` GETs of `path`, `WORKERS` at a time; (worker, headers, body) each.
fn parallel(port: u16, path: &str, requests: usize) -> Vec<(String, String, String)> {
    let rounds = requests.div_ceil(WORKERS);
    let mut out = Vec::new();
    for _ in 0..rounds {
        let threads: Vec<_> = (0..WORKERS)
            .map(|_| {
                let path = path.to_owned();
                std::thread::spawn(move || http_get(port, &path, None))
            })
            .collect();
        for t in threads {
            let (status, head, body) = t.join().expect("a request thread");
            assert_eq!(status, 200, "{path}: {head}\n{body}");
            out.push((worker(&head), head, body));
        }
    }
    out.truncate(requests);
    out
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_worker_of_a_pod_reports_the_requests_of_all_four() {
    let dir = tempfile::Builder::new()
        .prefix("metricswww")
        .tempdir()
        .expect("a temp dir");
    doc_root(dir.path());
    let workers = WORKERS.to_string();
    let stack = Stack::up(
        1,
        &[
            ("DOC_ROOT", dir.path().to_str().expect("a UTF-8 path")),
            ("FPM_WORKERS", &workers),
            ("GATEWAY", "0"),
        ],
    );
    let port = stack.port();

    let served = parallel(port, "/count.php", REQUESTS);
    let counted: BTreeSet<&str> = served.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(counted.len(), WORKERS, "the requests reached {counted:?}");

    // Scrape until every worker has answered at least once; each must say
    // the same, the whole pod's figures.
    let mut scraped = BTreeSet::new();
    let mut last = String::new();
    for _ in 0..10 {
        for (worker, head, body) in parallel(port, "/worker-metrics.php", WORKERS) {
            assert_eq!(
                sample(&body, r#"stickless_requests_total{outcome="locked"}"#),
                REQUESTS as u64,
                "worker {worker}"
            );
            assert_eq!(
                sample(&body, "stickless_sessions_created_total"),
                REQUESTS as u64
            );
            // A new session: SET NX + GET, then COMMIT; a worker whose
            // first COMMIT finds the script not loaded yet on this fresh
            // server adds NOSCRIPT and SCRIPT LOAD.
            let trips = sample(&body, "stickless_round_trips_total");
            let least = 2 * REQUESTS as u64;
            assert!(
                (least..=least + 2 * WORKERS as u64).contains(&trips),
                "{trips} round trips"
            );
            assert_eq!(
                sample(
                    &body,
                    r#"stickless_redis_step_seconds_count{step="commit"}"#
                ),
                REQUESTS as u64
            );
            assert!(sample(&body, "stickless_written_bytes_total") >= 4 * REQUESTS as u64);
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: text/plain; version=0.0.4"),
                "{head}"
            );
            scraped.insert(worker);
            last = body;
        }
        if scraped.len() == WORKERS {
            break;
        }
    }
    assert_eq!(
        scraped.len(),
        WORKERS,
        "only {scraped:?} answered the scrapes"
    );

    let (status, _, plain) = http_get(port, "/metrics.php", None);
    assert_eq!(status, 200, "{plain}");
    assert_eq!(
        sample(&plain, r#"stickless_requests_total{outcome="locked"}"#),
        REQUESTS as u64
    );
    promtool_check(&last);
    assert!(stack.php_errors().is_empty(), "{}", stack.php_errors());
}

/// One PHP process: a new session written, read back, then destroyed.
/// phpinfo(), `stickless_stats()` and `Stickless\metrics()` must agree.
#[test]
fn phpinfo_stats_and_metrics_show_the_same_figures() {
    let redis = RedisServer::start();
    let code = r#"
        session_start(); $_SESSION['n'] = 1; session_write_close();
        session_start(); session_destroy();
        $stats = stickless_stats();
        echo json_encode($stats), "\n---\n", Stickless\metrics(), "---\n";
        phpinfo(INFO_MODULES);
    "#;
    let out = php_session(&redis.url(), code).output().expect("php runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts = stdout.split("\n---\n");
    let stats: serde_json::Value =
        serde_json::from_str(parts.next().expect("the stats")).expect("stats are JSON");
    let metrics = parts.next().expect("the metrics");
    let info = parts.next().expect("phpinfo");
    let info_row = |label: &str| -> u64 {
        let prefix = format!("{label} => ");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label} row in\n{info}"))
    };
    for (key, label, series) in [
        (
            "requests_locked",
            "Requests: locked",
            r#"stickless_requests_total{outcome="locked"}"#,
        ),
        (
            "sessions_created",
            "Sessions created",
            "stickless_sessions_created_total",
        ),
        (
            "sessions_destroyed",
            "Sessions destroyed",
            "stickless_sessions_destroyed_total",
        ),
        ("round_trips", "Round trips", "stickless_round_trips_total"),
        (
            "bytes_written",
            "Bytes written",
            "stickless_written_bytes_total",
        ),
    ] {
        let value = sample(metrics, series);
        assert_eq!(stats[key], value, "{key} in {stats}");
        assert_eq!(info_row(label), value, "phpinfo's {label}");
    }
    assert_eq!(
        sample(metrics, r#"stickless_requests_total{outcome="locked"}"#),
        2
    );
    assert_eq!(sample(metrics, "stickless_sessions_created_total"), 1);
    assert_eq!(sample(metrics, "stickless_sessions_destroyed_total"), 1);
    // `n|i:1;`, written once and read back once.
    assert_eq!(sample(metrics, "stickless_written_bytes_total"), 6);
    assert_eq!(sample(metrics, "stickless_read_bytes_total"), 6);
}

/// A user's parallel request gives up on a session another request holds,
/// then one opens it read-only and tries to change it: the scrape shows a
/// timeout, a fallback, their waits, and the refused write.
#[test]
fn lock_timeouts_and_read_only_fallbacks_are_counted_with_their_waits() {
    let redis = RedisServer::start();
    let url = redis.url();
    let sid = new_session(&url);
    // Holds the lock until a line arrives, or its stdin closes because this
    // test ended, however it ended.
    let hold = format!("session_id('{sid}'); session_start(); echo \"locked\\n\"; fgets(STDIN);");
    let mut holder = php_session(&url, &hold)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("php starts");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the holder reports");
    assert_eq!(line.trim(), "locked");

    let wait = format!("{url}?lock_wait_ms=100");
    let code = format!(
        // No output before the second start: ini_set() of session.* is
        // refused once headers are sent.
        "session_id('{sid}'); $first = @session_start() ? 'started' : 'refused'; \
         ini_set('session.save_path', '{wait}&on_lock_timeout=readonly'); \
         session_id('{sid}'); $second = @session_start() ? 'started' : 'refused'; \
         $_SESSION['n'] = 99; @session_write_close(); \
         echo $first, \"\\n\", $second, \"\\n\", Stickless\\metrics();"
    );
    let out = php_session(&wait, &code).output().expect("php runs");
    let mut stdin = holder.stdin.take().expect("stdin");
    writeln!(stdin).expect("the holder is told to finish");
    holder.wait().expect("the holder ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("refused\nstarted\n"), "{text}");

    for (series, value) in [
        (r#"stickless_requests_total{outcome="lock_timeout"}"#, 1),
        (r#"stickless_requests_total{outcome="read_only"}"#, 1),
        ("stickless_lock_timeouts_total", 1),
        ("stickless_read_only_fallbacks_total", 1),
        (r#"stickless_errors_total{kind="read_only_write"}"#, 1),
        ("stickless_lock_wait_seconds_count", 2),
        // Both waited out lock_wait_ms (100 ms).
        (r#"stickless_lock_wait_seconds_bucket{le="0.05"}"#, 0),
        ("stickless_written_bytes_total", 0),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in\n{text}");
    }
}
