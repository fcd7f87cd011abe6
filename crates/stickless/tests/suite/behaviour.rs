// The behaviour suite shared by both drivers: included by `blocking.rs`
// (with `stickless::Store`) and by `aio.rs` (with the async store behind a
// blocking face), so both pass the very same tests.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use stickless::{
    Config, CorruptKind, Envelope, Error, Lease, Loaded, LostReason, OpenMode, Opened, SessionId,
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

fn llen(con: &mut Client, key: &str) -> usize {
    con.llen(key).expect("LLEN")
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
    assert_eq!(llen(&mut con, &holder.keys(&id).queue()), 0);
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
    wait_until("waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 1
    });
    let queue_ttl = pttl(&mut con, &keys.queue());
    assert!(
        queue_ttl > 0 && queue_ttl <= 5000 + 5000,
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
    // A request that dies never releases: its lease is simply gone.
    drop(lease);

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
    wait_until("waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 1
    });
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
        wait_until("waiter queued", Duration::from_secs(5), || {
            llen(&mut con, &keys.queue()) == 1
        });
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
        wait_until("waiter queued", Duration::from_secs(5), || {
            llen(&mut con, &keys.queue()) == i + 1
        });
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
    assert_eq!(llen(&mut con, &keys.queue()), 0);

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
        llen(&mut con, &keys.queue()),
        0,
        "read-only opener left the queue"
    );
    // The holder still owns the lock and its write lands.
    holder.commit(lease, b"next".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut reader, &id).payload, b"next");
}

// ---------------------------------------------------------------- fencing

fn lost_lock_write_is_refused(server: &dyn Deployment) {
    let id = sid("fenced");
    let mut a = store(server, "");
    let keys = a.keys(&id);
    let mut con = server.client();
    let (lease, _, _) = lock(&mut a, &id);
    a.commit(lease, b"v1".to_vec(), TTL).unwrap();

    // Expired: the lock vanished (as on expiry) and nobody took it.
    for (name, end) in [("commit", 0), ("touch", 1), ("release", 2)] {
        let (lease, _, _) = lock(&mut a, &id);
        let _: () = con.del(keys.lock()).unwrap();
        let result = match end {
            0 => a.commit(lease, b"v2".to_vec(), TTL),
            1 => a.touch(lease, TTL),
            _ => a.release(lease),
        };
        match result {
            Err(Error::LockLost {
                session,
                reason: LostReason::Expired,
            }) => assert_eq!(session, keys.tag()),
            other => panic!("{name}: expected LockLost(Expired), got {other:?}"),
        }
        assert_eq!(stored(&mut a, &id).payload, b"v1", "{name} changed data");
    }

    // Taken: the lock vanished and another request now holds it.
    let (stale, _, _) = lock(&mut a, &id);
    let _: () = con.del(keys.lock()).unwrap();
    let mut b = store(server, "lock_wait_ms=0");
    let (fresh, _, _) = lock(&mut b, &id);
    match a.commit(stale, b"stale".to_vec(), TTL) {
        Err(Error::LockLost {
            reason: LostReason::Taken,
            ..
        }) => {}
        other => panic!("expected LockLost(Taken), got {other:?}"),
    }
    assert_eq!(stored(&mut a, &id).payload, b"v1");
    // The new holder's lock survived the refused write.
    b.commit(fresh, b"v3".to_vec(), TTL).unwrap();
    assert_eq!(stored(&mut a, &id).payload, b"v3");
}

fn write_after_real_lock_expiry_is_refused(server: &dyn Deployment) {
    let id = sid("expiry");
    let mut a = store(server, "lock_ttl_ms=100");
    let keys = a.keys(&id);
    let (lease, _, _) = lock(&mut a, &id);
    a.commit(lease, b"v1".to_vec(), TTL).unwrap();

    let (lease, _, _) = lock(&mut a, &id);
    let mut con = server.client();
    // Outliving lock_ttl_ms is the condition under test: wait for Redis to expire it.
    wait_until("lock expiry", Duration::from_secs(5), || {
        !con.exists::<_, bool>(keys.lock()).unwrap()
    });
    assert!(matches!(
        a.commit(lease, b"late".to_vec(), TTL),
        Err(Error::LockLost {
            reason: LostReason::Expired,
            ..
        })
    ));
    assert_eq!(stored(&mut a, &id).payload, b"v1");
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
    wait_until("strict waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 1
    });
    let lenient = Waiter::spawn(store(server, ""), &id, b"fresh");
    wait_until("lenient waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 2
    });

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
    wait_until("waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 1
    });
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

// ---------------------------------------------------------------- known driver bugs
//
// These assert the documented behaviour and fail today; run them with
// `cargo test -p stickless --test blocking -- --ignored`.

fn dead_waiter_delays_the_queue_only_for_the_claim_window(server: &dyn Deployment) {
    // claim window = min(2 * timeout_ms, lock_ttl_ms) = 600 ms; far below
    // the 5 s lock wait, and a reply budget a loaded machine can keep.
    let query = "timeout_ms=300&lock_wait_ms=5000";
    let id = sid("dead-waiter");
    let mut holder = store(server, query);
    let keys = holder.keys(&id);
    let (lease, _, _) = lock(&mut holder, &id);
    let mut con = server.client();

    // A worker killed while queued (SIGKILL, request_terminate_timeout)
    // leaves its token in the queue and never claims a hand-off.
    let _: () = con
        .rpush(keys.queue(), "deadbeefdeadbeefdeadbeefdeadbeef")
        .unwrap();

    let live = Waiter::spawn(store(server, query), &id, b"live");
    wait_until("live waiter queued", Duration::from_secs(5), || {
        llen(&mut con, &keys.queue()) == 2
    });
    holder.release(lease).unwrap();
    let released_at = Instant::now();
    let seen = live.join();
    // The lock goes to the dead token for the 600 ms claim window; the live
    // waiter should get it right after, not at its 5 s lock_wait deadline.
    let wake = seen.acquired_at.saturating_duration_since(released_at);
    assert!(
        wake < Duration::from_millis(600) + PROMPT,
        "live waiter got the lock {wake:?} after release"
    );
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
    // worker's next request must not wait for one (lock_ttl_ms is 30 s).
    let (lease, _, waited) = lock(&mut store, &id);
    assert!(waited < PROMPT, "waited {waited:?} for an orphaned lock");
    store.release(lease).unwrap();
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
        wait_until("waiter queued", Duration::from_secs(5), || {
            llen(&mut con, &keys.queue()) == i + 1
        });
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
    assert_eq!(
        llen(&mut con, &keys.queue()),
        2,
        "the refused request queued"
    );

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
    lost_lock_write_is_refused,
    write_after_real_lock_expiry_is_refused,
    require_existing_takes_no_lock_on_missing_session,
    strict_waiter_on_a_destroyed_session_passes_the_lock_on,
    destroy_deletes_and_hands_off,
    destroy_is_refused_while_another_request_holds_the_lock,
    too_large_write_is_refused_and_data_untouched,
    create_refuses_to_overwrite,
    corrupt_value_is_reported_not_overwritten,
    hung_server_costs_at_most_the_budget,
    dropped_connection_is_replaced_on_the_next_call,
    dead_waiter_delays_the_queue_only_for_the_claim_window,
    request_that_timed_out_on_a_hung_server_leaves_no_lock_behind,
    waiters_beyond_max_waiters_are_refused_at_once,
);
