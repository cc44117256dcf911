//! ebb's integration tests: one binary, real servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::too_many_lines, missing_debug_implementations, unused_qualifications)]

mod support;

mod cli;
mod downloads;
mod faults;
mod lifecycle;
mod nginx;
mod scheduling;
