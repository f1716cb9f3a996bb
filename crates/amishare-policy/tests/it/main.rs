//! Integration tests of the public API, driven by the fixtures in
//! `testdata/policies`.

mod document;
mod evaluate;
mod mix;
mod oracle;
mod props;
mod share;
mod support;
