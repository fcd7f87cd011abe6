//! # stickless
//!
//! A shared session store on Redis for PHP pods and Rust services alike.
//!
//! - **One slot per session.** All keys of a session share a hash tag derived
//!   from a SHA-256 of the session ID; the ID itself never reaches Redis.
//! - **Two round trips** for a locked request: acquire+read, then a fenced
//!   write+release that hands the lock straight to the next waiter.
//! - **No polling.** Waiters block on their own wake-up list and are served in
//!   arrival order.
//! - **Fenced writes.** A write whose lock expired is refused, never applied.
//!
//! - **Any topology.** One server, Redis Cluster or Sentinel, each also over
//!   TLS, from one URL (see [`Config`]); failovers are ridden through within
//!   a time budget, and a write is never applied twice.
//!
//! The crate is layered:
//!
//! - a sans-IO protocol: [`config`], [`SessionKeys`], [`Envelope`], the
//!   [`scripts`] and their typed replies, [`Lease`], [`cluster`] slots, and
//!   [`php`], which reads and writes the session data itself in PHP's `php`
//!   and `php_serialize` formats, with serde;
//! - two drivers over it that pass the same behaviour suite: the blocking
//!   [`Store`] (what the PHP extension uses), and the async
//!   [`aio::Store`](crate::aio) on tokio and deadpool-redis (feature `tokio`),
//!   for Rust services that share sessions with PHP.
//!
//! A Rust service reading and changing the session PHP wrote (feature
//! `tokio`; see `docs/RUST.md`):
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), stickless::Error> {
//! use stickless::{Config, SessionId, aio::Store};
//!
//! let store = Store::new(Config::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")?);
//! let id = SessionId::parse("q3e1cmd7fqq2c3cl1v2qktm3ht")?; // the PHPSESSID cookie
//! if let Some(mut session) = store.open(&id).await? {
//!     let visits: i64 = session.get("visits")?.unwrap_or(0);
//!     session.set("visits", &(visits + 1))?;
//!     session.commit().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The blocking driver, one protocol step at a time:
//!
//! ```no_run
//! use std::time::Duration;
//! use stickless::{Config, OpenMode, Opened, SessionId, Store};
//!
//! let mut store = Store::new(Config::parse("redis://127.0.0.1:6379/0")?);
//! let id = SessionId::parse("0123456789abcdef0123456789abcdef")?;
//! match store.lock(&id, OpenMode::CreateIfMissing)? {
//!     Opened::Locked { lease, loaded, .. } => {
//!         println!("{} bytes stored", loaded.payload().len());
//!         store.commit(lease, b"user|s:3:\"ann\";".to_vec(), Duration::from_secs(1440))?;
//!     }
//!     Opened::Missing | Opened::ReadOnly { .. } => unreachable!("not in this mode"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod admin;
#[cfg(feature = "tokio")]
pub mod aio;
mod blocking;
pub mod cluster;
mod compress;
pub mod config;
mod connect;
mod crypto;
mod envelope;
mod error;
mod id;
mod keeper;
mod keys;
pub mod legacy;
pub mod merge;
pub mod metrics;
pub mod php;
mod route;
pub mod scripts;
mod session;
mod steps;
mod token;
mod users;

pub use blocking::Store;
pub use compress::Compression;
pub use config::{Concurrency, Config, ConfigError, Durability, OnLockTimeout, Settings};
pub use crypto::{KeyRing, KeyRingError};
pub use envelope::{Envelope, Sealing};
pub use error::{CorruptKind, Error, InvalidSessionId, LostReason, MergeRefusal};
pub use id::SessionId;
pub use keys::SessionKeys;
pub use merge::{Fallback, MergeBase, MergeOpened, Merged};
pub use session::{Committed, Lease, Loaded, OpenMode, Opened};
pub use token::LockToken;
pub use users::{InvalidUser, MAX_LABEL_LEN, MAX_USER_ID_LEN, UserId, UserKeys, UserSession};
