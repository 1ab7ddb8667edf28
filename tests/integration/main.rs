//! The integration tests, in one binary so that gix, reqwest and tokio link once. Each
//! module is one area; `support` starts the real servers (registry, git servers, sshd).

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod board;
mod check;
mod check_repo;
mod clusters;
mod conformance;
mod deploy;
mod engine;
mod fetched_repos;
mod gitops;
mod growth;
mod hardening;
mod kustomize_render;
mod manifest;
mod meaning;
mod monitoring;
mod multi_repo;
mod promises;
mod pull_requests;
mod real_repos;
mod registry;
mod registry_secrets;
mod server;
mod sharding;
mod tags_command;
mod verify;
mod webhooks;
