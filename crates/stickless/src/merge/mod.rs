//! `concurrency=merge`: requests of one user that run side by side instead
//! of one after another.
//!
//! A merge request reads without a lock (`GETEX`, which renews the
//! lifetime in the same command, so an unchanged request costs one round
//! trip and nothing else). Its write is a compare-and-set on the revision
//! stamp (`script.rs`). When another request wrote meanwhile, the script
//! hands back what is stored now, and only the top-level keys this request
//! changed are replayed onto it (`replay.rs`); a key both changed keeps the
//! other request's value and is reported. While a request holds the lock,
//! a merge never writes: it waits for the lock like a locked request, then
//! replays onto what the holder stored, under the lock.
//!
//! Sessions that cannot be merged key by key take the lock from the start:
//! a value holding references, one the codec cannot read, or a
//! `serialize_handler` it does not know.
//!
//! Both drivers walk [`Attempt`]; only the I/O is theirs.

pub(crate) mod replay;
pub(crate) mod script;

use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use crate::config::Settings;
use crate::envelope::Envelope;
use crate::error::{Error, MergeRefusal};
use crate::keys::SessionKeys;
use crate::php::{SerializeHandler, Session};
use crate::session::{Loaded, OpenMode, Opened, STAMP_LEN, now_ms};
use crate::steps;
use crate::steps::CommitStep;
use crate::token::LockToken;
use script::MergeReply;

/// Tries of the compare-and-set before a write is refused as contended
/// (each try after the first follows a write by another request).
const MAX_TRIES: u32 = 8;

/// What a merge-mode request read, to write against later.
#[derive(Debug, Clone)]
pub struct MergeBase {
    pub(crate) keys: SessionKeys,
    pub(crate) handler: SerializeHandler,
    pub(crate) loaded: Loaded,
    /// The start of the stored value as read (empty: nothing was stored).
    pub(crate) stamp: Vec<u8>,
}

impl MergeBase {
    /// The hashed session key, for messages.
    pub fn session(&self) -> &str {
        self.keys.tag()
    }

    /// What was stored (empty for a new session).
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The PHP payload as read.
    pub fn payload(&self) -> &[u8] {
        self.loaded.payload()
    }

    /// Whether a value was stored when it was read.
    pub fn was_stored(&self) -> bool {
        !self.stamp.is_empty()
    }
}

/// Why a merge-mode request took the lock instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The stored session holds references (`r:`/`R:`), which number values
    /// across variables: its keys cannot be replayed one by one.
    References,
    /// The stored value or its payload could not be read.
    Unreadable,
    /// The `serialize_handler` is not one the codec reads.
    Handler,
    /// A migration is under way (`compat=phpredis`, or `import` and the
    /// session is not in stickless's format yet): the old handler's values
    /// carry no revision to compare, so the lock serialises the request.
    Migrating,
}

/// Result of [`Store::open_merge`](crate::Store::open_merge).
// Returned once per request and matched at once: boxing would buy an
// allocation and nothing else.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum MergeOpened {
    /// Read without a lock; write with
    /// [`Store::commit_merge`](crate::Store::commit_merge).
    Unlocked(MergeBase),
    /// This session cannot be merged; the request took the lock as in
    /// `concurrency=lock`, and ends it the same way.
    Locked {
        /// Why.
        fallback: Fallback,
        /// What the lock step returned.
        opened: Opened,
    },
}

/// How a merge-mode write ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merged {
    /// Keys this request changed that another request changed too since it
    /// read them (even to the same value): their stored values were kept and
    /// this request's changes to them are lost. Report each one.
    pub conflicts: Vec<String>,
    /// Whether the write was replayed onto another request's (the session
    /// changed since this request read it).
    pub replayed: bool,
    /// Whether anything was written (an unchanged session is not).
    pub written: bool,
}

/// The read: `GETEX` renews the lifetime in the same command.
pub(crate) fn read(keys: &SessionKeys, ttl: Duration) -> Cmd {
    let mut cmd = redis::cmd("GETEX");
    cmd.arg(keys.data()).arg("PX").arg(steps::ms(ttl));
    cmd
}

fn stamp_of(stored: Option<&[u8]>) -> Vec<u8> {
    stored.map_or_else(Vec::new, |b| b[..b.len().min(STAMP_LEN)].to_vec())
}

/// What the read found: a base to merge against, or why the lock is needed.
pub(crate) fn based(
    s: &Settings,
    keys: &SessionKeys,
    handler: SerializeHandler,
    mode: OpenMode,
    stored: Option<Vec<u8>>,
) -> Result<Result<MergeBase, Fallback>, Error> {
    if mode == OpenMode::New && stored.is_some() {
        return Err(Error::Collision {
            session: keys.tag().to_owned(),
        });
    }
    let loaded = steps::loaded(s, stored.as_deref(), keys);
    match &loaded {
        Loaded::Corrupt(_) => return Ok(Err(Fallback::Unreadable)),
        Loaded::Data(env) => match Session::decode(handler, &env.payload) {
            Ok(session) if session.has_references() => return Ok(Err(Fallback::References)),
            Ok(_) => {}
            Err(_) => return Ok(Err(Fallback::Unreadable)),
        },
        Loaded::Empty => {}
    }
    Ok(Ok(MergeBase {
        keys: keys.clone(),
        handler,
        stamp: stamp_of(stored.as_deref()),
        loaded,
    }))
}

/// What to do after one compare-and-set.
pub(crate) enum Next {
    /// Finished.
    Done,
    /// Another request wrote; the replay is ready: send again.
    Again,
    /// A request holds the lock: take it, then [`Attempt::under_lock`].
    Lock,
}

/// One merge-mode write, across its tries.
pub(crate) struct Attempt {
    keys: SessionKeys,
    handler: SerializeHandler,
    /// What this request read, and what it wants stored.
    base: Vec<u8>,
    mine: Vec<u8>,
    /// The envelope the next try builds on, and its stamp.
    on: Option<Envelope>,
    stamp: Vec<u8>,
    /// The payload the next try writes.
    write: Vec<u8>,
    /// The envelope last sent.
    sent: Vec<u8>,
    outcome: Merged,
    tries: u32,
    /// Tries whose staged envelope was evicted before the script ran.
    unstaged: u32,
    deadline: Instant,
}

impl Attempt {
    /// A write of `payload` over `base`; None when there is nothing to write
    /// (the lifetime was renewed by the read).
    pub(crate) fn new(base: MergeBase, payload: Vec<u8>, s: &Settings) -> Option<Self> {
        if base.was_stored() && base.payload() == payload.as_slice() {
            return None;
        }
        let MergeBase {
            keys,
            handler,
            loaded,
            stamp,
        } = base;
        let on = match loaded {
            Loaded::Data(env) => Some(env),
            Loaded::Empty | Loaded::Corrupt(_) => None,
        };
        let base = on.as_ref().map(|e| e.payload.clone()).unwrap_or_default();
        Some(Self {
            keys,
            handler,
            base,
            write: payload.clone(),
            mine: payload,
            on,
            stamp,
            sent: Vec::new(),
            outcome: Merged::default(),
            tries: 0,
            unstaged: 0,
            deadline: Instant::now() + s.budget,
        })
    }

    pub(crate) fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The payload this request asked to store (for `max_size` and counts).
    pub(crate) fn mine(&self) -> &[u8] {
        &self.mine
    }

    /// The next compare-and-set, sealed as configured.
    pub(crate) fn step(&mut self, s: &Settings, ttl: Duration) -> Result<CommitStep, Error> {
        self.tries += 1;
        let payload = self.write.clone();
        let envelope = match &self.on {
            Some(on) => on.next(payload, now_ms()),
            None => Envelope::new(payload, now_ms()),
        };
        self.sent = steps::seal(s, envelope, &self.keys)?;
        let stage = if self.sent.len() >= steps::STAGE_FROM {
            // Random per write: two merge writers of one session never
            // share a stage.
            Some(self.keys.stage(LockToken::random()?.as_str()))
        } else {
            None
        };
        Ok(script::step(
            &self.keys,
            &self.sent,
            steps::ms(ttl),
            &self.stamp,
            stage.as_deref(),
            s,
        ))
    }

    /// Reads a compare-and-set's reply.
    pub(crate) fn on_reply(&mut self, reply: &Value, s: &Settings) -> Result<Next, Error> {
        match MergeReply::parse(reply)? {
            MergeReply::Written => {
                self.outcome.written = true;
                Ok(Next::Done)
            }
            MergeReply::Locked => Ok(Next::Lock),
            MergeReply::Unstaged => {
                self.unstaged += 1;
                if self.unstaged >= steps::STAGE_TRIES {
                    return Err(self.refused(MergeRefusal::Evicted));
                }
                Ok(Next::Again)
            }
            // A resend whose first send was applied finds its own envelope.
            // A first send that finds it met another request's identical
            // write: a conflict like any other, replayed below.
            MergeReply::Changed {
                stored: Some(stored),
                resent: true,
            } if stored == self.sent => {
                self.outcome.written = true;
                Ok(Next::Done)
            }
            MergeReply::Changed { stored, .. } => {
                let loaded = steps::loaded(s, stored.as_deref(), &self.keys);
                let current = match &loaded {
                    Loaded::Data(env) => env.payload.clone(),
                    Loaded::Empty => Vec::new(),
                    Loaded::Corrupt(_) => return Err(self.refused(MergeRefusal::Unmergeable)),
                };
                if !self.rebase(&current)? {
                    return Ok(Next::Done);
                }
                self.stamp = stamp_of(stored.as_deref());
                self.on = match loaded {
                    Loaded::Data(env) => Some(env),
                    _ => None,
                };
                if self.tries >= MAX_TRIES || Instant::now() >= self.deadline {
                    return Err(self.refused(MergeRefusal::Contended));
                }
                Ok(Next::Again)
            }
        }
    }

    /// Replays this request's changes onto `current`; false when the result
    /// is what is stored already (nothing left to write).
    fn rebase(&mut self, current: &[u8]) -> Result<bool, Error> {
        let replayed = replay::replay(self.handler, &self.base, &self.mine, current)
            .map_err(|_| self.refused(MergeRefusal::Unmergeable))?;
        self.outcome.replayed = true;
        self.outcome.conflicts = replayed.conflicts;
        self.write = replayed.payload;
        Ok(self.write != current)
    }

    /// The payload to commit under a lock that holds `loaded` (stamped
    /// `stamp`); None when nothing is left to write.
    pub(crate) fn under_lock(
        &mut self,
        stamp: &[u8],
        loaded: &Loaded,
    ) -> Result<Option<Vec<u8>>, Error> {
        if stamp != self.stamp.as_slice() {
            let current = match loaded {
                Loaded::Data(env) => env.payload.clone(),
                Loaded::Empty => Vec::new(),
                Loaded::Corrupt(_) => return Err(self.refused(MergeRefusal::Unmergeable)),
            };
            if !self.rebase(&current)? {
                return Ok(None);
            }
        }
        self.outcome.written = true;
        Ok(Some(self.write.clone()))
    }

    fn refused(&self, reason: MergeRefusal) -> Error {
        Error::MergeRefused {
            session: self.keys.tag().to_owned(),
            reason,
        }
    }

    pub(crate) fn finish(self) -> Merged {
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;

    /// A request that read `n|i:1;` and wants `n|i:2;` stored, after its
    /// first compare-and-set was sent.
    fn sent_increment(s: &Settings) -> (Attempt, Vec<u8>) {
        let id = SessionId::parse("mergeunittest0123456789abcdefABC").unwrap();
        let keys = SessionKeys::derive("t:", &id);
        let stored = steps::seal(s, Envelope::new(b"n|i:1;".to_vec(), now_ms()), &keys).unwrap();
        let base = based(
            s,
            &keys,
            SerializeHandler::Php,
            OpenMode::CreateIfMissing,
            Some(stored),
        )
        .unwrap()
        .unwrap();
        let mut attempt = Attempt::new(base, b"n|i:2;".to_vec(), s).unwrap();
        attempt.step(s, Duration::from_secs(60)).unwrap();
        let sent = attempt.sent.clone();
        (attempt, sent)
    }

    fn changed(stored: Vec<u8>, resent: i64) -> Value {
        Value::Array(vec![
            Value::Int(2),
            Value::BulkString(stored),
            Value::Int(resent),
        ])
    }

    #[test]
    fn a_resend_that_finds_its_own_envelope_is_done() {
        let s = Settings::default();
        let (mut attempt, sent) = sent_increment(&s);
        assert!(matches!(
            attempt.on_reply(&changed(sent, 1), &s),
            Ok(Next::Done)
        ));
        let merged = attempt.finish();
        assert!(merged.written && merged.conflicts.is_empty(), "{merged:?}");
    }

    #[test]
    fn a_stage_evicted_on_every_try_is_refused_after_stage_tries() {
        // Nothing a test server does evicts a key between a SET and the
        // script pipelined after it; the script's `{3}` is what it would say.
        let s = Settings::default();
        let (mut attempt, _) = sent_increment(&s);
        let unstaged = Value::Array(vec![Value::Int(3)]);
        for _ in 1..steps::STAGE_TRIES {
            assert!(matches!(attempt.on_reply(&unstaged, &s), Ok(Next::Again)));
            attempt.step(&s, Duration::from_secs(60)).unwrap();
        }
        assert!(matches!(
            attempt.on_reply(&unstaged, &s),
            Err(Error::MergeRefused {
                reason: MergeRefusal::Evicted,
                ..
            })
        ));
    }

    #[test]
    fn a_first_send_that_finds_an_identical_envelope_is_a_conflict() {
        // Another request made the same increment from the same revision in
        // the same millisecond: its envelope is byte for byte this one's.
        let s = Settings::default();
        let (mut attempt, sent) = sent_increment(&s);
        assert!(matches!(
            attempt.on_reply(&changed(sent, 0), &s),
            Ok(Next::Done)
        ));
        let merged = attempt.finish();
        assert_eq!(merged.conflicts, ["n"], "{merged:?}");
        assert!(!merged.written, "{merged:?}");
    }
}
