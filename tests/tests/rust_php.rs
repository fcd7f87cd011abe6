//! PHP and a Rust service on the very same sessions: real php processes, a
//! real Redis, the async Rust API. PHP writes and Rust reads, Rust writes
//! and PHP reads, for both of PHP's serialize handlers; and PHP processes
//! and Rust tasks incrementing one session at once lose nothing.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stickless::aio::Store;
use stickless::php::SerializeHandler;
use stickless::{Config, SessionId};
use stickless_e2e::{RedisServer, php};

const HANDLERS: [(&str, SerializeHandler); 2] = [
    ("php", SerializeHandler::Php),
    ("php_serialize", SerializeHandler::PhpSerialize),
];

fn url(redis: &RedisServer) -> String {
    format!("redis://127.0.0.1:{}/0?prefix=mix:", redis.port())
}

/// `php -r CODE` on stickless with the given serialize handler.
fn php_with(url: &str, handler: &str, code: &str) -> Command {
    let mut cmd = php();
    cmd.args(["-d", "session.save_handler=stickless"])
        .arg("-d")
        .arg(format!("session.save_path=\"{url}\""))
        .arg("-d")
        .arg(format!("session.serialize_handler={handler}"))
        .args([
            "-d",
            "session.use_cookies=0",
            "-d",
            "session.cache_limiter=",
        ])
        .args(["-r", code]);
    cmd
}

fn run_php(url: &str, handler: &str, code: &str) -> String {
    let out = php_with(url, handler, code).output().expect("php runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "php failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[derive(Debug, Deserialize, PartialEq)]
struct User {
    id: i64,
    name: String,
    admin: bool,
    score: f64,
    tags: Vec<String>,
    manager: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Item {
    sku: String,
    qty: i64,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn php_writes_and_rust_reads_with_both_handlers() {
    let redis = RedisServer::start();
    let url = url(&redis);
    let rt = runtime();
    for (name, handler) in HANDLERS {
        let sid = run_php(
            &url,
            name,
            r#"session_start();
            $_SESSION['user'] = ['id' => 42, 'name' => "Ada \"L\" ü", 'admin' => true, 'score' => 0.1, 'tags' => ['a', 'b'], 'manager' => null];
            $_SESSION['visits'] = 3;
            echo session_id();"#,
        );
        let id = SessionId::parse(&sid).expect("PHP's ID is valid");
        let store = Store::with_php(
            Config::parse(&url).unwrap(),
            handler,
            Duration::from_secs(60),
        );
        let session = rt
            .block_on(store.read(&id))
            .unwrap()
            .expect("the session PHP wrote");
        let user: User = session.get("user").unwrap().expect("user is set");
        assert_eq!(
            user,
            User {
                id: 42,
                name: "Ada \"L\" ü".into(),
                admin: true,
                score: 0.1,
                tags: vec!["a".into(), "b".into()],
                manager: None,
            },
            "{name}"
        );
        assert_eq!(session.get::<i64>("visits").unwrap(), Some(3), "{name}");
        assert_eq!(session.get::<i64>("absent").unwrap(), None, "{name}");
    }
}

#[test]
fn rust_writes_and_php_reads_with_both_handlers() {
    let redis = RedisServer::start();
    let url = url(&redis);
    let rt = runtime();
    for (name, handler) in HANDLERS {
        let sid = run_php(
            &url,
            name,
            "session_start(); $_SESSION['user'] = ['id' => 7]; $_SESSION['cart'] = []; echo session_id();",
        );
        let id = SessionId::parse(&sid).unwrap();
        let store = Store::with_php(
            Config::parse(&url).unwrap(),
            handler,
            Duration::from_secs(60),
        );
        rt.block_on(async {
            let mut guard = store.open(&id).await.unwrap().expect("exists");
            let mut cart: Vec<Item> = guard.get("cart").unwrap().unwrap_or_default();
            cart.push(Item {
                sku: "tea".into(),
                qty: 2,
            });
            cart.push(Item {
                sku: "cake".into(),
                qty: 1,
            });
            guard.set("cart", &cart).unwrap();
            guard.set("from_rust", &"héllo").unwrap();
            guard.commit().await.unwrap();
        });
        let shown = run_php(
            &url,
            name,
            &format!(
                "session_id('{sid}'); session_start(['read_and_close' => true]); echo json_encode($_SESSION);"
            ),
        );
        let shown: serde_json::Value = serde_json::from_str(&shown).expect("PHP printed JSON");
        assert_eq!(
            shown,
            serde_json::json!({
                "user": {"id": 7},
                "cart": [{"sku": "tea", "qty": 2}, {"sku": "cake", "qty": 1}],
                "from_rust": "héllo"
            }),
            "{name}"
        );
        // A session Rust did not change is only touched, never rewritten.
        let before = rt.block_on(store.load(&id)).unwrap();
        rt.block_on(async {
            store
                .open(&id)
                .await
                .unwrap()
                .unwrap()
                .commit()
                .await
                .unwrap()
        });
        let after = rt.block_on(store.load(&id)).unwrap();
        assert_eq!(before, after, "{name}: an unchanged session was rewritten");
    }
}

#[test]
fn php_processes_and_rust_tasks_incrementing_one_session_lose_nothing() {
    const PHP_PROCESSES: usize = 4;
    const PHP_ROUNDS: usize = 15;
    const RUST_TASKS: usize = 4;
    const RUST_ROUNDS: usize = 15;
    let redis = RedisServer::start();
    let url = format!("{}&lock_wait_ms=20000", url(&redis));
    let sid = run_php(
        &url,
        "php",
        "session_start(); $_SESSION['n'] = 0; echo session_id();",
    );
    let id = SessionId::parse(&sid).unwrap();

    let code = format!(
        "for ($i = 0; $i < {PHP_ROUNDS}; $i++) {{ session_id('{sid}'); if (!session_start()) exit(2); $_SESSION['n']++; if (!session_write_close()) exit(3); }}"
    );
    let children: Vec<_> = (0..PHP_PROCESSES)
        .map(|_| {
            php_with(&url, "php", &code)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("php starts")
        })
        .collect();

    let rt = runtime();
    let store = Store::new(Config::parse(&url).unwrap());
    rt.block_on(async {
        let tasks: Vec<_> = (0..RUST_TASKS)
            .map(|_| {
                let store = store.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    for _ in 0..RUST_ROUNDS {
                        let mut guard = store.open(&id).await.unwrap().expect("exists");
                        let n: i64 = guard.get("n").unwrap().unwrap_or(0);
                        guard.set("n", &(n + 1)).unwrap();
                        guard.commit().await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task finished");
        }
    });
    for child in children {
        let out = child.wait_with_output().expect("php exits");
        assert!(
            out.status.success(),
            "php exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let session = rt.block_on(store.read(&id)).unwrap().unwrap();
    assert_eq!(
        session.get::<i64>("n").unwrap(),
        Some((PHP_PROCESSES * PHP_ROUNDS + RUST_TASKS * RUST_ROUNDS) as i64)
    );
}
