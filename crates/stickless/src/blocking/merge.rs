//! `concurrency=merge` over the blocking connections (the protocol is in
//! `crate::merge`).

use std::time::Duration;

use super::Store;
use crate::SessionId;
use crate::cluster::slot;
use crate::error::Error;
use crate::merge::{self, Attempt, Fallback, MergeBase, MergeOpened, Merged, Next};
use crate::metrics::{self, Event, Probe, Step};
use crate::php::SerializeHandler;
use crate::route::Op;
use crate::session::{OpenMode, Opened, check_size};
use crate::steps;
use crate::token::LockToken;

impl Store {
    /// Reads `id` for a merge-mode request: without a lock, renewing its
    /// lifetime to `ttl` in the same command (one round trip). Sessions that
    /// cannot be merged key by key (references, unreadable data, no
    /// `handler`) are locked instead, as [`lock`](Self::lock) would.
    pub fn open_merge(
        &mut self,
        id: &SessionId,
        handler: Option<SerializeHandler>,
        mode: OpenMode,
        ttl: Duration,
    ) -> Result<MergeOpened, Error> {
        let Some(handler) = handler else {
            metrics::observe(&Event::MergeFallback);
            let opened = self.lock(id, mode)?;
            return Ok(MergeOpened::Locked {
                fallback: Fallback::Handler,
                opened,
            });
        };
        let probe = Probe::start(Step::Load);
        let result = self.merge_read_step(id, handler, mode, ttl);
        probe.merge_read(&result, self.unreported());
        match result? {
            Ok(base) => Ok(MergeOpened::Unlocked(base)),
            Err(fallback) => Ok(MergeOpened::Locked {
                fallback,
                opened: self.lock(id, mode)?,
            }),
        }
    }

    fn merge_read_step(
        &mut self,
        id: &SessionId,
        handler: SerializeHandler,
        mode: OpenMode,
        ttl: Duration,
    ) -> Result<Result<MergeBase, Fallback>, Error> {
        if self.config.settings.compat.is_some() {
            return Ok(Err(Fallback::Migrating));
        }
        let keys = self.keys(id);
        let cmd = merge::read(&keys, ttl);
        let reply = self.link.run(slot(keys.tag()), Op::Cmd(&cmd))?.value;
        let stored: Option<Vec<u8>> = steps::reply_as("merge read", reply)?;
        // A miss may be a session still in the old handler's keys: the lock
        // imports it.
        if stored.is_none() && mode != OpenMode::New && self.config.settings.import.is_some() {
            return Ok(Err(Fallback::Migrating));
        }
        merge::based(&self.config.settings, &keys, handler, mode, stored)
    }

    /// Writes `payload` over what `base` read: a compare-and-set on the
    /// revision, in one round trip when nobody wrote meanwhile, none when
    /// the payload is unchanged. When another request wrote meanwhile, only
    /// the top-level keys this request changed are replayed onto that
    /// request's value (a key both changed keeps the stored value and is
    /// listed in [`Merged::conflicts`]), and the compare-and-set is tried
    /// again within `budget_ms`. While another request holds the lock, this
    /// one waits for it and replays under the lock, so a locked request's
    /// write is never overwritten.
    pub fn commit_merge(
        &mut self,
        base: MergeBase,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Merged, Error> {
        let probe = Probe::start(Step::Merge);
        let (written, new) = (payload.len(), !base.was_stored());
        let result = self.commit_merge_step(base, payload, ttl);
        probe.merged(&result, written, new, self.unreported());
        result
    }

    fn commit_merge_step(
        &mut self,
        base: MergeBase,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Merged, Error> {
        let s = &self.config.settings;
        let Some(mut attempt) = Attempt::new(base, payload, s) else {
            return Ok(Merged::default());
        };
        check_size(attempt.keys(), attempt.mine(), s.max_size)?;
        loop {
            let step = attempt.step(&self.config.settings, ttl)?;
            let keys = attempt.keys().clone();
            let wait = steps::replica_wait(&self.config.settings);
            let ran = self.run_script(&keys, step.op(wait.as_ref()), wait.is_some())?;
            let s = &self.config.settings;
            match attempt.on_reply(&ran.value.0, s)? {
                Next::Done => {
                    steps::replicated(s, &keys, &ran.value.1)?;
                    return Ok(attempt.finish());
                }
                Next::Again => {}
                Next::Lock => return self.merge_under_lock(attempt, ttl),
            }
        }
    }

    /// A request holds the lock: wait for it like a locked request, then
    /// replay onto what the holder stored and commit under the lock.
    fn merge_under_lock(&mut self, mut attempt: Attempt, ttl: Duration) -> Result<Merged, Error> {
        let keys = attempt.keys().clone();
        let token = LockToken::random()?;
        let claim = self.keeper.claim(keys.clone(), token.clone());
        match self.acquire(&keys, &token, claim, OpenMode::CreateIfMissing, None)? {
            Opened::Locked { lease, loaded, .. } => {
                match attempt.under_lock(&lease.stamp, &loaded) {
                    Ok(Some(payload)) => {
                        self.commit_step(lease, payload, ttl)?;
                    }
                    Ok(None) => self.release_step(lease)?,
                    Err(refused) => {
                        let _ = self.release_step(lease);
                        return Err(refused);
                    }
                }
                Ok(attempt.finish())
            }
            Opened::ReadOnly { waited, .. } => Err(Error::LockTimeout {
                session: keys.tag().to_owned(),
                waited,
            }),
            Opened::Missing => Err(Error::Protocol(
                "merge: lock reported a missing session".into(),
            )),
        }
    }
}
