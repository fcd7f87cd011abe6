//! Many PHP processes on one session at once: the lock serialises them and
//! no update is lost.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use stickless_e2e::{RedisServer, final_count, new_session, php_session};

fn url(redis: &RedisServer, extra: &str) -> String {
    format!("redis://127.0.0.1:{}/0?prefix=conc:{extra}", redis.port())
}

/// Increments `n` in the session, holding it `hold_ms` first.
fn incrementer(url: &str, sid: &str, hold_ms: u64) -> Child {
    let code = format!(
        "session_id('{sid}'); if (!session_start()) exit(2); usleep({}); $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1; session_write_close();",
        hold_ms * 1000
    );
    php_session(url, &code)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts")
}

fn wait_all(children: Vec<Child>) {
    for child in children {
        let out = child.wait_with_output().expect("php exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "exit {}: {stderr}",
            out.status
        );
    }
}

#[test]
fn twenty_processes_incrementing_one_session_lose_nothing() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    let children = (0..20).map(|_| incrementer(&url, &sid, 0)).collect();
    wait_all(children);
    assert_eq!(final_count(&url, &sid), 20);
}

#[test]
fn four_waiters_behind_50ms_holds_lose_nothing_and_wait_only_for_the_holds() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    // Warm up: load the scripts so that timing covers hand-offs only.
    wait_all(vec![incrementer(&url, &sid, 0)]);
    let started = Instant::now();
    let children = (0..5).map(|_| incrementer(&url, &sid, 50)).collect();
    wait_all(children);
    let elapsed = started.elapsed();
    assert_eq!(final_count(&url, &sid), 6, "an update was lost");
    // Five holds of 50 ms each are serialised by the lock.
    assert!(
        elapsed >= Duration::from_millis(250),
        "{elapsed:?}: holds overlapped"
    );
}
