//! Micro-benchmarks of the hot paths, and one full request cycle against a
//! local `redis-server` next to its physical limit.
//!
//! ```text
//! cargo bench -p stickless --bench hot_paths            # ~1 min on 2 cores
//! cargo bench -p stickless --bench hot_paths -- cycle   # the Redis part only
//! cargo test  -p stickless --benches                    # each bench once, as a smoke test
//! ```
//!
//! Groups:
//! - `keys/derive`: [`SessionKeys::derive`] for a 32-character ID.
//! - `envelope/{encode,decode,seal,open}/{100B,2KB,20KB}`: the stored value
//!   without and with encryption (XChaCha20-Poly1305).
//! - `compression/{seal,open}/{none,zstd,lz4}`: a compressible 20 KB session
//!   (a cart, as PHP serializes it) stored and read back with each codec,
//!   the CPU a php-fpm worker spends on compression per request.
//! - `scripts/{parse_acquire,parse_fenced}`: the typed script replies.
//! - `cycle/stickless_lock_commit`: `Store::lock` + `Store::commit` of a 2 KB
//!   session, the two round trips of a locked PHP request; and
//!   `cycle/raw_get_set`: a plain `GET` + `SET` of a value of the same stored
//!   size on the same server and connection settings, which no session store
//!   doing two round trips can beat. Their ratio is the protocol's overhead.
//!
//! The cycle group starts its own `redis-server` (on a free loopback port,
//! never 6379, killed by PID when done, also on panic) through the
//! integration tests' helper; it is skipped with a note when the binary
//! (`STICKLESS_REDIS_SERVER`, default `/usr/bin/redis-server`) is absent.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redis::Value;
use stickless::scripts::{AcquireReply, CommitReply};
use stickless::{
    Compression, Config, Envelope, KeyRing, Loaded, OpenMode, Opened, Sealing, SessionId,
    SessionKeys, Store,
};
use support::RedisServer;

/// Payload sizes of the envelope group: a near-empty session, a typical one,
/// a heavy one.
const SIZES: [(usize, &str); 3] = [(100, "100B"), (2_000, "2KB"), (20_000, "20KB")];
/// Payload size of the script-reply and cycle benchmarks.
const TYPICAL: usize = 2_000;
/// A 32-character session ID (PHP's default `sid_length`).
const SID: &str = "0123456789abcdefghijklmnopqrstuv";
/// A fixed test key (not a secret): `k1:` + base64 of bytes 0..32.
const RING: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TTL: Duration = Duration::from_secs(1440);
const NOW_MS: u64 = 1_700_000_000_000;

/// A PHP-serialized-looking payload of exactly `len` bytes.
fn payload(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut n = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("field_{n}|s:16:\"value-{n:010}\";").as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

fn sid() -> SessionId {
    SessionId::parse(SID).expect("benchmark session ID is valid")
}

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("keys");
    micro(&mut group);
    let id = sid();
    group.bench_function("derive", |b| {
        b.iter(|| SessionKeys::derive(black_box("stickless:"), black_box(&id)))
    });
    group.finish();
}

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    micro(&mut group);
    let ring = KeyRing::parse(RING).expect("benchmark key ring parses");
    let tag = SessionKeys::derive("stickless:", &sid()).tag().to_owned();
    for (len, label) in SIZES {
        let env = Envelope::new(payload(len), NOW_MS).next(payload(len), NOW_MS + 1);
        let plain = env.encode();
        let keyed = Sealing {
            keys: Some(&ring),
            ..Sealing::PLAIN
        };
        let sealed = env.clone().seal(&keyed, &tag).expect("seal");
        assert_eq!(Envelope::decode(&plain).as_ref(), Ok(&env));
        assert_eq!(Envelope::open(&sealed, &keyed, &tag).as_ref(), Ok(&env));
        group.throughput(Throughput::Bytes(len as u64));

        group.bench_with_input(BenchmarkId::new("encode", label), &env, |b, env| {
            b.iter(|| black_box(env).encode())
        });
        group.bench_with_input(BenchmarkId::new("decode", label), &plain, |b, bytes| {
            b.iter(|| Envelope::decode(black_box(bytes)))
        });
        // `seal` takes the envelope by value, as the driver does: the clone
        // is made outside the timed part.
        group.bench_with_input(BenchmarkId::new("seal", label), &env, |b, env| {
            b.iter_batched(
                || env.clone(),
                |env| env.seal(&keyed, black_box(&tag)),
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("open", label), &sealed, |b, bytes| {
            b.iter(|| Envelope::open(black_box(bytes), &keyed, black_box(&tag)))
        });
    }
    group.finish();
}

/// About 20 KB of a cart as PHP's `php` serializer writes it: text that
/// repeats in structure, not in content.
fn cart() -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "organic", "green", "tea", "ceramic", "mug", "linen", "apron", "oak", "board", "cast",
        "iron", "pan",
    ];
    let mut s = String::from("cart|a:160:{");
    for i in 0..160usize {
        let k = i * 13 % 97;
        let name = format!(
            "{} {} {}",
            WORDS[k % 12],
            WORDS[k / 3 % 12],
            WORDS[k / 7 % 12]
        );
        s.push_str(&format!(
            "i:{i};a:4:{{s:3:\"sku\";s:9:\"SKU-{:05}\";s:4:\"name\";s:{}:\"{name}\";s:3:\"qty\";i:{};s:5:\"price\";d:{}.{:02};}}",
            k * 31,
            name.len(),
            k % 4 + 1,
            3 + k % 120,
            k % 100
        ));
    }
    s.push('}');
    s.into_bytes()
}

fn compression(c: &mut Criterion) {
    let mut group = c.benchmark_group("compression");
    micro(&mut group);
    let tag = SessionKeys::derive("stickless:", &sid()).tag().to_owned();
    let env = Envelope::new(cart(), NOW_MS);
    group.throughput(Throughput::Bytes(env.payload.len() as u64));
    for (codec, label) in [
        (Compression::None, "none"),
        (Compression::Zstd, "zstd"),
        (Compression::Lz4, "lz4"),
    ] {
        let how = Sealing {
            compression: codec,
            compression_threshold: 1024,
            max_size: 1 << 20,
            ..Sealing::PLAIN
        };
        let stored = env.clone().seal(&how, &tag).expect("seal");
        assert_eq!(Envelope::open(&stored, &how, &tag).as_ref(), Ok(&env));
        if codec != Compression::None {
            assert!(stored.len() * 3 < env.payload.len(), "{label} compresses");
        }
        group.bench_with_input(BenchmarkId::new("seal", label), &env, |b, env| {
            b.iter_batched(
                || env.clone(),
                |env| env.seal(&how, black_box(&tag)),
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("open", label), &stored, |b, bytes| {
            b.iter(|| Envelope::open(black_box(bytes), &how, black_box(&tag)))
        });
    }
    group.finish();
}

fn scripts(c: &mut Criterion) {
    let mut group = c.benchmark_group("scripts");
    micro(&mut group);
    let acquired = Value::Array(vec![Value::Int(1), Value::BulkString(payload(TYPICAL))]);
    assert!(matches!(
        AcquireReply::parse(&acquired),
        Ok(AcquireReply::Acquired { data: Some(ref d), .. }) if d.len() == TYPICAL
    ));
    group.bench_function("parse_acquire", |b| {
        b.iter(|| AcquireReply::parse(black_box(&acquired)))
    });
    let done = Value::Array(vec![Value::Int(1)]);
    assert_eq!(CommitReply::parse(&done).ok(), Some(CommitReply::Done));
    group.bench_function("parse_fenced", |b| {
        b.iter(|| CommitReply::parse(black_box(&done)))
    });
    group.finish();
}

fn cycle(c: &mut Criterion) {
    let binary =
        std::env::var("STICKLESS_REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    if !Path::new(&binary).exists() {
        eprintln!("cycle: skipped, no redis-server at {binary} (set STICKLESS_REDIS_SERVER)");
        return;
    }
    // Dropped at the end of this function, or while unwinding from a panic
    // in any benchmark below: either way the server is killed by its PID.
    let server = RedisServer::start();
    let mut store = Store::new(
        Config::parse(&format!("{}?prefix=bench:", server.url())).expect("benchmark URL parses"),
    );
    let id = sid();
    let body = payload(TYPICAL);

    // Seed the session, so every measured cycle reads and rewrites 2 KB.
    let lease = match store.lock(&id, OpenMode::CreateIfMissing).expect("lock") {
        Opened::Locked { lease, .. } => lease,
        other => panic!("expected a lock, got {other:?}"),
    };
    store.commit(lease, body, TTL).expect("commit");
    let mut con = server.client();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(store.keys(&id).data())
        .query(&mut con)
        .expect("GET the seeded session");
    // The baseline moves the same number of bytes each way.
    let raw_key = "bench:raw";
    redis::cmd("SET")
        .arg(raw_key)
        .arg(&stored)
        .query::<()>(&mut con)
        .expect("SET the baseline value");

    assert_two_round_trips(&mut store, &id, &mut con);

    let mut group = c.benchmark_group("cycle");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    group.bench_function("stickless_lock_commit", |b| {
        b.iter(|| lock_commit(&mut store, &id))
    });
    group.bench_function("raw_get_set", |b| {
        b.iter(|| {
            let value: Vec<u8> = redis::cmd("GET").arg(raw_key).query(&mut con).expect("GET");
            redis::cmd("SET")
                .arg(raw_key)
                .arg(value)
                .query::<()>(&mut con)
                .expect("SET");
        })
    });
    group.finish();
    drop(server);
}

/// One locked request that rewrites what it read: `Store::lock` (acquire +
/// read) and `Store::commit` (fenced write + release).
fn lock_commit(store: &mut Store, id: &SessionId) {
    let (lease, loaded) = match store.lock(id, OpenMode::CreateIfMissing) {
        Ok(Opened::Locked { lease, loaded, .. }) => (lease, loaded),
        other => panic!("expected a lock, got {other:?}"),
    };
    let Loaded::Data(env) = loaded else {
        panic!("expected the seeded session, got {loaded:?}");
    };
    store.commit(lease, env.payload, TTL).expect("commit");
}

/// Checks that a cycle is two round trips, like the baseline's GET + SET: the
/// store counts them, and the server saw the lock's pipelined SET NX + GET
/// and one script call, with no script reloads or extra commands hiding in
/// the driver.
fn assert_two_round_trips(store: &mut Store, id: &SessionId, con: &mut redis::Connection) {
    const CYCLES: u64 = 10;
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(con)
        .expect("CONFIG RESETSTAT");
    let before = store.round_trips();
    for _ in 0..CYCLES {
        lock_commit(store, id);
    }
    assert_eq!(store.round_trips() - before, 2 * CYCLES);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .expect("INFO commandstats");
    let calls = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(calls("evalsha"), CYCLES, "{stats}");
    for other in [
        "eval",
        "script|load",
        "ping",
        "select",
        "client|setinfo",
        "hello",
    ] {
        assert_eq!(calls(other), 0, "{other} in a cycle:\n{stats}");
    }
}

/// Budget of the in-memory groups: short, they are nanoseconds to microseconds
/// each and vary little.
fn micro(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

criterion_group!(benches, keys, envelope, compression, scripts, cycle);
criterion_main!(benches);
