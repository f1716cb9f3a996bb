//! Integration tests of the simulated AWS, at the level of the
//! `KeyStore` / `ImageStore` traits.

mod agreement;
mod conformance;
mod consistency;
mod determinism;
mod doctor;
mod ec2;
mod failures;
mod faults;
mod filters;
mod fixture;
mod key_admin;
mod kms;
mod least_calls;
mod outcome_table;
mod scaling;
mod seed_flow;
mod status;
mod time;
mod world_file;
mod world_lock;
