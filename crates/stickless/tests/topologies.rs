//! What only some deployments have: TLS (CA, client certificates, a wrong
//! CA), ACL users restricted to the session keys, refused connections on
//! cluster and sentinel, and proof that no command ever spans slots.

mod support;

use std::time::{Duration, Instant};

use stickless::{Config, Error, OpenMode, Opened, SessionId, SessionKeys, Store};
use support::RedisServer;
use support::cluster::RedisCluster;
use support::deployment::Deployment;
use support::sentinel::SentinelSet;
use support::tls::{TestCa, tls_server};

const TTL: Duration = Duration::from_secs(60);

fn sid(n: usize) -> SessionId {
    SessionId::parse(&format!("topology-session-{n:04}-abcdefghijklmnop")).expect("valid ID")
}

/// A locked read-modify-write, the way a request does it.
fn increment(store: &mut Store, id: &SessionId) -> Result<u64, Error> {
    match store.lock(id, OpenMode::CreateIfMissing)? {
        Opened::Locked { lease, loaded, .. } => {
            let n: u64 = std::str::from_utf8(loaded.payload())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
                + 1;
            store.commit(lease, n.to_string().into_bytes(), TTL)?;
            Ok(n)
        }
        other => panic!("expected a lock, got {other:?}"),
    }
}

fn unavailable_cause(result: Result<u64, Error>) -> String {
    match result {
        Err(e @ Error::Unavailable { .. }) => e.to_string(),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---------------------------------------------------------------- TLS

#[test]
fn tls_with_a_test_ca_works_and_a_wrong_ca_is_refused() {
    let ca = TestCa::generate();
    let (_server, port) = tls_server(&ca, false);
    let base = format!("rediss://127.0.0.1:{port}/0?prefix=tls:");

    let mut good =
        Store::new(Config::parse(&format!("{base}&tls_ca={}", ca.ca().display())).unwrap());
    assert_eq!(increment(&mut good, &sid(1)).unwrap(), 1);
    assert_eq!(increment(&mut good, &sid(1)).unwrap(), 2);

    let mut wrong =
        Store::new(Config::parse(&format!("{base}&tls_ca={}", ca.other_ca().display())).unwrap());
    let cause = unavailable_cause(increment(&mut wrong, &sid(1)));
    assert!(
        cause.to_lowercase().contains("certificate"),
        "the refusal does not say why: {cause}"
    );
    assert!(cause.contains(&format!("127.0.0.1:{port}")), "{cause}");

    // `tls_insecure` skips verification (tests only).
    let mut insecure = Store::new(Config::parse(&format!("{base}&tls_insecure=1")).unwrap());
    assert_eq!(increment(&mut insecure, &sid(1)).unwrap(), 3);

    // A CA file that is not there is a clear configuration error.
    let mut missing =
        Store::new(Config::parse(&format!("{base}&tls_ca=/nonexistent/ca.pem")).unwrap());
    let cause = unavailable_cause(increment(&mut missing, &sid(1)));
    assert!(cause.contains("/nonexistent/ca.pem"), "{cause}");
}

#[test]
fn tls_client_certificates_are_presented_when_required() {
    let ca = TestCa::generate();
    let (_server, port) = tls_server(&ca, true);
    let base = format!(
        "rediss://127.0.0.1:{port}/0?prefix=mtls:&tls_ca={}",
        ca.ca().display()
    );
    let mut with_cert = Store::new(
        Config::parse(&format!(
            "{base}&tls_cert={}&tls_key={}",
            ca.client_cert().display(),
            ca.client_key().display()
        ))
        .unwrap(),
    );
    assert_eq!(increment(&mut with_cert, &sid(2)).unwrap(), 1);

    let mut without = Store::new(Config::parse(&base).unwrap());
    unavailable_cause(increment(&mut without, &sid(2)));
}

#[test]
fn tls_reaches_every_node_of_a_cluster() {
    let ca = TestCa::generate();
    let (cluster, tls_ports) = RedisCluster::start_tls(&ca);
    let url = format!(
        "rediss+cluster://127.0.0.1:{},127.0.0.1:{}?prefix=tlsc:&tls_ca={}",
        tls_ports[0],
        tls_ports[1],
        ca.ca().display()
    );
    let mut store = Store::new(Config::parse(&url).unwrap());
    for n in 0..12 {
        assert_eq!(increment(&mut store, &sid(100 + n)).unwrap(), 1);
        assert_eq!(increment(&mut store, &sid(100 + n)).unwrap(), 2);
    }
    // The sessions landed on every primary, each reached on its TLS port
    // (the port CLUSTER SLOTS reports to a TLS client).
    let mut primaries = 0;
    for (node, tls_port) in cluster.nodes.iter().zip(&tls_ports) {
        let mut con = node.client();
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut con)
            .unwrap();
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
        if stats.contains("cmdstat_evalsha") {
            primaries += 1;
            assert!(
                clients.contains(&format!("laddr=127.0.0.1:{tls_port} ")),
                "no client on the TLS port of node {}: {clients}",
                node.port()
            );
        }
    }
    assert_eq!(
        primaries, 3,
        "sessions did not reach every primary over TLS"
    );
}

// ---------------------------------------------------------------- ACL

/// The commands docs/OPERATIONS.md tells operators to allow: the test user
/// gets exactly those, so the documented list is the one that is tested.
fn documented_commands() -> Vec<&'static str> {
    const OPERATIONS: &str = include_str!("../../../docs/OPERATIONS.md");
    let block = OPERATIONS
        .split("ACL SETUSER app ")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/OPERATIONS.md has an ACL SETUSER app block");
    let commands: Vec<&str> = block
        .split_whitespace()
        .filter(|w| w.starts_with('+'))
        .collect();
    assert!(commands.len() > 20, "only {commands:?} in the ACL block");
    commands
}

/// The least a stickless user needs, on its own key prefix only.
fn acl_rules() -> Vec<&'static str> {
    let mut rules = vec!["on", ">app-password-1", "~app:*", "resetchannels", "-@all"];
    rules.extend(documented_commands());
    rules
}

fn restrict(con: &mut impl redis::ConnectionLike) {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg("app");
    for rule in acl_rules() {
        cmd.arg(rule);
    }
    let _: () = cmd.query(con).expect("ACL SETUSER");
}

fn acl_case(deployment: &dyn Deployment, url_for: impl Fn(&str) -> String) {
    let mut store = Store::new(Config::parse(&url_for("app:app-password-1")).unwrap());
    assert_eq!(increment(&mut store, &sid(3)).unwrap(), 1);
    assert_eq!(increment(&mut store, &sid(3)).unwrap(), 2);
    // Every other script too: a waiter registers and gives up; a lease the
    // keeper renews; a lease dropped unsettled, which the keeper abandons.
    let url = format!(
        "{}&lock_wait_ms=50&lock_ttl_ms=300",
        url_for("app:app-password-1")
    );
    let mut holder = Store::new(Config::parse(&url).unwrap());
    let Opened::Locked { lease, .. } = holder.lock(&sid(4), OpenMode::CreateIfMissing).unwrap()
    else {
        panic!("free lock")
    };
    let mut waiter = Store::new(Config::parse(&url).unwrap());
    assert!(matches!(
        waiter.lock(&sid(4), OpenMode::CreateIfMissing),
        Err(Error::LockTimeout { .. })
    ));
    std::thread::sleep(Duration::from_millis(400)); // beyond one lease: renewed
    assert!(holder.commit(lease, b"renewed".to_vec(), TTL).is_ok());
    // A hand-off: the commit passes the lock to a request that waits for it.
    let Opened::Locked { lease, .. } = holder.lock(&sid(5), OpenMode::CreateIfMissing).unwrap()
    else {
        panic!("free lock")
    };
    let patient = format!("{}&lock_wait_ms=5000", url_for("app:app-password-1"));
    let waiting = std::thread::spawn(move || {
        let mut waiter = Store::new(Config::parse(&patient).unwrap());
        let Opened::Locked { lease, loaded, .. } =
            waiter.lock(&sid(5), OpenMode::CreateIfMissing).unwrap()
        else {
            panic!("the waiter got no lock")
        };
        let seen = loaded.payload().to_vec();
        waiter
            .commit(lease, b"after the hand-off".to_vec(), TTL)
            .map(|_| seen)
    });
    let data_key = SessionKeys::derive("app:", &sid(5)).data();
    let deadline = Instant::now() + Duration::from_secs(5);
    while deployment.blocked_clients(&data_key) == 0 {
        assert!(Instant::now() < deadline, "the waiter never queued");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(holder.commit(lease, b"handed over".to_vec(), TTL).is_ok());
    let seen = waiting
        .join()
        .expect("waiter")
        .expect("the waiter's commit");
    assert_eq!(seen, b"handed over");
    let Opened::Locked { lease, .. } = holder.lock(&sid(4), OpenMode::CreateIfMissing).unwrap()
    else {
        panic!("free lock")
    };
    drop(lease);
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder.background() != (0, 0) {
        assert!(Instant::now() < deadline, "the keeper could not abandon it");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Sessions per user: bind, renew, list, log out, and a destroy that
    // drops its entry, each script under the documented grants.
    let user = stickless::UserId::parse("ann").unwrap();
    for n in [6, 7] {
        let Opened::Locked { mut lease, .. } =
            store.lock(&sid(n), OpenMode::CreateIfMissing).unwrap()
        else {
            panic!("free lock")
        };
        store
            .bind_user(&mut lease, &user, Some("acl"), TTL)
            .unwrap();
        store.touch(lease, TTL).unwrap();
    }
    assert_eq!(store.user_sessions(&user, Some(&sid(6))).unwrap().len(), 2);
    assert_eq!(store.logout_user(&user, Some(&sid(6))).unwrap(), 1);
    let Opened::Locked { lease, .. } = store.lock(&sid(6), OpenMode::CreateIfMissing).unwrap()
    else {
        panic!("free lock")
    };
    store.destroy(&sid(6), Some(lease)).unwrap();
    assert!(store.user_sessions(&user, None).unwrap().is_empty());

    // Merge mode: the read without the lock, then two writes of one base, the
    // second replayed onto the first.
    let php = Some(stickless::php::SerializeHandler::Php);
    let mut bases = (0..2).map(|_| {
        match store
            .open_merge(&sid(8), php, OpenMode::CreateIfMissing, TTL)
            .unwrap()
        {
            stickless::MergeOpened::Unlocked(base) => base,
            other => panic!("a merge read, not {other:?}"),
        }
    });
    let (first, second) = (bases.next().unwrap(), bases.next().unwrap());
    assert!(
        store
            .commit_merge(first, b"a|i:1;".to_vec(), TTL)
            .unwrap()
            .written
    );
    let done = store.commit_merge(second, b"b|i:1;".to_vec(), TTL).unwrap();
    assert!(done.replayed && done.conflicts.is_empty(), "{done:?}");

    let mut bad = Store::new(Config::parse(&url_for("app:wrong-password-9")).unwrap());
    let cause = unavailable_cause(increment(&mut bad, &sid(3)));
    assert!(!cause.contains("wrong-password-9"), "secret in {cause}");
    assert!(
        cause.contains("WRONGPASS") || cause.to_lowercase().contains("auth"),
        "{}: no authentication cause in {cause}",
        deployment.name()
    );

    // Outside its prefix the user may not write.
    let url = url_for("app:app-password-1").replace("prefix=app:", "prefix=other:");
    let mut outside = Store::new(Config::parse(&url).unwrap());
    assert!(increment(&mut outside, &sid(3)).is_err());
}

#[test]
fn restricted_acl_user_works_on_a_standalone_server() {
    let server = RedisServer::start();
    restrict(&mut server.client());
    acl_case(&server, |auth| {
        format!("redis://{auth}@127.0.0.1:{}/0?prefix=app:", server.port())
    });
}

#[test]
fn restricted_acl_user_works_on_a_cluster() {
    let cluster = RedisCluster::start();
    for node in &cluster.nodes {
        restrict(&mut node.client());
    }
    let seeds = cluster
        .url()
        .trim_start_matches("redis+cluster://")
        .to_owned();
    acl_case(&cluster, |auth| {
        format!("redis+cluster://{auth}@{seeds}?prefix=app:")
    });
}

// ---------------------------------------------------------------- refused

#[test]
fn a_cluster_or_sentinel_set_that_refuses_everywhere_fails_fast() {
    let ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
    let list = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    for url in [
        format!("redis+cluster://{list}?budget_ms=5000"),
        format!("redis+sentinel://{list}/mymaster?budget_ms=5000"),
    ] {
        let mut store = Store::new(Config::parse(&url).unwrap());
        let started = Instant::now();
        let cause = unavailable_cause(increment(&mut store, &sid(4)));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{url}: took {:?}",
            started.elapsed()
        );
        for p in &ports {
            assert!(cause.contains(&p.to_string()), "{url}: {cause}");
        }
    }
}

#[test]
fn a_sentinel_that_does_not_know_the_name_says_so() {
    let set = SentinelSet::start();
    let url = set.url().replace("/mymaster", "/nosuchmaster");
    let mut store = Store::new(Config::parse(&url).unwrap());
    let cause = unavailable_cause(increment(&mut store, &sid(5)));
    assert!(cause.contains("does not monitor `nosuchmaster`"), "{cause}");
}

// ---------------------------------------------------------------- slots

#[test]
fn no_command_ever_spans_slots_on_a_real_cluster() {
    let cluster = RedisCluster::start();
    let url = format!("{}?prefix=slots:&lock_wait_ms=2000", cluster.url());
    let ids: Vec<SessionId> = (0..24).map(sid).collect();
    let mut a = Store::new(Config::parse(&url).unwrap());
    // Every step, on sessions spread over all three primaries, including
    // the queued path (two stores contending) and hand-offs.
    for id in &ids {
        a.create(id, b"0".to_vec(), TTL).unwrap();
        increment(&mut a, id).unwrap();
        let Opened::Locked { lease, .. } = a.lock(id, OpenMode::RequireExisting).unwrap() else {
            panic!("locked");
        };
        let url = url.clone();
        let id2 = id.clone();
        let waiter = std::thread::spawn(move || {
            let mut b = Store::new(Config::parse(&url).unwrap());
            increment(&mut b, &id2).unwrap()
        });
        std::thread::sleep(Duration::from_millis(5));
        a.touch(lease, TTL).unwrap();
        assert_eq!(waiter.join().unwrap(), 2);
        a.load(id).unwrap();
        let Opened::Locked { lease, .. } = a.lock(id, OpenMode::RequireExisting).unwrap() else {
            panic!("locked");
        };
        a.destroy(id, Some(lease)).unwrap();
    }
    let mut primaries_used = 0;
    for node in &cluster.nodes {
        let mut con = node.client();
        let errors: String = redis::cmd("INFO")
            .arg("errorstats")
            .query(&mut con)
            .unwrap();
        assert!(
            !errors.contains("CROSSSLOT"),
            "node {}: {errors}",
            node.port()
        );
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut con)
            .unwrap();
        if stats.contains("cmdstat_evalsha") {
            primaries_used += 1;
        }
    }
    assert_eq!(
        primaries_used, 3,
        "the sessions did not spread over every primary"
    );
}

// ---------------------------------------------------------------- sentinel failover

#[test]
fn a_sentinel_failover_is_followed_without_a_restart_and_loses_no_acknowledged_write() {
    let mut set = SentinelSet::start();
    let base = format!("{}?prefix=sfo:&budget_ms=1500", set.url());
    let mut durable = Store::new(Config::parse(&format!("{base}&durability=replica")).unwrap());
    let ids: Vec<SessionId> = (0..5).map(|n| sid(200 + n)).collect();
    for id in &ids {
        for _ in 0..4 {
            increment(&mut durable, id).unwrap();
        }
    }
    // The store keeps its connection to the old primary; it dies.
    let mut store = Store::new(Config::parse(&base).unwrap());
    increment(&mut store, &sid(299)).unwrap();
    let old = set.primary_index();
    set.servers[old].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while set.primary_index() == old {
        assert!(
            Instant::now() < deadline,
            "the sentinels never promoted the replica"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same store, without a restart: asks the sentinels again.
    for id in &ids {
        let n = loop {
            match increment(&mut store, id) {
                Ok(n) => break n,
                Err(Error::Unavailable { .. }) if Instant::now() < deadline => continue,
                Err(e) => panic!("after the failover: {e}"),
            }
        };
        assert_eq!(n, 5, "an acknowledged write was lost in the failover");
    }
}
