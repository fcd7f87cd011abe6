// The behaviour suite shared by both drivers: included by `blocking.rs`
// (with `stickless::Store`) and by `aio.rs` (with the async store behind a
// blocking face), so both pass the very same tests.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use stickless::{
    Committed, Config, CorruptKind, Envelope, Error, InvalidUser, Lease, Loaded, LostReason,
    OpenMode, Opened, SessionId, SessionKeys, UserId,
};
use support::RedisServer;
use support::cluster::RedisCluster;
use support::deployment::{Client, Deployment};
use support::sentinel::SentinelSet;

/// Data TTL handed to commit/touch/create.
const TTL: Duration = Duration::from_secs(60);
/// Upper bound for "promptly": far below every fallback the driver has
/// (lock_wait 5 s, claim window 2 s), far above a loaded 2-core machine's
/// scheduling noise.
const PROMPT: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------- helpers

/// A valid session ID (PHP alphabet, >= 22 chars) derived from `name`.
fn sid(name: &str) -> SessionId {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.push_str("-0123456789abcdefghijklmnopqrstuvwxyz");
    s.truncate(256);
    SessionId::parse(&s).expect("test session ID is valid")
}

fn url(server: &dyn Deployment, query: &str) -> String {
    format!("{}?prefix=t:&{query}", server.url())
}

fn store(server: &dyn Deployment, query: &str) -> Store {
    Store::new(Config::parse(&url(server, query)).expect("test URL parses"))
}

fn locked(opened: Opened) -> (Lease, Loaded, Duration) {
    match opened {
        Opened::Locked {
            lease,
            loaded,
            waited,
        } => (lease, loaded, waited),
        other => panic!("expected Opened::Locked, got {other:?}"),
    }
}

fn lock(store: &mut Store, id: &SessionId) -> (Lease, Loaded, Duration) {
    locked(
        store
            .lock(id, OpenMode::CreateIfMissing)
            .expect("lock succeeds"),
    )
}

fn envelope(loaded: Loaded) -> Envelope {
    match loaded {
        Loaded::Data(env) => env,
        other => panic!("expected stored data, got {other:?}"),
    }
}

fn stored(store: &mut Store, id: &SessionId) -> Envelope {
    envelope(store.load(id).expect("load succeeds"))
}

/// Polls `cond` until it holds; fails the test after `budget`.
fn wait_until(what: &str, budget: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + budget;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waiters registered for the session.
fn registered(con: &mut Client, keys: &SessionKeys) -> usize {
    con.zcard(keys.queue()).expect("ZCARD")
}

/// Waits until `n` waiters are registered and blocked for a hand-off (so
/// the next one to arrive is served after them).
fn await_queued(server: &dyn Deployment, con: &mut Client, keys: &SessionKeys, n: usize) {
    wait_until(
        &format!("{n} waiters queued"),
        Duration::from_secs(5),
        || {
            registered(con, keys) == n
                && usize::try_from(server.blocked_clients(&keys.data())).unwrap_or(0) >= n
        },
    );
}

fn pttl(con: &mut Client, key: &str) -> i64 {
    con.pttl(key).expect("PTTL")
}

fn all_keys(con: &mut Client) -> Vec<String> {
    con.all_keys()
}

fn raw_get(con: &mut Client, key: &str) -> Option<Vec<u8>> {
    con.get(key).expect("GET")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fails if the session ID shows in any key name or any key's value.
fn assert_id_absent(con: &mut Client, id: &SessionId) {
    let needle = id.expose().as_bytes();
    let keys = all_keys(con);
    assert!(
        !keys.is_empty(),
        "nothing stored: the check would prove nothing"
    );
    for key in keys {
        assert!(!contains(key.as_bytes(), needle), "ID in key name {key}");
        let kind: String = redis::cmd("TYPE").arg(&key).query(con).expect("TYPE");
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => raw_get(con, &key).into_iter().collect(),
            "list" => con.lrange(&key, 0, -1).expect("LRANGE"),
            "zset" => con.zrange(&key, 0, -1).expect("ZRANGE"),
            "set" => con.smembers(&key).expect("SMEMBERS"),
            "hash" => {
                let all: Vec<Vec<u8>> = con.hgetall(&key).expect("HGETALL");
                all
            }
            other => panic!("unexpected key type {other} for {key}"),
        };
        for v in values {
            assert!(!contains(&v, needle), "ID in the value of {key}");
        }
    }
}

/// A thread that locks `id` on its own store, records what it saw, appends
/// `mark` to the payload and commits.
struct Waiter {
    handle: thread::JoinHandle<Seen>,
}

struct Seen {
    loaded: Loaded,
    waited: Duration,
    acquired_at: Instant,
}

impl Waiter {
    fn spawn(mut store: Store, id: &SessionId, mark: &'static [u8]) -> Self {
        let id = id.clone();
        let handle = thread::spawn(move || {
            let (lease, loaded, waited) = lock(&mut store, &id);
            let acquired_at = Instant::now();
            let mut payload = loaded.payload().to_vec();
            payload.extend_from_slice(mark);
            store.commit(lease, payload, TTL).expect("waiter commits");
            Seen {
                loaded,
                waited,
                acquired_at,
            }
        });
        Self { handle }
    }

    fn join(self) -> Seen {
        self.handle.join().expect("waiter thread panicked")
    }
}

// ---------------------------------------------------------------- round trip

fn lock_then_commit_round_trips_payload(server: &dyn Deployment) {
    let mut store = store(server, "");
    let id = sid("round-trip");

    let (lease, loaded, waited) = lock(&mut store, &id);
    assert_eq!(loaded, Loaded::Empty);
    assert_eq!(waited, Duration::ZERO, "the lock was free");
    store
        .commit(lease, b"user|s:3:\"ann\";".to_vec(), TTL)
        .unwrap();

    let first = stored(&mut store, &id);
    assert_eq!(first.payload, b"user|s:3:\"ann\";");
    assert_eq!(first.revision, 1);

    let (lease, loaded, _) = lock(&mut store, &id);
    assert_eq!(loaded, Loaded::Data(first.clone()));
    store
        .commit(lease, b"user|s:3:\"bob\";".to_vec(), TTL)
        .unwrap();
    let second = stored(&mut store, &id);
    assert_eq!(second.payload, b"user|s:3:\"bob\";");
    assert_eq!(second.revision, 2);
    assert_eq!(second.created_ms, first.created_ms);
    assert!(second.updated_ms >= first.updated_ms);

    // After a commit only the data key is left: no lock, no queue, no wake list.
    let mut con = server.client();
    let data_key = store.keys(&id).data();
    assert_eq!(all_keys(&mut con), vec![data_key.clone()]);
    assert!(data_key.starts_with("t:{"), "{data_key}");
    let ttl = pttl(&mut con, &data_key);
    assert!(ttl > 0 && ttl <= 60_000, "data PTTL {ttl}");
    assert_id_absent(&mut con, &id);
}

fn load_reads_without_locking_or_waiting(server: &dyn Deployment) {
    let id = sid("load");
    let mut holder = store(server, "");
    let (lease, _, _) = lock(&mut holder, &id);
    holder.commit(lease, b"v1".to_vec(), TTL).unwrap();
    let (lease, _, _) = lock(&mut holder, &id);

    let mut reader = store(server, "lock_wait_ms=5000");
    let started = Instant::now();
    assert_eq!(stored(&mut reader, &id).payload, b"v1");
    assert!(started.elapsed() < PROMPT, "load waited for the lock");
    // The reader neither queued nor disturbed the holder.
    let mut con = server.client();
    assert_eq!(registered(&mut con, &holder.keys(&id)), 0);
    holder.commit(lease, b"v2".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut reader, &id).payload, b"v2");
}

// ---------------------------------------------------------------- lock TTLs

fn every_lock_has_a_ttl(server: &dyn Deployment) {
    // claim window = min(2 * timeout_ms, lock_ttl_ms) = 400 ms here.
    let query = "lock_ttl_ms=5000&timeout_ms=200";
    let id = sid("lock-ttl");
    let mut holder = store(server, query);
    let keys = holder.keys(&id);
    let mut con = server.client();

    let (lease, _, _) = lock(&mut holder, &id);
    let ttl = pttl(&mut con, &keys.lock());
    assert!(ttl > 0 && ttl <= 5000, "lock PTTL {ttl}");
    let token: String = con.get(keys.lock()).unwrap();
    assert_eq!(token.len(), 32, "lock value is a 128-bit hex token");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    // A queued waiter's list expires too, and so does a handed-over lock
    // once its new owner has claimed it: with a full lease, not the claim window.
    let waiter = {
        let mut store = store(server, query);
        let id = id.clone();
        thread::spawn(move || {
            let (lease, _, _) = lock(&mut store, &id);
            (store, lease) // still held
        })
    };
    await_queued(server, &mut con, &keys, 1);
    // A registration lasts one nap (at most the claim window) plus a grace
    // of timeout_ms: a waiter that died stops counting that soon.
    let queue_ttl = pttl(&mut con, &keys.queue());
    assert!(
        queue_ttl > 0 && queue_ttl <= 400 + 200,
        "queue PTTL {queue_ttl}"
    );
    holder.release(lease).unwrap();
    let (mut store, lease) = waiter.join().unwrap();
    let ttl = pttl(&mut con, &keys.lock());
    assert!(
        ttl > 400 && ttl <= 5000,
        "claimed lock PTTL {ttl}: expected a full lease, not the 400 ms claim window"
    );
    store.release(lease).unwrap();
    assert!(all_keys(&mut con).is_empty(), "{:?}", all_keys(&mut con));
}

fn abandoned_lock_is_taken_over_when_its_ttl_lapses(server: &dyn Deployment) {
    let query = "lock_ttl_ms=300&lock_wait_ms=5000";
    let id = sid("abandoned");
    let mut crashed = store(server, query);
    let (lease, _, _) = lock(&mut crashed, &id);
    // A process that dies never releases and stops renewing: its lease
    // simply runs out. (Dropping the store stops its renewals.)
    std::mem::forget(lease);
    drop(crashed);

    let mut next = store(server, query);
    let (lease, _, waited) = lock(&mut next, &id);
    // Woken by the lapse of the 300 ms lease, not by lock_wait (5 s).
    assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
    assert!(
        waited < Duration::from_millis(300) + PROMPT,
        "waited {waited:?}"
    );
    next.commit(lease, b"after".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut next, &id).payload, b"after");
}

// ---------------------------------------------------------------- contention

fn second_locker_waits_and_is_woken_by_release(server: &dyn Deployment) {
    let id = sid("hand-off");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);

    let waiter = Waiter::spawn(store(server, ""), &id, b"+waiter");
    let mut con = server.client();
    await_queued(server, &mut con, &keys, 1);
    // Lock, queue and the waiter's token: the ID is in none of them.
    assert_id_absent(&mut con, &id);

    let hold = Duration::from_millis(50);
    thread::sleep(hold); // the holder's work: the condition under test
    holder.commit(lease, b"holder".to_vec(), TTL).unwrap();
    let released_at = Instant::now();

    let seen = waiter.join();
    assert_eq!(
        seen.loaded.payload(),
        b"holder",
        "waiter saw the holder's write"
    );
    assert!(seen.waited >= hold, "waited {:?} < hold", seen.waited);
    let wake = seen.acquired_at.saturating_duration_since(released_at);
    assert!(wake < PROMPT, "woken {wake:?} after the release");
    assert_eq!(stored(&mut holder, &id).payload, b"holder+waiter");
    assert_eq!(all_keys(&mut con), vec![keys.data()], "leftover keys");
}

fn every_ending_step_wakes_the_next_waiter(server: &dyn Deployment) {
    let mut con = server.client();
    type Step = fn(&mut Store, Lease, &SessionId) -> Result<(), Error>;
    let steps: [(&str, Step, &[u8]); 3] = [
        ("touch", |s, l, _| s.touch(l, TTL), b"before+waiter"),
        ("release", |s, l, _| s.release(l), b"before+waiter"),
        ("destroy", |s, l, id| s.destroy(id, Some(l)), b"+waiter"),
    ];
    for (name, step, expected) in steps {
        let id = sid(name);
        let mut holder = store(server, "");
        let keys = holder.keys(&id);
        let (lease, _, _) = lock(&mut holder, &id);
        holder.commit(lease, b"before".to_vec(), TTL).unwrap();
        let (lease, _, _) = lock(&mut holder, &id);

        let waiter = Waiter::spawn(store(server, ""), &id, b"+waiter");
        await_queued(server, &mut con, &keys, 1);
        step(&mut holder, lease, &id).unwrap_or_else(|e| panic!("{name}: {e}"));
        let released_at = Instant::now();
        let seen = waiter.join();
        let wake = seen.acquired_at.saturating_duration_since(released_at);
        assert!(wake < PROMPT, "{name}: woken {wake:?} after the step");
        assert_eq!(stored(&mut holder, &id).payload, expected, "{name}");
    }
}

fn waiters_are_served_in_arrival_order(server: &dyn Deployment) {
    let id = sid("fifo");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();

    // Queue them one by one: each starts only once the previous is queued.
    const MARKS: [&[u8]; 4] = [b"1", b"2", b"3", b"4"];
    let mut waiters = Vec::new();
    for (i, mark) in MARKS.into_iter().enumerate() {
        waiters.push(Waiter::spawn(store(server, ""), &id, mark));
        await_queued(server, &mut con, &keys, i + 1);
    }
    holder.commit(lease, b"0".to_vec(), TTL).unwrap();
    let seen: Vec<Seen> = waiters.into_iter().map(Waiter::join).collect();

    // Each waiter appended its mark under the lock: the payload is the order
    // in which they got it.
    assert_eq!(stored(&mut holder, &id).payload, b"01234");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.loaded.payload(), &b"01234"[..=i], "waiter {}", i + 1);
    }
    assert_eq!(all_keys(&mut con), vec![keys.data()], "leftover keys");
}

fn concurrent_increments_lose_nothing(server: &dyn Deployment) {
    const THREADS: usize = 8;
    const ROUNDS: usize = 10;
    let id = sid("counter");
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut store = store(server, "");
            let id = id.clone();
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let (lease, loaded, _) = lock(&mut store, &id);
                    let n: u64 = match loaded.payload() {
                        b"" => 0,
                        p => std::str::from_utf8(p).unwrap().parse().unwrap(),
                    };
                    store
                        .commit(lease, (n + 1).to_string().into_bytes(), TTL)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("incrementer panicked");
    }
    let mut check = store(server, "");
    let env = stored(&mut check, &id);
    let total = (THREADS * ROUNDS) as u64;
    assert_eq!(env.payload, total.to_string().as_bytes());
    assert_eq!(env.revision, total, "one revision per write");
    let mut con = server.client();
    assert_eq!(
        all_keys(&mut con),
        vec![check.keys(&id).data()],
        "leftover lock, queue or wake keys"
    );
}

// ---------------------------------------------------------------- lock wait

fn lock_wait_timeout_fails_with_lock_timeout(server: &dyn Deployment) {
    let id = sid("lock-timeout");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();

    let mut impatient = store(server, "lock_wait_ms=150&on_lock_timeout=fail");
    match impatient.lock(&id, OpenMode::CreateIfMissing) {
        Err(e @ Error::LockTimeout { .. }) => {
            let Error::LockTimeout { session, waited } = &e else {
                unreachable!()
            };
            assert_eq!(session, keys.tag());
            assert!(*waited >= Duration::from_millis(150), "{waited:?}");
            assert!(*waited < Duration::from_millis(150) + PROMPT, "{waited:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("lock_wait_ms") && msg.contains(keys.tag()),
                "{msg}"
            );
            assert!(!msg.contains(id.expose()), "{msg}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    // The quitter left the queue: nothing is handed to a request that is gone.
    assert_eq!(registered(&mut con, &keys), 0);

    // lock_wait_ms=0 gives up at once.
    let mut no_wait = store(server, "lock_wait_ms=0");
    let started = Instant::now();
    assert!(matches!(
        no_wait.lock(&id, OpenMode::CreateIfMissing),
        Err(Error::LockTimeout { .. })
    ));
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());

    // The holder is unaffected, and the next request gets the lock at once.
    holder.commit(lease, b"kept".to_vec(), TTL).unwrap();
    let (lease, loaded, waited) = lock(&mut impatient, &id);
    assert_eq!(loaded.payload(), b"kept");
    assert!(waited < PROMPT, "{waited:?}");
    impatient.release(lease).unwrap();
}

fn lock_wait_timeout_in_readonly_mode_returns_current_data(server: &dyn Deployment) {
    let id = sid("readonly");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    holder.commit(lease, b"current".to_vec(), TTL).unwrap();
    let (lease, _, _) = lock(&mut holder, &id);

    let mut reader = store(server, "lock_wait_ms=100&on_lock_timeout=readonly");
    match reader.lock(&id, OpenMode::CreateIfMissing).unwrap() {
        Opened::ReadOnly { loaded, waited } => {
            assert_eq!(loaded.payload(), b"current");
            assert!(waited >= Duration::from_millis(100), "{waited:?}");
        }
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    let mut con = server.client();
    assert_eq!(
        registered(&mut con, &keys),
        0,
        "read-only opener left the queue"
    );
    // The holder still owns the lock and its write lands.
    holder.commit(lease, b"next".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut reader, &id).payload, b"next");
}

// ---------------------------------------------------------------- fencing

fn lapsed_lease_write_lands_when_nobody_changed_the_session(server: &dyn Deployment) {
    // Before: a request whose lease ran out lost its write even when no
    // other request had touched the session.
    let id = sid("lapsed-unchanged");
    let mut a = store(server, "");
    let keys = a.keys(&id);
    let mut con = server.client();
    // A new session too: "nothing stored" is a revision of its own.
    let (lease, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    assert_eq!(
        a.commit(lease, b"v1".to_vec(), TTL).unwrap(),
        Committed::AfterLapse
    );
    assert_eq!(stored(&mut a, &id).payload, b"v1");

    let (lease, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    assert_eq!(
        a.commit(lease, b"v2".to_vec(), TTL).unwrap(),
        Committed::AfterLapse
    );
    let env = stored(&mut a, &id);
    assert_eq!((env.payload.as_slice(), env.revision), (&b"v2"[..], 2));

    // Ending steps that do not write never fail for a lapsed lease.
    for name in ["touch", "release"] {
        let (lease, _, _) = lock(&mut a, &id);
        let _: () = con.del(keys.lock()).unwrap();
        let ended = if name == "touch" {
            a.touch(lease, TTL)
        } else {
            a.release(lease)
        };
        ended.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(stored(&mut a, &id).payload, b"v2", "{name} changed data");
    }
    assert_eq!(all_keys(&mut con), vec![keys.data()], "leftover keys");
}

fn lapsed_lease_write_is_refused_when_the_session_changed(server: &dyn Deployment) {
    let id = sid("lapsed-changed");
    let mut a = store(server, "");
    let keys = a.keys(&id);
    let mut con = server.client();
    let (lease, _, _) = lock(&mut a, &id);
    a.commit(lease, b"v1".to_vec(), TTL).unwrap();

    // Changed: the lease lapsed, another request wrote, and left.
    let (stale, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    let mut b = store(server, "lock_wait_ms=0");
    let (fresh, _, _) = lock(&mut b, &id);
    b.commit(fresh, b"v2-from-b".to_vec(), TTL).unwrap();
    match a.commit(stale, b"stale".to_vec(), TTL) {
        Err(Error::LockLost {
            session,
            reason: LostReason::Changed,
        }) => assert_eq!(session, keys.tag()),
        other => panic!("expected LockLost(Changed), got {other:?}"),
    }
    assert_eq!(stored(&mut a, &id).payload, b"v2-from-b");

    // Taken: the lease lapsed and another request holds the lock now.
    let (stale, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    let (fresh, _, _) = lock(&mut b, &id);
    match a.commit(stale, b"stale".to_vec(), TTL) {
        Err(Error::LockLost {
            reason: LostReason::Taken,
            ..
        }) => {}
        other => panic!("expected LockLost(Taken), got {other:?}"),
    }
    // The new holder's lock survived the refused write.
    b.commit(fresh, b"v3".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut a, &id).payload, b"v3");
}

#[test]
fn a_large_write_is_staged_and_fenced_and_leaves_no_stage_behind() {
    // From 1 KB on the envelope travels in a plain SET to a key of its own
    // and the script moves it into place: the same fence, the same outcomes.
    let server = RedisServer::start();
    let id = sid("staged");
    let big = |mark: u8| vec![mark; 8192];
    let mut a = store(&server, "");
    let keys = a.keys(&id);
    let mut con = Deployment::client(&server);
    let only_data = |con: &mut Client, what: &str| {
        assert_eq!(all_keys(con), vec![keys.data()], "{what}: leftover keys");
    };

    let (lease, _, _) = lock(&mut a, &id);
    assert_eq!(a.commit(lease, big(b'1'), TTL).unwrap(), Committed::UnderLock);
    assert_eq!(stored(&mut a, &id).payload, big(b'1'));
    let ttl = pttl(&mut con, &keys.data());
    assert!(ttl > 55_000 && ttl <= 60_000, "the staged write kept the stage's TTL: {ttl}");
    only_data(&mut con, "under the lock");

    // Lapsed, nobody wrote since: the compare-and-set lets it through.
    let (lease, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    assert_eq!(a.commit(lease, big(b'2'), TTL).unwrap(), Committed::AfterLapse);
    let env = stored(&mut a, &id);
    assert_eq!((env.payload, env.revision), (big(b'2'), 2));
    only_data(&mut con, "after a lapse");

    // Lapsed, and another request wrote: refused, its stage deleted.
    let (stale, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    let mut b = store(&server, "lock_wait_ms=0");
    let (fresh, _, _) = lock(&mut b, &id);
    b.commit(fresh, b"small".to_vec(), TTL).unwrap();
    assert!(matches!(
        a.commit(stale, big(b'x'), TTL),
        Err(Error::LockLost {
            reason: LostReason::Changed,
            ..
        })
    ));
    assert_eq!(stored(&mut a, &id).payload, b"small");
    only_data(&mut con, "after a refusal");

    // Lapsed, and another request holds the lock: refused, the holder's
    // lock untouched.
    let (stale, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    let (fresh, _, _) = lock(&mut b, &id);
    assert!(matches!(
        a.commit(stale, big(b'y'), TTL),
        Err(Error::LockLost {
            reason: LostReason::Taken,
            ..
        })
    ));
    b.commit(fresh, big(b'3'), TTL).unwrap();
    assert_eq!(stored(&mut a, &id).payload, big(b'3'));
    only_data(&mut con, "after the holder's write");
}

fn request_longer_than_the_lease_keeps_its_lock(server: &dyn Deployment) {
    // Before: a request that outlived lock_ttl_ms lost its lock and its
    // write, with no contention at all. The lease is renewed now.
    let query = "lock_ttl_ms=300";
    let id = sid("long-request");
    let mut a = store(server, query);
    let keys = a.keys(&id);
    let mut con = server.client();
    let (lease, _, _) = lock(&mut a, &id);
    assert_eq!(a.background(), (1, 0), "renewed in the background");
    // Three leases long: the condition under test is the passing time.
    thread::sleep(Duration::from_millis(900));
    let left = pttl(&mut con, &keys.lock());
    assert!(left > 0 && left <= 300, "lock PTTL {left}");
    let mut other = store(server, "lock_wait_ms=0");
    assert!(matches!(
        other.lock(&id, OpenMode::CreateIfMissing),
        Err(Error::LockTimeout { .. })
    ));
    assert_eq!(
        a.commit(lease, b"late but ours".to_vec(), TTL).unwrap(),
        Committed::UnderLock
    );
    assert_eq!(a.background(), (0, 0), "renewals stop with the lease");
    assert_eq!(stored(&mut a, &id).payload, b"late but ours");
}

fn dropped_lease_is_released_in_the_background(server: &dyn Deployment) {
    // A lease dropped without commit or release (an error path, a panic)
    // used to keep its session locked for the whole lease.
    let id = sid("dropped-lease");
    let mut a = store(server, "lock_ttl_ms=30000");
    let keys = a.keys(&id);
    let mut con = server.client();
    let (lease, _, _) = lock(&mut a, &id);
    drop(lease);
    wait_until("lock released", Duration::from_secs(5), || {
        !con.exists::<_, bool>(keys.lock()).unwrap()
    });
    let mut b = store(server, "");
    let (lease, _, waited) = lock(&mut b, &id);
    assert!(waited < PROMPT, "{waited:?}");
    b.release(lease).unwrap();
}

// ---------------------------------------------------------------- new sessions

fn new_session_is_locked_until_its_first_write(server: &dyn Deployment) {
    // Before: a new session took no lock, so a second request that arrived
    // with its cookie (sent early by flush() or a redirect) found nothing and
    // started a second session.
    let id = sid("new-session");
    let mut a = store(server, "");
    let (lease, loaded, _) = locked(a.lock(&id, OpenMode::New).unwrap());
    assert_eq!(loaded, Loaded::Empty);
    assert!(!lease.was_stored());
    let early = {
        let mut b = store(server, "");
        let id = id.clone();
        thread::spawn(move || {
            let (lease, loaded, _) = locked(b.lock(&id, OpenMode::RequireExisting).unwrap());
            b.release(lease).unwrap();
            loaded
        })
    };
    let mut con = server.client();
    await_queued(server, &mut con, &a.keys(&id), 1);
    a.commit(lease, b"csrf|s:4:\"t0k3\";".to_vec(), TTL)
        .unwrap();
    assert_eq!(early.join().unwrap().payload(), b"csrf|s:4:\"t0k3\";");
}

fn new_id_that_exists_is_refused(server: &dyn Deployment) {
    let id = sid("new-collision");
    let mut a = store(server, "");
    let keys = a.keys(&id);
    a.create(&id, b"someone's".to_vec(), TTL).unwrap();
    match a.lock(&id, OpenMode::New) {
        Err(Error::Collision { session }) => assert_eq!(session, keys.tag()),
        other => panic!("expected Collision, got {other:?}"),
    }
    let mut con = server.client();
    assert!(!con.exists::<_, bool>(keys.lock()).unwrap(), "lock left");
    // Locked by someone else: not new either.
    let (lease, _, _) = lock(&mut a, &id);
    let mut b = store(server, "");
    assert!(matches!(
        b.lock(&id, OpenMode::New),
        Err(Error::Collision { .. })
    ));
    a.release(lease).unwrap();
    assert_eq!(stored(&mut a, &id).payload, b"someone's");
}

// ---------------------------------------------------------------- strict mode

fn require_existing_takes_no_lock_on_missing_session(server: &dyn Deployment) {
    let id = sid("strict");
    let mut store = store(server, "");
    let mut con = server.client();

    assert!(matches!(
        store.lock(&id, OpenMode::RequireExisting).unwrap(),
        Opened::Missing
    ));
    assert!(all_keys(&mut con).is_empty(), "{:?}", all_keys(&mut con));

    store.create(&id, b"there".to_vec(), TTL).unwrap();
    let (lease, loaded, _) = locked(store.lock(&id, OpenMode::RequireExisting).unwrap());
    assert_eq!(loaded.payload(), b"there");
    assert!(con.exists::<_, bool>(store.keys(&id).lock()).unwrap());
    store.release(lease).unwrap();
}

fn strict_waiter_on_a_destroyed_session_passes_the_lock_on(server: &dyn Deployment) {
    let id = sid("strict-destroyed");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    holder.create(&id, b"doomed".to_vec(), TTL).unwrap();
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();

    let strict = {
        let mut store = store(server, "");
        let id = id.clone();
        thread::spawn(move || store.lock(&id, OpenMode::RequireExisting).unwrap())
    };
    await_queued(server, &mut con, &keys, 1);
    let lenient = Waiter::spawn(store(server, ""), &id, b"fresh");
    await_queued(server, &mut con, &keys, 2);

    holder.destroy(&id, Some(lease)).unwrap();
    let released_at = Instant::now();
    assert!(matches!(strict.join().unwrap(), Opened::Missing));
    let seen = lenient.join();
    assert_eq!(seen.loaded, Loaded::Empty);
    let wake = seen.acquired_at.saturating_duration_since(released_at);
    assert!(
        wake < PROMPT,
        "second waiter got the lock {wake:?} after destroy"
    );
    assert_eq!(stored(&mut holder, &id).payload, b"fresh");
}

// ---------------------------------------------------------------- destroy

fn destroy_deletes_and_hands_off(server: &dyn Deployment) {
    let id = sid("destroy");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let mut con = server.client();

    // Unlocked: destroy without a lease deletes.
    holder.create(&id, b"x".to_vec(), TTL).unwrap();
    holder.destroy(&id, None).unwrap();
    assert_eq!(holder.load(&id).unwrap(), Loaded::Empty);
    assert!(all_keys(&mut con).is_empty());
    // Destroying what is not there is fine.
    holder.destroy(&id, None).unwrap();

    // Locked by us: destroy deletes and hands the lock to the waiter.
    holder.create(&id, b"y".to_vec(), TTL).unwrap();
    let (lease, _, _) = lock(&mut holder, &id);
    let waiter = Waiter::spawn(store(server, ""), &id, b"new");
    await_queued(server, &mut con, &keys, 1);
    holder.destroy(&id, Some(lease)).unwrap();
    let released_at = Instant::now();
    let seen = waiter.join();
    assert_eq!(seen.loaded, Loaded::Empty, "waiter saw destroyed data");
    let wake = seen.acquired_at.saturating_duration_since(released_at);
    assert!(wake < PROMPT, "woken {wake:?} after destroy");
    assert_eq!(stored(&mut holder, &id).payload, b"new");
    assert_eq!(stored(&mut holder, &id).revision, 1, "a new session");
}

fn destroy_is_refused_while_another_request_holds_the_lock(server: &dyn Deployment) {
    let id = sid("destroy-locked");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    holder.create(&id, b"mine".to_vec(), TTL).unwrap();
    let (lease, _, _) = lock(&mut holder, &id);

    let mut other = store(server, "");
    match other.destroy(&id, None) {
        Err(Error::DestroyLocked { session }) => assert_eq!(session, keys.tag()),
        other => panic!("expected DestroyLocked, got {other:?}"),
    }
    assert_eq!(stored(&mut other, &id).payload, b"mine");
    // The holder's lock is intact.
    holder.commit(lease, b"still mine".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut other, &id).payload, b"still mine");
}

// ---------------------------------------------------------------- limits

fn too_large_write_is_refused_and_data_untouched(server: &dyn Deployment) {
    let id = sid("too-large");
    let mut store = store(server, "max_size=16");
    let keys = store.keys(&id);
    let mut con = server.client();

    let (lease, _, _) = lock(&mut store, &id);
    store.commit(lease, vec![b'a'; 16], TTL).unwrap();
    let (lease, _, _) = lock(&mut store, &id);
    match store.commit(lease, vec![b'b'; 17], TTL) {
        Err(Error::TooLarge {
            session,
            size,
            limit,
        }) => {
            assert_eq!((session.as_str(), size, limit), (keys.tag(), 17, 16));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(stored(&mut store, &id).payload, vec![b'a'; 16]);
    assert!(
        !con.exists::<_, bool>(keys.lock()).unwrap(),
        "refused write kept the lock"
    );

    // create refuses too, and stores nothing.
    let fresh = sid("too-large-create");
    assert!(matches!(
        store.create(&fresh, vec![0; 17], TTL),
        Err(Error::TooLarge { size: 17, .. })
    ));
    assert_eq!(store.load(&fresh).unwrap(), Loaded::Empty);
}

fn create_refuses_to_overwrite(server: &dyn Deployment) {
    let id = sid("create");
    let mut store = store(server, "");
    let mut con = server.client();

    store.create(&id, b"first".to_vec(), TTL).unwrap();
    let first = stored(&mut store, &id);
    assert_eq!(
        (first.payload.as_slice(), first.revision),
        (&b"first"[..], 1)
    );
    let ttl = pttl(&mut con, &store.keys(&id).data());
    assert!(ttl > 0 && ttl <= 60_000, "created without TTL: {ttl}");

    match store.create(&id, b"second".to_vec(), TTL) {
        Err(Error::Collision { session }) => assert_eq!(session, store.keys(&id).tag()),
        other => panic!("expected Collision, got {other:?}"),
    }
    assert_eq!(stored(&mut store, &id), first);
}

// ---------------------------------------------------------------- touch_interval

/// Sets what is left of the session's lifetime, as time would have.
fn age(con: &mut Client, keys: &SessionKeys, left_ms: i64) {
    let set: bool = con.pexpire(keys.data(), left_ms).expect("PEXPIRE");
    assert!(set, "no session to age");
}

#[test]
fn an_unchanged_session_is_refreshed_only_once_its_lifetime_is_spent() {
    let server = RedisServer::start();
    let id = sid("touch-interval");
    // A 60 s lifetime, refreshed once less than 40 s of it are left.
    let mut s = store(&server, "touch_interval_ms=20000");
    let mut con = Deployment::client(&server);
    let keys = s.keys(&id);
    let (lease, _, _) = lock(&mut s, &id);
    s.commit(lease, b"kept".to_vec(), TTL).unwrap();
    let revision = stored(&mut s, &id).revision;

    // Fresh (50 s left): the touch releases the lock, nothing else.
    age(&mut con, &keys, 50_000);
    let (lease, _, _) = lock(&mut s, &id);
    s.touch(lease, TTL).unwrap();
    let left = pttl(&mut con, &keys.data());
    assert!(
        (40_000..=50_000).contains(&left),
        "a fresh lifetime was refreshed: {left} ms left"
    );
    let locked: bool = con.exists(keys.lock()).expect("EXISTS");
    assert!(!locked, "the touch did not release the lock");
    let (lease, _, waited) = lock(&mut s, &id);
    assert_eq!(waited, Duration::ZERO, "the next request waited for a lock");
    s.release(lease).unwrap();

    // The same when the lock came through the queue (`ACQUIRE`'s reply).
    let (held, _, _) = lock(&mut s, &id);
    let mut other = store(&server, "touch_interval_ms=20000");
    let waiter_id = id.clone();
    let waiter = thread::spawn(move || {
        let (lease, _, waited) = lock(&mut other, &waiter_id);
        other.touch(lease, TTL).expect("the waiter's touch");
        waited
    });
    await_queued(&server, &mut con, &keys, 1);
    s.release(held).unwrap();
    assert!(waiter.join().expect("waiter thread") > Duration::ZERO);
    let left = pttl(&mut con, &keys.data());
    assert!(
        (40_000..=50_000).contains(&left),
        "a fresh lifetime was refreshed after a wait: {left} ms left"
    );

    // Spent past the interval (30 s left): refreshed to the whole lifetime.
    age(&mut con, &keys, 30_000);
    let (lease, _, _) = lock(&mut s, &id);
    s.touch(lease, TTL).unwrap();
    let left = pttl(&mut con, &keys.data());
    assert!(left > 55_000, "a spent lifetime was not refreshed: {left} ms left");
    assert_eq!(
        stored(&mut s, &id).revision,
        revision,
        "an unchanged session was rewritten"
    );

    // touch_interval_ms=0: every touch refreshes.
    let mut eager = store(&server, "touch_interval_ms=0");
    age(&mut con, &keys, 50_000);
    let (lease, _, _) = lock(&mut eager, &id);
    eager.touch(lease, TTL).unwrap();
    let left = pttl(&mut con, &keys.data());
    assert!(left > 55_000, "touch_interval_ms=0 skipped a refresh: {left} ms left");
}

// ---------------------------------------------------------------- corrupt data

fn corrupt_value_is_reported_not_overwritten(server: &dyn Deployment) {
    let id = sid("corrupt");
    let mut store = store(server, "");
    let data_key = store.keys(&id).data();
    let mut con = server.client();

    let cases: [(&[u8], CorruptKind); 2] = [
        (b"counter|i:1;", CorruptKind::Foreign), // e.g. a phpredis session
        (b"\xC1SL\x09future", CorruptKind::UnsupportedVersion(9)),
    ];
    for (foreign, kind) in cases {
        let _: () = con.set(&data_key, foreign).unwrap();
        assert_eq!(store.load(&id).unwrap(), Loaded::Corrupt(kind.clone()));

        let (lease, loaded, _) = lock(&mut store, &id);
        assert_eq!(loaded, Loaded::Corrupt(kind.clone()));
        assert_eq!(loaded.payload(), b"");
        // An unchanged session is only touched: the value stays as it was.
        store.touch(lease, TTL).unwrap();
        assert_eq!(raw_get(&mut con, &data_key).as_deref(), Some(foreign));
        let ttl = pttl(&mut con, &data_key);
        assert!(ttl > 0 && ttl <= 60_000, "touch set no TTL: {ttl}");

        // A release leaves it alone too.
        let (lease, _, _) = lock(&mut store, &id);
        store.release(lease).unwrap();
        assert_eq!(raw_get(&mut con, &data_key).as_deref(), Some(foreign));
    }

    // Only a write by the application replaces it, starting a new history.
    let (lease, _, _) = lock(&mut store, &id);
    store.commit(lease, b"fresh".to_vec(), TTL).unwrap();
    let env = stored(&mut store, &id);
    assert_eq!((env.payload.as_slice(), env.revision), (&b"fresh"[..], 1));
}

// ---------------------------------------------------------------- failures

#[test]
fn unavailable_server_fails_fast_with_server_name_and_elapsed() {
    // A port nobody listens on: the listener that found it is closed again.
    let port = support::free_port();
    let mut store = Store::new(
        Config::parse(&format!(
            "redis://127.0.0.1:{port}/0?connect_timeout_ms=300&timeout_ms=300"
        ))
        .unwrap(),
    );
    let id = sid("unavailable");
    let started = Instant::now();
    let result = store.lock(&id, OpenMode::CreateIfMissing);
    let took = started.elapsed();
    match result {
        Err(e @ Error::Unavailable { .. }) => {
            let Error::Unavailable {
                server, elapsed, ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(server, &format!("redis://127.0.0.1:{port}/0"));
            assert!(*elapsed <= took, "elapsed {elapsed:?} > measured {took:?}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
            assert!(msg.contains(" ms)"), "no elapsed time in {msg}");
            assert!(!msg.contains(id.expose()), "{msg}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        took < Duration::from_millis(300),
        "refused connect took {took:?}"
    );
    // Every entry point reports the same way.
    assert!(matches!(store.load(&id), Err(Error::Unavailable { .. })));
    assert!(matches!(
        store.create(&id, b"x".to_vec(), TTL),
        Err(Error::Unavailable { .. })
    ));
    assert!(matches!(
        store.destroy(&id, None),
        Err(Error::Unavailable { .. })
    ));
}

/// Runs `f` on its own thread and fails the test if it has not returned
/// within `limit`, so a driver that blocks forever fails instead of hanging
/// the suite (the server's Drop then unblocks the stray thread).
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Instant::now();
        let value = f();
        let _ = tx.send((value, started.elapsed()));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what}: still blocked after {limit:?}"))
}

fn hung_server_costs_at_most_the_budget(server: &dyn Deployment) {
    let query = "connect_timeout_ms=200&timeout_ms=300&budget_ms=500";
    let budget = Duration::from_millis(500);
    let slack = Duration::from_millis(700);
    let watchdog = Duration::from_secs(10);
    let id = sid("hung");
    let mut store = store(server, query);
    // Warm up: the connection is open and the scripts are loaded.
    let (lease, _, _) = lock(&mut store, &id);
    store.commit(lease, b"before".to_vec(), TTL).unwrap();

    let hung_node = store.keys(&id).data();
    server.stop_owner(&hung_node);
    let hung = id.clone();
    let ((result, mut store), took) = bounded("lock on a live connection", watchdog, move || {
        (store.lock(&hung, OpenMode::CreateIfMissing), store)
    });
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "live connection: {result:?}"
    );
    assert!(
        took >= Duration::from_millis(300),
        "gave up early: {took:?}"
    );
    assert!(took < budget + slack, "live connection hung {took:?}");

    // A store without a connection yet: the connect succeeds (the kernel
    // accepts), the first reply never comes.
    let fresh = self::store(server, query);
    let load_id = id.clone();
    let ((result, mut fresh), took) = bounded("load on a new connection", watchdog, move || {
        let mut fresh = fresh;
        (fresh.load(&load_id), fresh)
    });
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "new connection: {result:?}"
    );
    assert!(took < budget + slack, "new connection hung {took:?}");

    server.cont_owner(&hung_node);
    // The same store reconnects on its next call.
    let (lease, loaded, _) = lock(&mut store, &id);
    assert_eq!(loaded.payload(), b"before");
    store.commit(lease, b"after".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut fresh, &id).payload, b"after");
}

fn dropped_connection_is_replaced_on_the_next_call(server: &dyn Deployment) {
    let id = sid("dropped");
    let mut store = store(server, "");
    store.create(&id, b"kept".to_vec(), TTL).unwrap();

    // The server closes every other connection (idle timeout, restart,
    // failover behind the same address): the store's kept socket is dead.
    assert!(
        server.kill_clients() >= 1,
        "the store's connection was open"
    );

    // Each step goes through on a fresh connection, without an error.
    assert_eq!(stored(&mut store, &id).payload, b"kept");
    server.kill_clients();
    let (lease, loaded, _) = lock(&mut store, &id);
    assert_eq!(loaded.payload(), b"kept");
    server.kill_clients();
    store.commit(lease, b"changed".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut store, &id).payload, b"changed");
}

// ---------------------------------------------------------------- server options

#[test]
fn database_in_url_is_the_one_written() {
    let server = RedisServer::start();
    let id = sid("db");
    let url = format!("redis://127.0.0.1:{}/3?prefix=t:", server.port());
    let mut store = Store::new(Config::parse(&url).unwrap());
    store.create(&id, b"in db 3".to_vec(), TTL).unwrap();

    let mut con = Client::Single(server.client()); // db 0
    assert!(all_keys(&mut con).is_empty(), "written to db 0");
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(all_keys(&mut con), vec![store.keys(&id).data()]);
}

const PASSWORD: &str = "hunter2hunter2";

fn password_authenticates_and_never_shows(server: &dyn Deployment) {
    let id = sid("auth");
    let mut good = store(server, "");
    good.create(&id, b"secret stuff".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut good, &id).payload, b"secret stuff");

    for url in [
        server.url_with_password(&format!("wrong-{PASSWORD}")),
        server.url_with_password(""),
    ] {
        let mut bad = Store::new(Config::parse(&url).unwrap());
        let started = Instant::now();
        let result = bad.load(&id);
        // Every node would refuse the same credentials: no retries.
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{}: a wrong password took {:?}",
            server.name(),
            started.elapsed()
        );
        match result {
            Err(e @ Error::Unavailable { .. }) => {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(PASSWORD), "password leaked: {shown}");
                assert!(shown.contains("127.0.0.1:"), "{shown}");
                assert!(
                    shown.contains("WRONGPASS")
                        || shown.contains("NOAUTH")
                        || shown.contains("Authentication"),
                    "no authentication cause in {shown}"
                );
            }
            other => panic!("{}: expected Unavailable, got {other:?}", server.name()),
        }
    }
}

#[test]
fn password_authenticates_and_never_shows_standalone() {
    password_authenticates_and_never_shows(&RedisServer::start_with_password(Some(PASSWORD)));
}

#[test]
fn password_authenticates_and_never_shows_cluster() {
    password_authenticates_and_never_shows(&RedisCluster::start_with(Some(PASSWORD)));
}

#[test]
fn password_authenticates_and_never_shows_sentinel() {
    password_authenticates_and_never_shows(&SentinelSet::start_with(Some(PASSWORD)));
}

// ---------------------------------------------------------------- dead waiters, hung servers

fn dead_waiters_cost_later_requests_no_wait(server: &dyn Deployment) {
    // Before: a waiter killed while queued stayed in the queue, and every
    // later hand-off went to it first and burnt a 2 s claim window, even
    // for sequential requests.
    let id = sid("dead-waiters");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();
    // Three registrations that still look alive, but whose processes are
    // gone: nobody is blocked on the wake list for them.
    for dead in ["dead1", "dead2", "dead3"] {
        let token = format!("{dead:0>32}");
        let _: () = con.zadd(keys.queue(), token, f64::MAX).unwrap();
    }
    holder.release(lease).unwrap();
    for round in 0..5 {
        let mut next = store(server, "");
        let started = Instant::now();
        let (lease, _, waited) = lock(&mut next, &id);
        assert!(waited < PROMPT, "round {round}: waited {waited:?}");
        next.release(lease).unwrap();
        assert!(started.elapsed() < PROMPT, "round {round}");
    }
}

fn dead_registrations_stop_counting_against_max_waiters(server: &dyn Deployment) {
    // Before: 32 dead tokens made every new request fail at once with
    // "too many waiters", for as long as the queue key lived.
    let id = sid("dead-crowd");
    let mut holder = store(server, "max_waiters=2");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let soon = (secs * 1000 + micros / 1000 + 200) as f64;
    for dead in ["dead1", "dead2"] {
        let _: () = con
            .zadd(keys.queue(), format!("{dead:0>32}"), soon)
            .unwrap();
    }
    let mut crowded = store(server, "max_waiters=2");
    assert!(matches!(
        crowded.lock(&id, OpenMode::CreateIfMissing),
        Err(Error::TooManyWaiters { .. })
    ));
    // Once their time is up they no longer count: this one waits its turn.
    wait_until("dead registrations expire", Duration::from_secs(5), || {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
        (secs * 1000 + micros / 1000) as f64 > soon
    });
    let waiter = Waiter::spawn(store(server, "max_waiters=2"), &id, b"!");
    await_queued(server, &mut con, &keys, 1);
    holder.commit(lease, b"0".to_vec(), TTL).unwrap();
    waiter.join();
    assert_eq!(stored(&mut holder, &id).payload, b"0!");
}

fn request_that_timed_out_on_a_hung_server_leaves_no_lock_behind(server: &dyn Deployment) {
    let query = "connect_timeout_ms=200&timeout_ms=300&lock_wait_ms=1000&budget_ms=500";
    let mut store = store(server, query);
    let warm = sid("warm");
    let (lease, _, _) = lock(&mut store, &warm);
    store.release(lease).unwrap();

    let id = sid("hung-orphan");
    let node = store.keys(&id).data();
    server.stop_owner(&node);
    assert!(matches!(
        store.lock(&id, OpenMode::CreateIfMissing),
        Err(Error::Unavailable { .. })
    ));
    server.cont_owner(&node);

    // The request gave up, so nobody owns a lock on this session; the same
    // worker's next request must not wait for one (lock_ttl_ms is 3 s).
    let (lease, _, waited) = lock(&mut store, &id);
    assert!(waited < PROMPT, "waited {waited:?} for an orphaned lock");
    store.release(lease).unwrap();
}

fn orphaned_lock_is_cleared_in_the_background_once_its_node_answers(server: &dyn Deployment) {
    // Before: a token left by a request that gave up on a hung node was only
    // cleared by a later request to the same slot, which on a cluster
    // practically never comes; meanwhile that user waited out the lease.
    let query =
        "connect_timeout_ms=200&timeout_ms=300&lock_wait_ms=1000&budget_ms=500&lock_ttl_ms=30000";
    let mut store = store(server, query);
    let warm = sid("warm-orphan");
    let (lease, _, _) = lock(&mut store, &warm);
    store.release(lease).unwrap();

    let id = sid("orphan-background");
    let keys = store.keys(&id);
    server.stop_owner(&keys.data());
    assert!(matches!(
        store.lock(&id, OpenMode::CreateIfMissing),
        Err(Error::Unavailable { .. })
    ));
    server.cont_owner(&keys.data());
    // No request of this store touches the session again.
    wait_until("the orphan is settled", Duration::from_secs(10), || {
        store.background().1 == 0
    });
    let mut con = server.client();
    assert!(
        !con.exists::<_, bool>(keys.lock()).unwrap(),
        "the lock the server took for the request that gave up is still there"
    );
    assert!(
        con.exists::<_, bool>(keys.void()).unwrap(),
        "the token was not voided"
    );
}

// ---------------------------------------------------------------- waiter limit

fn waiters_beyond_max_waiters_are_refused_at_once(server: &dyn Deployment) {
    let id = sid("crowded");
    let mut holder = store(server, "");
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();

    let mut waiters = Vec::new();
    for (i, mark) in [&b"1"[..], b"2"].into_iter().enumerate() {
        waiters.push(Waiter::spawn(store(server, "max_waiters=2"), &id, mark));
        await_queued(server, &mut con, &keys, i + 1);
    }
    let mut third = store(server, "max_waiters=2&lock_wait_ms=5000");
    let started = Instant::now();
    match third.lock(&id, OpenMode::CreateIfMissing) {
        Err(Error::TooManyWaiters { session, limit }) => {
            assert_eq!(session, keys.tag());
            assert_eq!(limit, 2);
        }
        other => panic!("expected TooManyWaiters, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "it waited");
    assert_eq!(registered(&mut con, &keys), 2, "the refused request queued");

    holder.commit(lease, b"0".to_vec(), TTL).unwrap();
    for waiter in waiters {
        waiter.join();
    }
    assert_eq!(stored(&mut holder, &id).payload, b"012");
}

// ---------------------------------------------------------------- unix sockets

#[test]
fn unix_socket_urls_reach_the_same_server() {
    let server = RedisServer::start();
    let id = sid("over-unix");
    let mut unix =
        Store::new(Config::parse(&format!("{}?db=0&prefix=t:", server.unix_url())).unwrap());
    let (lease, _, _) = locked(unix.lock(&id, OpenMode::CreateIfMissing).unwrap());
    unix.commit(lease, b"via unix".to_vec(), TTL).unwrap();
    // Written over the socket, read over TCP: one server, one session.
    let mut tcp = store(&server, "");
    assert_eq!(stored(&mut tcp, &id).payload, b"via unix");
    assert!(unix.config().server.to_string().starts_with("unix://"));
}


// ---------------------------------------------------------------- sessions per user

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("test user ID is valid")
}

/// Opens `id`, binds it to `who` with `label`, and commits `payload`.
fn bound_session(store: &mut Store, id: &SessionId, who: &UserId, label: &str, ttl: Duration) {
    let (mut lease, _, _) = lock(store, id);
    store
        .bind_user(&mut lease, who, Some(label), ttl)
        .expect("bind succeeds");
    store
        .commit(lease, format!("device|s:{}:\"{label}\";", label.len()).into_bytes(), ttl)
        .expect("commit succeeds");
}

fn user_logged_out_everywhere_but_here(server: &dyn Deployment) {
    // "Log out everywhere": five devices of one user, another user beside
    // them, and one of the five in the middle of a request.
    let mut store = store(server, "");
    let ann = user("ann@example.com");
    let ids: Vec<SessionId> = (0..5).map(|i| sid(&format!("ann-{i}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        bound_session(&mut store, id, &ann, &format!("device {i}"), TTL);
    }
    let bob_id = sid("bob");
    bound_session(&mut store, &bob_id, &user("bob"), "phone", TTL);

    let listed = store.user_sessions(&ann, Some(&ids[0])).unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");
    let mut labels: Vec<_> = listed.iter().filter_map(|s| s.label.clone()).collect();
    labels.sort();
    assert_eq!(labels, (0..5).map(|i| format!("device {i}")).collect::<Vec<_>>());
    let current: Vec<_> = listed.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].session, store.keys(&ids[0]).tag());
    for s in &listed {
        assert!(s.created_ms > 0 && s.last_seen_ms >= s.created_ms, "{s:?}");
        assert!(s.expires_ms > s.last_seen_ms, "{s:?}");
    }
    // Neither the user ID nor a session ID reaches a key or a value.
    let mut con = server.client();
    for key in all_keys(&mut con) {
        assert!(!key.contains("ann") && !key.contains("bob"), "{key}");
    }
    for id in &ids {
        assert_id_absent(&mut con, id);
    }

    // A request on session 1 is still running when the user logs out.
    let (in_flight, _, _) = lock(&mut store, &ids[1]);
    assert_eq!(store.logout_user(&ann, Some(&ids[0])).unwrap(), 4);
    match store.commit(in_flight, b"device|s:5:\"stale\";".to_vec(), TTL) {
        Err(Error::LockLost { .. }) => {}
        other => panic!("the in-flight write must be refused, got {other:?}"),
    }
    for id in &ids[1..] {
        assert_eq!(store.load(id).unwrap(), Loaded::Empty, "logged out");
    }
    assert_eq!(stored(&mut store, &ids[0]).payload, b"device|s:8:\"device 0\";");
    let left = store.user_sessions(&ann, Some(&ids[0])).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert_eq!(store.user_sessions(&user("bob"), None).unwrap().len(), 1);
    // Nobody left to log out: nothing is destroyed twice.
    assert_eq!(store.logout_user(&ann, Some(&ids[0])).unwrap(), 0);
}

fn bound_session_keeps_its_entry_current(server: &dyn Deployment) {
    let mut store = store(server, "");
    let ann = user("ann");
    let id = sid("keeps-current");
    // Bound, then only touched: the touch writes the binding.
    let (mut lease, _, _) = lock(&mut store, &id);
    store.bind_user(&mut lease, &ann, None, TTL).unwrap();
    assert!(lease.needs_write());
    store.touch(lease, TTL).unwrap();
    let first = store.user_sessions(&ann, None).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].label, None);

    let (lease, _, _) = lock(&mut store, &id);
    assert!(lease.is_bound() && !lease.needs_write(), "read back bound");
    thread::sleep(Duration::from_millis(5));
    store.touch(lease, TTL * 2).unwrap();
    let second = store.user_sessions(&ann, None).unwrap();
    assert!(second[0].last_seen_ms > first[0].last_seen_ms, "{second:?}");
    assert!(second[0].expires_ms >= first[0].expires_ms + TTL.as_millis() as u64 - 100);
    let user_keys = store.user_keys(&ann);
    let mut con = server.client();
    assert!(pttl(&mut con, &user_keys.sessions()) > TTL.as_millis() as i64);

    // Destroyed with its lease: it leaves the index, whose keys go with
    // their last entry.
    let (lease, _, _) = lock(&mut store, &id);
    store.destroy(&id, Some(lease)).unwrap();
    assert!(store.user_sessions(&ann, None).unwrap().is_empty());
    assert_eq!(all_keys(&mut con), Vec::<String>::new());
}

fn user_index_expires_with_its_sessions(server: &dyn Deployment) {
    let mut store = store(server, "");
    let ann = user("ann");
    let short = Duration::from_millis(300);
    for i in 0..3 {
        bound_session(&mut store, &sid(&format!("short-{i}")), &ann, "laptop", short);
    }
    // A session destroyed where its binding was unknown leaves an entry
    // that must not be listed.
    let gone = sid("destroyed-blind");
    bound_session(&mut store, &gone, &ann, "tablet", TTL);
    store.destroy(&gone, None).unwrap();
    assert_eq!(store.user_sessions(&ann, None).unwrap().len(), 3);

    let mut con = server.client();
    wait_until("the sessions and their index expire", Duration::from_secs(5), || {
        all_keys(&mut con).is_empty()
    });
    assert!(store.user_sessions(&ann, None).unwrap().is_empty());
    assert_eq!(store.logout_user(&ann, None).unwrap(), 0);
    assert!(all_keys(&mut con).is_empty(), "listing leaves nothing behind");
}

fn bad_user_ids_and_labels_are_refused_before_any_io(server: &dyn Deployment) {
    assert_eq!(UserId::parse(""), Err(InvalidUser::Empty));
    assert!(matches!(
        UserId::parse(&"u".repeat(stickless::MAX_USER_ID_LEN + 1)),
        Err(InvalidUser::TooLong { .. })
    ));
    let mut store = store(server, "");
    let id = sid("bad-label");
    let (mut lease, _, _) = lock(&mut store, &id);
    let label = "l".repeat(stickless::MAX_LABEL_LEN + 1);
    match store.bind_user(&mut lease, &user("ann"), Some(&label), TTL) {
        Err(Error::InvalidUser(InvalidUser::LabelTooLong { .. })) => {}
        other => panic!("expected a refused label, got {other:?}"),
    }
    assert!(!lease.is_bound());
    store.release(lease).unwrap();
    let mut con = server.client();
    assert!(all_keys(&mut con).is_empty(), "nothing was written");
}

// ---------------------------------------------------------------- every topology

/// Runs each behaviour test above on a standalone server, a 3+3 cluster and
/// a primary+replica watched by 3 sentinels, each test on its own servers.
macro_rules! on_every_topology {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $( #[test] fn $name() { super::$name(&super::RedisServer::start()) } )*
        }
        mod cluster {
            $( #[test] fn $name() { super::$name(&super::RedisCluster::start()) } )*
        }
        mod sentinel {
            $( #[test] fn $name() { super::$name(&super::SentinelSet::start()) } )*
        }
    };
}

on_every_topology!(
    lock_then_commit_round_trips_payload,
    load_reads_without_locking_or_waiting,
    every_lock_has_a_ttl,
    abandoned_lock_is_taken_over_when_its_ttl_lapses,
    second_locker_waits_and_is_woken_by_release,
    every_ending_step_wakes_the_next_waiter,
    waiters_are_served_in_arrival_order,
    concurrent_increments_lose_nothing,
    lock_wait_timeout_fails_with_lock_timeout,
    lock_wait_timeout_in_readonly_mode_returns_current_data,
    lapsed_lease_write_lands_when_nobody_changed_the_session,
    lapsed_lease_write_is_refused_when_the_session_changed,
    request_longer_than_the_lease_keeps_its_lock,
    dropped_lease_is_released_in_the_background,
    new_session_is_locked_until_its_first_write,
    new_id_that_exists_is_refused,
    require_existing_takes_no_lock_on_missing_session,
    strict_waiter_on_a_destroyed_session_passes_the_lock_on,
    destroy_deletes_and_hands_off,
    destroy_is_refused_while_another_request_holds_the_lock,
    too_large_write_is_refused_and_data_untouched,
    create_refuses_to_overwrite,
    corrupt_value_is_reported_not_overwritten,
    hung_server_costs_at_most_the_budget,
    dropped_connection_is_replaced_on_the_next_call,
    dead_waiters_cost_later_requests_no_wait,
    dead_registrations_stop_counting_against_max_waiters,
    request_that_timed_out_on_a_hung_server_leaves_no_lock_behind,
    orphaned_lock_is_cleared_in_the_background_once_its_node_answers,
    waiters_beyond_max_waiters_are_refused_at_once,
    user_logged_out_everywhere_but_here,
    bound_session_keeps_its_entry_current,
    user_index_expires_with_its_sessions,
    bad_user_ids_and_labels_are_refused_before_any_io,
);
