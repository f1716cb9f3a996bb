//! Integration tests of amishare-core through its public API.

mod filter;
mod flow;
mod ids;
mod ops;
mod retry;
