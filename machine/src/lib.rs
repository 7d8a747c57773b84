//! The PC as one value: CPU and board, the run loop and the virtual clock.
