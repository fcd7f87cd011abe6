//! The async driver against the same behaviour suite as the blocking one
//! (`suite/behaviour.rs`), on every topology: each call runs the async
//! store to completion on a runtime of its own.

#![cfg(feature = "tokio")]

mod support;

use support::aio_facade::Store;

include!("suite/behaviour.rs");
