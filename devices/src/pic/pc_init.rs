//! The PC's initialization of the 8259A pair, as every PC BIOS does it:
//! ICW1 edge-triggered, cascade, ICW4 needed; ICW2 vectors 08h (master)
//! and 70h (slave); ICW3 the slave on IR2; ICW4 8086 mode. One list: our
//! BIOS's POST emits it (`bios/build.rs` includes this file) and the
//! board's tests replay it.

/// (port, byte) in the order they are written.
pub const PC_PIC_INIT: [(u16, u8); 8] = [
    (0x20, 0x11),
    (0x21, 0x08),
    (0x21, 0x04),
    (0x21, 0x01),
    (0xA0, 0x11),
    (0xA1, 0x70),
    (0xA1, 0x02),
    (0xA1, 0x01),
];
