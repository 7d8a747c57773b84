//! Conformance suites.

pub mod oracle;
pub mod singlestep;
