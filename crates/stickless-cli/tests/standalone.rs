//! Every command against a real, throw-away redis-server.

#[path = "../../stickless/tests/support/mod.rs"]
mod support;

mod common;

use std::thread;
use std::time::Duration;

use common::{hold, put, sid, stickless, stickless_env, store, until};
use stickless::{Error, OpenMode, Opened, SessionId, SessionKeys};
use support::RedisServer;

const PREFIX: &str = "cli:";

fn url(server: &RedisServer) -> String {
    format!("{}?prefix={PREFIX}", server.url())
}

#[test]
fn show_tells_where_a_session_lives_and_what_it_holds() {
    let server = RedisServer::start();
    let url = url(&server);
    put(
        &mut store(&url),
        &sid(1),
        b"user|s:3:\"ann\";cart|a:1:{i:0;s:3:\"A-1\";}",
    );

    let text = stickless(&url, &["show", &sid(1)]).ok();
    let tag = SessionKeys::derive(PREFIX, &SessionId::parse(&sid(1)).unwrap());
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "{text}"
    );
    assert!(text.contains(&tag.data()), "{text}");
    assert!(text.contains("envelope v1, revision 1"), "{text}");
    assert!(text.contains("'user' => 'ann'"), "{text}");
    assert!(text.contains("0 => 'A-1'"), "{text}");
    assert!(text.contains("free, no waiters"), "{text}");

    let doc = stickless(&url, &["--json", "show", &sid(1)]).json();
    assert_eq!(doc["contents"]["user"], "ann");
    assert_eq!(doc["contents"]["cart"][0], "A-1");
    assert_eq!(doc["serialize_handler"], "php");
    assert_eq!(doc["envelope"]["revision"], 1);
    assert_eq!(doc["encrypted"], false);
    assert_eq!(doc["lock"]["held"], false);
    let ttl = doc["ttl_ms"].as_i64().unwrap();
    assert!((1..=1_440_000).contains(&ttl), "{ttl}");

    let raw = stickless(&url, &["show", "--raw", &sid(1)]).ok();
    assert_eq!(raw, "user|s:3:\"ann\";cart|a:1:{i:0;s:3:\"A-1\";}");
}

#[test]
fn the_url_can_come_from_the_environment() {
    let server = RedisServer::start();
    let url = url(&server);
    put(&mut store(&url), &sid(2), b"n|i:7;");
    let doc = stickless_env(&[("STICKLESS_URL", &url)], &["--json", "show", &sid(2)]).json();
    assert_eq!(doc["contents"]["n"], 7);
}

#[test]
fn unlock_hands_a_stuck_session_to_its_waiter() {
    let server = RedisServer::start();
    let url = url(&server);
    put(&mut store(&url), &sid(3), b"n|i:1;");
    let mut holder = store(&url);
    let lease = hold(&mut holder, &sid(3));

    let waiter_url = format!("{url}&lock_wait_ms=20000");
    let waiter = thread::spawn(move || {
        let mut s = store(&waiter_url);
        let id = SessionId::parse(&sid(3)).unwrap();
        match s.lock(&id, OpenMode::CreateIfMissing) {
            Ok(Opened::Locked { lease, .. }) => s
                .commit(lease, b"n|i:2;".to_vec(), Duration::from_secs(60))
                .map(|_| true),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        }
    });
    until("the waiter registered", || {
        let doc = stickless(&url, &["--json", "show", &sid(3)]).json();
        doc["lock"]["waiters"] == 1
    });
    let doc = stickless(&url, &["--json", "show", &sid(3)]).json();
    assert_eq!(doc["lock"]["held"], true);
    assert_eq!(doc["lock"]["state"], "held");
    assert!(doc["lock"]["expires_in_ms"].as_i64().unwrap() > 0);
    let text = stickless(&url, &["show", &sid(3)]).ok();
    assert!(text.contains("held by a request"), "{text}");
    assert!(text.contains("1 waiting"), "{text}");

    let out = stickless(&url, &["unlock", &sid(3)]).ok();
    assert!(out.contains("released the lock"), "{out}");
    assert!(
        out.contains("the oldest of 1 waiters gets it next"),
        "{out}"
    );
    assert!(waiter.join().unwrap().unwrap(), "the waiter got the lock");
    // The holder lost its lock and the waiter changed the session: the
    // holder's write is refused, not applied over the waiter's.
    let refused = holder.commit(lease, b"n|i:99;".to_vec(), Duration::from_secs(60));
    assert!(
        matches!(refused, Err(Error::LockLost { .. })),
        "{refused:?}"
    );
    let doc = stickless(&url, &["--json", "show", &sid(3)]).json();
    assert_eq!(doc["contents"]["n"], 2);
    assert_eq!(doc["envelope"]["revision"], 2);

    let again = stickless(&url, &["unlock", &sid(3)]).ok();
    assert!(again.contains("is not locked"), "{again}");
}

#[test]
fn delete_needs_force_while_a_request_holds_the_session() {
    let server = RedisServer::start();
    let url = url(&server);
    let mut s = store(&url);
    put(&mut s, &sid(4), b"n|i:1;");
    let lease = hold(&mut s, &sid(4));

    let err = stickless(&url, &["delete", &sid(4)]).failed();
    assert!(err.contains("locked by a running request"), "{err}");
    assert!(err.contains("--force"), "{err}");
    stickless(&url, &["show", &sid(4)]).ok();

    let out = stickless(&url, &["delete", "--force", &sid(4)]).ok();
    assert!(out.contains("deleted session"), "{out}");
    let gone = stickless(&url, &["show", &sid(4)]).failed();
    assert!(gone.contains("no session {"), "{gone}");
    // The holder's write must not bring the session back.
    let refused = s.commit(lease, b"n|i:2;".to_vec(), Duration::from_secs(60));
    assert!(
        matches!(refused, Err(Error::LockLost { .. })),
        "{refused:?}"
    );
    stickless(&url, &["show", &sid(4)]).failed();

    put(&mut s, &sid(5), b"n|i:1;");
    stickless(&url, &["--json", "delete", &sid(5)]).ok();
    let again = stickless(&url, &["delete", &sid(5)]).failed();
    assert!(again.contains("no session"), "{again}");
}

#[test]
fn encrypted_sessions_open_with_the_urls_keys_only() {
    let server = RedisServer::start();
    let key = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let with_keys = format!("{}&encryption_keys={key}", url(&server));
    put(&mut store(&with_keys), &sid(6), b"secret|s:5:\"hello\";");

    let doc = stickless(&with_keys, &["--json", "show", &sid(6)]).json();
    assert_eq!(doc["encrypted"], true);
    assert_eq!(doc["envelope"]["key_id"], "k1");
    assert_eq!(doc["contents"]["secret"], "hello");

    let without = stickless(&url(&server), &["show", &sid(6)]);
    assert!(
        without.stdout.contains("encrypted (key `k1`)"),
        "{}",
        without.stdout
    );
    let err = without.failed();
    assert!(err.contains("no encryption_keys are configured"), "{err}");
}

#[test]
fn compressed_sessions_are_shown_expanded_and_counted() {
    let server = RedisServer::start();
    let zstd = format!(
        "{}&compression=zstd&compression_threshold=100",
        url(&server)
    );
    let big = format!(
        "text|s:2000:\"{}\";",
        "abc".repeat(2000 / 3 + 1)[..2000].to_owned()
    );
    for n in 0..3 {
        put(&mut store(&zstd), &sid(n), big.as_bytes());
    }
    put(&mut store(&zstd), &sid(3), b"small|i:1;");

    let doc = stickless(&url(&server), &["--json", "show", &sid(0)]).json();
    assert_eq!(doc["compressed"], true);
    assert_eq!(doc["envelope"]["flags"][0], "zstd");
    assert_eq!(doc["payload_size"], big.len());
    assert!(doc["size"].as_u64().unwrap() < 200, "{doc}");
    assert_eq!(doc["contents"]["text"].as_str().unwrap().len(), 2000);

    let doc = stickless(&url(&server), &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 4);
    assert_eq!(doc["compressed"], 3);
    assert_eq!(doc["compressed_share"], 0.75);
    assert_eq!(doc["encrypted"], 0);
}

#[test]
fn a_value_stickless_did_not_write_is_reported_not_misread() {
    let server = RedisServer::start();
    let keys = SessionKeys::derive(PREFIX, &SessionId::parse(&sid(7)).unwrap());
    let _: () = redis::cmd("SET")
        .arg(keys.data())
        .arg("counter|i:1;")
        .query(&mut server.client())
        .unwrap();
    let ran = stickless(&url(&server), &["show", &sid(7)]);
    assert!(ran.stdout.contains("12 bytes stored"), "{}", ran.stdout);
    let err = ran.failed();
    assert!(err.contains("was not written by stickless"), "{err}");

    // A key of another type under a session's name.
    let other = SessionKeys::derive(PREFIX, &SessionId::parse(&sid(8)).unwrap());
    let _: () = redis::cmd("HSET")
        .arg(other.data())
        .arg("f")
        .arg("v")
        .query(&mut server.client())
        .unwrap();
    let err = stickless(&url(&server), &["show", &sid(8)]).failed();
    assert!(err.contains("was not written by stickless"), "{err}");

    let doc = stickless(&url(&server), &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 2);
    assert_eq!(doc["unreadable"], 2);
}

#[test]
fn bad_input_gets_a_message_and_status_1() {
    let server = RedisServer::start();
    let good = url(&server);
    let err = stickless("redis://h?colour=blue", &["show", &sid(1)]).failed();
    assert!(err.contains("unknown option `colour`"), "{err}");
    let err = stickless("memcached://h", &["stats"]).failed();
    assert!(err.contains("scheme"), "{err}");
    let err = stickless(&good, &["show", "../../etc/passwd"]).failed();
    assert!(err.contains("invalid session ID"), "{err}");
    assert!(!err.contains("passwd"), "the ID is not echoed: {err}");
    let err = stickless(&good, &["unlock", ""]).failed();
    assert!(err.contains("invalid session ID"), "{err}");
    let down = format!("redis://127.0.0.1:{}/0", support::free_port());
    for cmd in [&["show", &sid(1)][..], &["stats"], &["delete", &sid(1)]] {
        let err = stickless(&down, cmd).failed();
        assert!(err.contains("cannot connect"), "{err}");
    }
    let err = stickless_env(&[], &["stats"]).failed();
    assert!(err.contains("STICKLESS_URL"), "{err}");
    let err = stickless(&good, &["show", &sid(99)]).failed();
    assert!(
        err.contains("no session") && err.contains("prefix `cli:`"),
        "{err}"
    );
    // Usage errors are clap's: status 2.
    assert_eq!(stickless(&good, &["stats", "--count", "0"]).code, Some(2));
}

#[test]
fn stats_counts_sessions_sizes_locks_and_waiters() {
    let server = RedisServer::start();
    let url = url(&server);
    let mut s = store(&url);
    for n in 0..120 {
        let payload = format!("pad|s:{}:\"{}\";", n * 10, "x".repeat(n * 10));
        put(&mut s, &sid(n), payload.as_bytes());
    }
    let _lease = hold(&mut s, &sid(0));
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("cli:{nothex}:data")
        .arg("x")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("other:key")
        .arg("x")
        .query(&mut con)
        .unwrap();

    let doc = stickless(&url, &["--json", "stats", "--count", "10"]).json();
    assert_eq!(doc["sessions"], 120);
    assert_eq!(doc["locked"], 1);
    assert_eq!(doc["waiters"], 0);
    assert_eq!(doc["foreign_keys"], 1);
    assert_eq!(doc["unreadable"], 0);
    assert!(doc["scan"]["calls"].as_u64().unwrap() > 1, "{doc}");
    let (p50, max) = (
        doc["bytes"]["p50"].as_u64().unwrap(),
        doc["bytes"]["max"].as_u64().unwrap(),
    );
    assert!(p50 < max && max > 1190, "{doc}");
    // Every session was stored with a 24 min TTL: one bucket holds them all.
    let in_bucket: Vec<u64> = doc["ttl_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sessions"].as_u64().unwrap())
        .collect();
    assert_eq!(in_bucket.iter().sum::<u64>(), 120);
    assert!(in_bucket.contains(&120), "{in_bucket:?}");

    let text = stickless(&url, &["stats"]).ok();
    assert!(text.contains("sessions    120"), "{text}");
    assert!(text.contains("1 held"), "{text}");

    let watch = stickless(
        &url,
        &["--json", "stats", "--watch", "0.1", "--rounds", "2"],
    )
    .ok();
    let rounds: Vec<serde_json::Value> = watch
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert_eq!(rounds.len(), 2);
    assert!(rounds.iter().all(|r| r["sessions"] == 120));
}

#[test]
fn check_passes_a_healthy_server_and_names_what_is_wrong() {
    let server = RedisServer::start();
    let url = url(&server);
    let doc = stickless(&url, &["--json", "check"]).json();
    assert_eq!(doc["ok"], true, "{doc}");
    let checks: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for expected in ["tls", "reachable", "version", "eviction", "acl"] {
        assert!(checks.contains(&expected), "{expected} in {checks:?}");
    }
    stickless(&url, &["check"]).ok();

    // A user short of two commands, and durability=replica without replicas.
    let mut con = server.client();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~cli:*")
        .arg("resetchannels")
        .arg("-@all")
        .arg("+get")
        .arg("+set")
        .arg("+del")
        .arg("+pexpire")
        .arg("+pttl")
        .arg("+lpop")
        .arg("+rpush")
        .arg("+lpush")
        .arg("+ltrim")
        .arg("+llen")
        .arg("+zrem")
        .arg("+zremrangebyscore")
        .arg("+zcard")
        .arg("+zscore")
        .arg("+sadd")
        .arg("+sismember")
        .arg("+zrange")
        .arg("+zrangebyscore")
        .arg("+hset")
        .arg("+hsetnx")
        .arg("+hget")
        .arg("+hdel")
        .arg("+pexpireat")
        .arg("+getrange")
        .arg("+getex")
        .arg("+exists")
        .arg("+rename")
        .arg("+time")
        .arg("+evalsha")
        .arg("+eval")
        .arg("+script|load")
        .arg("+wait")
        .arg("+ping")
        .arg("+select")
        .query(&mut con)
        .unwrap();
    let app = format!(
        "redis://app:pw@127.0.0.1:{}/0?prefix=cli:&durability=replica",
        server.port()
    );
    let ran = stickless(&app, &["check"]);
    let text = ran.stdout.clone();
    assert!(text.contains("may not run: blpop, zadd"), "{text}");
    assert!(text.contains("ACL SETUSER app +blpop +zadd"), "{text}");
    assert!(text.contains("INFO is not permitted"), "{text}");
    let err = ran.failed();
    assert!(err.contains("problem(s) found"), "{err}");

    // The documented grants are enough (INFO aside, which is a warning).
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("+zadd")
        .arg("+blpop")
        .query(&mut con)
        .unwrap();
    let app = format!("redis://app:pw@127.0.0.1:{}/0?prefix=cli:", server.port());
    let doc = stickless(&app, &["--json", "check"]).json();
    assert_eq!(doc["ok"], true, "{doc}");

    // Eviction that can drop sessions and locks is a warning with its fix.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("100mb")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query(&mut con)
        .unwrap();
    let text = stickless(&url, &["check"]).ok();
    assert!(
        text.contains("WARN") && text.contains("allkeys-lru"),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
    // No probe key is left behind.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*stickless-check*")
        .query(&mut con)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn check_fails_on_a_node_that_is_down() {
    let down = format!("redis://127.0.0.1:{}/0", support::free_port());
    let ran = stickless(&down, &["--json", "check"]);
    let doc = ran.json();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["findings"][1]["check"], "reachable");
    assert!(
        doc["findings"][1]["fix"]
            .as_str()
            .unwrap()
            .contains("start the node")
    );
    ran.failed();
}

#[test]
fn check_judges_tls() {
    let ca = support::tls::TestCa::generate();
    let (_server, port) = support::tls::tls_server(&ca, false);
    let base = format!("rediss://127.0.0.1:{port}/0?prefix=cli:");

    let good = format!("{base}&tls_ca={}", ca.ca().display());
    let doc = stickless(&good, &["--json", "check"]).json();
    assert_eq!(doc["ok"], true, "{doc}");
    let tls = doc["findings"][0].clone();
    assert_eq!(tls["check"], "tls");
    assert!(
        tls["message"]
            .as_str()
            .unwrap()
            .contains("verified against"),
        "{tls}"
    );

    let wrong = format!("{base}&tls_ca={}", ca.other_ca().display());
    let ran = stickless(&wrong, &["check"]);
    assert!(
        ran.stdout.to_lowercase().contains("certificate"),
        "{}",
        ran.stdout
    );
    ran.failed();

    let insecure = format!("{base}&tls_insecure=1");
    let text = stickless(&insecure, &["check"]).ok();
    assert!(
        text.contains("WARN tls: TLS without certificate verification"),
        "{text}"
    );
}

#[test]
fn show_sees_a_new_session_whose_first_write_is_in_flight() {
    let server = RedisServer::start();
    let url = url(&server);
    let mut s = store(&url);
    let lease = hold(&mut s, &sid(8));
    let doc = stickless(&url, &["--json", "show", &sid(8)]).json();
    assert_eq!(doc["exists"], false);
    assert_eq!(doc["lock"]["held"], true);
    let text = stickless(&url, &["show", &sid(8)]).ok();
    assert!(text.contains("nothing yet"), "{text}");
    let out = stickless(&url, &["delete", "--force", &sid(8)]).ok();
    assert!(out.contains("had nothing stored yet"), "{out}");
    drop(lease);
}

/// Writes `n` sessions the way phpredis 5.3/6.x does: `SETEX
/// PHPREDIS_SESSION:<id> <gc_maxlifetime> <raw session data>`.
fn phpredis_sessions(server: &RedisServer, n: usize) {
    let mut con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SETEX")
                .arg(format!("PHPREDIS_SESSION:{}", sid(*i)))
                .arg(1440)
                .arg(format!("user|s:5:\"u{i:04}\";n|i:{i};"))
                .ignore();
        }
        let _: () = pipe.query(&mut con).expect("SETEX");
    }
}

#[test]
fn import_moves_ten_thousand_phpredis_sessions_once() {
    let server = RedisServer::start();
    let url = url(&server);
    phpredis_sessions(&server, 10_000);
    // A phpredis lock key and a key that names no session are not imported.
    let mut con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let _: () = redis::cmd("SET")
        .arg(format!("PHPREDIS_SESSION:{}_LOCK", sid(5)))
        .arg("web-1|42")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("PHPREDIS_SESSION:not a session id")
        .arg("x")
        .query(&mut con)
        .unwrap();

    // One over the importer's max_size.
    let big = format!("big|s:2000:\"{}\";", "x".repeat(2000));
    let _: () = redis::cmd("SETEX")
        .arg(format!("PHPREDIS_SESSION:{}", sid(10_000)))
        .arg(1440)
        .arg(&big)
        .query(&mut con)
        .unwrap();

    let dry = stickless(
        &url,
        &["--json", "import", "--from", "phpredis", "--dry-run"],
    );
    let dry = dry.json();
    assert_eq!(dry["imported"], 10_001, "{dry}");
    assert_eq!(dry["skipped"]["not_a_session"], 1, "{dry}");
    let left: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(left, 10_003, "a dry run changes nothing");

    // The one held by a (phpredis) request waits for it, up to lock_wait_ms;
    // the big one stays where it is, without a marker.
    let url_short = format!("{url}&lock_wait_ms=200&max_size=1000");
    let first = stickless(&url_short, &["--json", "import", "--from", "phpredis"]).json();
    println!("import of 10,000 phpredis sessions: {first}");
    assert_eq!(first["imported"], 9_999, "{first}");
    assert_eq!(first["skipped"]["busy"], 1, "{first}");
    assert_eq!(first["skipped"]["too_large"], 1, "{first}");
    let big_lock: Option<String> = redis::cmd("GET")
        .arg(format!("PHPREDIS_SESSION:{}_LOCK", sid(10_000)))
        .query(&mut con)
        .unwrap();
    assert_eq!(big_lock, None, "no marker on a session that was not moved");
    // The held lock, and markers of sessions moved during this scan.
    assert!(first["locks"].as_u64().unwrap() >= 1, "{first}");

    // Resumable: once the lock is gone, a second run moves what is left.
    let _: () = redis::cmd("DEL")
        .arg(format!("PHPREDIS_SESSION:{}_LOCK", sid(5)))
        .query(&mut con)
        .unwrap();
    let second = stickless(&url, &["--json", "import", "--from", "phpredis"]).json();
    assert_eq!(second["imported"], 2, "{second}");
    let third = stickless(&url, &["--json", "import", "--from", "phpredis"]).json();
    assert_eq!(third["imported"], 0, "idempotent: {third}");

    let mut s = store(&url);
    for i in [0, 5, 9_999] {
        let id = SessionId::parse(&sid(i)).unwrap();
        let loaded = s.load(&id).expect("load");
        assert_eq!(
            loaded.payload(),
            format!("user|s:5:\"u{i:04}\";n|i:{i};").as_bytes(),
            "session {i}"
        );
        let old: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("PHPREDIS_SESSION:{}", sid(i)))
            .query(&mut con)
            .unwrap();
        assert_eq!(old, None, "the old key of {i} is gone");
    }
    // An import stopped between the native write and the delete: the old
    // key is left under the marker, and the next run deletes it.
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(format!("PHPREDIS_SESSION:{}", sid(7)))
        .arg("n|i:0;")
        .ignore()
        .cmd("SET")
        .arg(format!("PHPREDIS_SESSION:{}_LOCK", sid(7)))
        .arg(stickless::legacy::MOVED)
        .ignore()
        .query(&mut con)
        .unwrap();
    let text = stickless(&url, &["import", "--from", "phpredis:PHPREDIS_SESSION:"]).ok();
    assert!(
        text.contains("imported") && text.contains("skipped"),
        "{text}"
    );
    assert!(
        text.contains("cleaned") && text.contains(" 1 old key"),
        "{text}"
    );
    let err = stickless(
        &format!("{url}&compat=phpredis"),
        &["import", "--from", "phpredis"],
    )
    .failed();
    assert!(err.contains("compat"), "{err}");
    let err = stickless(&url, &["import", "--from", "memcached"]);
    assert_eq!(err.code, Some(2), "{}", err.stderr);
}

#[test]
fn user_sessions_lists_and_logout_user_ends_a_users_sessions() {
    let server = RedisServer::start();
    let url = url(&server);
    let mut s = store(&url);
    let ann = stickless::UserId::parse("ann@example.com").unwrap();
    let ttl = Duration::from_secs(1440);
    for n in 0..3 {
        let mut lease = hold(&mut s, &sid(n));
        s.bind_user(&mut lease, &ann, Some(&format!("device {n}")), ttl)
            .unwrap();
        s.commit(lease, b"n|i:1;".to_vec(), ttl).unwrap();
    }

    let doc = stickless(&url, &["--json", "user-sessions", "ann@example.com"]).json();
    let listed = doc["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{doc}");
    assert!(listed.iter().any(|r| r["label"] == "device 2"), "{doc}");
    assert!(!doc.to_string().contains(&sid(0)), "a session ID in {doc}");
    let text = stickless(&url, &["user-sessions", "ann@example.com"]).ok();
    assert!(
        text.contains("device 1") && text.contains("last seen"),
        "{text}"
    );

    let doc = stickless(
        &url,
        &[
            "--json",
            "logout-user",
            "ann@example.com",
            "--except",
            &sid(0),
        ],
    )
    .json();
    assert_eq!(doc["destroyed"], 2, "{doc}");
    let id = |n| SessionId::parse(&sid(n)).unwrap();
    assert!(matches!(s.load(&id(1)).unwrap(), stickless::Loaded::Empty));
    assert!(matches!(
        s.load(&id(0)).unwrap(),
        stickless::Loaded::Data(_)
    ));
    let text = stickless(&url, &["logout-user", "ann@example.com"]).ok();
    assert!(text.contains("destroyed 1 session(s)"), "{text}");
    let text = stickless(&url, &["user-sessions", "ann@example.com"]).ok();
    assert!(text.contains("no live sessions"), "{text}");

    // Bad input: a clear message and exit status 1, never a panic.
    let err = stickless(&url, &["logout-user", ""]).failed();
    assert!(err.contains("user ID is empty"), "{err}");
    let err = stickless(&url, &["logout-user", "ann", "--except", "bad id!"]).failed();
    assert!(err.contains("invalid session ID"), "{err}");
    let down = "redis://127.0.0.1:1/0?connect_timeout_ms=200";
    let err = stickless(down, &["user-sessions", "ann"]).failed();
    assert!(err.contains("127.0.0.1:1"), "{err}");
}
