//! The commands on a 3-primary, 3-replica Redis Cluster: every primary is
//! scanned, and each session is found on the primary of its slot.

#[path = "../../stickless/tests/support/mod.rs"]
mod support;

mod common;

use common::{put, sid, stickless, store, until};
use stickless::{SessionId, SessionKeys, cluster};
use support::cluster::RedisCluster;
use support::deployment::Deployment;

#[test]
fn every_command_covers_every_primary() {
    let c = RedisCluster::start();
    let url = format!("{}?prefix=cli:", c.url());
    let mut s = store(&url);
    for n in 0..90 {
        put(&mut s, &sid(n), format!("n|i:{n};").as_bytes());
    }

    let doc = stickless(&url, &["--json", "stats", "--count", "20"]).json();
    assert_eq!(doc["sessions"], 90, "{doc}");
    let per_node = doc["per_node"].as_array().unwrap();
    assert_eq!(per_node.len(), 3, "{doc}");
    assert!(
        per_node.iter().all(|n| n["sessions"].as_u64().unwrap() > 0),
        "{doc}"
    );

    // show names the primary that serves the session's slot.
    let keys = SessionKeys::derive("cli:", &SessionId::parse(&sid(7)).unwrap());
    let owner = c.nodes[c.primary_index(cluster::slot(&keys.data()))].port();
    let doc = stickless(&url, &["--json", "show", &sid(7)]).json();
    assert_eq!(doc["node"], format!("127.0.0.1:{owner}"));
    assert_eq!(doc["slot"], cluster::slot(&keys.data()));
    assert_eq!(doc["contents"]["n"], 7);

    stickless(&url, &["delete", &sid(7)]).ok();
    let doc = stickless(&url, &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 89);

    // A new cluster's CLUSTER SLOTS names the replicas only once gossip
    // has told the seed about them.
    until("the first seed lists every replica", || {
        let v: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut c.nodes[0].client())
            .unwrap_or(redis::Value::Nil);
        let redis::Value::Array(ranges) = v else {
            return false;
        };
        ranges
            .iter()
            .all(|r| matches!(r, redis::Value::Array(f) if f.len() >= 4))
    });
    let doc = stickless(&url, &["--json", "check"]).json();
    assert_eq!(doc["ok"], true, "{doc}");
    let findings = doc["findings"].as_array().unwrap();
    let coverage = findings.iter().find(|f| f["check"] == "coverage").unwrap();
    assert!(
        coverage["message"]
            .as_str()
            .unwrap()
            .contains("all 16384 slots"),
        "{coverage}"
    );
    let reachable = findings
        .iter()
        .filter(|f| f["check"] == "reachable")
        .count();
    assert_eq!(reachable, 6, "primaries and replicas: {doc}");
    let acl = findings
        .iter()
        .filter(|f| f["check"] == "acl" && f["level"] == "ok")
        .count();
    assert_eq!(acl, 3, "each primary probed on a key of its own: {doc}");

    // A single-server URL aimed at a cluster node is a problem with a fix.
    let single = format!("redis://127.0.0.1:{}/0?prefix=cli:", c.nodes[0].port());
    let ran = stickless(&single, &["check"]);
    assert!(ran.stdout.contains("cluster mode"), "{}", ran.stdout);
    assert!(ran.stdout.contains("redis+cluster://"), "{}", ran.stdout);
    ran.failed();
}

#[test]
fn import_walks_every_primary_and_moves_each_session_across_slots() {
    let c = RedisCluster::start();
    let url = format!("{}?prefix=cli:", c.url());
    let mut client = c.client();
    for n in 0..60 {
        let _: () = redis::cmd("SETEX")
            .arg(format!("sf_s{}", sid(n)))
            .arg(1440)
            .arg(format!("n|i:{n};"))
            .query(&mut client)
            .expect("SETEX");
    }
    let doc = stickless(
        &url,
        &["--json", "import", "--from", "symfony", "--count", "20"],
    )
    .json();
    assert_eq!(doc["imported"], 60, "{doc}");
    let doc = stickless(&url, &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 60, "{doc}");
    let again = stickless(&url, &["--json", "import", "--from", "symfony"]).json();
    assert_eq!(again["imported"], 0, "{again}");
    assert!(
        client.all_keys().iter().all(|k| !k.starts_with("sf_s")),
        "old keys left"
    );
}

#[test]
fn logout_user_ends_a_users_sessions_on_every_primary() {
    let c = RedisCluster::start();
    let url = format!("{}?prefix=cli:", c.url());
    let mut s = store(&url);
    let user = stickless::UserId::parse("ann").unwrap();
    let ttl = std::time::Duration::from_secs(1440);
    // Enough sessions that their slots fall on every primary.
    let mut primaries = std::collections::BTreeSet::new();
    for n in 0..12 {
        let id = SessionId::parse(&sid(n)).unwrap();
        let keys = SessionKeys::derive("cli:", &id);
        primaries.insert(c.primary_index(cluster::slot(&keys.data())));
        let Ok(stickless::Opened::Locked { mut lease, .. }) =
            s.lock(&id, stickless::OpenMode::CreateIfMissing)
        else {
            panic!("free lock")
        };
        s.bind_user(&mut lease, &user, Some("phone"), ttl).unwrap();
        s.commit(lease, b"n|i:1;".to_vec(), ttl).unwrap();
    }
    assert_eq!(primaries.len(), 3, "the sessions span every primary");

    let doc = stickless(&url, &["--json", "user-sessions", "ann"]).json();
    assert_eq!(doc["sessions"].as_array().map(Vec::len), Some(12), "{doc}");
    let doc = stickless(&url, &["--json", "logout-user", "ann", "--except", &sid(0)]).json();
    assert_eq!(doc["destroyed"], 11, "{doc}");
    let doc = stickless(&url, &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 1, "{doc}");
}
