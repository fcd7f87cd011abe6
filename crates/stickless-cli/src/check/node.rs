//! The checks of one node: reachable and how fast, what server it is, what
//! it evicts, whether it has the replicas `durability=replica` waits for,
//! and whether the URL's user may run every command stickless sends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, ServerErrorKind};
use stickless::Durability;
use stickless::admin::NodeRole;
use stickless::config::{Config, Endpoint, Topology};

use super::acl::{self, Needed};
use super::finding::Findings;
use crate::nodes::{self, endpoint_name};

/// PINGs per node for the latency figure.
const PINGS: usize = 5;
/// The oldest servers stickless supports: Redis 6.2, and Valkey from its
/// first release (7.2, which reports itself as Redis 7.2.4).
const MIN_VERSION: (u32, u32) = (6, 2);

/// What it means when a node cannot be reached.
pub enum Down {
    /// Sessions fail: a node that holds them.
    Problem,
    /// Redundancy is lost, with the fix to say so (a replica, a sentinel).
    Warning(&'static str),
}

/// Connects to `endpoint` and measures PING; `None` (with `down`
/// recorded) when it cannot be reached.
pub fn reach(
    config: &Config,
    endpoint: &Endpoint,
    role: NodeRole,
    down: Down,
    f: &mut Findings,
) -> Option<Connection> {
    let name = endpoint_name(endpoint);
    let mut con = match nodes::open(config, endpoint, role) {
        Ok(con) => con,
        Err(e) => {
            match down {
                Down::Problem => f.problem(
                    Some(&name),
                    "reachable",
                    e.to_string(),
                    "start the node, or fix the host, port, credentials or TLS files in the URL",
                ),
                Down::Warning(fix) => f.warn(Some(&name), "reachable", e.to_string(), fix),
            }
            return None;
        }
    };
    let mut times = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let sent = Instant::now();
        match redis::cmd("PING").query::<String>(&mut con) {
            Ok(_) => times.push(sent.elapsed()),
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => break,
            Err(e) => {
                f.problem(
                    Some(&name),
                    "reachable",
                    format!("connected, but PING failed: {e}"),
                    "check the node's health (a full output buffer, a hung server)",
                );
                return None;
            }
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match (times.get(times.len() / 2), times.last()) {
        (Some(median), Some(max)) => f.ok(
            Some(&name),
            "reachable",
            format!(
                "PING {:.2} ms median, {:.2} ms max of {PINGS}",
                ms(*median),
                ms(*max)
            ),
        ),
        // PING refused: the ACL check reports it.
        _ => f.ok(Some(&name), "reachable", "connected"),
    }
    Some(con)
}

/// `INFO <section>` as fields, or `None` when the user may not run INFO.
fn info(con: &mut Connection, section: &str) -> Option<HashMap<String, String>> {
    let text: String = redis::cmd("INFO").arg(section).query(con).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// Everything about a node that holds sessions. `probe_key` is a key under
/// the prefix that this node serves.
pub fn data_node(
    config: &Config,
    name: &str,
    con: &mut Connection,
    probe_key: &str,
    f: &mut Findings,
) {
    let topology = &config.server.topology;
    let is_cluster = matches!(topology, Topology::Cluster(_));
    match info(con, "server") {
        None => f.warn(
            Some(name),
            "version",
            "INFO is not permitted for this user, so the version, eviction policy and replicas were not checked",
            "grant +info for `stickless check` (stickless itself does not need it), or check them with your provider",
        ),
        Some(server) => {
            version(name, &server, f);
            let mode = server.get("redis_mode").map(String::as_str);
            if mode == Some("cluster") && !is_cluster {
                f.problem(
                    Some(name),
                    "topology",
                    "the server runs in cluster mode, but the URL names a single server",
                    "use redis+cluster://host:port,... so sessions go to the primary of their slot",
                );
            }
            if let Some(memory) = info(con, "memory") {
                eviction(name, &memory, f);
            }
            if let Some(repl) = info(con, "replication") {
                replication(config, name, &repl, f);
            }
        }
    }
    let needed = |n: Needed| match n {
        Needed::Always => true,
        Needed::ReplicaDurability => config.settings.durability == Durability::Replica,
        Needed::Cluster => is_cluster,
        Needed::NotCluster => !is_cluster,
        Needed::Sentinel => matches!(topology, Topology::Sentinel { .. }),
        Needed::Migrating => config.settings.compat.is_some() || config.settings.import.is_some(),
    };
    match acl::probe(con, probe_key, config.server.db, needed) {
        Err(e) => f.problem(
            Some(name),
            "acl",
            format!("the command probes failed: {e}"),
            "check the node's health and run the check again",
        ),
        Ok(denied) => acl_findings(config, name, &denied, f),
    }
}

fn version(name: &str, server: &HashMap<String, String>, f: &mut Findings) {
    let (product, version) = match server.get("valkey_version") {
        Some(v) => ("Valkey", v.clone()),
        None => (
            "Redis",
            server.get("redis_version").cloned().unwrap_or_default(),
        ),
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major_minor = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if major_minor < MIN_VERSION {
        f.problem(
            Some(name),
            "version",
            format!("{product} {version}: stickless needs Redis 6.2+ or Valkey 7.2+"),
            "upgrade the server",
        );
    } else {
        f.ok(
            Some(name),
            "version",
            format!(
                "{product} {version}: has what stickless uses (Lua scripts by EVALSHA, BLPOP with sub-second timeouts, SET NX PX, sorted sets)"
            ),
        );
    }
}

fn eviction(name: &str, memory: &HashMap<String, String>, f: &mut Findings) {
    let policy = memory
        .get("maxmemory_policy")
        .map(String::as_str)
        .unwrap_or("unknown");
    let limit: u64 = memory
        .get("maxmemory")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if limit == 0 || policy == "noeviction" {
        f.ok(
            Some(name),
            "eviction",
            format!("maxmemory-policy {policy}, maxmemory {limit}: sessions are never evicted"),
        );
    } else if policy.starts_with("allkeys-") || policy.starts_with("volatile-") {
        f.warn(
            Some(name),
            "eviction",
            format!(
                "maxmemory-policy {policy} with maxmemory {limit}: when memory runs out, Redis evicts sessions (users are logged out) and locks (two requests may then hold one session)"
            ),
            "size maxmemory for the sessions with headroom, or set maxmemory-policy noeviction so writes fail loudly instead",
        );
    } else {
        f.ok(Some(name), "eviction", format!("maxmemory-policy {policy}"));
    }
}

fn replication(config: &Config, name: &str, repl: &HashMap<String, String>, f: &mut Findings) {
    let replicas: u32 = repl
        .get("connected_slaves")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if repl.get("role").map(String::as_str) != Some("master") {
        f.problem(
            Some(name),
            "role",
            "this node is a replica: it refuses session writes",
            "point the URL at the primary, or use redis+sentinel:// to find it",
        );
        return;
    }
    if config.settings.durability == Durability::Replica && replicas == 0 {
        f.problem(
            Some(name),
            "replicas",
            "durability=replica, but the primary has no connected replica: every write will fail",
            "attach a replica, or use durability=primary",
        );
    } else {
        f.ok(
            Some(name),
            "replicas",
            format!("primary with {replicas} connected replica(s)"),
        );
    }
}

fn acl_findings(config: &Config, name: &str, denied: &acl::Denied, f: &mut Findings) {
    let user = config.server.username.as_deref().unwrap_or("default");
    if !denied.commands.is_empty() {
        let grants: Vec<String> = denied.commands.iter().map(|c| format!("+{c}")).collect();
        f.problem(
            Some(name),
            "acl",
            format!("user `{user}` may not run: {}", denied.commands.join(", ")),
            format!(
                "ACL SETUSER {user} {} (see docs/OPERATIONS.md)",
                grants.join(" ")
            ),
        );
    }
    if denied.keys {
        f.problem(
            Some(name),
            "acl",
            format!(
                "user `{user}` may not access keys under the prefix `{}`",
                config.settings.prefix
            ),
            format!("ACL SETUSER {user} ~{}*", config.settings.prefix),
        );
    }
    for (command, why) in &denied.broken {
        f.problem(
            Some(name),
            "features",
            format!("{command} fails: {why}"),
            if command.starts_with("eval") || command.starts_with("script") {
                "enable Lua scripting: stickless runs every contended step as a script"
            } else {
                "check the server's configuration (renamed or disabled commands)"
            },
        );
    }
    if denied.commands.is_empty() && !denied.keys && denied.broken.is_empty() {
        f.ok(
            Some(name),
            "acl",
            format!("user `{user}` may run every command stickless sends"),
        );
    }
}
