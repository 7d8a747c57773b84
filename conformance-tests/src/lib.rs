//! Conformance suites.

pub mod oracle;
