//! ebbd's API, version 1, in one place: the types that cross the wire ([`wire`]), the route
//! table both sides use ([`routes`]), the error body that carries each error's kind ([`error`]),
//! the server's handlers (feature `server`: [`router`]) and the client (feature `client`:
//! [`Client`]). `docs/api.md` describes the protocol for people.
//!
//! The shape follows rqbit's `librqbit::http_api` and `http_api_client`: one crate owns the
//! protocol, so a route or a field changes in one place on both sides.

pub mod error;
pub mod routes;
pub mod wire;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
mod server;

#[cfg(feature = "client")]
pub use client::Client;
pub use error::ErrorBody;
#[cfg(feature = "server")]
pub use server::router;
