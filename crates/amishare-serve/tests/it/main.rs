//! `amishare sim serve` over the wire: each operation's answer as AWS's
//! clients parse it, errors in each service's envelope, callers from access
//! keys, the sped-up clock, and saving the world.

mod callers;
mod dry_run;
mod ec2;
mod filters;
mod guards;
mod kms;
mod paging;
mod saving;
#[path = "../slow_client.rs"]
mod slow_client;
mod slow_clients;
mod support;
mod time;
