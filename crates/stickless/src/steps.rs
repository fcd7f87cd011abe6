//! The protocol steps as commands and reply readers, sans-IO: both drivers
//! send exactly these, so they cannot drift apart.

use std::time::Duration;

use redis::{Cmd, Pipeline, Value};

use crate::config::OnLockTimeout;
use crate::config::{Durability, Settings};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::AcquireReply;
use crate::scripts::{
    ABANDON_SCRIPT, ACQUIRE_SCRIPT, COMMIT_SCRIPT, Call, DESTROY_SCRIPT, FencedReply,
    RELEASE_SCRIPT, TOUCH_SCRIPT,
};
use crate::session::{Lease, Loaded, OpenMode, Opened};
use crate::token::LockToken;
use std::time::Instant;

/// Shortest BLPOP wait Redis accepts without meaning "forever".
pub(crate) const MIN_BLOCK: Duration = Duration::from_millis(1);

/// How long a handed-over lock waits for its new owner to claim it.
pub(crate) fn claim_window(s: &Settings) -> Duration {
    (s.timeout * 2).min(s.lock_ttl)
}

/// The uncontended lock without a script: `SET NX PX` + `GET`, pipelined.
/// Replies `(OK|nil, data|nil)`.
pub(crate) fn take_free_lock(keys: &SessionKeys, token: &LockToken, s: &Settings) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(keys.lock())
        .arg(token.as_str())
        .arg("NX")
        .arg("PX")
        .arg(ms(s.lock_ttl))
        .cmd("GET")
        .arg(keys.data());
    pipe
}

/// One `ACQUIRE` try: queue (or take the lock), or give up on the last one.
pub(crate) fn acquire(
    keys: &SessionKeys,
    token: &LockToken,
    s: &Settings,
    mode: OpenMode,
    last_try: bool,
    queued: bool,
) -> Call {
    Call::new(&ACQUIRE_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .arg(token.as_str())
        .arg(ms(s.lock_ttl))
        .arg(u8::from(mode == OpenMode::RequireExisting))
        .arg(u8::from(last_try))
        .arg(ms(s.lock_wait + s.lock_ttl))
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)))
        .arg(u8::from(queued))
        .arg(s.max_waiters)
}

/// The fenced write; `resent` for a second send of the same envelope.
pub(crate) fn commit(
    lease: &Lease,
    envelope: &[u8],
    ttl: Duration,
    s: &Settings,
    resent: bool,
) -> Call {
    let keys = &lease.keys;
    let call = Call::new(&COMMIT_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .arg(lease.token.as_str())
        .arg(envelope)
        .arg(ms(ttl))
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)));
    if resent { call.arg(1) } else { call }
}

pub(crate) fn touch(lease: &Lease, ttl: Duration, s: &Settings) -> Call {
    let keys = &lease.keys;
    Call::new(&TOUCH_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .arg(lease.token.as_str())
        .arg(ms(ttl))
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)))
}

pub(crate) fn release(lease: &Lease, s: &Settings) -> Call {
    let keys = &lease.keys;
    Call::new(&RELEASE_SCRIPT)
        .key(keys.lock())
        .key(keys.queue())
        .arg(lease.token.as_str())
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)))
}

/// `token` is empty when the caller holds no lock.
pub(crate) fn destroy(keys: &SessionKeys, token: &str, s: &Settings) -> Call {
    Call::new(&DESTROY_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .key(keys.queue())
        .arg(token)
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)))
}

pub(crate) fn abandon(keys: &SessionKeys, token: &LockToken, s: &Settings) -> Call {
    Call::new(&ABANDON_SCRIPT)
        .key(keys.lock())
        .key(keys.queue())
        .arg(token.as_str())
        .arg(keys.wake_prefix())
        .arg(ms(claim_window(s)))
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

/// Waits for a hand-off on this waiter's own list, for at most `nap`.
pub(crate) fn wait_for_wake(wake: &str, nap: Duration) -> Cmd {
    let mut cmd = redis::cmd("BLPOP");
    cmd.arg(wake).arg(format!("{:.3}", nap.as_secs_f64()));
    cmd
}

/// How long to block for a hand-off: until the holder's lease would lapse
/// (a crashed holder never hands off), or a claim window passes (the lock
/// may have gone to a waiter that died meanwhile), or the wait runs out.
pub(crate) fn nap(left: Duration, pttl_ms: u64, s: &Settings) -> Duration {
    left.min(Duration::from_millis(pttl_ms))
        .min(claim_window(s))
        .max(MIN_BLOCK)
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

/// Reads a fenced step's reply. `lost_is_done` for steps whose purpose (not
/// holding the lock) a lost lock fulfils when the step had to be resent.
pub(crate) fn fenced_reply(lease: &Lease, reply: &Value, lost_is_done: bool) -> Result<(), Error> {
    match FencedReply::parse(reply)? {
        FencedReply::Done => Ok(()),
        FencedReply::Lost(_) if lost_is_done => Ok(()),
        FencedReply::Lost(reason) => Err(Error::LockLost {
            session: lease.session().to_owned(),
            reason,
        }),
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A stored value as the caller sees it: decrypted and checked.
pub(crate) fn loaded(s: &Settings, stored: Option<Vec<u8>>, keys: &SessionKeys) -> Loaded {
    Loaded::from_stored(stored, s.encryption_keys.as_ref(), keys.tag())
}

/// An envelope as stored: encrypted when keys are configured.
pub(crate) fn seal(s: &Settings, envelope: Envelope, keys: &SessionKeys) -> Result<Vec<u8>, Error> {
    envelope.seal(s.encryption_keys.as_ref(), keys.tag())
}

/// What an `ACQUIRE` reply means for the waiting loop.
// Short-lived, returned once per try: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Acquired {
    /// The open is over, one way or the other.
    Done(Result<Opened, Error>),
    /// Queued behind a holder whose lease has `pttl_ms` left: wait for a
    /// hand-off, then try again.
    Wait { pttl_ms: u64 },
}

impl Acquired {
    pub fn read(
        reply: &Value,
        keys: &SessionKeys,
        token: &LockToken,
        last_try: bool,
        queued: bool,
        started: Instant,
        s: &Settings,
    ) -> Result<Self, Error> {
        Ok(match AcquireReply::parse(reply)? {
            AcquireReply::Acquired(stored) => {
                let loaded = loaded(s, stored, keys);
                let lease = Lease::new(keys.clone(), token.clone(), &loaded);
                let waited = if queued {
                    started.elapsed()
                } else {
                    Duration::ZERO
                };
                Self::Done(Ok(Opened::Locked {
                    lease,
                    loaded,
                    waited,
                }))
            }
            AcquireReply::Missing => Self::Done(Ok(Opened::Missing)),
            AcquireReply::Crowded => Self::Done(Err(Error::TooManyWaiters {
                session: keys.tag().to_owned(),
                limit: s.max_waiters,
            })),
            AcquireReply::Busy { data, .. } if last_try => {
                let waited = started.elapsed();
                Self::Done(match s.on_lock_timeout {
                    OnLockTimeout::Readonly => Ok(Opened::ReadOnly {
                        loaded: loaded(s, data, keys),
                        waited,
                    }),
                    OnLockTimeout::Fail => Err(Error::LockTimeout {
                        session: keys.tag().to_owned(),
                        waited,
                    }),
                })
            }
            AcquireReply::Busy { pttl_ms, .. } => Self::Wait { pttl_ms },
        })
    }
}
