pub use ebb_core::*;
