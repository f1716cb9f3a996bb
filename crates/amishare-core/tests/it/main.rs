//! Integration tests of amishare-core through its public API.

mod flow;
mod ids;
mod ops;
mod retry;
