//! The VGA programmed through its ports and memory window, as a driver does.

use super::*;

const HZ: u64 = 200_000_000;

fn out(v: &mut Vga, port: u16, b: u8) {
    assert!(v.io_write(port, 1, b as u32, 0));
}
fn inb(v: &mut Vga, port: u16) -> u8 {
    v.io_read(port, 1, 0).unwrap() as u8
}
fn gc(v: &mut Vga, i: u8, b: u8) {
    // A word write to the index port sets index and data, as drivers do.
    assert!(v.io_write(0x3CE, 2, (b as u32) << 8 | i as u32, 0));
}
fn seq(v: &mut Vga, i: u8, b: u8) {
    assert!(v.io_write(0x3C4, 2, (b as u32) << 8 | i as u32, 0));
}

/// A VGA in planar mode 12h (write mode 0, all planes, plain bit mask).
fn planar() -> Vga {
    let mut v = Vga::new(HZ);
    assert!(v.set_mode(0x12));
    v
}

fn planes_at(v: &Vga, a: usize) -> [u8; 4] {
    [0, 1, 2, 3].map(|p| v.plane_byte(p, a))
}

#[test]
fn write_mode_0_set_reset_rotate_and_bit_mask() {
    let mut v = planar();
    v.mem_write(0xA0010, 0x5A);
    assert_eq!(planes_at(&v, 0x10), [0x5A; 4]);
    // Set/reset: planes 0 and 2 from set/reset value 0b0001.
    gc(&mut v, 0, 0x01);
    gc(&mut v, 1, 0x05);
    v.mem_write(0xA0011, 0x3C);
    assert_eq!(planes_at(&v, 0x11), [0xFF, 0x3C, 0x00, 0x3C]);
    gc(&mut v, 1, 0x00);
    // Rotate right by 4, function XOR with the latches loaded by a read.
    v.mem_read(0xA0010);
    gc(&mut v, 3, 0x18 | 4);
    v.mem_write(0xA0010, 0x0F);
    assert_eq!(planes_at(&v, 0x10), [0x5A ^ 0xF0; 4]);
    gc(&mut v, 3, 0x00);
    // Bit mask 0x0F keeps the high nibble from the latches.
    v.mem_read(0xA0010);
    gc(&mut v, 8, 0x0F);
    v.mem_write(0xA0010, 0x00);
    assert_eq!(planes_at(&v, 0x10), [0xA0; 4]);
    // Map mask: only plane 1 is written.
    gc(&mut v, 8, 0xFF);
    seq(&mut v, 2, 0x02);
    v.mem_write(0xA0010, 0x77);
    assert_eq!(planes_at(&v, 0x10), [0xA0, 0x77, 0xA0, 0xA0]);
}

#[test]
fn write_modes_1_2_3_and_and_or() {
    let mut v = planar();
    // Fill address 0 with distinct plane bytes, one plane at a time.
    for (p, b) in [0x11u8, 0x22, 0x33, 0x44].into_iter().enumerate() {
        seq(&mut v, 2, 1 << p);
        v.mem_write(0xA0000, b);
    }
    seq(&mut v, 2, 0x0F);
    // Write mode 1: latches copied to another address.
    gc(&mut v, 5, 0x01);
    v.mem_read(0xA0000);
    v.mem_write(0xA0100, 0xEE);
    assert_eq!(planes_at(&v, 0x100), [0x11, 0x22, 0x33, 0x44]);
    // Write mode 2: colour 0b1010 expands to planes 1 and 3, under the mask.
    gc(&mut v, 5, 0x02);
    gc(&mut v, 8, 0xF0);
    v.mem_read(0xA0000);
    v.mem_write(0xA0200, 0x0A);
    assert_eq!(planes_at(&v, 0x200), [0x01, 0xF2, 0x03, 0xF4]);
    // Write mode 3: set/reset colour, data (rotated) ANDed into the mask.
    gc(&mut v, 5, 0x03);
    gc(&mut v, 8, 0xFF);
    gc(&mut v, 0, 0x06);
    v.mem_read(0xA0000);
    v.mem_write(0xA0300, 0x81);
    assert_eq!(planes_at(&v, 0x300), [0x10, 0xA3, 0xB3, 0x44]);
    // Functions AND and OR (write mode 0).
    gc(&mut v, 5, 0x00);
    gc(&mut v, 3, 0x08);
    v.mem_read(0xA0000);
    v.mem_write(0xA0400, 0x0F);
    assert_eq!(planes_at(&v, 0x400), [0x01, 0x02, 0x03, 0x04]);
    gc(&mut v, 3, 0x10);
    v.mem_read(0xA0000);
    v.mem_write(0xA0400, 0x0F);
    assert_eq!(planes_at(&v, 0x400), [0x1F, 0x2F, 0x3F, 0x4F]);
}

#[test]
fn read_modes_0_and_1() {
    let mut v = planar();
    for (p, b) in [0xF0u8, 0xCC, 0xAA, 0x0F].into_iter().enumerate() {
        seq(&mut v, 2, 1 << p);
        v.mem_write(0xA0020, b);
    }
    for p in 0..4 {
        gc(&mut v, 4, p);
        assert_eq!(v.mem_read(0xA0020), [0xF0, 0xCC, 0xAA, 0x0F][p as usize]);
    }
    // Read mode 1: which pixels have colour 0b0101 (planes 0 and 2 set,
    // 1 and 3 clear)? Bits: plane0 F0, plane1 CC, plane2 AA, plane3 0F.
    gc(&mut v, 5, 0x08);
    gc(&mut v, 2, 0x05);
    gc(&mut v, 7, 0x0F);
    assert_eq!(v.mem_read(0xA0020), 0xF0 & !0xCC & 0xAA & !0x0F);
    // Colour don't care drops planes 1 and 3 from the comparison.
    gc(&mut v, 7, 0x05);
    assert_eq!(v.mem_read(0xA0020), 0xF0 & 0xAA);
}

#[test]
fn dac_and_attribute_flip_flop() {
    let mut v = Vga::new(HZ);
    out(&mut v, 0x3C8, 0x10);
    for b in [0x3F, 0x20, 0x41, 1, 2, 3] {
        out(&mut v, 0x3C9, b);
    }
    assert_eq!(v.dac_entry(0x10), [0x3F, 0x20, 0x01], "6-bit components");
    assert_eq!(v.dac_entry(0x11), [1, 2, 3]);
    assert_eq!(inb(&mut v, 0x3C8), 0x12, "write index advanced");
    out(&mut v, 0x3C7, 0x10);
    assert_eq!(inb(&mut v, 0x3C7), 3, "DAC state: reading");
    let got: Vec<u8> = (0..4).map(|_| inb(&mut v, 0x3C9)).collect();
    assert_eq!(got, [0x3F, 0x20, 0x01, 1]);
    // Attribute controller: index, data, index...; a read of input status
    // 1 puts the flip-flop back to "index".
    v.misc = 1;
    out(&mut v, 0x3C0, 0x12);
    inb(&mut v, 0x3DA);
    out(&mut v, 0x3C0, 0x13);
    out(&mut v, 0x3C0, 0x07);
    assert_eq!(inb(&mut v, 0x3C0), 0x13);
    assert_eq!(inb(&mut v, 0x3C1), 0x07);
    // Mono CRTC ports are dead while the colour ones are live.
    out(&mut v, 0x3D4, 0x0E);
    out(&mut v, 0x3D5, 0x12);
    assert_eq!(inb(&mut v, 0x3B5), 0xFF);
    assert_eq!(inb(&mut v, 0x3D5), 0x12);
}

#[test]
fn input_status_follows_virtual_time() {
    let mut v = Vga::new(HZ);
    v.misc = 1;
    let frame = HZ / 70;
    let line = frame / 449;
    let st = |v: &mut Vga, t: u64| v.io_read(0x3DA, 1, t).unwrap() as u8;
    assert_eq!(st(&mut v, 0) & 0x09, 0, "start of a visible line");
    assert_eq!(st(&mut v, line * 9 / 10) & 0x09, 0x01, "horizontal blank");
    assert_eq!(st(&mut v, line * 412 + 1) & 0x09, 0x09, "vertical retrace");
    assert_eq!(st(&mut v, line * 420) & 0x09, 0x01, "vertical blank");
    assert_eq!(st(&mut v, frame + 1) & 0x08, 0, "next frame");
}

#[test]
fn text_mode_renders_glyphs_cursor_and_attributes() {
    let mut v = Vga::new(HZ);
    assert!(v.set_mode(0x03));
    // 'A' white on blue at (0,0), 'x' light green on black at (1,0).
    for (i, b) in [b'A', 0x1F, b'x', 0x0A].into_iter().enumerate() {
        v.mem_write(0xB8000 + i as u32, b);
    }
    // Cursor at cell 81 (row 1, column 1).
    out(&mut v, 0x3D4, 0x0E);
    out(&mut v, 0x3D5, 0);
    out(&mut v, 0x3D4, 0x0F);
    out(&mut v, 0x3D5, 81);
    let f = v.render();
    assert_eq!((f.width, f.height), (720, 400));
    let white = [0xFF, 0xFF, 0xFF, 0xFF];
    let blue = [0, 0, 0xAA, 0xFF];
    let black = [0, 0, 0, 0xFF];
    // Line 1 of 'A' is 0x0E << 2: columns 2, 3, 4 lit.
    assert_eq!(f.pixel(2, 1), white);
    assert_eq!(f.pixel(1, 1), blue);
    assert_eq!(f.pixel(8, 1), blue, "ninth column is background");
    assert_eq!(f.pixel(2, 0), blue);
    // The bar of the A (line 7): columns 1..=5.
    for x in 1..=5 {
        assert_eq!(f.pixel(x, 7), white);
    }
    assert_eq!(
        f.pixel(9 + 3, 9),
        [0x55, 0xFF, 0x55, 0xFF],
        "'x' in light green"
    );
    // Cursor lines 13–14 in the cell at row 1 column 1; the cell is empty
    // (char 0, attribute 0) so the cursor takes the foreground colour 0...
    // give it an attribute first.
    v.mem_write(0xB8000 + 81 * 2 + 1, 0x07);
    let f = v.render();
    assert_eq!(f.pixel(9 + 4, 16 + 13), [0xAA, 0xAA, 0xAA, 0xFF]);
    assert_eq!(f.pixel(9 + 4, 16 + 12), black);
    // Cursor off (CRTC 0Ah bit 5).
    out(&mut v, 0x3D4, 0x0A);
    out(&mut v, 0x3D5, 0x20);
    assert_eq!(v.render().pixel(9 + 4, 16 + 13), black);
}

#[test]
fn text_blink_uses_virtual_time() {
    let mut v = Vga::new(HZ);
    v.set_mode(0x03);
    v.mem_write(0xB8000, 0xDB); // full block
    v.mem_write(0xB8001, 0x8F); // blinking white on black
    assert_eq!(v.render().pixel(0, 0), [0xFF; 4]);
    // 16 frames later the blinking character is hidden.
    let frame = HZ / 70;
    v.io_read(0x3DA, 1, 16 * frame + 5);
    assert_eq!(v.render().pixel(0, 0), [0, 0, 0, 0xFF]);
}

#[test]
fn mode_13h_and_mode_x_render() {
    let mut v = Vga::new(HZ);
    assert!(v.set_mode(0x13));
    v.mem_write(0xA0000 + 320 * 10 + 5, 4);
    v.mem_write(0xA0000 + 320 * 199 + 319, 0x0F);
    let f = v.render();
    assert_eq!((f.width, f.height), (320, 200));
    assert_eq!(f.pixel(5, 10), [0xAA, 0, 0, 0xFF]);
    assert_eq!(f.pixel(319, 199), [0xFF; 4]);
    assert_eq!(f.pixel(4, 10), [0, 0, 0, 0xFF]);
    // Chain-4 stores pixel 5 in plane 1 at plane address 320*10+4.
    assert_eq!(v.plane_byte(1, 320 * 10 + 4), 4);
    // Unchain (Mode X): byte addressing, four pixels per address.
    seq(&mut v, 4, 0x06);
    out(&mut v, 0x3D4, 0x14);
    out(&mut v, 0x3D5, 0x00);
    out(&mut v, 0x3D4, 0x17);
    out(&mut v, 0x3D5, 0xE3);
    seq(&mut v, 2, 0x04);
    v.mem_write(0xA0001, 0x02);
    let f = v.render();
    assert_eq!(f.pixel(6, 0), [0, 0xAA, 0, 0xFF], "address 1 plane 2 = x 6");
}

#[test]
fn planar_mode_12h_pixels() {
    let mut v = planar();
    // Pixel (9, 2) colour 12 with write mode 2: byte 1 of row 2, bit 6.
    gc(&mut v, 5, 0x02);
    gc(&mut v, 8, 0x40);
    v.mem_read(0xA0000 + 80 * 2 + 1);
    v.mem_write(0xA0000 + 80 * 2 + 1, 0x0C);
    let f = v.render();
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!(f.pixel(9, 2), [0xFF, 0x55, 0x55, 0xFF]);
    assert_eq!(f.pixel(8, 2), [0, 0, 0, 0xFF]);
    assert!(v.set_mode(0x0D));
    let f = v.render();
    assert_eq!((f.width, f.height), (320, 200));
    assert!(v.set_mode(0x10));
    assert_eq!((v.render().width, v.render().height), (640, 350));
    assert!(v.set_mode(0x07));
    assert_eq!((v.render().width, v.render().height), (720, 400));
}

#[test]
fn garbage_registers_never_panic() {
    let mut v = Vga::new(HZ);
    let mut x = 0x9E37_79B9u32;
    for i in 0..100_000u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let port = 0x3B0 + (x % 0x30) as u16;
        if x & 0x100 != 0 {
            v.io_write(port, 1 + (x >> 30) as u8 % 2, x >> 9, i);
        } else {
            v.io_read(port, 1, i);
        }
        v.mem_write(0xA0000 + (x >> 7) % 0x20000, x as u8);
        v.mem_read(0xA0000 + (x >> 5) % 0x20000);
        if i % 5000 == 0 {
            let f = v.render();
            assert_eq!(f.rgba.len(), (f.width * f.height * 4) as usize);
        }
    }
}

#[test]
fn text_view_reads_what_the_display_shows() {
    let mut v = Vga::new(HZ);
    assert!(v.set_mode(0x03));
    for (i, b) in b"Hi".iter().enumerate() {
        v.mem_write(0xB8000 + 2 * i as u32, *b);
        v.mem_write(0xB8000 + 2 * i as u32 + 1, 0x07);
    }
    // Row 1 (160 bytes on), with a control character shown as a space.
    for (i, b) in [b'a', 0x01, b'b'].into_iter().enumerate() {
        v.mem_write(0xB8000 + 160 + 2 * i as u32, b);
    }
    let text = v.text().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    assert_eq!(&lines[..3], ["Hi", "a b", ""]);
    assert!(v.set_mode(0x13));
    assert_eq!(v.text(), None, "graphics mode");
}

// --- The Bochs/QEMU VBE ("dispi") interface.

fn dispi_out(v: &mut Vga, index: u16, value: u16) {
    assert!(v.io_write(0x1CE, 2, index as u32, 0));
    assert!(v.io_write(0x1CF, 2, value as u32, 0));
}
fn dispi_in(v: &mut Vga, index: u16) -> u16 {
    assert!(v.io_write(0x1CE, 2, index as u32, 0));
    v.io_read(0x1CF, 2, 0).unwrap() as u16
}

/// Set a VBE mode the way a driver does: shape while disabled, then enable.
fn vbe_mode(v: &mut Vga, w: u16, h: u16, bpp: u16, flags: u16) {
    dispi_out(v, dispi::reg::ENABLE, 0);
    dispi_out(v, dispi::reg::XRES, w);
    dispi_out(v, dispi::reg::YRES, h);
    dispi_out(v, dispi::reg::BPP, bpp);
    dispi_out(v, dispi::reg::ENABLE, dispi::enable::ENABLED | flags);
}

#[test]
fn dispi_id_handshake_and_capabilities() {
    let mut v = Vga::new(HZ);
    assert_eq!(dispi_in(&mut v, 0), 0xB0C5, "the newest ID at power-on");
    dispi_out(&mut v, 0, 0xB0C2);
    assert_eq!(
        dispi_in(&mut v, 0),
        0xB0C2,
        "a supported ID the guest wrote"
    );
    dispi_out(&mut v, 0, 0xB0C9);
    assert_eq!(dispi_in(&mut v, 0), 0xB0C2, "an unknown ID is ignored");
    assert!(v.io_write(0x1CE, 2, 0, 0));
    assert_eq!(
        v.io_read(0x1D0, 2, 0),
        Some(0xB0C2),
        "0x1D0 is a data alias"
    );
    assert_eq!(dispi_in(&mut v, dispi::reg::VIDEO_MEMORY_64K), 256);
    dispi_out(&mut v, dispi::reg::ENABLE, dispi::enable::GETCAPS);
    assert_eq!(dispi_in(&mut v, dispi::reg::XRES), dispi::MAX_XRES);
    assert_eq!(dispi_in(&mut v, dispi::reg::YRES), dispi::MAX_YRES);
    assert_eq!(dispi_in(&mut v, dispi::reg::BPP), 32);
    dispi_out(&mut v, dispi::reg::ENABLE, 0);
    dispi_out(&mut v, dispi::reg::XRES, 800);
    assert_eq!(dispi_in(&mut v, dispi::reg::XRES), 800);
    dispi_out(&mut v, dispi::reg::BPP, 7);
    assert_eq!(
        dispi_in(&mut v, dispi::reg::BPP),
        8,
        "an unknown depth is ignored"
    );
    dispi_out(&mut v, dispi::reg::XRES, 9999);
    assert_eq!(dispi_in(&mut v, dispi::reg::XRES), 800, "past the maximum");
}

#[test]
fn dispi_enable_fixes_the_shape_and_asks_for_a_clear() {
    let mut v = Vga::new(HZ);
    vbe_mode(&mut v, 1024, 768, 32, dispi::enable::LFB);
    assert!(v.dispi().enabled());
    assert_eq!(v.dispi_mut().take_clear(), Some(1024 * 768 * 4));
    assert_eq!(v.dispi_mut().take_clear(), None);
    dispi_out(&mut v, dispi::reg::XRES, 640);
    assert_eq!(
        dispi_in(&mut v, dispi::reg::XRES),
        1024,
        "fixed while enabled"
    );
    assert_eq!(dispi_in(&mut v, dispi::reg::VIRT_WIDTH), 1024);
    dispi_out(&mut v, dispi::reg::VIRT_WIDTH, 2048);
    assert_eq!(dispi_in(&mut v, dispi::reg::VIRT_WIDTH), 2048);
    assert_eq!(
        dispi_in(&mut v, dispi::reg::VIRT_HEIGHT),
        2048,
        "16 MiB / 8 KiB lines"
    );
    dispi_out(&mut v, dispi::reg::X_OFFSET, 3);
    dispi_out(&mut v, dispi::reg::Y_OFFSET, 2);
    assert_eq!(v.dispi().start(), 2 * 8192 + 3 * 4);
    // Bank window: packed modes show the bank from video memory, not the
    // planes.
    dispi_out(&mut v, dispi::reg::BANK, 5);
    assert_eq!(v.dispi().window_offset(), Some(5 << 16));
    dispi_out(&mut v, dispi::reg::BANK, 256);
    assert_eq!(dispi_in(&mut v, dispi::reg::BANK), 5, "no bank past 16 MiB");
    assert_eq!(
        v.mem_read(0xA0000),
        0xFF,
        "the memory map serves the window"
    );
    vbe_mode(&mut v, 640, 480, 8, dispi::enable::NOCLEARMEM);
    assert_eq!(v.dispi_mut().take_clear(), None, "NOCLEARMEM");
    dispi_out(&mut v, dispi::reg::ENABLE, 0);
    assert_eq!(
        v.dispi().window_offset(),
        None,
        "disabled: legacy VGA again"
    );
}

#[test]
fn dispi_8bpp_renders_through_the_dac_at_6_and_8_bits() {
    let mut v = Vga::new(HZ);
    vbe_mode(&mut v, 640, 480, 8, 0);
    let mut mem = vec![0u8; 1 << 20];
    mem[640 + 3] = 7; // (3, 1)
    out(&mut v, 0x3C8, 7);
    for c in [63, 32, 0] {
        out(&mut v, 0x3C9, c);
    }
    let f = v.render_with(&mem);
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!(f.pixel(3, 1), [255, 130, 0, 255]);
    assert_eq!(
        v.render().pixel(3, 1),
        v.render().pixel(0, 0),
        "no memory: black"
    );
    // 8-bit DAC: components as written.
    vbe_mode(
        &mut v,
        640,
        480,
        8,
        dispi::enable::DAC_8BIT | dispi::enable::NOCLEARMEM,
    );
    out(&mut v, 0x3C8, 7);
    for c in [200, 100, 50] {
        out(&mut v, 0x3C9, c);
    }
    out(&mut v, 0x3C7, 7);
    assert_eq!(inb(&mut v, 0x3C9), 200);
    assert_eq!(v.render_with(&mem).pixel(3, 1), [200, 100, 50, 255]);
}

#[test]
fn dispi_16_and_32bpp_render_with_offsets() {
    let mut v = Vga::new(HZ);
    vbe_mode(&mut v, 320, 200, 16, 0);
    let mut mem = vec![0u8; 1 << 20];
    // (1, 0) pure red, (2, 0) pure green in 5-6-5.
    mem[2..4].copy_from_slice(&0xF800u16.to_le_bytes());
    mem[4..6].copy_from_slice(&0x07E0u16.to_le_bytes());
    let f = v.render_with(&mem);
    assert_eq!(f.pixel(1, 0), [255, 0, 0, 255]);
    assert_eq!(f.pixel(2, 0), [0, 255, 0, 255]);
    assert_eq!(f.pixel(0, 0), [0, 0, 0, 255]);
    dispi_out(&mut v, dispi::reg::X_OFFSET, 1);
    assert_eq!(
        v.render_with(&mem).pixel(0, 0),
        [255, 0, 0, 255],
        "display start"
    );

    vbe_mode(&mut v, 800, 600, 32, 0);
    dispi_out(&mut v, dispi::reg::VIRT_WIDTH, 1000);
    let line = 1000 * 4;
    // (5, 2) = B, G, R, X bytes.
    mem[2 * line + 5 * 4..2 * line + 5 * 4 + 4].copy_from_slice(&[0x10, 0x20, 0x30, 0]);
    let f = v.render_with(&mem);
    assert_eq!((f.width, f.height), (800, 600));
    assert_eq!(f.pixel(5, 2), [0x30, 0x20, 0x10, 255]);
    dispi_out(&mut v, dispi::reg::Y_OFFSET, 1);
    assert_eq!(v.render_with(&mem).pixel(5, 1), [0x30, 0x20, 0x10, 255]);
}

#[test]
fn dispi_4bpp_draws_through_the_planes() {
    let mut v = Vga::new(HZ);
    assert!(v.set_mode(0x12));
    vbe_mode(&mut v, 800, 600, 4, 0);
    assert_eq!(
        v.dispi().window_offset(),
        None,
        "planar: the VGA serves the window"
    );
    // Write mode 0, all planes: pixel 0 colour 15; plane 2 only: pixel 9
    // colour 4 (second byte, bit 6).
    v.mem_write(0xA0000, 0x80);
    seq(&mut v, 2, 0x04);
    v.mem_write(0xA0001, 0x40);
    // Line 1 starts 100 bytes in (800 / 8).
    seq(&mut v, 2, 0x0F);
    v.mem_write(0xA0000 + 100, 0x80);
    let f = v.render_with(&[]);
    assert_eq!((f.width, f.height), (800, 600));
    let white = f.pixel(0, 0);
    assert_eq!(white, [255, 255, 255, 255]);
    assert_eq!(f.pixel(9, 0), [0xAA, 0, 0, 255], "EGA red");
    assert_eq!(f.pixel(1, 0), [0, 0, 0, 255]);
    assert_eq!(f.pixel(0, 1), white);
}
