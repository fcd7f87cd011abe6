//! Two php-fpm masters ("pods") behind nginx share sessions through
//! stickless: a session created on one pod is read and updated on the other.

use std::time::{Duration, Instant};

use stickless_e2e::{Deployment, Stack, http_get};

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
    println!("four {HOLD} ms requests: merge mode {merged:?}, lock mode {locked:?}");
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

// ------------------------------------------------------------ log out everywhere

/// The pages of the "log out everywhere" tests: login binds the session to
/// a user with a label; whoami shows who the session belongs to; sessions
/// lists the user's sessions; logout ends all but (with except=1) this one.
/// `ttl` sets session.gc_maxlifetime for the request.
const USERS_PHP: &str = r#"<?php
header('Content-Type: application/json');
if (isset($_GET['ttl'])) { ini_set('session.gc_maxlifetime', $_GET['ttl']); }
session_start();
$pod = getenv('POD_NAME') ?: 'unknown';
$user = $_GET['user'] ?? '';
switch ($_GET['do'] ?? '') {
    case 'login':
        $_SESSION['user'] = $user;
        Stickless\bind_user($user, $_GET['label'] ?? null);
        echo json_encode(['pod' => $pod]);
        break;
    case 'whoami':
        echo json_encode(['pod' => $pod, 'user' => $_SESSION['user'] ?? null]);
        break;
    case 'sessions':
        echo json_encode(['pod' => $pod, 'sessions' => Stickless\user_sessions($user)]);
        break;
    case 'logout':
        $except = isset($_GET['except']) ? session_id() : null;
        echo json_encode(['pod' => $pod, 'ended' => Stickless\logout_user($user, $except)]);
        break;
}
"#;

fn users_doc_root(dir: &std::path::Path) {
    let www = stickless_e2e::workspace().join("deploy/local/www");
    for file in ["hello.php", "healthz.php"] {
        std::fs::copy(www.join(file), dir.join(file)).expect("copy a page");
    }
    std::fs::write(dir.join("users.php"), USERS_PHP).expect("write users.php");
}

fn get_json(port: u16, path: &str, cookie: Option<&str>) -> (serde_json::Value, Option<String>) {
    let (status, head, body) = http_get(port, path, cookie);
    assert_eq!(status, 200, "{path}\n{head}\n{body}");
    let set = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (json(&body), set)
}

/// Five devices of one user across three pods; the user logs out
/// everywhere but here from the first. Before this, a site could only wait
/// for the other sessions to expire (or scan every key in Redis).
fn user_logs_out_everywhere_across_pods(
    save_path: Option<&str>,
    redis: &mut dyn redis::ConnectionLike,
) {
    let dir = tempfile::Builder::new()
        .prefix("userswww")
        .tempdir()
        .expect("a temp dir");
    users_doc_root(dir.path());
    let mut env = vec![
        ("DOC_ROOT", dir.path().to_str().expect("a UTF-8 path")),
        ("GATEWAY", "0"),
    ];
    if let Some(path) = save_path {
        env.push(("SESSION_SAVE_PATH", path));
    }
    let stack = Stack::up(3, &env);
    let port = stack.port();

    let mut cookies = Vec::new();
    let mut pods = std::collections::BTreeSet::new();
    for i in 0..5 {
        let (reply, cookie) = get_json(
            port,
            &format!("/users.php?do=login&user=42&label=device{i}"),
            None,
        );
        pods.insert(reply["pod"].as_str().expect("a pod").to_owned());
        cookies.push(cookie.expect("a new session sets its cookie"));
    }
    assert_eq!(pods.len(), 3, "logins spread over the pods: {pods:?}");
    for cookie in &cookies {
        let (reply, _) = get_json(port, "/users.php?do=whoami", Some(cookie));
        assert_eq!(reply["user"], "42");
    }
    let (listed, _) = get_json(port, "/users.php?do=sessions&user=42", Some(&cookies[0]));
    let sessions = listed["sessions"].as_array().expect("a list");
    assert_eq!(sessions.len(), 5, "{listed}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed}");
    assert_eq!(current[0]["label"], "device0");
    for cookie in &cookies {
        let id = cookie.split('=').nth(1).expect("name=value");
        assert!(
            !listed.to_string().contains(id),
            "a session ID in the listing"
        );
    }

    let (ended, _) = get_json(
        port,
        "/users.php?do=logout&user=42&except=1",
        Some(&cookies[0]),
    );
    assert_eq!(ended["ended"], 4, "{ended}");
    for cookie in &cookies[1..] {
        let (reply, _) = get_json(port, "/users.php?do=whoami", Some(cookie));
        assert_eq!(
            reply["user"],
            serde_json::Value::Null,
            "logged out on {}",
            reply["pod"]
        );
    }
    let (reply, _) = get_json(port, "/users.php?do=whoami", Some(&cookies[0]));
    assert_eq!(reply["user"], "42", "the current session is kept");
    let (listed, _) = get_json(port, "/users.php?do=sessions&user=42", Some(&cookies[0]));
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // Short-lived sessions of another user: once they expire, the index
    // lists nothing and its keys are gone too.
    for i in 0..2 {
        get_json(
            port,
            &format!("/users.php?do=login&user=7&label=kiosk{i}&ttl=1"),
            None,
        );
    }
    let prefix = "demo:";
    let index = stickless::UserKeys::derive(prefix, &stickless::UserId::parse("7").expect("valid"));
    let exists = |redis: &mut dyn redis::ConnectionLike| -> i64 {
        redis::cmd("EXISTS")
            .arg(index.sessions())
            .arg(index.seen())
            .arg(index.meta())
            .query(redis)
            .expect("EXISTS")
    };
    assert_eq!(exists(redis), 3, "the index is in place");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while exists(redis) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the index keys outlived their sessions"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (listed, _) = get_json(port, "/users.php?do=sessions&user=7", None);
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert!(
        !stack.php_errors().contains("stickless"),
        "{}",
        stack.php_errors()
    );
}

#[test]
fn user_logs_out_everywhere_across_pods_standalone() {
    // A server of the test's own, so it can watch the index keys.
    let redis = stickless_e2e::RedisServer::start();
    let path = format!("redis://127.0.0.1:{}/0?prefix=demo:", redis.port());
    let mut con = redis.client();
    user_logs_out_everywhere_across_pods(Some(&path), &mut con);
}

#[test]
fn user_logs_out_everywhere_across_pods_cluster() {
    let cluster = stickless_e2e::RedisCluster::start();
    let path = format!("{}?prefix=demo:", cluster.url());
    let mut con = cluster.client();
    user_logs_out_everywhere_across_pods(Some(&path), &mut con);
}
