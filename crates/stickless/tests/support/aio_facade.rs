//! The async store behind the blocking store's face, so the one behaviour
//! suite can drive both.

use std::time::Duration;

use stickless::php::SerializeHandler;
use stickless::{
    Committed, Config, Error, Lease, Loaded, MergeBase, MergeOpened, Merged, OpenMode, Opened,
    SessionId, SessionKeys, UserId, UserKeys, UserSession, aio,
};

pub struct Store {
    runtime: tokio::runtime::Runtime,
    store: aio::Store,
}

impl Store {
    pub fn new(config: Config) -> Self {
        // A worker of its own, so the store's keeper task renews leases and
        // clears tokens while the test thread is busy elsewhere, as in a
        // service.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        Self {
            runtime,
            store: aio::Store::new(config),
        }
    }

    pub fn config(&self) -> &Config {
        self.store.config()
    }

    pub fn keys(&self, id: &SessionId) -> SessionKeys {
        self.store.keys(id)
    }

    pub fn lock(&mut self, id: &SessionId, mode: OpenMode) -> Result<Opened, Error> {
        self.runtime.block_on(self.store.lock(id, mode))
    }

    pub fn load(&mut self, id: &SessionId) -> Result<Loaded, Error> {
        self.runtime.block_on(self.store.load(id))
    }

    #[allow(dead_code)] // aio_migration.rs counts them; aio.rs does not.
    pub fn round_trips(&self) -> u64 {
        self.store.round_trips()
    }

    pub fn background(&self) -> (usize, usize) {
        self.store.background()
    }

    pub fn commit(
        &mut self,
        lease: Lease,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Committed, Error> {
        self.runtime
            .block_on(self.store.commit(lease, payload, ttl))
    }

    pub fn touch(&mut self, lease: Lease, ttl: Duration) -> Result<(), Error> {
        self.runtime.block_on(self.store.touch(lease, ttl))
    }

    pub fn release(&mut self, lease: Lease) -> Result<(), Error> {
        self.runtime.block_on(self.store.release(lease))
    }

    pub fn destroy(&mut self, id: &SessionId, lease: Option<Lease>) -> Result<(), Error> {
        self.runtime.block_on(self.store.destroy(id, lease))
    }

    pub fn create(&mut self, id: &SessionId, payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        self.runtime.block_on(self.store.create(id, payload, ttl))
    }

    /// The async store reads sessions with its own handler, `php` here.
    #[allow(dead_code)] // aio.rs uses it; aio_migration.rs does not.
    pub fn open_merge(
        &mut self,
        id: &SessionId,
        handler: Option<SerializeHandler>,
        mode: OpenMode,
        ttl: Duration,
    ) -> Result<MergeOpened, Error> {
        assert_eq!(
            handler,
            Some(SerializeHandler::Php),
            "the store reads `php`"
        );
        self.runtime.block_on(self.store.open_merge(id, mode, ttl))
    }

    #[allow(dead_code)]
    pub fn commit_merge(
        &mut self,
        base: MergeBase,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Merged, Error> {
        self.runtime
            .block_on(self.store.commit_merge(base, payload, ttl))
    }

    pub fn user_keys(&self, user: &UserId) -> UserKeys {
        self.store.user_keys(user)
    }

    pub fn bind_user(
        &mut self,
        lease: &mut Lease,
        user: &UserId,
        label: Option<&str>,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.runtime
            .block_on(self.store.bind_user(lease, user, label, ttl))
    }

    pub fn user_sessions(
        &mut self,
        user: &UserId,
        current: Option<&SessionId>,
    ) -> Result<Vec<UserSession>, Error> {
        self.runtime
            .block_on(self.store.user_sessions(user, current))
    }

    pub fn logout_user(
        &mut self,
        user: &UserId,
        except: Option<&SessionId>,
    ) -> Result<usize, Error> {
        self.runtime.block_on(self.store.logout_user(user, except))
    }
}
