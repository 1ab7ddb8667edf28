//! tagpromoter: an image-tag promotion bot for GitOps.
//!
//! The data flows through the modules in this order: [`rules`] say what to watch and how to
//! decide; [`policy`] decides, purely; [`manifest`] turns a decision into an exact edit of a
//! file's bytes. [`yaml`] gives both the loader and the editor positions in YAML text, and
//! [`image`] the validated names (tags, digests, repositories) that may be written into it.

pub mod cli;
pub mod commands;
pub mod gitops;
pub mod image;
pub mod manifest;
pub mod policy;
pub mod registry;
pub mod rules;
pub mod telemetry;
pub mod yaml;
