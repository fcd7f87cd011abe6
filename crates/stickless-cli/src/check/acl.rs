//! Whether the URL's user may run every command stickless sends, found out
//! by running each one (on throw-away keys under the prefix) rather than by
//! reading the ACL, which a restricted user is not allowed to do.
//!
//! The list is docs/OPERATIONS.md's `ACL SETUSER` line; a test keeps the
//! two the same.

use redis::{Cmd, Connection, ErrorKind, RedisError, ServerErrorKind};

/// Where a command is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Always.
    Always,
    /// With `durability=replica`.
    ReplicaDurability,
    /// On a cluster.
    Cluster,
    /// Not on a cluster (a database other than 0 is selected).
    NotCluster,
    /// While migrating from phpredis (`compat` or `import`).
    Migrating,
    /// Behind Sentinel.
    Sentinel,
}

/// Every command (ACL name) a node holding sessions must allow, and where.
pub const COMMANDS: &[(&str, Needed)] = &[
    ("get", Needed::Always),
    ("set", Needed::Always),
    ("del", Needed::Always),
    ("pexpire", Needed::Always),
    ("pttl", Needed::Always),
    ("lpop", Needed::Always),
    ("rpush", Needed::Always),
    ("lpush", Needed::Always),
    ("ltrim", Needed::Always),
    ("llen", Needed::Always),
    ("zadd", Needed::Always),
    ("zrem", Needed::Always),
    ("zremrangebyscore", Needed::Always),
    ("zcard", Needed::Always),
    ("zscore", Needed::Always),
    ("sadd", Needed::Always),
    ("sismember", Needed::Always),
    // The user index (sessions per user).
    ("zrange", Needed::Always),
    ("zrangebyscore", Needed::Always),
    ("hset", Needed::Always),
    ("hsetnx", Needed::Always),
    ("hget", Needed::Always),
    ("hdel", Needed::Always),
    ("pexpireat", Needed::Always),
    ("getrange", Needed::Always),
    // Merge mode's read (any request may ask for merge mode).
    ("getex", Needed::Always),
    ("exists", Needed::Always),
    ("rename", Needed::Always),
    ("time", Needed::Always),
    ("evalsha", Needed::Always),
    ("eval", Needed::Always),
    ("script|load", Needed::Always),
    ("blpop", Needed::Always),
    ("wait", Needed::ReplicaDurability),
    ("ping", Needed::Always),
    ("select", Needed::NotCluster),
    ("cluster|slots", Needed::Cluster),
    ("asking", Needed::Cluster),
    ("role", Needed::Sentinel),
    ("setex", Needed::Migrating),
    ("expire", Needed::Migrating),
];

/// What the probes found.
#[derive(Debug, Default)]
pub struct Denied {
    /// Commands refused with NOPERM.
    pub commands: Vec<&'static str>,
    /// Whether a key under the prefix was refused (`~pattern` missing).
    pub keys: bool,
    /// A probe that failed otherwise (scripting disabled, ...), with why.
    pub broken: Vec<(&'static str, String)>,
}

const PROBE_SCRIPT: &str = "return 1";

/// Runs each needed command once on keys derived from `probe` (a key
/// under the prefix on this node), deleting what it created. The keys it
/// creates expire within 10 s even if `DEL` is refused.
pub fn probe(
    con: &mut Connection,
    probe: &str,
    db: i64,
    needed: impl Fn(Needed) -> bool,
) -> Result<Denied, RedisError> {
    let mut denied = Denied::default();
    for (name, probe) in probes(probe, db, needed) {
        match probe.query::<redis::Value>(con) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                if is_key_denial(&e) {
                    denied.keys = true;
                } else if !denied.commands.contains(&name) {
                    denied.commands.push(name);
                }
            }
            // Refused by the server for another reason than rights: the
            // user may run it. (EVALSHA of a script the server forgot is
            // NOSCRIPT, for instance.)
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                return Err(e);
            }
            Err(e) => denied.broken.push((name, e.to_string())),
        }
    }
    Ok(denied)
}

/// The probe commands, in order, each with the ACL name it exercises.
fn probes(probe: &str, db: i64, needed: impl Fn(Needed) -> bool) -> Vec<(&'static str, Cmd)> {
    let (list, zset, set, hash, moved) = (
        format!("{probe}:l"),
        format!("{probe}:z"),
        format!("{probe}:s"),
        format!("{probe}:h"),
        format!("{probe}:r"),
    );
    let script = redis::Script::new(PROBE_SCRIPT);
    let cmd = |name: &str| redis::cmd(name);
    let mut probes: Vec<(&'static str, Cmd)> = vec![
        (
            "set",
            cmd("SET").arg(probe).arg(1).arg("PX").arg(10_000).clone(),
        ),
        ("get", cmd("GET").arg(probe).clone()),
        ("pexpire", cmd("PEXPIRE").arg(probe).arg(10_000).clone()),
        ("pttl", cmd("PTTL").arg(probe).clone()),
        ("getrange", cmd("GETRANGE").arg(probe).arg(0).arg(1).clone()),
        (
            "getex",
            cmd("GETEX").arg(probe).arg("PX").arg(10_000).clone(),
        ),
        ("exists", cmd("EXISTS").arg(probe).clone()),
        // There and back: the commit moves its staged envelope into place.
        ("rename", cmd("RENAME").arg(probe).arg(&moved).clone()),
        ("rename", cmd("RENAME").arg(&moved).arg(probe).clone()),
        ("rpush", cmd("RPUSH").arg(&list).arg(1).clone()),
        ("pexpire", cmd("PEXPIRE").arg(&list).arg(10_000).clone()),
        ("lpush", cmd("LPUSH").arg(&list).arg(1).clone()),
        ("ltrim", cmd("LTRIM").arg(&list).arg(0).arg(0).clone()),
        ("llen", cmd("LLEN").arg(&list).clone()),
        ("lpop", cmd("LPOP").arg(&list).clone()),
        // The list is empty again: this waits its 10 ms and returns nil.
        ("blpop", cmd("BLPOP").arg(&list).arg(0.01).clone()),
        ("zadd", cmd("ZADD").arg(&zset).arg(1).arg("a").clone()),
        ("pexpire", cmd("PEXPIRE").arg(&zset).arg(10_000).clone()),
        ("zscore", cmd("ZSCORE").arg(&zset).arg("a").clone()),
        ("zcard", cmd("ZCARD").arg(&zset).clone()),
        (
            "zremrangebyscore",
            cmd("ZREMRANGEBYSCORE")
                .arg(&zset)
                .arg("-inf")
                .arg(0)
                .clone(),
        ),
        ("zrange", cmd("ZRANGE").arg(&zset).arg(0).arg(-1).clone()),
        (
            "zrangebyscore",
            cmd("ZRANGEBYSCORE").arg(&zset).arg("-inf").arg(0).clone(),
        ),
        ("zrem", cmd("ZREM").arg(&zset).arg("a").clone()),
        ("hset", cmd("HSET").arg(&hash).arg("a").arg(1).clone()),
        (
            "pexpireat",
            cmd("PEXPIREAT")
                .arg(&hash)
                .arg(4_102_444_800_000_u64)
                .clone(),
        ),
        ("hsetnx", cmd("HSETNX").arg(&hash).arg("b").arg(1).clone()),
        ("hget", cmd("HGET").arg(&hash).arg("a").clone()),
        ("hdel", cmd("HDEL").arg(&hash).arg("a").clone()),
        ("sadd", cmd("SADD").arg(&set).arg("a").clone()),
        ("pexpire", cmd("PEXPIRE").arg(&set).arg(10_000).clone()),
        ("sismember", cmd("SISMEMBER").arg(&set).arg("a").clone()),
        ("time", cmd("TIME").clone()),
        ("ping", cmd("PING").clone()),
        ("eval", cmd("EVAL").arg(PROBE_SCRIPT).arg(0).clone()),
        (
            "script|load",
            cmd("SCRIPT").arg("LOAD").arg(PROBE_SCRIPT).clone(),
        ),
        (
            "evalsha",
            cmd("EVALSHA").arg(script.get_hash()).arg(0).clone(),
        ),
    ];
    probes.extend([
        ("wait", cmd("WAIT").arg(0).arg(0).clone()),
        ("select", cmd("SELECT").arg(db).clone()),
        ("cluster|slots", cmd("CLUSTER").arg("SLOTS").clone()),
        ("asking", cmd("ASKING").clone()),
        ("role", cmd("ROLE").clone()),
        ("setex", cmd("SETEX").arg(probe).arg(10).arg(1).clone()),
        ("expire", cmd("EXPIRE").arg(probe).arg(10).clone()),
        // Last: it clears what the probes created.
        (
            "del",
            cmd("DEL")
                .arg(probe)
                .arg(&list)
                .arg(&zset)
                .arg(&set)
                .arg(&hash)
                .arg(&moved)
                .clone(),
        ),
    ]);
    probes.retain(|(name, _)| needed(where_needed(name)));
    probes
}

/// Where `command` is needed, after [`COMMANDS`].
fn where_needed(command: &str) -> Needed {
    COMMANDS
        .iter()
        .find(|(c, _)| *c == command)
        .map_or(Needed::Always, |(_, n)| *n)
}

/// NOPERM for a key ("no permissions to access the '...' key") rather than
/// for the command.
fn is_key_denial(e: &RedisError) -> bool {
    let text = e.to_string();
    text.contains("access") && text.contains("key")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/OPERATIONS.md's ACL line, as the list of `+command` grants.
    fn documented() -> Vec<String> {
        let doc = include_str!("../../../../docs/OPERATIONS.md");
        let start = doc
            .find("ACL SETUSER")
            .expect("OPERATIONS.md has the ACL line");
        let block = &doc[start..start + doc[start..].find("```").expect("the block ends")];
        block
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('+'))
            .filter(|w| !w.starts_with('@'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_needed_command_is_probed() {
        let names: Vec<&str> = probes("p:{x}:probe", 0, |_| true)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for (command, _) in COMMANDS {
            assert!(names.contains(command), "{command} is not probed");
        }
    }

    /// Every command name the core's sources send: `redis.call('X'` and
    /// `redis.pcall('X'` in the scripts, `cmd("X")` in the drivers.
    fn sent_by_the_core() -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("the core's sources") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(std::fs::read_to_string(&path).expect("a source file"));
                }
            }
        }
        let mut sources = Vec::new();
        let core = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stickless/src");
        walk(&core, &mut sources);
        let mut names = Vec::new();
        for text in &sources {
            for (open, close) in [
                ("redis.call('", "'"),
                ("redis.pcall('", "'"),
                ("cmd(\"", "\""),
            ] {
                for piece in text.split(open).skip(1) {
                    let Some(name) = piece.split(close).next() else {
                        continue;
                    };
                    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()) {
                        names.push(name.to_ascii_lowercase());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn every_command_the_core_sends_is_in_the_list() {
        let listed: Vec<&str> = COMMANDS
            .iter()
            .map(|(c, _)| c.split('|').next().unwrap_or(c))
            .collect();
        let sent = sent_by_the_core();
        assert!(
            sent.contains(&"lpush".to_owned()),
            "the scan found {sent:?}"
        );
        for name in &sent {
            // The sentinels' own rights are documented apart.
            if name == "sentinel" {
                continue;
            }
            assert!(
                listed.contains(&name.as_str()),
                "the core sends {name}, which neither `stickless check` nor docs/OPERATIONS.md's ACL line grants"
            );
        }
    }

    #[test]
    fn the_probed_commands_are_the_documented_ones() {
        let mut documented = documented();
        let mut probed: Vec<String> = COMMANDS.iter().map(|(c, _)| (*c).to_owned()).collect();
        documented.sort();
        probed.sort();
        assert_eq!(probed, documented);
    }
}
