//! The async driver's keeper: one task per store, spawned on the first
//! lock, that renews the leases of held sessions (a `SessionGuard` kept
//! across a slow call keeps its lock) and clears the tokens of steps that
//! got no reply or whose future was cancelled (see `crate::keeper`).

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::link::Use;
use super::{Inner, Store};
use crate::cluster::slot;
use crate::keeper::{Job, Keeping};
use crate::keys::SessionKeys;
use crate::route::Op;
use crate::scripts::{self, Call};
use crate::steps;

/// Runs until the store is dropped. Holds the store only while it works,
/// never while it sleeps, so dropping the last clone ends it.
pub(super) async fn run(store: Weak<Inner>, keeping: Arc<Keeping>) {
    loop {
        if keeping.stopping() {
            return;
        }
        let (jobs, next) = keeping.ledger().take_due(Instant::now(), keeping.every());
        if jobs.is_empty() {
            let _ = tokio::time::timeout(next, keeping.notify.notified()).await;
            continue;
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = Store { inner };
        for job in jobs {
            store.work(&keeping, job).await;
        }
    }
}

impl Store {
    async fn work(&self, keeping: &Keeping, job: Job) {
        let s = &self.inner.config.settings;
        match job {
            Job::Renew(keys, token) => {
                let call = steps::renew(&keys, &token, s);
                let renewed = self
                    .once(&keys, &call)
                    .await
                    .and_then(|v| scripts::parse_renewed(&v).ok());
                let mut ledger = keeping.ledger();
                match renewed {
                    Some(true) => {}
                    Some(false) => ledger.lost(&token),
                    None => ledger.renew_failed(&token, Instant::now()),
                }
            }
            Job::Abandon(keys, token) => {
                let call = steps::abandon(&keys, &token, s);
                let done = self
                    .once(&keys, &call)
                    .await
                    .is_some_and(|v| scripts::parse_done("abandon", &v).is_ok());
                let mut ledger = keeping.ledger();
                if done {
                    ledger.abandoned(&token);
                } else {
                    ledger.abandon_failed(&token, Instant::now());
                }
            }
        }
    }

    /// The script's reply, or None when the node did not answer.
    async fn once(&self, keys: &SessionKeys, call: &Call) -> Option<redis::Value> {
        let ran = self
            .inner
            .link
            .run(
                slot(keys.tag()),
                Use::Command,
                std::time::Duration::ZERO,
                Op::Script(call),
            )
            .await
            .ok()?;
        Some(ran.value)
    }
}
