//! Conformance suites.

pub mod oracle;
pub mod singlestep;
pub mod x87;
