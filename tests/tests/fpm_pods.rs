//! Two php-fpm masters ("pods") behind nginx share sessions through
//! stickless: a session created on one pod is read and updated on the other.

use std::time::{Duration, Instant};

use stickless_e2e::{Stack, http_get};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn a_session_created_on_one_pod_is_read_and_updated_on_the_other() {
    let stack = Stack::up(2, &[]);
    let (status, head, body) = http_get(stack.port(), "/?format=json", None);
    assert_eq!(status, 200, "{head}\n{body}");
    let first = json(&body);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the first response sets the session cookie")
        .to_owned();
    assert_eq!(first["counter"], 1);

    let mut pods = vec![first["pod"].as_str().expect("pod name").to_owned()];
    for expected in 2..=6 {
        let (status, head, body) = http_get(stack.port(), "/?format=json", Some(&cookie));
        assert_eq!(status, 200, "{head}\n{body}");
        let reply = json(&body);
        assert_eq!(reply["counter"], expected, "served by {}", reply["pod"]);
        pods.push(reply["pod"].as_str().expect("pod name").to_owned());
    }
    // Round-robin: consecutive requests of the one user alternate pods.
    assert!(pods.windows(2).all(|w| w[0] != w[1]), "{pods:?}");
}

/// The session cookie a first response sets.
fn cookie_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the first response sets the session cookie")
        .to_owned()
}

/// GETs every path at once, each on its own connection; the replies in
/// order, and how long the whole burst took.
fn burst(port: u16, paths: &[String], cookie: &str) -> (Vec<(u16, String)>, Duration) {
    let started = Instant::now();
    let replies = std::thread::scope(|scope| {
        let running: Vec<_> = paths
            .iter()
            .map(|path| {
                scope.spawn(move || {
                    let (status, _, body) = http_get(port, path, Some(cookie));
                    (status, body)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("request thread"))
            .collect::<Vec<_>>()
    });
    (replies, started.elapsed())
}

fn merge_path(slot: usize, ms: u64, mode: &str) -> String {
    format!("/bench/merge.php?slot={slot}&ms={ms}&mode={mode}")
}

/// Four requests of one user, each holding the session 50 ms and changing
/// a key of its own. Under the lock they queue (a user who opens four tabs
/// waits four holds); in merge mode they run side by side and every
/// change is kept.
#[test]
fn four_parallel_merge_requests_of_one_user_take_one_hold_and_lose_nothing() {
    const HOLD: u64 = 50;
    let stack = Stack::up(2, &[("FPM_WORKERS", "4")]);
    let (status, head, body) = http_get(stack.port(), &merge_path(0, 0, "merge"), None);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = cookie_of(&head);
    let paths = |ms, mode| {
        (0..4)
            .map(|slot| merge_path(slot, ms, mode))
            .collect::<Vec<_>>()
    };
    // Every worker connected and every script loaded, so the bursts time
    // the holds only.
    for mode in ["merge", "lock", "merge"] {
        let (replies, _) = burst(stack.port(), &paths(0, mode), &cookie);
        assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    }

    let (replies, merged) = burst(stack.port(), &paths(HOLD, "merge"), &cookie);
    assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    let (replies, locked) = burst(stack.port(), &paths(HOLD, "lock"), &cookie);
    assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");

    let hold = Duration::from_millis(HOLD);
    assert!(
        merged < hold * 5 / 2,
        "merge mode: {merged:?} for four parallel {HOLD} ms holds (lock mode: {locked:?})"
    );
    assert!(
        locked >= hold * 4,
        "lock mode: {locked:?}, the holds overlapped"
    );
    // Slot 0: the first request, three warm-ups, two bursts; the others one
    // fewer. A sixth (or fifth) increment shows no change was lost.
    for slot in 0..4 {
        let (status, _, body) =
            http_get(stack.port(), &merge_path(slot, 0, "merge"), Some(&cookie));
        assert_eq!(status, 200, "{body}");
        let expected = if slot == 0 { 7 } else { 6 };
        assert_eq!(
            json(&body)["n"],
            expected,
            "slot {slot}: an update was lost"
        );
    }
    let errors = stack.php_errors();
    assert!(errors.is_empty(), "{errors}");
}

/// Two requests change the same key at once: one change wins, the other is
/// refused with a warning that names the key, and the pod counts it.
/// Sessions that hold references are never merged: they take the lock.
#[test]
fn same_key_conflicts_are_reported_and_references_fall_back_to_the_lock() {
    // One pod: its tally is the one /metrics.php reports.
    let stack = Stack::up(1, &[("FPM_WORKERS", "3")]);
    let (status, head, body) = http_get(stack.port(), &merge_path(0, 0, "merge"), None);
    assert_eq!(status, 200, "{head}\n{body}");
    let cookie = cookie_of(&head);
    let tagged = |tag: &str| format!("/bench/merge.php?slot=shared&ms=100&mode=merge&tag={tag}");
    let (replies, _) = burst(stack.port(), &[tagged("first"), tagged("second")], &cookie);
    let refused: Vec<_> = replies.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(refused.len(), 1, "{replies:?}");
    assert!(
        refused[0]
            .1
            .contains("`kshared` was changed by another request"),
        "{}",
        refused[0].1
    );
    let (_, _, metrics) = http_get(stack.port(), "/metrics.php", None);
    assert!(
        metrics.contains("stickless_merge_conflicts_total 1\n"),
        "{metrics}"
    );

    // A request stores a reference; from then on merge requests lock.
    let (status, _, body) = http_get(
        stack.port(),
        "/bench/merge.php?slot=1&ms=0&mode=merge&refs=1",
        Some(&cookie),
    );
    assert_eq!(status, 200, "{body}");
    let (replies, elapsed) = burst(
        stack.port(),
        &[merge_path(1, 100, "merge"), merge_path(1, 100, "merge")],
        &cookie,
    );
    assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    let mut counts: Vec<_> = replies.iter().map(|(_, b)| json(b)["n"].clone()).collect();
    counts.sort_by_key(|n| n.as_i64());
    assert_eq!(
        counts,
        [2, 3],
        "serialised by the lock, both increments kept"
    );
    assert!(
        elapsed >= Duration::from_millis(200),
        "{elapsed:?}: the holds overlapped"
    );
    let (_, _, metrics) = http_get(stack.port(), "/metrics.php", None);
    assert!(
        metrics.contains("stickless_merge_lock_fallbacks_total 2\n"),
        "{metrics}"
    );
}
