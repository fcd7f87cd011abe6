// Every step at every moment of a slot migration, driven by hand with the
// commands `redis-cli --cluster reshard` sends (CLUSTER SETSLOT IMPORTING /
// MIGRATING, MIGRATE, CLUSTER SETSLOT NODE), so each moment can be held
// while a step runs. Included by `migration.rs` (blocking driver) and
// `aio_migration.rs` (async driver).
//
// What users saw before: a lock+read failed with "Pipeline failure: [(Index
// 0, error: Ask…)]", a commit failed after 1.5 s with the write lost and the
// lock left behind, and a hand-off on the source node stopped halfway
// ("Script attempted to access a non local key").

use std::thread::{self, JoinHandle};
use std::time::Duration;

use stickless::cluster::slot;
use stickless::{Config, Error, Loaded, OpenMode, Opened, SessionId, SessionKeys};
use support::cluster::RedisCluster;
use support::deployment::Deployment;

const TTL: Duration = Duration::from_secs(60);
/// How long a move stays open while a step waits for it: long enough that
/// the step surely meets it, well inside the budget below.
const MOVE_TAKES: Duration = Duration::from_millis(300);
const QUERY: &str = "prefix=mig:&budget_ms=3000&timeout_ms=1000&lock_wait_ms=4000";

fn sid(n: u32) -> SessionId {
    SessionId::parse(&format!("migration-session-{n:04}-abcdefghijklmnop")).expect("valid ID")
}

/// One slot being moved from one primary to another.
struct Move {
    slot: u16,
    from: (u16, String),
    to: (u16, String),
    /// Every primary's port, to announce the new owner to all of them.
    primaries: Vec<u16>,
}

fn con(port: u16) -> redis::Connection {
    let con = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("test connection");
    con.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    con
}

fn node_id(port: u16) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut con(port))
        .expect("CLUSTER MYID")
}

impl Move {
    /// Opens the move of the slot of `keys` to another primary: from here
    /// on its keys may be on either node.
    fn open(cluster: &RedisCluster, keys: &SessionKeys) -> Self {
        let slot = slot(keys.tag());
        let from = cluster.nodes[cluster.primary_index(slot)].port();
        let primaries: Vec<u16> = (0..cluster.nodes.len())
            .filter(|&i| {
                let role: Vec<redis::Value> = redis::cmd("ROLE")
                    .query(&mut cluster.nodes[i].client())
                    .unwrap_or_default();
                matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
            })
            .map(|i| cluster.nodes[i].port())
            .collect();
        let to = *primaries
            .iter()
            .find(|&&p| p != from)
            .expect("another primary");
        let m = Self {
            slot,
            from: (from, node_id(from)),
            to: (to, node_id(to)),
            primaries,
        };
        let setslot = |port: u16, state: &str, id: &str| {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .query(&mut con(port))
                .unwrap_or_else(|e| panic!("SETSLOT {state} on {port}: {e}"));
        };
        setslot(m.to.0, "IMPORTING", &m.from.1);
        setslot(m.from.0, "MIGRATING", &m.to.1);
        m
    }

    /// Moves these keys (those that exist) to the importing node.
    fn migrate(&self, keys: &[String]) {
        let reply: redis::Value = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(self.to.0)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(keys)
            .query(&mut con(self.from.0))
            .expect("MIGRATE");
        assert!(
            matches!(reply, redis::Value::Okay | redis::Value::SimpleString(_)),
            "MIGRATE: {reply:?}"
        );
    }

    /// Moves what is left of the slot and hands it to the importing node,
    /// as the last step of a reshard does.
    fn finish(&self) {
        let left: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(self.slot)
            .arg(1000)
            .query(&mut con(self.from.0))
            .expect("GETKEYSINSLOT");
        if !left.is_empty() {
            self.migrate(&left);
        }
        let (to, from) = (self.to.0, self.from.0);
        let mut order = vec![to, from];
        order.extend(self.primaries.iter().filter(|&&p| p != to && p != from));
        for port in order {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(self.slot)
                .arg("NODE")
                .arg(&self.to.1)
                .query(&mut con(port))
                .unwrap_or_else(|e| panic!("SETSLOT NODE on {port}: {e}"));
        }
    }

    /// Finishes the move after `MOVE_TAKES`, on a thread: a step started
    /// meanwhile meets the open migration and must ride it out.
    fn finish_later(self) -> JoinHandle<()> {
        thread::spawn(move || {
            thread::sleep(MOVE_TAKES);
            self.finish();
        })
    }

    /// Whether the source still reports the slot as migrating.
    fn still_open(&self) -> bool {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut con(self.from.0))
            .expect("CLUSTER NODES");
        nodes.contains(&format!("[{}->-", self.slot))
    }

    /// Where each of `keys` is now: on the source, the target, or neither.
    fn on_source(&self, key: &str) -> bool {
        exists(self.from.0, key)
    }
}

fn exists(port: u16, key: &str) -> bool {
    // ASKING: a key of an importing slot is visible only after it.
    let (_, n): ((), i64) = redis::pipe()
        .cmd("ASKING")
        .cmd("EXISTS")
        .arg(key)
        .query(&mut con(port))
        .unwrap_or(((), 0));
    n == 1
}

fn store(cluster: &RedisCluster) -> Store {
    Store::new(Config::parse(&format!("{}?{QUERY}", cluster.url())).expect("URL parses"))
}

/// A payload large enough to be staged rather than passed to the script.
fn large_text(mark: &str) -> String {
    mark.repeat(4096)
}

fn large(mark: &str) -> Vec<u8> {
    large_text(mark).into_bytes()
}

fn payload(loaded: &Loaded) -> String {
    String::from_utf8_lossy(loaded.payload()).into_owned()
}

fn locked(opened: Opened) -> (stickless::Lease, Loaded) {
    match opened {
        Opened::Locked { lease, loaded, .. } => (lease, loaded),
        other => panic!("expected a lock, got {other:?}"),
    }
}

/// A session stored with `value`, its lock free.
fn seed(store: &mut Store, id: &SessionId, value: &str) {
    let (lease, _) = locked(store.lock(id, OpenMode::CreateIfMissing).expect("lock"));
    store
        .commit(lease, value.as_bytes().to_vec(), TTL)
        .expect("commit");
}

/// No staged envelope left on any node: every commit moved its stage into
/// place or deleted it.
fn assert_unstaged(cluster: &RedisCluster, keys: &SessionKeys) {
    let pattern = keys.stage("*");
    for node in &cluster.nodes {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut con(node.port()))
            .expect("KEYS");
        assert!(left.is_empty(), "{left:?} left on node {}", node.port());
    }
}

/// No lock, queue, wake list or stage left: only the data key, wherever it is.
fn assert_tidy(cluster: &RedisCluster, keys: &SessionKeys) {
    assert_unstaged(cluster, keys);
    for key in [keys.lock(), keys.queue(), keys.wake()] {
        for node in &cluster.nodes {
            assert!(
                !exists(node.port(), &key),
                "{key} left on node {}",
                node.port()
            );
        }
    }
}

#[test]
fn every_step_rides_out_a_slot_migration() {
    let cluster = RedisCluster::start();
    let mut s = store(&cluster);

    // 1. Nothing moved yet. The free lock goes to the importing node (new
    //    keys are made there), the data is read on the source where it
    //    still is; the commit meets TRYAGAIN until the move ends.
    let id = sid(1);
    let keys = s.keys(&id);
    seed(&mut s, &id, "one");
    let m = Move::open(&cluster, &keys);
    let (lease, loaded) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    assert_eq!(
        payload(&loaded),
        "one",
        "read the real session, not an empty one"
    );
    assert!(m.on_source(&keys.data()) && !m.on_source(&keys.lock()));
    let done = m.finish_later();
    let before = s.round_trips();
    s.commit(lease, b"two".to_vec(), TTL)
        .expect("the commit rides out the move");
    assert!(
        s.round_trips() - before > 1,
        "the commit never met the migration"
    );
    done.join().expect("move finished");
    assert_eq!(payload(&s.load(&id).expect("load")), "two");
    assert_tidy(&cluster, &keys);

    // 2. Keys split: the data moved, the lock is still on the source. A read
    //    follows the data; a second request waits for the lock and is woken
    //    by the hand-off once the move is over.
    let id = sid(2);
    let keys = s.keys(&id);
    seed(&mut s, &id, "1");
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    let m = Move::open(&cluster, &keys);
    m.migrate(&[keys.data()]);
    assert!(!m.on_source(&keys.data()) && m.on_source(&keys.lock()));
    assert_eq!(payload(&s.load(&id).expect("load while split")), "1");
    let url = format!("{}?{QUERY}", cluster.url());
    let waiter_id = id.clone();
    let waiter = thread::spawn(move || {
        let mut other = Store::new(Config::parse(&url).expect("URL parses"));
        let (lease, loaded) = locked(
            other
                .lock(&waiter_id, OpenMode::CreateIfMissing)
                .expect("the waiter gets the lock"),
        );
        let n: u32 = payload(&loaded).parse().expect("a number");
        other
            .commit(lease, (n + 1).to_string().into_bytes(), TTL)
            .expect("the waiter's commit");
    });
    let done = m.finish_later();
    s.commit(lease, b"2".to_vec(), TTL)
        .expect("the holder's commit rides out the move");
    done.join().expect("move finished");
    waiter.join().expect("waiter finished");
    assert_eq!(
        payload(&s.load(&id).expect("load")),
        "3",
        "an update was lost"
    );
    assert_tidy(&cluster, &keys);

    // 3. Every key moved, the slot not yet handed over: reads follow ASK;
    //    touch and release ride out the end of the move.
    let id = sid(3);
    let keys = s.keys(&id);
    seed(&mut s, &id, "kept");
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    let m = Move::open(&cluster, &keys);
    m.migrate(&[keys.data(), keys.lock()]);
    assert_eq!(payload(&s.load(&id).expect("load")), "kept");
    let done = m.finish_later();
    s.touch(lease, TTL).expect("touch rides out the move");
    done.join().expect("move finished");
    let (lease, loaded) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    assert_eq!(payload(&loaded), "kept");
    let m = Move::open(&cluster, &keys);
    m.migrate(&[keys.data(), keys.lock()]);
    let done = m.finish_later();
    s.release(lease).expect("release rides out the move");
    done.join().expect("move finished");
    assert_tidy(&cluster, &keys);

    // 4. New sessions while their slot moves: created on the importing
    //    node, and visible at once.
    let id = sid(4);
    let keys = s.keys(&id);
    seed(&mut s, &id, "x");
    let m = Move::open(&cluster, &keys);
    let fresh = {
        // Another ID in the same slot: the keys share the hash tag only
        // through the session, so look for one.
        let slot_of = |n: u32| slot(s.keys(&sid(n)).tag());
        let n = (1000..200_000)
            .find(|&n| slot_of(n) == m.slot)
            .expect("an ID in the slot");
        sid(n)
    };
    s.create(&fresh, b"new".to_vec(), TTL)
        .expect("create while the slot moves");
    assert!(!m.on_source(&s.keys(&fresh).data()));
    assert_eq!(payload(&s.load(&fresh).expect("load")), "new");
    let done = m.finish_later();
    s.destroy(&id, None).expect("destroy rides out the move");
    done.join().expect("move finished");
    assert!(matches!(s.load(&id).expect("load"), Loaded::Empty));
    assert_eq!(payload(&s.load(&fresh).expect("load")), "new");

    // 5. Every key of the session is on the source, so the node runs the
    //    scripts there mid-move; the hand-off empties the queue (an expired
    //    registration) and refills the wake list, neither of which may stop
    //    the script halfway.
    let id = sid(5);
    let keys = s.keys(&id);
    seed(&mut s, &id, "a");
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    let mut admin = con(cluster.nodes[cluster.primary_index(slot(keys.tag()))].port());
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(keys.queue())
        .arg(1)
        .arg("expired-waiter")
        .ignore()
        .cmd("RPUSH")
        .arg(keys.wake())
        .arg("1")
        .ignore()
        .cmd("SADD")
        .arg(keys.void())
        .arg("gone")
        .ignore()
        .query(&mut admin)
        .expect("set up the keys");
    let m = Move::open(&cluster, &keys);
    s.commit(lease, b"b".to_vec(), TTL)
        .expect("the hand-off runs whole on the source");
    assert!(m.still_open(), "the commit did not run mid-move");
    m.finish();
    assert_eq!(payload(&s.load(&id).expect("load")), "b");

    // A large commit stages its envelope under a key of its own, new to
    // the source, which a migrating node never takes: it rides the move
    // out instead.
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    let m = Move::open(&cluster, &keys);
    let done = m.finish_later();
    s.commit(lease, large("b"), TTL)
        .expect("the staged commit rides out the move");
    done.join().expect("move finished");
    assert_eq!(payload(&s.load(&id).expect("load")), large_text("b"));
    assert_unstaged(&cluster, &keys);
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    s.commit(lease, b"b".to_vec(), TTL).expect("commit");

    // A waiter's ACQUIRE with all five keys on the source: the lock is
    // held by another token, the queue holds only an expired registration,
    // and registering must not stop the script halfway either.
    let mut admin = con(cluster.nodes[cluster.primary_index(slot(keys.tag()))].port());
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(keys.lock())
        .arg("other-holder")
        .arg("PX")
        .arg(400)
        .ignore()
        .cmd("ZADD")
        .arg(keys.queue())
        .arg(1)
        .arg("expired-waiter")
        .ignore()
        .cmd("RPUSH")
        .arg(keys.wake())
        .arg("1")
        .ignore()
        .query(&mut admin)
        .expect("set up the keys");
    let m = Move::open(&cluster, &keys);
    let mut quick = Store::new(
        Config::parse(&format!(
            "{}?prefix=mig:&budget_ms=3000&lock_wait_ms=100",
            cluster.url()
        ))
        .expect("URL parses"),
    );
    let done = m.finish_later();
    match quick.lock(&id, OpenMode::CreateIfMissing) {
        Err(Error::LockTimeout { .. }) => {}
        Ok(Opened::Locked { lease, loaded, .. }) => {
            // The other holder's lock lapsed meanwhile: fine too.
            assert_eq!(payload(&loaded), "b");
            quick.release(lease).expect("release");
        }
        other => panic!("a wait on the source failed: {other:?}"),
    }
    done.join().expect("move finished");
    assert_eq!(payload(&s.load(&id).expect("load")), "b");

    // 6. Every key of the session has moved, the slot not yet handed over:
    //    the source sends a large commit's staged SET and its script on with
    //    ASK, and both go to the importing node in one pipeline, where the
    //    script finds the stage and runs mid-move.
    let id = sid(6);
    let keys = s.keys(&id);
    seed(&mut s, &id, "c");
    let (lease, _) = locked(s.lock(&id, OpenMode::CreateIfMissing).expect("lock"));
    let mut admin = con(cluster.nodes[cluster.primary_index(slot(keys.tag()))].port());
    let _: () = redis::pipe()
        .cmd("ZADD")
        .arg(keys.queue())
        .arg(1)
        .arg("expired-waiter")
        .ignore()
        .cmd("RPUSH")
        .arg(keys.wake())
        .arg("1")
        .ignore()
        .query(&mut admin)
        .expect("set up the keys");
    let m = Move::open(&cluster, &keys);
    m.migrate(&[keys.data(), keys.lock(), keys.queue(), keys.wake()]);
    let before = s.round_trips();
    s.commit(lease, large("d"), TTL)
        .expect("the staged commit runs on the importing node");
    assert_eq!(
        s.round_trips() - before,
        2,
        "one send to the source, one ASKING pipeline to the importing node"
    );
    assert!(m.still_open(), "the commit did not run mid-move");
    m.finish();
    assert_eq!(payload(&s.load(&id).expect("load")), large_text("d"));
    assert_unstaged(&cluster, &keys);
}
