//! Compressed sessions across PHP and Rust: real php processes, a real
//! Redis, the async Rust API. Whatever one side writes (compressed with
//! either codec, encrypted or not), the other reads, whatever its own
//! `compression` says; a damaged or oversized compressed value is reported
//! and left in place.

use std::time::Duration;

use redis::Commands;
use stickless::aio::Store;
use stickless::php::SerializeHandler;
use stickless::{Compression, Config, CorruptKind, Envelope, Error, SessionId};
use stickless_e2e::{RedisServer, php, php_session};

const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn url(redis: &RedisServer, query: &str) -> String {
    format!("redis://127.0.0.1:{}/0?prefix=zip:{query}", redis.port())
}

fn run_php(url: &str, code: &str) -> (String, String) {
    let out = php_session(url, code).output().expect("php runs");
    assert!(out.status.success(), "php exit {}", out.status);
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The stored value of session `sid`, as Redis holds it.
fn raw(redis: &RedisServer, store: &Store, sid: &str) -> Vec<u8> {
    let id = SessionId::parse(sid).expect("valid ID");
    let key = store.keys(&id).data();
    redis.client().get(key).expect("GET the data key")
}

/// The codec a stored value's flags name.
fn codec_of(stored: &[u8]) -> Compression {
    let flags = Envelope::decode(stored).expect("an envelope").flags;
    match (flags & 2 != 0, flags & 4 != 0) {
        (true, false) => Compression::Zstd,
        (false, true) => Compression::Lz4,
        _ => Compression::None,
    }
}

/// PHP code that stores a cart of about 12 KB and prints the session ID.
const PHP_CART: &str = r#"session_start();
    $cart = [];
    for ($i = 0; $i < 120; $i++) { $cart[] = ['sku' => sprintf('SKU-%04d', $i), 'name' => 'Green tea, loose leaf', 'qty' => $i % 3 + 1]; }
    $_SESSION['cart'] = $cart;
    echo session_id();"#;

#[test]
fn php_writes_compressed_and_rust_reads_it_with_any_setting() {
    let redis = RedisServer::start();
    let rt = runtime();
    for (query, codec) in [
        ("&compression=zstd", Compression::Zstd),
        ("&compression=lz4", Compression::Lz4),
        (
            &format!("&compression=zstd&encryption_keys={KEYS}") as &str,
            Compression::Zstd,
        ),
    ] {
        let (sid, stderr) = run_php(&url(&redis, query), PHP_CART);
        assert!(stderr.is_empty(), "{query}: {stderr}");
        // Rust reads with compression off: the flags, not the reader's
        // setting, say how to decode.
        let reader_query = if query.contains("encryption_keys") {
            format!("&encryption_keys={KEYS}")
        } else {
            String::new()
        };
        let store = Store::with_php(
            Config::parse(&url(&redis, &reader_query)).unwrap(),
            SerializeHandler::Php,
            Duration::from_secs(60),
        );
        let stored = raw(&redis, &store, &sid);
        assert_eq!(codec_of(&stored), codec, "{query}");
        assert!(stored.len() < 12_000 / 3, "{query}: {} bytes", stored.len());
        let id = SessionId::parse(&sid).unwrap();
        let session = rt.block_on(store.read(&id)).unwrap().expect("the session");
        let cart: Vec<serde_json::Value> = session.get("cart").unwrap().expect("cart is set");
        assert_eq!(cart.len(), 120, "{query}");
        assert_eq!(cart[119]["sku"], "SKU-0119", "{query}");
    }
}

#[test]
fn rust_writes_compressed_and_php_reads_it_uncompressed() {
    let redis = RedisServer::start();
    let rt = runtime();
    for codec in ["zstd", "lz4"] {
        let (sid, _) = run_php(
            &url(&redis, ""),
            "session_start(); $_SESSION['n'] = 1; echo session_id();",
        );
        let store = Store::with_php(
            Config::parse(&url(&redis, &format!("&compression={codec}"))).unwrap(),
            SerializeHandler::Php,
            Duration::from_secs(60),
        );
        let id = SessionId::parse(&sid).unwrap();
        let notes: Vec<String> = (0..200).map(|i| format!("note number {i}")).collect();
        rt.block_on(async {
            let mut guard = store.open(&id).await.unwrap().expect("exists");
            guard.set("notes", &notes).unwrap();
            guard.commit().await.unwrap();
        });
        assert_eq!(
            codec_of(&raw(&redis, &store, &sid)).name(),
            codec,
            "Rust stored it compressed"
        );
        // PHP, configured without compression, reads it and writes it back
        // uncompressed: an old-style value, which Rust reads again.
        let (shown, stderr) = run_php(
            &url(&redis, ""),
            &format!(
                "session_id('{sid}'); session_start(); echo count($_SESSION['notes']), ' ', $_SESSION['notes'][199]; $_SESSION['n']++;"
            ),
        );
        assert!(stderr.is_empty(), "{codec}: {stderr}");
        assert_eq!(shown, "200 note number 199", "{codec}");
        assert_eq!(
            codec_of(&raw(&redis, &store, &sid)),
            Compression::None,
            "{codec}"
        );
        let session = rt.block_on(store.read(&id)).unwrap().unwrap();
        assert_eq!(session.get::<i64>("n").unwrap(), Some(2), "{codec}");
    }
}

#[test]
fn a_damaged_compressed_session_is_reported_and_left_in_place() {
    // Before: nothing would tell a damaged compressed value from garbage in
    // the session, and the next write would replace it without a word.
    let redis = RedisServer::start();
    let url = url(&redis, "&compression=zstd");
    let (sid, _) = run_php(&url, PHP_CART);
    let store = Store::new(Config::parse(&url).unwrap());
    let stored = raw(&redis, &store, &sid);
    let mut env = Envelope::decode(&stored).unwrap();
    let mid = env.payload.len() / 2;
    env.payload[mid] ^= 0xA5;
    let damaged = env.encode();
    let key = store.keys(&SessionId::parse(&sid).unwrap()).data();
    let _: () = redis.client().set(&key, &damaged).unwrap();

    let (shown, stderr) = run_php(
        &url,
        &format!("session_id('{sid}'); session_start(); echo count($_SESSION);"),
    );
    assert_eq!(shown, "0", "the damaged session opens empty");
    assert!(
        stderr.contains("zstd-compressed payload is damaged"),
        "the warning says what is wrong: {stderr}"
    );
    assert!(!stderr.contains(&sid), "the warning does not name the ID");
    let after: Vec<u8> = redis.client().get(&key).unwrap();
    assert_eq!(after, damaged, "the damaged value was left as it was");

    let rt = runtime();
    let err = rt
        .block_on(store.read(&SessionId::parse(&sid).unwrap()))
        .expect_err("Rust reports it too");
    assert!(
        matches!(
            err,
            Error::Unreadable {
                kind: CorruptKind::Decompression { codec: "zstd", .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_value_that_expands_past_max_size_is_refused() {
    // 16 MB of one byte compress to a few hundred: a writer with a larger
    // max_size (or a decompression bomb) must not make a worker allocate it.
    let redis = RedisServer::start();
    let rt = runtime();
    let (sid, _) = run_php(
        &url(&redis, ""),
        "session_start(); $_SESSION['n'] = 1; echo session_id();",
    );
    let id = SessionId::parse(&sid).unwrap();
    let big = Store::with_php(
        Config::parse(&url(&redis, "&compression=zstd&max_size=33554432")).unwrap(),
        SerializeHandler::Php,
        Duration::from_secs(60),
    );
    rt.block_on(async {
        let mut guard = big.open(&id).await.unwrap().expect("exists");
        guard.set("blob", &"a".repeat(16 << 20)).unwrap();
        guard.commit().await.unwrap();
    });
    let stored = raw(&redis, &big, &sid);
    assert!(stored.len() < 64 * 1024, "{} bytes", stored.len());

    let (shown, stderr) = run_php(
        &url(&redis, ""),
        &format!("session_id('{sid}'); session_start(); echo count($_SESSION);"),
    );
    assert_eq!(shown, "0");
    assert!(
        stderr.contains("over max_size 4194304"),
        "the warning names the limit: {stderr}"
    );
    let after: Vec<u8> = redis.client().get(big.keys(&id).data()).unwrap();
    assert_eq!(after, stored, "left in place");
}

#[test]
fn the_ini_setting_applies_and_the_query_overrides_it() {
    let redis = RedisServer::start();
    let store = Store::new(Config::parse(&url(&redis, "")).unwrap());
    for (query, codec) in [
        ("", Compression::Lz4),
        ("&compression=none", Compression::None),
    ] {
        let out = php()
            .args(["-d", "stickless.compression=lz4"])
            .args(["-d", "session.save_handler=stickless"])
            .arg("-d")
            .arg(format!("session.save_path=\"{}\"", url(&redis, query)))
            .args([
                "-d",
                "session.use_cookies=0",
                "-d",
                "session.cache_limiter=",
            ])
            .args(["-r", PHP_CART])
            .output()
            .expect("php runs");
        assert!(out.status.success() && out.stderr.is_empty(), "{query}");
        let sid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(codec_of(&raw(&redis, &store, &sid)), codec, "{query:?}");
    }
}

#[test]
fn bad_compression_settings_are_refused_with_the_option_named() {
    let redis = RedisServer::start();
    for (query, needle) in [
        (
            "&compression=gzip",
            "`compression` has invalid value `gzip`",
        ),
        (
            "&compression_threshold=-1",
            "`compression_threshold` has invalid value `-1`",
        ),
    ] {
        let (shown, stderr) = run_php(&url(&redis, query), "var_export(session_start());");
        assert_eq!(shown, "false", "{query}");
        assert!(stderr.contains(needle), "{query}: {stderr}");
    }
}
