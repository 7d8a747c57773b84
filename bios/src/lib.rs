//! Our own PC firmware. The full BIOS is the BIOS milestone; this crate holds its place in the workspace.
