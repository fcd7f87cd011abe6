//! One face for the three topologies, so the behaviour suite runs unchanged
//! on each: the URL to configure a store with, and a client for assertions
//! that reaches whichever node holds a key.

use redis::{Cmd, ConnectionLike, Pipeline, RedisResult, Value};

/// What a behaviour test needs from a deployment.
pub trait Deployment {
    /// A save_path without query (`redis://...`, `redis+cluster://...`).
    fn url(&self) -> String;
    /// The same with the password replaced (for wrong-credential tests).
    fn url_with_password(&self, password: &str) -> String;
    /// A client for assertions, reaching every key's primary.
    fn client(&self) -> Client;
    /// Freezes (SIGSTOP) the primary serving `key`.
    fn stop_owner(&self, key: &str);
    /// Resumes what [`stop_owner`](Self::stop_owner) froze.
    fn cont_owner(&self, key: &str);
    /// Closes every client connection on every primary (as an idle
    /// timeout or a restart would); returns how many were closed.
    fn kill_clients(&self) -> i64;
    /// Clients blocked in a command (BLPOP) on the primary serving `key`.
    fn blocked_clients(&self, key: &str) -> i64;
    /// A short name for messages.
    fn name(&self) -> &'static str;
}

/// A connection for assertions: plain, or cluster-aware.
pub enum Client {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl ConnectionLike for Client {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => c.req_command(cmd),
            Self::Cluster(c) => c.req_command(cmd),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
    fn check_connection(&mut self) -> bool {
        match self {
            Self::Single(c) => c.check_connection(),
            Self::Cluster(c) => c.check_connection(),
        }
    }
    fn is_open(&self) -> bool {
        match self {
            Self::Single(c) => c.is_open(),
            Self::Cluster(c) => c.is_open(),
        }
    }
}

impl Client {
    /// Every key on every primary.
    pub fn all_keys(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = match self {
            Self::Single(c) => redis::cmd("KEYS").arg("*").query(c).expect("KEYS"),
            Self::Cluster(c) => {
                let routing = redis::cluster_routing::RoutingInfo::MultiNode((
                    redis::cluster_routing::MultipleNodeRoutingInfo::AllMasters,
                    Some(redis::cluster_routing::ResponsePolicy::CombineArrays),
                ));
                let v = c
                    .route_command(redis::cmd("KEYS").arg("*"), routing)
                    .expect("KEYS on every primary");
                redis::from_redis_value(v).expect("KEYS reply")
            }
        };
        keys.sort();
        keys
    }

    /// A pipeline, where the topology allows one (single-slot only on a cluster).
    pub fn pipe_query<T: redis::FromRedisValue>(&mut self, pipe: &Pipeline) -> RedisResult<T> {
        pipe.query(self)
    }
}
