//! The nodes a command talks to: the one server, every primary of a
//! cluster (from `CLUSTER SLOTS`), or the primary the sentinels name.
//!
//! Connections are opened when first needed, so `show` works on a cluster
//! with a shard down as long as the session's own primary answers.

use redis::{Connection, Value};
use stickless::admin::{self, NodeRole};
use stickless::cluster::{self, SlotMap};
use stickless::config::{Config, Endpoint, HostPort, Topology};

use crate::error::{CliError, command};

/// One connected node.
pub struct Node {
    /// `host:port`, or the socket path.
    pub name: String,
    /// The connection, with the URL's credentials and database.
    pub con: Connection,
}

/// Where sessions live, for the topology the URL names.
pub struct Store {
    /// The parsed URL.
    pub config: Config,
    /// The primaries, in slot-map order on a cluster.
    primaries: Vec<Endpoint>,
    connected: Vec<Option<Node>>,
    map: Option<SlotMap>,
}

impl Store {
    /// Finds the primaries (asking the cluster or the sentinels); connects
    /// to none of them yet.
    pub fn discover(config: Config) -> Result<Self, CliError> {
        let (primaries, map) = match &config.server.topology {
            Topology::Standalone(endpoint) => (vec![endpoint.clone()], None),
            Topology::Cluster(seeds) => {
                let (map, _) = slot_map(&config, seeds)?;
                let primaries = map.primaries().iter().cloned().map(Endpoint::Tcp).collect();
                (primaries, Some(map))
            }
            Topology::Sentinel { sentinels, service } => {
                let primary = sentinel_primary(&config, sentinels, service)?;
                (vec![Endpoint::Tcp(primary)], None)
            }
        };
        let connected = primaries.iter().map(|_| None).collect();
        Ok(Self {
            config,
            primaries,
            connected,
            map,
        })
    }

    /// How many primaries hold sessions.
    pub fn primary_count(&self) -> usize {
        self.primaries.len()
    }

    /// The primary serving `key`, connected.
    pub fn node_for(&mut self, key: &str) -> Result<&mut Node, CliError> {
        let index = match &self.map {
            None => 0,
            Some(map) => {
                let slot = cluster::slot(key);
                let owner = map.primary(slot).ok_or(CliError::SlotUnserved { slot })?;
                self.primaries
                    .iter()
                    .position(|p| *p == Endpoint::Tcp(owner.clone()))
                    .ok_or(CliError::SlotUnserved { slot })?
            }
        };
        self.node(index)
    }

    /// Primary number `index`, connected.
    pub fn node(&mut self, index: usize) -> Result<&mut Node, CliError> {
        let slot = &mut self.connected[index];
        let node = match slot.take() {
            Some(node) => node,
            None => {
                let endpoint = &self.primaries[index];
                Node {
                    name: endpoint_name(endpoint),
                    con: open(&self.config, endpoint, NodeRole::Data)?,
                }
            }
        };
        Ok(slot.insert(node))
    }
}

/// `host:port`, or the socket path.
pub fn endpoint_name(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Tcp(hp) => hp.to_string(),
        Endpoint::Unix(path) => path.display().to_string(),
    }
}

/// Connects to one node with the URL's timeouts and credentials for `role`.
pub fn open(config: &Config, endpoint: &Endpoint, role: NodeRole) -> Result<Connection, CliError> {
    let s = &config.settings;
    admin::connect(&config.server, endpoint, role, s.connect_timeout, s.timeout).map_err(|e| {
        CliError::Connect {
            node: endpoint_name(endpoint),
            cause: e.to_string(),
        }
    })
}

/// The slot map from the first seed that answers, with that seed's raw
/// reply (which also names the replicas).
pub fn slot_map(config: &Config, seeds: &[HostPort]) -> Result<(SlotMap, Value), CliError> {
    let mut tried = Vec::new();
    for seed in seeds {
        let endpoint = Endpoint::Tcp(seed.clone());
        let reply = open(config, &endpoint, NodeRole::Data).and_then(|mut con| {
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<Value>(&mut con)
                .map_err(|e| command(&seed.to_string(), &e))
        });
        match reply.and_then(|reply| {
            SlotMap::from_cluster_slots(&reply, seed)
                .map(|map| (map, reply))
                .map_err(|e| CliError::Command {
                    node: seed.to_string(),
                    cause: e.to_string(),
                })
        }) {
            Ok(found) => return Ok(found),
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(CliError::NoSlotMap {
        tried: tried.join("; "),
    })
}

/// The primary the first answering sentinel names for `service`.
pub fn sentinel_primary(
    config: &Config,
    sentinels: &[HostPort],
    service: &str,
) -> Result<HostPort, CliError> {
    let mut tried = Vec::new();
    for sentinel in sentinels {
        let endpoint = Endpoint::Tcp(sentinel.clone());
        let answer = open(config, &endpoint, NodeRole::Sentinel).and_then(|mut con| {
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(service)
                .query::<Option<(String, u16)>>(&mut con)
                .map_err(|e| command(&sentinel.to_string(), &e))
        });
        match answer {
            Ok(Some((host, port))) => return Ok(HostPort::new(host, port)),
            Ok(None) => tried.push(format!("{sentinel}: does not monitor it")),
            Err(e) => tried.push(e.to_string()),
        }
    }
    Err(CliError::NoPrimary {
        service: service.to_owned(),
        tried: tried.join("; "),
    })
}
