//! The blocking driver against a real `redis-server`: locking, hand-off,
//! fencing, size limits, corrupt values and failure budgets, on a
//! standalone server, a cluster and a sentinel set.
//!
//! Every test starts its own servers (see `support`), so tests run in
//! parallel and a test that freezes its server cannot stall another.

mod support;

use stickless::Store;

include!("suite/behaviour.rs");
include!("suite/merge.rs");
