//! tagpromoter: an image-tag promotion bot for GitOps.
//!
//! The data flows through the modules in this order: [`rules`] say what to watch and how to
//! decide; [`registry`] lists tags and reads image facts; [`gitops`] reads the GitOps
//! repository and its history; [`policy`] decides, purely; [`manifest`] turns a decision
//! into an exact edit of a file's bytes and judges it by what it makes the cluster run,
//! which [`render`] checks with the real renderer; [`engine`] joins them into a pass (observe → decide
//! → apply → report) and a person's `promote`/`release`, opening pull requests through
//! [`forge`]; [`deploy`] reads what Argo CD and Flux report about a rollout; [`alert`] turns reports into notifications and [`metrics`] into series;
//! [`server`] serves the worker's board, status, metrics and the webhooks that ask for a
//! pass; [`worker`] is `run`'s loop, [`shard`] which worker of a fleet owns which
//! promotion; [`view`] renders reports for both [`server`] and [`commands`] (parsed by
//! [`cli`]). [`yaml`] gives both the loader and the editor positions in YAML text,
//! [`image`] the validated names (tags, digests, repositories) that may be written into
//! it, [`secret`] reading secrets from files and checking shared secrets, and
//! [`telemetry`] the logs.

pub mod alert;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod engine;
pub mod forge;
pub mod gitops;
pub mod image;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod render;
pub mod rules;
pub mod secret;
pub mod server;
pub mod shard;
pub mod telemetry;
pub mod view;
pub mod worker;
pub mod yaml;
