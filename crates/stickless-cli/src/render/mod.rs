//! How values are shown: PHP literals and JSON for session contents,
//! timestamps and durations for people.

pub mod json;
pub mod php;
pub mod time;
