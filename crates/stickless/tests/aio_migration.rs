//! The async driver while a slot migrates: the same moments and steps as
//! the blocking driver (`suite/migration.rs`).

#![cfg(feature = "tokio")]

mod support;

// Only some of its methods are needed here.
#[allow(dead_code)]
#[path = "support/aio_facade.rs"]
mod aio_facade;

use aio_facade::Store;

include!("suite/migration.rs");
