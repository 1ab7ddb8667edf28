//! The pure decision logic: which tag each environment should run, and why not the others.
//!
//! Owns version parsing ([`version`]), Masterminds constraints ([`constraint`]), tag
//! selection with its reasons ([`select`]), freeze windows ([`freeze`]) and promotion gates
//! ([`gates`]). Nothing here does I/O or reads a clock: time comes in as an argument, tags and
//! their metadata come from the caller.

pub mod constraint;
pub mod freeze;
pub mod gates;
pub mod platform;
pub mod timeline;
pub mod version;

pub use constraint::{Constraint, ConstraintError};
pub use version::{Version, VersionError};
pub mod select;

pub use freeze::FreezeWindow;
pub use gates::{Block, Blocked, Decision, Gates, Hold, Situation, Waiting};
pub use select::{
    Direction, Filter, Order, Rejection, Selection, TagName, TagPolicy, Unordered, Unranked,
};
pub use timeline::{Change, Residency, Timeline};
