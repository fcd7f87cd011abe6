//! Audit: no warning, phpinfo() row or Redis command ever carries a live
//! session ID. Runs the paths that produce messages (lock timeout, lost
//! lock, corrupt and undecryptable values, oversize writes, Redis down) with
//! known IDs, and scans everything that came out.

use std::time::Duration;

use stickless::{SessionId, SessionKeys};
use stickless_e2e::{RedisServer, monitor, php_session};

const IDS: [&str; 3] = [
    "leakcheckfirstsession0123456789",
    "leakcheckSecondSession,abc-def-123",
    "leakcheckthirdsession9876543210",
];

fn script(port: u16) -> String {
    format!(
        r#"
$url = 'redis://127.0.0.1:{port}/0?prefix=leak:&lock_wait_ms=50&lock_ttl_ms=200&max_size=64&strict_mode=0';
[$a, $b, $c] = ['{a}', '{b}', '{c}'];
$h = new Stickless\SessionHandler($url);
$h->read($a); $h->write($a, 'n|i:1;');

// Lock timeout: another handler holds $a.
$other = new Stickless\SessionHandler($url);
$other->read($a);
var_dump($h->read($a));
$other->write($a, 'n|i:2;');

// Lost lock: the lease runs out (lock_ttl_ms=200) before the write.
$h->read($b); usleep(300000); $h->write($b, 'n|i:3;');

// Oversize write.
$h->read($c); $h->write($c, str_repeat('x', 100));
"#,
        a = IDS[0],
        b = IDS[1],
        c = IDS[2],
    )
}

fn run(url: &str, code: &str) -> String {
    let out = php_session(url, code).output().expect("php runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_message_and_no_redis_command_carries_a_session_id() {
    let redis = RedisServer::start();
    let port = redis.port();
    let lines = monitor(port);
    let url = format!("redis://127.0.0.1:{port}/0?prefix=leak:&strict_mode=0");
    let mut output = String::new();

    // The object handler's error paths.
    output += &run(&url, &script(port));

    // The native handler: corrupt, undecryptable, Redis down, phpinfo().
    let mut con = redis.client();
    let first = SessionId::parse(IDS[0]).expect("a valid ID");
    let _: () = redis::cmd("SET")
        .arg(SessionKeys::derive("leak:", &first).data())
        .arg("foreign|s:1:\"x\";")
        .query(&mut con)
        .expect("SET");
    for id in IDS {
        output += &run(
            &url,
            &format!(
                "session_id('{id}'); session_start(); $_SESSION['v'] = 1; session_write_close(); phpinfo(INFO_MODULES);"
            ),
        );
    }
    let keyed = format!("{url}&encryption_keys=k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    output += &run(
        &keyed,
        &format!("session_id('{}'); session_start();", IDS[1]),
    );
    output += &run(
        "redis://127.0.0.1:1/0?strict_mode=0",
        &format!("session_id('{}'); session_start();", IDS[2]),
    );

    // The runs produced the messages under audit...
    for expected in [
        "locked by another request",
        "refused",
        "over max_size",
        "unreadable value",
        "redis://127.0.0.1:1/0",
        "Sessions opened",
    ] {
        assert!(output.contains(expected), "no `{expected}` in:\n{output}");
    }
    // ...and none of them, nor any command Redis saw, names a session.
    let mut seen = 0;
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen += 1;
        for id in IDS {
            assert!(!line.contains(id), "Redis saw a session ID: {line}");
        }
    }
    assert!(seen > 10, "MONITOR saw only {seen} commands");
    for id in IDS {
        assert!(!output.contains(id), "output names a session ID:\n{output}");
    }
}
