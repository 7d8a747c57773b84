//! Our own guest programs, assembled at build time.
