//! `stickless check`: a doctor for a save path. Every node of the topology
//! is reached and timed; each node holding sessions is asked what it is,
//! what it evicts and whether the user may run every command stickless
//! sends; a cluster's slot coverage and the URL's TLS are judged. Each
//! warning and problem comes with its fix; a problem makes the exit status 1.

mod acl;
mod finding;
mod node;

use redis::Value;
use serde_json::json;
use stickless::admin::NodeRole;
use stickless::cluster::{self, SLOTS, SlotMap};
use stickless::config::{Config, Endpoint, HostPort, Topology};

use crate::error::CliError;
use crate::nodes::{self, endpoint_name};
use crate::output::Output;
use finding::{Findings, Level};

pub fn run(config: Config, out: Output) -> Result<(), CliError> {
    let mut f = Findings::default();
    tls(&config, &mut f);
    match &config.server.topology {
        Topology::Standalone(endpoint) => primary(&config, endpoint, None, &mut f),
        Topology::Cluster(seeds) => cluster(&config, seeds, &mut f),
        Topology::Sentinel { sentinels, service } => sentinel(&config, sentinels, service, &mut f),
    }
    let problems = f.count(Level::Problem);
    if out.json {
        out.json(
            &json!({
                "ok": problems == 0,
                "problems": problems,
                "warnings": f.count(Level::Warning),
                "findings": f.all,
            }),
            false,
        )?;
    } else {
        out.text(&f.to_text())?;
    }
    match problems {
        0 => Ok(()),
        n => Err(CliError::Problems(n)),
    }
}

/// A node holding sessions: reached, then examined. On a cluster `map`
/// picks a probe key that this primary serves.
fn primary(config: &Config, endpoint: &Endpoint, map: Option<&SlotMap>, f: &mut Findings) {
    let Some(mut con) = node::reach(config, endpoint, NodeRole::Data, node::Down::Problem, f)
    else {
        return;
    };
    let prefix = &config.settings.prefix;
    let probe = |n: u32| format!("{prefix}{{stickless-check-{n}}}:probe");
    let probe_key = match (map, endpoint) {
        (Some(map), Endpoint::Tcp(hp)) => (0..100_000)
            .map(probe)
            .find(|key| map.primary(cluster::slot(key)) == Some(hp)),
        _ => Some(probe(0)),
    };
    let name = endpoint_name(endpoint);
    match probe_key {
        Some(key) => node::data_node(config, &name, &mut con, &key, f),
        None => f.warn(
            Some(&name),
            "acl",
            "serves no slot, so its rights were not probed",
            "assign it slots, or remove it from the cluster",
        ),
    }
}

fn cluster(config: &Config, seeds: &[HostPort], f: &mut Findings) {
    let (map, reply) = match nodes::slot_map(config, seeds) {
        Ok(found) => found,
        Err(e) => {
            f.problem(
                None,
                "cluster",
                e.to_string(),
                "check that the seeds are cluster nodes (cluster-enabled yes) and reachable",
            );
            return;
        }
    };
    let unserved = (0..SLOTS).filter(|s| map.primary(*s).is_none()).count();
    if unserved == 0 {
        f.ok(
            None,
            "coverage",
            format!(
                "all {SLOTS} slots served by {} primaries",
                map.primaries().len()
            ),
        );
    } else {
        f.problem(
            None,
            "coverage",
            format!("{unserved} of {SLOTS} slots have no primary: sessions there cannot be stored"),
            "assign them (redis-cli --cluster fix); with cluster-require-full-coverage no the other slots keep working meanwhile",
        );
    }
    for hp in map.primaries() {
        primary(config, &Endpoint::Tcp(hp.clone()), Some(&map), f);
    }
    for hp in replicas(&reply) {
        let down = node::Down::Warning(
            "restart it: while it is down, its primary has no failover candidate",
        );
        node::reach(config, &Endpoint::Tcp(hp), NodeRole::Data, down, f);
    }
}

/// Replica addresses from a `CLUSTER SLOTS` reply (fields 4 and on of
/// each range), without duplicates.
fn replicas(reply: &Value) -> Vec<HostPort> {
    let mut found: Vec<HostPort> = Vec::new();
    let Value::Array(ranges) = reply else {
        return found;
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        for node in fields.iter().skip(3) {
            let Value::Array(parts) = node else { continue };
            let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
                (parts.first(), parts.get(1))
            else {
                continue;
            };
            let (Ok(host), Ok(port)) = (String::from_utf8(host.clone()), u16::try_from(*port))
            else {
                continue;
            };
            let hp = HostPort::new(host, port);
            if !hp.host.is_empty() && !found.contains(&hp) {
                found.push(hp);
            }
        }
    }
    found
}

fn sentinel(config: &Config, sentinels: &[HostPort], service: &str, f: &mut Findings) {
    for hp in sentinels {
        let endpoint = Endpoint::Tcp(hp.clone());
        let down =
            node::Down::Warning("restart it: with too few sentinels no failover reaches a quorum");
        if node::reach(config, &endpoint, NodeRole::Sentinel, down, f).is_none() {
            continue;
        }
        let name = endpoint_name(&endpoint);
        match nodes::sentinel_primary(config, std::slice::from_ref(hp), service) {
            Ok(primary) => f.ok(
                Some(&name),
                "sentinel",
                format!("names {primary} as primary of `{service}`"),
            ),
            Err(e) => f.problem(
                Some(&name),
                "sentinel",
                e.to_string(),
                "check the service name in the URL (the name of `sentinel monitor`) and the sentinel's rights (+sentinel|get-master-addr-by-name)",
            ),
        }
    }
    match nodes::sentinel_primary(config, sentinels, service) {
        Ok(hp) => primary(config, &Endpoint::Tcp(hp), None, f),
        Err(e) => f.problem(
            None,
            "sentinel",
            e.to_string(),
            "start the sentinels, or fix their addresses and the service name in the URL",
        ),
    }
}

/// Whether sessions (and the password) cross a network in clear.
fn tls(config: &Config, f: &mut Findings) {
    let hosts: Vec<&str> = match &config.server.topology {
        Topology::Standalone(Endpoint::Tcp(hp)) => vec![hp.host.as_str()],
        Topology::Standalone(Endpoint::Unix(_)) => Vec::new(),
        Topology::Cluster(seeds) => seeds.iter().map(|h| h.host.as_str()).collect(),
        Topology::Sentinel { sentinels, .. } => sentinels.iter().map(|h| h.host.as_str()).collect(),
    };
    let loopback = |h: &str| h == "localhost" || h == "::1" || h.starts_with("127.");
    match &config.server.tls {
        None if hosts.iter().all(|h| loopback(h)) => {
            f.ok(None, "tls", "no TLS, on loopback or a Unix socket only")
        }
        None => f.warn(
            None,
            "tls",
            "connections are not encrypted: session data and the password cross the network in clear",
            "use rediss:// (rediss+cluster://, rediss+sentinel://) with tls_ca=/path/to/ca.pem, unless the network to Redis is private",
        ),
        Some(files) if files.insecure => f.warn(
            None,
            "tls",
            "TLS without certificate verification (tls_insecure): anyone on the path can read and change sessions",
            "set tls_ca to the CA that signed the server certificates and drop tls_insecure",
        ),
        Some(files) => f.ok(
            None,
            "tls",
            format!(
                "TLS, server certificates verified against {}{}",
                files
                    .ca
                    .as_ref()
                    .map_or("the system store".to_owned(), |p| p.display().to_string()),
                if files.cert.is_some() { ", with a client certificate" } else { "" }
            ),
        ),
    }
}
