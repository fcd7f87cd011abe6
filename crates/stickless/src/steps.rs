//! The protocol steps as commands and reply readers, sans-IO: both drivers
//! send exactly these, so they cannot drift apart.

use std::time::Duration;

use redis::{Cmd, Pipeline, Value};

use crate::config::OnLockTimeout;
use crate::config::{Durability, Settings};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keeper::Claim;
use crate::keys::SessionKeys;
use crate::route::Op;
use crate::scripts::{
    ABANDON_SCRIPT, ACQUIRE_SCRIPT, AcquireReply, COMMIT_SCRIPT, Call, CommitReply, DESTROY_SCRIPT,
    RELEASE_SCRIPT, RENEW_SCRIPT, TOUCH_SCRIPT,
};
use crate::session::{Committed, Lease, Loaded, OpenMode, Opened};
use crate::token::LockToken;
use std::time::Instant;

/// Shortest BLPOP wait Redis accepts without meaning "forever".
pub(crate) const MIN_BLOCK: Duration = Duration::from_millis(1);

/// How long a handed-over lock waits for its new owner to claim it.
pub(crate) fn claim_window(s: &Settings) -> Duration {
    (s.timeout * 2).min(s.lock_ttl)
}

/// The uncontended lock without a script: `SET NX PX` + `GET`, pipelined.
/// The data's `PTTL` comes along, for a later touch to tell whether the
/// lifetime needs refreshing (`touch_interval_ms`).
/// Replies `(OK|nil, data|nil, pttl)`.
pub(crate) fn take_free_lock(keys: &SessionKeys, token: &LockToken, s: &Settings) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.lock())
        .arg(token.as_str())
        .arg("NX")
        .arg("PX")
        .arg(ms(s.lock_ttl))
        .cmd("GET")
        .arg(keys.data())
        .cmd("PTTL")
        .arg(keys.data());
    pipe
}

/// One `ACQUIRE` try: register and wait (or take the lock), or give up on
/// the last one. `nap_cap` bounds the wait the script hands back; `woken`
/// when this waiter popped a hand-off's baton.
#[allow(clippy::too_many_arguments)] // one argument per script parameter
pub(crate) fn acquire(
    keys: &SessionKeys,
    token: &LockToken,
    s: &Settings,
    mode: OpenMode,
    last_try: bool,
    nap_cap: Duration,
    woken: bool,
) -> Call {
    Call::new(&ACQUIRE_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .key(keys.void())
        .arg(token.as_str())
        .arg(ms(s.lock_ttl))
        .arg(u8::from(mode == OpenMode::RequireExisting))
        .arg(u8::from(last_try))
        .arg(ms(nap_cap))
        .arg(ms(claim_window(s)))
        .arg(u8::from(woken))
        .arg(s.max_waiters)
        .arg(ms(s.timeout))
}

/// The fenced write: the script, and for a large envelope the plain `SET`
/// that stages it, sent together (`route::Op::Staged`).
pub(crate) struct CommitStep {
    pub stage: Option<Cmd>,
    pub first: Call,
    /// Sent instead of `first` on a later attempt: the first send may have
    /// been applied already (see `COMMIT`). None: `first` again (a merge
    /// write recognises its own envelope).
    pub resend: Option<Call>,
}

impl CommitStep {
    /// What the driver sends: the script alone, or staged with its `SET`;
    /// `then` (a `WAIT`) pipelined after it either way.
    pub fn op<'a>(&'a self, then: Option<&'a Cmd>) -> Op<'a> {
        let resend = self.resend.as_ref().unwrap_or(&self.first);
        match &self.stage {
            Some(stage) => Op::Staged {
                stage,
                first: &self.first,
                resend,
                then,
            },
            None => Op::Call {
                first: &self.first,
                resend,
                then,
            },
        }
    }
}

/// How often a commit is sent again whose staged envelope was gone when
/// the script ran (evicted under `maxmemory`): the script changed nothing.
pub(crate) const STAGE_TRIES: u32 = 3;

/// Envelopes from this size on are staged rather than passed to the
/// script: a staged write costs the server about the same at any size,
/// an argument about 2 µs more per KB (copied into Lua and out again), and
/// they cost the same near 1 KB (docs/PERFORMANCE.md, "Server time per
/// commit").
pub(crate) const STAGE_FROM: usize = 1024;

/// Where `COMMIT`'s `resent` flag is among its arguments: 0 on the first
/// send, 1 on any later one.
const RESENT_ARG: usize = 4;

pub(crate) fn commit(lease: &Lease, envelope: &[u8], ttl: Duration, s: &Settings) -> CommitStep {
    let keys = &lease.keys;
    let stage_key = (envelope.len() >= STAGE_FROM).then(|| keys.stage(lease.token.as_str()));
    let stage = stage_key.as_ref().map(|key| stage_set(key, envelope, s));
    let call = Call::new(&COMMIT_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake());
    let call = match &stage_key {
        Some(key) => call.key(key.as_str()),
        None => call,
    };
    let first = call
        .arg(lease.token.as_str())
        .arg(ms(ttl))
        .arg(ms(claim_window(s)))
        .arg(lease.stamp.as_slice())
        .arg(0u8); // `resent`, argument RESENT_ARG
    let first = match stage_key {
        Some(_) => first,
        None => first.arg(envelope),
    };
    let resend = first.with_arg(RESENT_ARG, 1u8);
    CommitStep {
        stage,
        first,
        resend: Some(resend),
    }
}

/// The plain `SET` that stages `envelope` under `key` for a script to move
/// into place.
pub(crate) fn stage_set(key: &str, envelope: &[u8], s: &Settings) -> Cmd {
    let mut set = redis::cmd("SET");
    set.arg(key).arg(envelope).arg("PX").arg(ms(stage_ttl(s)));
    set
}

/// How long a staged envelope lives: past the end of the step that staged
/// it (whose script may run late, from the server's receive buffer), so a
/// stage left by a request that died is gone soon after.
fn stage_ttl(s: &Settings) -> Duration {
    s.budget * 2 + wait_budget(s)
}

/// An unchanged session's end: its lifetime set to `ttl` again and the lock
/// released, or, while the lifetime is still within `touch_interval` of
/// full, only the lock released (`RELEASE`, one command less).
pub(crate) fn touch(lease: &Lease, ttl: Duration, s: &Settings) -> Call {
    if !lease.needs_refresh(ttl, s.touch_interval) {
        return release(lease, s);
    }
    let keys = &lease.keys;
    Call::new(&TOUCH_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .arg(lease.token.as_str())
        .arg(ms(ttl))
        .arg(ms(claim_window(s)))
}

pub(crate) fn release(lease: &Lease, s: &Settings) -> Call {
    let keys = &lease.keys;
    Call::new(&RELEASE_SCRIPT)
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .arg(lease.token.as_str())
        .arg(ms(claim_window(s)))
}

/// `token` is empty when the caller holds no lock.
pub(crate) fn destroy(keys: &SessionKeys, token: &str, s: &Settings) -> Call {
    Call::new(&DESTROY_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .arg(token)
        .arg(ms(claim_window(s)))
}

/// Settles a token whose request gave up (see `ABANDON`).
pub(crate) fn abandon(keys: &SessionKeys, token: &LockToken, s: &Settings) -> Call {
    if keys.is_legacy() {
        // phpredis's lock has no queue to leave: release it if it is ours.
        return crate::legacy::release(&keys.lock(), token);
    }
    Call::new(&ABANDON_SCRIPT)
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .key(keys.void())
        .arg(token.as_str())
        .arg(ms(claim_window(s)))
        .arg(ms(void_ttl(s)))
}

/// Extends a held lock by a whole lease.
pub(crate) fn renew(keys: &SessionKeys, token: &LockToken, s: &Settings) -> Call {
    Call::new(&RENEW_SCRIPT)
        .key(keys.lock())
        .arg(token.as_str())
        .arg(ms(s.lock_ttl))
}

/// How long a voided token stays void: longer than any lock its request's
/// late commands could still take (one lease from the moment they run, and
/// they run about when the abandon does).
fn void_ttl(s: &Settings) -> Duration {
    s.lock_ttl * 2 + s.budget
}

/// How often a held lease is renewed: three times per lease, so two
/// renewals in a row can fail before it lapses.
pub(crate) fn renew_every(s: &Settings) -> Duration {
    (s.lock_ttl / 3).max(Duration::from_millis(10))
}

/// A brand-new session, never over an existing one (`SET NX`), with the
/// `WAIT` of a durable write in the same round trip. Replies one value per
/// command; read them with [`created`].
pub(crate) fn create(keys: &SessionKeys, envelope: &[u8], ttl: Duration, s: &Settings) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.data())
        .arg(envelope)
        .arg("PX")
        .arg(ms(ttl))
        .arg("NX");
    if let Some(wait) = replica_wait(s) {
        pipe.add_command(wait);
    }
    pipe
}

/// What a create's replies mean.
pub(crate) enum Created {
    Done,
    /// The key was taken, and this was a resend: the taker may be our own
    /// first send whose reply was lost. Compare the stored value (read it
    /// with a `GET`) using [`own_create`].
    Check,
}

/// Reads the replies of [`create`]: refused outright when another session
/// holds the ID (only on a broken random source).
pub(crate) fn created(
    replies: &[Value],
    retried: bool,
    keys: &SessionKeys,
    s: &Settings,
) -> Result<Created, Error> {
    replicated(s, keys, replies.get(1).unwrap_or(&Value::Nil))?;
    match replies.first() {
        Some(Value::Nil) if retried => Ok(Created::Check),
        Some(Value::Nil) => Err(collision(keys)),
        Some(_) => Ok(Created::Done),
        None => Err(Error::Protocol("create: no reply".into())),
    }
}

/// After [`Created::Check`]: the stored value is our envelope, byte for
/// byte (it carries a fresh timestamp, and a fresh nonce when encrypted), or
/// somebody else's session.
pub(crate) fn own_create(
    keys: &SessionKeys,
    stored: Option<&[u8]>,
    envelope: &[u8],
) -> Result<(), Error> {
    if stored == Some(envelope) {
        Ok(())
    } else {
        Err(collision(keys))
    }
}

fn collision(keys: &SessionKeys) -> Error {
    Error::Collision {
        session: keys.tag().to_owned(),
    }
}

/// Blocks until a hand-off's baton arrives on the session's wake list, for
/// at most `nap`. Replies nil on timeout.
pub(crate) fn wait_for_wake(keys: &SessionKeys, nap: Duration) -> Cmd {
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg(keys.wake())
        .arg(format!("{:.3}", nap.as_secs_f64()));
    cmd
}

/// The most a waiter may block before checking in again: the rest of its
/// wait, and at most a claim window (the script shortens it to the holder's
/// remaining lease, since a holder that died never hands off).
pub(crate) fn nap_cap(left: Duration, s: &Settings) -> Duration {
    left.min(claim_window(s)).max(MIN_BLOCK)
}

/// `WAIT 1 <timeout_ms>` when writes must reach a replica.
pub(crate) fn replica_wait(s: &Settings) -> Option<Cmd> {
    (s.durability == Durability::Replica).then(|| {
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(ms(s.timeout));
        wait
    })
}

/// How long the server may hold back a `WAIT` reply on purpose.
pub(crate) fn wait_budget(s: &Settings) -> Duration {
    match s.durability {
        Durability::Replica => s.timeout,
        Durability::Primary => Duration::ZERO,
    }
}

/// Checks the `WAIT` reply of a durable write.
pub(crate) fn replicated(
    s: &Settings,
    keys: &SessionKeys,
    wait_reply: &Value,
) -> Result<(), Error> {
    if s.durability != Durability::Replica {
        return Ok(());
    }
    match wait_reply {
        Value::Int(n) if *n >= 1 => Ok(()),
        _ => Err(Error::NotReplicated {
            session: keys.tag().to_owned(),
            waited: s.timeout,
        }),
    }
}

/// Reads a commit's reply; `None` when the staged envelope was gone and
/// nothing was changed (stage it again). A resend whose lease is found
/// lapsed after the first send got no reply cannot tell "applied" from
/// "lost" by the lock; the script compares the stored envelope for that.
pub(crate) fn committed(lease: &Lease, reply: &Value) -> Result<Option<Committed>, Error> {
    match CommitReply::parse(reply)? {
        CommitReply::Done => Ok(Some(Committed::UnderLock)),
        CommitReply::DoneAfterLapse => Ok(Some(Committed::AfterLapse)),
        CommitReply::Unstaged => Ok(None),
        CommitReply::Lost(reason) => Err(Error::LockLost {
            session: lease.session().to_owned(),
            reason,
        }),
    }
}

/// A commit whose stage vanished `STAGE_TRIES` times in a row.
pub(crate) fn unstaged(server: &str, lease: &Lease, elapsed: Duration) -> Error {
    Error::Unavailable {
        server: server.to_owned(),
        cause: format!(
            "the write to session {} was not applied: its staged copy was evicted before \
             the commit could move it into place, {STAGE_TRIES} times (the server is at \
             maxmemory; raise it, or pick a maxmemory-policy that evicts no keys with a TTL)",
            lease.session()
        ),
        elapsed,
    }
}

/// A reply as the type a step expects; anything else is a protocol error
/// that describes the reply's shape, never its bytes.
pub(crate) fn reply_as<T: redis::FromRedisValue>(what: &str, value: Value) -> Result<T, Error> {
    let shape = crate::scripts::Shape::of(&value);
    redis::from_redis_value(value)
        .map_err(|_| Error::Protocol(format!("{what}: unexpected reply, got {shape}")))
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A stored value as the caller sees it: decrypted and checked.
pub(crate) fn loaded(s: &Settings, stored: Option<&[u8]>, keys: &SessionKeys) -> Loaded {
    Loaded::from_stored(stored, &s.sealing(), keys.tag())
}

/// An envelope as stored: compressed and encrypted as configured.
pub(crate) fn seal(s: &Settings, envelope: Envelope, keys: &SessionKeys) -> Result<Vec<u8>, Error> {
    envelope.seal(&s.sealing(), keys.tag())
}

/// The session locked by `claim`, holding what was `stored`.
pub(crate) fn opened(
    keys: &SessionKeys,
    claim: Claim,
    stored: Option<Vec<u8>>,
    waited: Duration,
    s: &Settings,
) -> Opened {
    opened_read(
        keys,
        claim,
        Stored {
            value: stored,
            ttl_left: None,
        },
        waited,
        s,
    )
}

/// [`opened`] for what a lock step read, its remaining lifetime included.
pub(crate) fn opened_read(
    keys: &SessionKeys,
    claim: Claim,
    stored: Stored,
    waited: Duration,
    s: &Settings,
) -> Opened {
    let loaded = loaded(s, stored.value.as_deref(), keys);
    let lease = Lease::new(keys.clone(), claim, stored.value.as_deref(), &loaded)
        .expiring_in(stored.ttl_left);
    Opened::Locked {
        lease,
        loaded,
        waited,
    }
}

/// The stored value as a lock step read it.
pub(crate) struct Stored {
    pub value: Option<Vec<u8>>,
    /// What was left of its lifetime; `None` without a value or an expiry.
    pub ttl_left: Option<Duration>,
}

impl Stored {
    /// From a `GET` and a `PTTL` reply (negative: no key, or no expiry).
    fn new(value: Option<Vec<u8>>, pttl: Option<i64>) -> Self {
        let ttl_left = pttl
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis);
        Self { value, ttl_left }
    }
}

/// What the uncontended lock's pipeline found.
pub(crate) enum FreeLock {
    /// The lock was free and is ours now; the stored value.
    Taken(Stored),
    /// Somebody holds it (or a hand-off reserved it): wait in line.
    Held,
}

/// Reads the replies of [`take_free_lock`].
pub(crate) fn free_lock(reply: Value) -> Result<FreeLock, Error> {
    let (taken, stored, pttl): (Value, Option<Vec<u8>>, Option<i64>) = reply_as("lock", reply)?;
    Ok(if taken == Value::Nil {
        FreeLock::Held
    } else {
        FreeLock::Taken(Stored::new(stored, pttl))
    })
}

/// What a taken free lock means for `mode`: the session is ours, or the
/// lock must be given back (`Missing` for strict mode, a collision for a
/// new ID that somehow exists).
// Short-lived, matched at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum OnFree {
    Keep,
    GiveBack(Result<Opened, Error>),
}

pub(crate) fn on_free(mode: OpenMode, stored: Option<&[u8]>, keys: &SessionKeys) -> OnFree {
    match (mode, stored) {
        (OpenMode::RequireExisting, None) => OnFree::GiveBack(Ok(Opened::Missing)),
        (OpenMode::New, Some(_)) => OnFree::GiveBack(Err(collision(keys))),
        _ => OnFree::Keep,
    }
}

/// A new ID whose lock somebody else holds: it is not new.
pub(crate) fn held_new(keys: &SessionKeys) -> Error {
    collision(keys)
}

/// What an `ACQUIRE` reply means for the waiting loop.
// Short-lived, returned once per try: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Acquired {
    /// The lock is ours; the stored value.
    Locked { stored: Stored },
    /// The open is over without a lock.
    Done(Result<Opened, Error>),
    /// Registered as a waiter: block for a hand-off for `nap`, then try again.
    Wait { nap: Duration },
}

impl Acquired {
    pub fn read(
        reply: &Value,
        keys: &SessionKeys,
        started: Instant,
        s: &Settings,
    ) -> Result<Self, Error> {
        Ok(match AcquireReply::parse(reply)? {
            AcquireReply::Acquired { data, pttl } => Self::Locked {
                stored: Stored::new(data, pttl),
            },
            AcquireReply::Missing => Self::Done(Ok(Opened::Missing)),
            AcquireReply::Crowded => Self::Done(Err(Error::TooManyWaiters {
                session: keys.tag().to_owned(),
                limit: s.max_waiters,
            })),
            AcquireReply::GaveUp { data } => {
                let waited = started.elapsed();
                Self::Done(match s.on_lock_timeout {
                    OnLockTimeout::Readonly => Ok(Opened::ReadOnly {
                        loaded: loaded(s, data.as_deref(), keys),
                        waited,
                    }),
                    OnLockTimeout::Fail => Err(Error::LockTimeout {
                        session: keys.tag().to_owned(),
                        waited,
                    }),
                })
            }
            AcquireReply::Busy { nap_ms } => Self::Wait {
                nap: Duration::from_millis(nap_ms).max(MIN_BLOCK),
            },
        })
    }
}

/// Whether a wake-list wait returned a baton (rather than timing out).
pub(crate) fn woken(reply: &Value) -> bool {
    !matches!(reply, Value::Nil)
}
