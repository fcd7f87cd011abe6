//! Redis Cluster routing, sans-IO: which slot a session lives in, and which
//! primary serves a slot according to a `CLUSTER SLOTS` reply.
//!
//! Every key of a session carries the same hash tag, so a session is one
//! slot and every step of it goes to one node; no command ever spans slots.

use crc::{CRC_16_XMODEM, Crc};
use redis::Value;

use crate::config::HostPort;
use crate::error::Error;

/// Hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The slot of a key, by the cluster's rule: the CRC16 of its hash tag (the
/// part between the first `{` and the next `}`, when not empty), or of the
/// whole key.
///
/// ```
/// use stickless::cluster::slot;
/// // The slots Redis itself reports (`CLUSTER KEYSLOT`).
/// assert_eq!(slot("foo"), 12182);
/// assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
/// ```
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    CRC16.checksum(tagged.unwrap_or(bytes)) % SLOTS
}

/// Which primary serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    primaries: Vec<HostPort>,
    /// Index into `primaries` per slot; `UNASSIGNED` where no node serves it.
    owner: Vec<u16>,
}

const UNASSIGNED: u16 = u16::MAX;

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply. `asked` is the node that answered: a
    /// node that does not know its own address reports an empty host,
    /// meaning "the address you reached me on".
    pub fn from_cluster_slots(reply: &Value, asked: &HostPort) -> Result<Self, Error> {
        let bad = |why: &str| Error::Protocol(format!("CLUSTER SLOTS: {why}"));
        let Value::Array(ranges) = reply else {
            return Err(bad("not an array"));
        };
        let mut map = Self {
            primaries: Vec::new(),
            owner: vec![UNASSIGNED; usize::from(SLOTS)],
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad("range is not an array"));
            };
            let [start, end, primary, ..] = fields.as_slice() else {
                return Err(bad("range has fewer than 3 fields"));
            };
            let (start, end) = (int(start), int(end));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(bad("slot bounds are not integers"));
            };
            if start > end || end >= i64::from(SLOTS) || start < 0 {
                return Err(bad("slot range out of bounds"));
            }
            let node =
                node(primary, asked).ok_or_else(|| bad("primary is not [host, port, ...]"))?;
            let index = match map.primaries.iter().position(|p| *p == node) {
                Some(i) => i,
                None => {
                    map.primaries.push(node);
                    map.primaries.len() - 1
                }
            };
            let index = u16::try_from(index).map_err(|_| bad("too many primaries"))?;
            // Bounds checked above: 0 <= start <= end < SLOTS.
            for s in start as usize..=end as usize {
                map.owner[s] = index;
            }
        }
        Ok(map)
    }

    /// The primary serving `slot`, if any node does.
    pub fn primary(&self, slot: u16) -> Option<&HostPort> {
        let index = *self.owner.get(usize::from(slot))?;
        self.primaries.get(usize::from(index))
    }

    /// Records a `MOVED` redirection without a full refresh.
    pub fn moved(&mut self, slot: u16, to: HostPort) {
        let index = match self.primaries.iter().position(|p| *p == to) {
            Some(i) => i,
            None => {
                self.primaries.push(to);
                self.primaries.len() - 1
            }
        };
        if let (Some(entry), Ok(index)) =
            (self.owner.get_mut(usize::from(slot)), u16::try_from(index))
        {
            *entry = index;
        }
    }

    /// Every primary in the map.
    pub fn primaries(&self) -> &[HostPort] {
        &self.primaries
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn node(v: &Value, asked: &HostPort) -> Option<HostPort> {
    let Value::Array(fields) = v else { return None };
    let host = text(fields.first()?)?;
    let port = u16::try_from(int(fields.get(1)?)?).ok()?;
    let host = if host.is_empty() || host == "?" {
        asked.host.clone()
    } else {
        host
    };
    Some(HostPort::new(host, port))
}

/// Parses the `host:port` of a `MOVED`/`ASK` redirection.
pub(crate) fn redirect_target(addr: &str) -> Option<HostPort> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(HostPort::new(host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![bulk(host), Value::Int(port), bulk("id")]),
            Value::Array(vec![bulk(host), Value::Int(port + 3), bulk("replica")]),
        ])
    }

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{foo}bar"), 12182);
        assert_eq!(slot("{}foo"), slot("{}foo"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_eq!(slot("foo{{bar}}"), slot("{bar"));
    }

    #[test]
    fn maps_ranges_to_primaries() {
        let reply = Value::Array(vec![
            range(0, 5460, "10.0.0.1", 7000),
            range(5461, 10922, "", 7001),
            range(10923, 16383, "10.0.0.3", 7002),
        ]);
        let asked = HostPort::new("seed", 7001);
        let mut map = SlotMap::from_cluster_slots(&reply, &asked).unwrap();
        assert_eq!(map.primary(0), Some(&HostPort::new("10.0.0.1", 7000)));
        assert_eq!(map.primary(5461), Some(&HostPort::new("seed", 7001)));
        assert_eq!(map.primary(16383), Some(&HostPort::new("10.0.0.3", 7002)));
        assert_eq!(map.primaries().len(), 3);
        map.moved(0, HostPort::new("10.0.0.9", 7009));
        assert_eq!(map.primary(0), Some(&HostPort::new("10.0.0.9", 7009)));
        assert_eq!(map.primary(1), Some(&HostPort::new("10.0.0.1", 7000)));
    }

    #[test]
    fn unassigned_slots_have_no_primary() {
        let reply = Value::Array(vec![range(0, 10, "h", 1)]);
        let map = SlotMap::from_cluster_slots(&reply, &HostPort::new("h", 1)).unwrap();
        assert_eq!(map.primary(11), None);
    }

    #[test]
    fn malformed_replies_are_errors() {
        let asked = HostPort::new("h", 1);
        for reply in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![range(5, 4, "h", 1)]),
            Value::Array(vec![range(0, 16384, "h", 1)]),
            Value::Array(vec![range(0, 1, "h", 70000)]),
        ] {
            assert!(
                SlotMap::from_cluster_slots(&reply, &asked).is_err(),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn parses_redirect_targets() {
        assert_eq!(
            redirect_target("127.0.0.1:7002"),
            Some(HostPort::new("127.0.0.1", 7002))
        );
        assert_eq!(
            redirect_target("[::1]:7002"),
            Some(HostPort::new("::1", 7002))
        );
        assert_eq!(redirect_target("nonsense"), None);
    }
}
