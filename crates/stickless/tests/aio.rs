//! The async driver against the same behaviour suite as the blocking one
//! (`suite/behaviour.rs`), on every topology: each call runs the async
//! store to completion on a runtime of its own.

#![cfg(feature = "tokio")]

mod support;

#[path = "support/aio_facade.rs"]
mod aio_facade;

use aio_facade::Store;

include!("suite/behaviour.rs");
include!("suite/merge.rs");
