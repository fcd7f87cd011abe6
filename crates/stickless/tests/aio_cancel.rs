//! Rust services cancel futures all the time (client gone, timeouts,
//! `select!`). Each test here drops a store future at every await point it
//! has, one run per point, and then checks what the next user of the store
//! finds: no lock, no registration left behind, and connections that answer
//! their own commands at once.
//!
//! Before: a future cancelled during a `BLPOP` or a `WAIT` returned its
//! connection to the pool with the command still in flight (the next user
//! read a stale reply or waited behind it), and one cancelled after the lock
//! was taken left a lock that nothing released.

#![cfg(feature = "tokio")]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::Commands;
use stickless::aio::Store;
use stickless::{Config, OpenMode, Opened, SessionId};
use support::RedisServer;

const TTL: Duration = Duration::from_secs(60);
/// Far below every wait in play, far above a loaded machine's noise.
const PROMPT: Duration = Duration::from_millis(500);
/// Await points tried at most per operation (each is one run).
const MAX_POINTS: usize = 200;

/// Polls `inner` until it has been pending `pendings` times, then drops it
/// there: a cancellation at that await point.
struct CancelAfter<F: Future> {
    inner: Pin<Box<F>>,
    pendings: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if self.pendings == 0 => Poll::Ready(None),
            Poll::Pending => {
                self.pendings -= 1;
                Poll::Pending
            }
        }
    }
}

fn cancel_after<F: Future>(pendings: usize, f: F) -> CancelAfter<F> {
    CancelAfter {
        inner: Box::pin(f),
        pendings,
    }
}

fn sid(name: &str) -> SessionId {
    SessionId::parse(&format!("{name}-0123456789abcdefghijklmnop")).expect("valid ID")
}

fn store(server: &RedisServer, query: &str) -> Store {
    Store::new(Config::parse(&format!("{}?prefix=c:&{query}", server.url())).expect("URL"))
}

/// One thread: a reply can only arrive while the future under test is
/// pending, so each run stops at the same await point.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits (bounded) until the store's keeper has nothing left to clear.
async fn settled(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.background().1 > 0 {
        assert!(Instant::now() < deadline, "the keeper did not settle");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The store's connections answer their own commands, promptly: each load
/// of a probe session (twenty, so every pooled connection takes a turn)
/// returns the probe's value, not a stale reply, and does not queue behind
/// a blocking command.
async fn connections_are_clean(store: &Store, probe: &SessionId, expected: &[u8]) {
    for _ in 0..20 {
        let started = Instant::now();
        let loaded = store.load(probe).await.expect("probe loads");
        assert_eq!(
            loaded.payload(),
            expected,
            "a stale reply reached the probe"
        );
        assert!(
            started.elapsed() < PROMPT,
            "queued behind a blocking command"
        );
    }
}

/// The store's waits are served at once: a waiter on another session is
/// woken right after that session's holder hands off (a wait connection
/// left mid-`BLPOP` would make this one queue behind it).
async fn waits_are_clean(waiter: &Store, holder: &Store, con: &mut redis::Connection) {
    let id = sid("other-wait");
    let keys = holder.keys(&id);
    let Opened::Locked { lease, .. } = holder.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
    else {
        panic!("free lock")
    };
    let next = {
        let waiter = waiter.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let opened = waiter.lock(&id, OpenMode::CreateIfMissing).await;
            let at = Instant::now();
            if let Ok(Opened::Locked { lease, .. }) = opened {
                waiter.release(lease).await.unwrap();
            }
            at
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while con.zcard::<_, usize>(keys.queue()).unwrap() == 0 {
        assert!(Instant::now() < deadline, "the waiter did not queue");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    holder.release(lease).await.unwrap();
    let released = Instant::now();
    let woken = next.await.expect("waiter task");
    let late = woken.saturating_duration_since(released);
    assert!(
        late < PROMPT,
        "the next waiter was woken {late:?} after the hand-off"
    );
}

async fn probe(store: &Store) -> SessionId {
    let id = sid("probe");
    if let Opened::Locked { lease, .. } = store.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
    {
        store.commit(lease, b"probe".to_vec(), TTL).await.unwrap();
    }
    id
}

#[test]
fn a_lock_cancelled_at_any_await_point_leaves_no_lock_and_clean_connections() {
    let server = RedisServer::start();
    let rt = runtime();
    let mut con = server.client();
    rt.block_on(async {
        let probe = probe(&store(&server, "")).await;
        let id = sid("cancelled-lock");
        let keys = store(&server, "").keys(&id);
        let mut points = 0;
        for n in 0..MAX_POINTS {
            // A store of its own each time: the first steps also connect,
            // and those are await points too.
            let store = store(&server, "");
            match cancel_after(n, store.lock(&id, OpenMode::CreateIfMissing)).await {
                Some(opened) => {
                    if let Opened::Locked { lease, .. } = opened.expect("lock") {
                        store.release(lease).await.unwrap();
                    }
                    break;
                }
                None => points += 1,
            }
            settled(&store).await;
            let locked: bool = con.exists(keys.lock()).unwrap();
            assert!(!locked, "cancelled after {n} pendings: lock left behind");
            connections_are_clean(&store, &probe, b"probe").await;
        }
        assert!(points > 0, "nothing was cancelled: the test proves nothing");
        println!("lock: cancelled at {points} await points");
    });
}

#[test]
fn a_waiter_cancelled_while_blocked_leaves_no_registration_and_clean_connections() {
    let server = RedisServer::start();
    let rt = runtime();
    let mut con = server.client();
    rt.block_on(async {
        let holder = store(&server, "");
        let id = sid("cancelled-wait");
        let keys = holder.keys(&id);
        let Opened::Locked { lease, .. } =
            holder.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
        else {
            panic!("free lock")
        };
        // A waiter that blocks in BLPOP for up to a claim window (2 s), far
        // longer than PROMPT: a connection left in the pool mid-BLPOP shows.
        let waiter = store(&server, "lock_wait_ms=2500");
        let probe = probe(&waiter).await;
        let mut points = 0;
        for n in 0..MAX_POINTS {
            match cancel_after(n, waiter.lock(&id, OpenMode::CreateIfMissing)).await {
                Some(outcome) => {
                    assert!(outcome.is_err(), "the holder still holds it");
                    break;
                }
                None => points += 1,
            }
            settled(&waiter).await;
            let registered: usize = con.zcard(keys.queue()).unwrap();
            assert_eq!(
                registered, 0,
                "cancelled after {n} pendings: still registered"
            );
            connections_are_clean(&waiter, &probe, b"probe").await;
            waits_are_clean(&waiter, &holder, &mut con).await;
        }
        assert!(points > 1, "never cancelled inside the wait");
        println!("wait: cancelled at {points} await points");
        holder.commit(lease, b"held".to_vec(), TTL).await.unwrap();
        let locked: bool = con.exists(keys.lock()).unwrap();
        assert!(!locked, "the holder's release left a lock");
    });
}

#[test]
fn a_commit_cancelled_at_any_await_point_writes_all_or_nothing_and_frees_the_lock() {
    let server = RedisServer::start();
    let rt = runtime();
    let mut con = server.client();
    rt.block_on(async {
        // durability=replica on a server without replicas: every commit
        // also waits timeout_ms in WAIT, an await point of its own.
        // A WAIT longer than PROMPT: a connection left in the pool mid-WAIT shows.
        for query in ["", "durability=replica&timeout_ms=1500"] {
            let store = store(&server, query);
            let probe = probe(&self::store(&server, "")).await;
            let id = sid("cancelled-commit");
            let keys = store.keys(&id);
            let mut points = 0;
            for n in 0..MAX_POINTS {
                let Opened::Locked { lease, .. } =
                    store.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
                else {
                    panic!("free lock")
                };
                let before = store.load(&id).await.unwrap().payload().to_vec();
                let payload = format!("v{n}").into_bytes();
                let done = cancel_after(n, store.commit(lease, payload.clone(), TTL)).await;
                settled(&store).await;
                let locked: bool = con.exists(keys.lock()).unwrap();
                assert!(
                    !locked,
                    "{query}: cancelled after {n} pendings: lock left behind"
                );
                let now = store.load(&id).await.unwrap().payload().to_vec();
                if done.is_some() {
                    // Done (a durable commit reports NotReplicated here,
                    // after the primary applied it).
                    assert_eq!(now, payload, "{query}: a finished commit lost its write");
                    break;
                }
                points += 1;
                assert!(
                    now == payload || now == before,
                    "{query}: cancelled after {n} pendings: neither the old nor the new value"
                );
                connections_are_clean(&store, &probe, b"probe").await;
            }
            assert!(points > 0, "{query}: nothing was cancelled");
            println!("commit {query:?}: cancelled at {points} await points");
        }
    });
}

/// A multi-threaded runtime, where a command's bytes reach the server while
/// the future under test is pending, so a cancellation can land while the
/// server is blocked in it.
fn threaded_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_waiter_cancelled_while_the_server_blocks_in_blpop_leaves_its_connection_out_of_the_pool() {
    // The poll-count runs above stop each future before its command leaves
    // the client; these cut it at points in time instead, while Redis holds
    // the BLPOP (every 100 ms of a 2 s nap).
    let server = RedisServer::start();
    let rt = threaded_runtime();
    let mut con = server.client();
    rt.block_on(async {
        let holder = store(&server, "");
        let id = sid("cut-wait");
        let keys = holder.keys(&id);
        let Opened::Locked { lease, .. } =
            holder.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
        else {
            panic!("free lock")
        };
        let waiter = store(&server, "lock_wait_ms=2500");
        let probe = probe(&store(&server, "")).await;
        let mut in_flight = 0;
        for cut in (50..2000).step_by(100) {
            let cut = Duration::from_millis(cut);
            let task = {
                let (waiter, id) = (waiter.clone(), id.clone());
                tokio::spawn(async move { waiter.lock(&id, OpenMode::CreateIfMissing).await })
            };
            tokio::time::sleep(cut).await;
            // Seen just before the cut: the server is blocked in our BLPOP.
            if support::blocked_clients(&mut server.client()) > 0 {
                in_flight += 1;
            }
            task.abort();
            assert!(
                task.await.is_err_and(|e| e.is_cancelled()),
                "it waits longer than {cut:?}"
            );
            connections_are_clean(&waiter, &probe, b"probe").await;
            settled(&waiter).await;
            let registered: usize = con.zcard(keys.queue()).unwrap();
            assert_eq!(registered, 0, "cut at {cut:?}: still registered");
            waits_are_clean(&waiter, &holder, &mut con).await;
        }
        assert!(in_flight > 0, "no cut landed while the server was blocked");
        holder.release(lease).await.unwrap();
    });
}

#[test]
fn a_durable_commit_cancelled_while_the_server_blocks_in_wait_leaves_its_connection_out_of_the_pool()
 {
    let server = RedisServer::start();
    let rt = threaded_runtime();
    let mut con = server.client();
    rt.block_on(async {
        // No replica: every WAIT blocks its whole timeout_ms.
        let store = store(&server, "durability=replica&timeout_ms=1500");
        let probe = probe(&self::store(&server, "")).await;
        let id = sid("cut-commit");
        let keys = store.keys(&id);
        for cut in (50..1500).step_by(100) {
            let cut = Duration::from_millis(cut);
            let Opened::Locked { lease, .. } =
                store.lock(&id, OpenMode::CreateIfMissing).await.unwrap()
            else {
                panic!("free lock")
            };
            let payload = format!("cut{}", cut.as_millis()).into_bytes();
            let commit = store.commit(lease, payload.clone(), TTL);
            assert!(
                tokio::time::timeout(cut, commit).await.is_err(),
                "WAIT is longer than {cut:?}"
            );
            // First, before anything else could absorb a stale connection.
            connections_are_clean(&store, &probe, b"probe").await;
            settled(&store).await;
            let locked: bool = con.exists(keys.lock()).unwrap();
            assert!(!locked, "cut at {cut:?}: lock left behind");
            // The primary applied it before WAIT began.
            assert_eq!(store.load(&id).await.unwrap().payload(), payload.as_slice());
        }
    });
}
