//! The PC board: every chip the CPU reaches through its `Bus`.
