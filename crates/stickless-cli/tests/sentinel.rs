//! The commands behind Sentinel: the primary the sentinels name is used.

#[path = "../../stickless/tests/support/mod.rs"]
mod support;

mod common;

use common::{put, sid, stickless, store};
use support::deployment::Deployment;
use support::sentinel::SentinelSet;

#[test]
fn the_sentinels_primary_is_inspected() {
    let set = SentinelSet::start();
    let url = format!("{}?prefix=cli:", set.url());
    let mut s = store(&url);
    for n in 0..5 {
        put(&mut s, &sid(n), b"user|s:3:\"bob\";");
    }
    let primary = set.servers[set.primary_index()].port();
    let doc = stickless(&url, &["--json", "show", &sid(3)]).json();
    assert_eq!(doc["node"], format!("127.0.0.1:{primary}"));
    assert_eq!(doc["contents"]["user"], "bob");
    let doc = stickless(&url, &["--json", "stats"]).json();
    assert_eq!(doc["sessions"], 5);

    let doc = stickless(&url, &["--json", "check"]).json();
    assert_eq!(doc["ok"], true, "{doc}");
    let sentinels = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "sentinel" && f["level"] == "ok")
        .count();
    assert_eq!(sentinels, 3, "{doc}");
    let reached = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "reachable" && f["level"] == "ok")
        .count();
    assert_eq!(
        reached, 4,
        "three sentinels and the primary, each timed: {doc}"
    );

    // import moves phpredis's sessions on the primary the sentinels name.
    let mut client = set.client();
    for n in 10..15 {
        let _: () = redis::cmd("SETEX")
            .arg(format!("PHPREDIS_SESSION:{}", sid(n)))
            .arg(1440)
            .arg("user|s:3:\"ann\";")
            .query(&mut client)
            .expect("SETEX");
    }
    let doc = stickless(&url, &["--json", "import", "--from", "phpredis"]).json();
    assert_eq!(doc["imported"], 5, "{doc}");
    let doc = stickless(&url, &["--json", "show", &sid(12)]).json();
    assert_eq!(doc["contents"]["user"], "ann", "{doc}");

    let wrong = url.replace("/mymaster", "/nosuch");
    let err = stickless(&wrong, &["show", &sid(3)]).failed();
    assert!(
        err.contains("no sentinel names a primary for `nosuch`"),
        "{err}"
    );
}
