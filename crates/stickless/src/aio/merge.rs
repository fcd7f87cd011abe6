//! `concurrency=merge` for the async driver (the protocol is in
//! `crate::merge`).

use std::time::Duration;

use super::Store;
use super::link::Use;
use crate::SessionId;
use crate::cluster::slot;
use crate::error::Error;
use crate::merge::{self, Attempt, Fallback, MergeBase, MergeOpened, Merged, Next};
use crate::metrics::{Probe, Step};
use crate::route::Op;
use crate::session::{OpenMode, Opened, check_size};
use crate::steps;
use crate::token::LockToken;

impl Store {
    /// Reads `id` for a merge-mode request, as the PHP side's serialize
    /// handler (the store's) lays it out: without a lock, renewing its
    /// lifetime to `ttl` in the same command (one round trip). Sessions that
    /// cannot be merged key by key (references, unreadable data) are locked
    /// instead, as [`lock`](Self::lock) would.
    pub async fn open_merge(
        &self,
        id: &SessionId,
        mode: OpenMode,
        ttl: Duration,
    ) -> Result<MergeOpened, Error> {
        let probe = Probe::start(Step::Load);
        let result = self.merge_read_step(id, mode, ttl).await;
        probe.merge_read(&result, self.unreported());
        match result? {
            Ok(base) => Ok(MergeOpened::Unlocked(base)),
            Err(fallback) => Ok(MergeOpened::Locked {
                fallback,
                opened: self.lock(id, mode).await?,
            }),
        }
    }

    async fn merge_read_step(
        &self,
        id: &SessionId,
        mode: OpenMode,
        ttl: Duration,
    ) -> Result<Result<MergeBase, Fallback>, Error> {
        self.native_only()?;
        let keys = self.keys(id);
        let cmd = merge::read(&keys, ttl);
        let reply = self
            .run(
                slot(keys.tag()),
                Use::Command,
                Duration::ZERO,
                Op::Cmd(&cmd),
            )
            .await?;
        let stored: Option<Vec<u8>> = steps::reply_as("merge read", reply.value)?;
        let s = &self.inner.config.settings;
        merge::based(s, &keys, self.inner.handler, mode, stored)
    }

    /// Writes `payload` over what `base` read, as
    /// [`stickless::Store::commit_merge`](crate::Store::commit_merge) does.
    pub async fn commit_merge(
        &self,
        base: MergeBase,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Merged, Error> {
        let probe = Probe::start(Step::Merge);
        let (written, new) = (payload.len(), !base.was_stored());
        let result = self.commit_merge_step(base, payload, ttl).await;
        probe.merged(&result, written, new, self.unreported());
        result
    }

    async fn commit_merge_step(
        &self,
        base: MergeBase,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Merged, Error> {
        let s = &self.inner.config.settings;
        let Some(mut attempt) = Attempt::new(base, payload, s) else {
            return Ok(Merged::default());
        };
        check_size(attempt.keys(), attempt.mine(), s.max_size)?;
        loop {
            let step = attempt.step(s, ttl)?;
            let keys = attempt.keys().clone();
            let wait = steps::replica_wait(s);
            let ran = self
                .run_script(&keys, step.op(wait.as_ref()), wait.is_some())
                .await?;
            match attempt.on_reply(&ran.value.0, s)? {
                Next::Done => {
                    steps::replicated(s, &keys, &ran.value.1)?;
                    return Ok(attempt.finish());
                }
                Next::Again => {}
                Next::Lock => return self.merge_under_lock(attempt, ttl).await,
            }
        }
    }

    async fn merge_under_lock(&self, mut attempt: Attempt, ttl: Duration) -> Result<Merged, Error> {
        let keys = attempt.keys().clone();
        let token = LockToken::random()?;
        let claim = self.claim(keys.clone(), token.clone());
        match self
            .acquire(&keys, &token, claim, OpenMode::CreateIfMissing)
            .await?
        {
            Opened::Locked { lease, loaded, .. } => {
                match attempt.under_lock(&lease.stamp, &loaded) {
                    Ok(Some(payload)) => {
                        self.commit_step(lease, payload, ttl).await?;
                    }
                    Ok(None) => self.release_step(lease).await?,
                    Err(refused) => {
                        let _ = self.release_step(lease).await;
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
