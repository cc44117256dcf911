//! ebb's integration tests: one binary, real servers on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::similar_names,
    clippy::format_push_string,
    clippy::field_reassign_with_default,
    missing_debug_implementations
)]

mod support;

mod bandwidth;
mod bitsadmin;
mod cli;
mod cli_ux;
mod cli_views;
mod completing;
mod crashes;
mod daemon;
mod daemon_cli;
mod digests;
mod downloads;
mod farm;
mod faults;
mod formats;
mod hardening;
mod lanes;
mod lifecycle;
mod nginx;
mod pages;
mod queue;
mod scheduling;
mod secrets;
mod snapshots;
mod socket;
mod splits;
mod tls;
mod tus;
mod upload_crashes;
mod upload_reply;
mod uploads;
