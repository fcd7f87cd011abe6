//! The blocking driver while a slot migrates: every step, at every moment
//! of the move (`suite/migration.rs`).

mod support;

use stickless::Store;

include!("suite/migration.rs");
