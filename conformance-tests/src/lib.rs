//! Conformance suites.

#[cfg(all(target_arch = "x86_64", unix))]
mod execpage;
pub mod oracle;
pub mod singlestep;
pub mod x87;
