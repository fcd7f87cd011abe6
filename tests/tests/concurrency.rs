//! Many PHP processes on one session at once: the lock serialises them and
//! no update is lost.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use stickless_e2e::{RedisServer, final_count, new_session, php_session, read_session, wait_clean};

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

#[test]
fn twenty_processes_incrementing_one_session_lose_nothing() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    let children = (0..20).map(|_| incrementer(&url, &sid, 0)).collect();
    wait_clean(children);
    assert_eq!(final_count(&url, &sid), 20);
}

#[test]
fn four_waiters_behind_50ms_holds_lose_nothing_and_wait_only_for_the_holds() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    // Warm up: load the scripts so that timing covers hand-offs only.
    wait_clean(vec![incrementer(&url, &sid, 0)]);
    let started = Instant::now();
    let children = (0..5).map(|_| incrementer(&url, &sid, 50)).collect();
    wait_clean(children);
    let elapsed = started.elapsed();
    assert_eq!(final_count(&url, &sid), 6, "an update was lost");
    // Five holds of 50 ms each are serialised by the lock.
    assert!(
        elapsed >= Duration::from_millis(250),
        "{elapsed:?}: holds overlapped"
    );
}

/// Runs `code` on session `sid`, its stdout piped so the test can follow it.
fn request(url: &str, code: &str) -> Child {
    php_session(url, code)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts")
}

/// Waits for `child` to print `line` (it flushes after printing it).
fn await_line(child: &mut Child, line: &str) {
    use std::io::Read;
    let stdout = child.stdout.as_mut().expect("stdout piped");
    // Byte by byte: whatever the child prints later stays in the pipe.
    let mut got = Vec::new();
    let mut byte = [0u8];
    while got.len() < 256 && stdout.read(&mut byte).expect("reads") == 1 && byte[0] != b'\n' {
        got.push(byte[0]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        line,
        "the request did not get that far"
    );
}

/// The session's variables, read without a lock.
fn variables(url: &str, sid: &str) -> String {
    read_session(url, sid, "json_encode($_SESSION)")
}

/// A site that mixes modes: a locked request holds the session while a
/// merge request of the same user writes. The merge write waits for the
/// lock and is replayed onto the holder's write, so neither change is lost;
/// had it gone in during the hold, the holder's fenced commit would have
/// overwritten it.
#[test]
fn a_merge_write_during_a_lock_hold_waits_for_it_and_both_changes_are_kept() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    let mut holder = request(
        &url,
        &format!(
            "session_id('{sid}'); session_start(); echo \"locked\\n\"; flush(); usleep(300000); $_SESSION['by_lock'] = 1; session_write_close(); echo microtime(true);"
        ),
    );
    await_line(&mut holder, "locked");
    let merger = request(
        &url,
        &format!(
            "session_id('{sid}'); session_start(['stickless_concurrency' => 'merge']); $_SESSION['by_merge'] = 1; session_write_close(); echo microtime(true);"
        ),
    );
    let ended = |child: Child| -> f64 {
        let out = child.wait_with_output().expect("php exits");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a time")
    };
    let merge_done = ended(merger);
    let lock_done = ended(holder);
    assert!(
        merge_done >= lock_done,
        "the merge write finished {:.3} s before the lock holder's",
        lock_done - merge_done
    );
    let vars = variables(&url, &sid);
    assert!(
        vars.contains("\"by_lock\":1") && vars.contains("\"by_merge\":1"),
        "{vars}"
    );
}

/// The other order: a merge request reads, a locked request writes while it
/// runs, then the merge request writes. Its changes are replayed onto the
/// locked request's value.
#[test]
fn a_merge_request_that_read_before_a_locked_write_replays_onto_it() {
    let redis = RedisServer::start();
    let url = url(&redis, "&lock_wait_ms=20000");
    let sid = new_session(&url);
    let mut merger = request(
        &url,
        &format!(
            "session_id('{sid}'); session_start(['stickless_concurrency' => 'merge']); echo \"read\\n\"; flush(); fgets(STDIN); $_SESSION['by_merge'] = 1; session_write_close();"
        ),
    );
    await_line(&mut merger, "read");
    wait_clean(vec![
        php_session(
            &url,
            &format!(
                "session_id('{sid}'); session_start(); $_SESSION['n'] = 5; session_write_close();"
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php starts"),
    ]);
    drop(merger.stdin.take());
    wait_clean(vec![merger]);
    let vars = variables(&url, &sid);
    assert!(
        vars.contains("\"n\":5") && vars.contains("\"by_merge\":1"),
        "{vars}"
    );
}
