//! Our BIOS on a whole machine: POST with the board's devices, boot from
//! disk images built here at test time (boot sectors assembled with
//! iced-x86's `code_asm`), and the services a boot program uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use iced_x86::code_asm::*;
use ringside_machine::disk::{Disk, DiskMode};
use ringside_machine::ide::DeviceKind;
use ringside_machine::{bios, BiosLog, Console, Machine, MachineConfig, RunLimits, RunOutcome};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// A temporary image file, removed on drop.
struct TempImage(PathBuf);

impl TempImage {
    fn new(bytes: &[u8]) -> TempImage {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "ringside-bios-test-{}-{}.img",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, bytes).unwrap();
        TempImage(p)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn machine(memory_mib: u32) -> Machine {
    Machine::with_our_bios(MachineConfig {
        memory_mib,
        console: Console::Capture(Vec::new()),
        bios_log: BiosLog::Capture(Vec::new()),
        ..MachineConfig::default()
    })
    .expect("machine")
}

/// What the guest wrote to port 0xE9 (nothing of our BIOS's).
fn console(m: &Machine) -> String {
    String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned()
}

/// Our BIOS's own log (`--bios-log`).
fn bios_log(m: &Machine) -> String {
    String::from_utf8_lossy(m.bios_log.captured()).into_owned()
}

fn run(m: &mut Machine, max: u64) -> RunOutcome {
    m.run(RunLimits {
        max_instructions: Some(max),
    })
}

/// A boot program at 0000:7C00: `body` runs with DS = ES = 0, SS:SP =
/// 0000:7C00, DL = boot drive. `print` (DS:SI, NUL-terminated) goes to
/// the screen via INT 10h AH=0Eh and to port 0xE9. Strings are appended
/// after the code; `body` gets their addresses.
struct Boot {
    a: CodeAssembler,
    print: CodeLabel,
    strings: Vec<(String, u16)>,
}

/// Where strings go in the loaded image (offset from 7C00).
const STRINGS_AT: u16 = 0x7C00 + 0x180;

impl Boot {
    fn new() -> R<Boot> {
        let mut a = CodeAssembler::new(16)?;
        let print = a.create_label();
        Ok(Boot {
            a,
            print,
            strings: Vec::new(),
        })
    }

    fn string(&mut self, s: &str) -> u16 {
        let at = STRINGS_AT
            + self
                .strings
                .iter()
                .map(|(s, _)| s.len() as u16 + 1)
                .sum::<u16>();
        self.strings.push((s.to_string(), at));
        at
    }

    fn say(&mut self, s: &str) -> R<()> {
        let at = self.string(s);
        self.a.mov(si, at as u32)?;
        self.a.call(self.print)?;
        Ok(())
    }

    fn exit(&mut self, v: u32) -> R<()> {
        let a = &mut self.a;
        a.mov(al, v)?;
        a.out(0xF4, al)?;
        let mut stop = a.create_label();
        a.set_label(&mut stop)?;
        a.hlt()?;
        a.jmp(stop)?;
        Ok(())
    }

    /// The first sectors of a disk: code, strings, 0x55AA.
    fn finish(mut self, sectors: usize) -> R<Vec<u8>> {
        let a = &mut self.a;
        let mut lp = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut self.print)?;
        a.push(ax)?;
        a.push(bx)?;
        a.set_label(&mut lp)?;
        a.lodsb()?;
        a.test(al, al)?;
        a.jz(done)?;
        a.out(0xE9, al)?;
        a.mov(ah, 0x0E)?;
        a.mov(bx, 0x0007u32)?;
        a.int(0x10)?;
        a.jmp(lp)?;
        a.set_label(&mut done)?;
        a.pop(bx)?;
        a.pop(ax)?;
        a.ret()?;
        let code = a.assemble(0x7C00)?;
        assert!(code.len() <= 0x180, "boot code too long: {}", code.len());
        let mut img = vec![0u8; sectors * 512];
        img[..code.len()].copy_from_slice(&code);
        for (s, at) in &self.strings {
            let o = (*at - 0x7C00) as usize;
            img[o..o + s.len()].copy_from_slice(s.as_bytes());
        }
        assert!(
            STRINGS_AT as usize - 0x7C00
                + self.strings.iter().map(|(s, _)| s.len() + 1).sum::<usize>()
                <= 510
        );
        img[510] = 0x55;
        img[511] = 0xAA;
        Ok(img)
    }
}

fn attach(m: &mut Machine, img: &TempImage) {
    let disk = Disk::open(&img.0, DiskMode::Snapshot).expect("open image");
    m.pc.ide.attach(0, 0, DeviceKind::Disk, disk);
}

#[test]
fn post_without_disks_ends_in_int18_with_a_message() {
    let mut m = machine(16);
    let out = run(&mut m, 20_000_000);
    assert!(
        matches!(out, RunOutcome::HaltedForever { .. }),
        "{out:?}\n{}",
        console(&m)
    );
    let log = bios_log(&m);
    assert!(log.contains("No bootable device"), "{log}");
    assert!(log.contains("16 MiB RAM"), "{log}");
    // Port 0xE9 is the guest's: our BIOS writes nothing there.
    assert_eq!(console(&m), "");
    assert_eq!(m.last_post_code(), Some(0x0C));
    let screen = bios::text_screen(&mut m.pc.vga);
    assert!(screen.starts_with("Ringside BIOS 0.1"), "{screen}");
    assert!(screen.contains("No bootable device"), "{screen}");
    let b = m.bios.as_ref().unwrap();
    assert!(b.serviced > 0);
    assert_eq!(b.refused, 0);
}

#[test]
fn mbr_prints_through_int10_and_the_debug_port() -> R<()> {
    let mut b = Boot::new()?;
    b.say("Hello from our MBR\r\n")?;
    // DL must be 80h.
    b.a.cmp(dl, 0x80)?;
    let mut ok = b.a.create_label();
    b.a.je(ok)?;
    b.exit(1)?;
    b.a.set_label(&mut ok)?;
    b.exit(0x21)?;
    let img = TempImage::new(&b.finish(64)?);
    let mut m = machine(16);
    attach(&mut m, &img);
    let out = run(&mut m, 50_000_000);
    let con = console(&m);
    let log = bios_log(&m);
    assert_eq!(out, RunOutcome::Exit(0x21), "{con}");
    assert!(log.contains("Booting from hard disk (drive 80h)"), "{log}");
    assert_eq!(con, "Hello from our MBR\r\n");
    let screen = bios::text_screen(&mut m.pc.vga);
    assert!(screen.contains("\nHello from our MBR\n"), "{screen}");
    Ok(())
}

#[test]
fn disk_without_signature_is_refused() {
    let img = TempImage::new(&vec![0u8; 64 * 512]);
    let mut m = machine(16);
    attach(&mut m, &img);
    let out = run(&mut m, 50_000_000);
    let log = bios_log(&m);
    assert!(matches!(out, RunOutcome::HaltedForever { .. }), "{out:?}");
    assert!(log.contains("no boot signature"), "{log}");
    assert!(log.contains("No bootable device"), "{log}");
}

/// Sector `lba` of the test disks: a pattern that names its sector.
fn sector(lba: usize) -> Vec<u8> {
    (0..512).map(|i| (lba * 7 + i * 13) as u8).collect()
}

fn pattern_disk(sectors: usize, mbr: &[u8]) -> Vec<u8> {
    let mut img: Vec<u8> = (0..sectors).flat_map(sector).collect();
    img[..1024.min(mbr.len())].copy_from_slice(&mbr[..1024.min(mbr.len())]);
    img
}

/// Store the caller's FLAGS at `at` (after an INT).
fn store_flags(a: &mut CodeAssembler, at: u32) -> R<()> {
    a.pushf()?;
    a.pop(word_ptr(at))?;
    Ok(())
}

fn peek16(m: &Machine, at: u32) -> u16 {
    m.cpu.mem.peek(at) as u16 | (m.cpu.mem.peek(at + 1) as u16) << 8
}

fn peek32(m: &Machine, at: u32) -> u32 {
    peek16(m, at) as u32 | (peek16(m, at + 2) as u32) << 16
}

fn peek_bytes(m: &Machine, at: u32, n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| m.cpu.mem.peek(at + i)).collect()
}

#[test]
fn int13_chs_and_edd_reads_writes_and_parameters() -> R<()> {
    const SECTORS: usize = 8192; // 4 MiB: BIOS geometry 8/16/63
    let mut b = Boot::new()?;
    let a = &mut b.a;
    // AH=08h: parameters.
    a.mov(ah, 0x08)?;
    a.mov(dl, 0x80)?;
    a.int(0x13)?;
    store_flags(a, 0x600)?;
    a.mov(word_ptr(0x602), cx)?;
    a.mov(word_ptr(0x604), dx)?;
    // AH=02h: 2 sectors from C/H/S 1/2/5 to 0000:8000.
    a.mov(ax, 0x0202u32)?;
    a.mov(cx, 0x0105u32)?;
    a.mov(dx, 0x0280u32)?;
    a.mov(bx, 0x8000u32)?;
    a.int(0x13)?;
    store_flags(a, 0x606)?;
    a.mov(word_ptr(0x608), ax)?;
    // AH=41h: EDD installation check.
    a.mov(ah, 0x41)?;
    a.mov(bx, 0x55AAu32)?;
    a.mov(dl, 0x80)?;
    a.int(0x13)?;
    store_flags(a, 0x60A)?;
    a.mov(word_ptr(0x60C), bx)?;
    a.mov(word_ptr(0x60E), cx)?;
    a.mov(byte_ptr(0x610), ah)?;
    // AH=42h: 3 sectors from LBA 5000 to 0000:9000 (DAP at 0700).
    a.mov(word_ptr(0x700), 0x0010)?;
    a.mov(word_ptr(0x702), 3)?;
    a.mov(word_ptr(0x704), 0x9000)?;
    a.mov(word_ptr(0x706), 0)?;
    a.mov(dword_ptr(0x708), 5000)?;
    a.mov(dword_ptr(0x70C), 0)?;
    a.mov(si, 0x700u32)?;
    a.mov(ah, 0x42)?;
    a.mov(dl, 0x80)?;
    a.int(0x13)?;
    store_flags(a, 0x612)?;
    a.mov(word_ptr(0x614), ax)?;
    // AH=43h: write the 2 sectors at 8000 to LBA 7000, then read them
    // back with AH=42h to 0000:B000.
    a.mov(word_ptr(0x702), 2)?;
    a.mov(word_ptr(0x704), 0x8000)?;
    a.mov(dword_ptr(0x708), 7000)?;
    a.mov(ax, 0x4300u32)?;
    a.int(0x13)?;
    store_flags(a, 0x616)?;
    a.mov(word_ptr(0x704), 0xB000)?;
    a.mov(ah, 0x42)?;
    a.int(0x13)?;
    store_flags(a, 0x618)?;
    // AH=48h: drive parameters into 0780.
    a.mov(word_ptr(0x780), 0x1E)?;
    a.mov(si, 0x780u32)?;
    a.mov(ah, 0x48)?;
    a.int(0x13)?;
    store_flags(a, 0x61A)?;
    // A read past the end fails with CF=1, AH=04h.
    a.mov(dword_ptr(0x708), SECTORS as u32)?;
    a.mov(word_ptr(0x702), 1)?;
    a.mov(si, 0x700u32)?;
    a.mov(ah, 0x42)?;
    a.int(0x13)?;
    store_flags(a, 0x61C)?;
    a.mov(word_ptr(0x61E), ax)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(SECTORS, &b.finish(1)?));
    let mut m = machine(16);
    attach(&mut m, &img);
    let out = run(&mut m, 50_000_000);
    assert_eq!(out, RunOutcome::Exit(0), "{}", console(&m));
    const CF: u16 = 1;
    // Geometry: 8 cylinders (max index 7), 16 heads (max 15), 63 sectors.
    assert_eq!(peek16(&m, 0x600) & CF, 0);
    assert_eq!(peek16(&m, 0x602), 0x0700 | 63);
    assert_eq!(peek16(&m, 0x604), 0x0F01, "DH = max head, DL = one disk");
    // CHS read: LBA (1*16+2)*63+4 = 1138.
    assert_eq!(peek16(&m, 0x606) & CF, 0);
    assert_eq!(peek16(&m, 0x608), 0x0002, "AH=0, AL=2 sectors");
    assert_eq!(peek_bytes(&m, 0x8000, 512), sector(1138));
    assert_eq!(peek_bytes(&m, 0x8200, 512), sector(1139));
    // EDD check.
    assert_eq!(peek16(&m, 0x60A) & CF, 0);
    assert_eq!(peek16(&m, 0x60C), 0xAA55);
    assert_eq!(peek16(&m, 0x60E) & 1, 1, "extended disk access supported");
    assert_eq!(m.cpu.mem.peek(0x610), 0x30, "EDD 3.0");
    // EDD read.
    assert_eq!(peek16(&m, 0x612) & CF, 0);
    for i in 0..3 {
        assert_eq!(
            peek_bytes(&m, 0x9000 + 512 * i, 512),
            sector(5000 + i as usize)
        );
    }
    // Write and read back.
    assert_eq!(peek16(&m, 0x616) & CF, 0);
    assert_eq!(peek16(&m, 0x618) & CF, 0);
    assert_eq!(peek_bytes(&m, 0xB000, 1024), peek_bytes(&m, 0x8000, 1024));
    // Parameters.
    assert_eq!(peek16(&m, 0x61A) & CF, 0);
    assert_eq!(peek32(&m, 0x780 + 16), SECTORS as u32);
    assert_eq!(peek16(&m, 0x780 + 24), 512);
    assert_eq!(peek32(&m, 0x780 + 8), 16, "heads");
    // Past the end.
    assert_eq!(peek16(&m, 0x61C) & CF, 1);
    assert_eq!(peek16(&m, 0x61E) >> 8, 0x04);
    Ok(())
}

#[test]
fn e820_e801_and_88_describe_the_configured_ram() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    // Collect E820 entries at 1000h, 20 bytes each; count at 600h.
    let mut next = a.create_label();
    let mut done = a.create_label();
    a.xor(ebx, ebx)?;
    a.mov(di, 0x1000u32)?;
    a.mov(word_ptr(0x600), 0)?;
    a.set_label(&mut next)?;
    a.mov(eax, 0xE820u32)?;
    a.mov(edx, 0x534D_4150u32)?;
    a.mov(ecx, 24u32)?;
    a.int(0x15)?;
    a.jc(done)?;
    a.cmp(eax, 0x534D_4150u32)?;
    a.jne(done)?;
    a.inc(word_ptr(0x600))?;
    a.add(di, 20)?;
    a.test(ebx, ebx)?;
    a.jnz(next)?;
    a.set_label(&mut done)?;
    a.mov(ax, 0xE801u32)?;
    a.int(0x15)?;
    a.mov(word_ptr(0x602), ax)?;
    a.mov(word_ptr(0x604), bx)?;
    a.mov(ah, 0x88)?;
    a.int(0x15)?;
    a.mov(word_ptr(0x606), ax)?;
    a.int(0x12)?;
    a.mov(word_ptr(0x608), ax)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(64);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 50_000_000), RunOutcome::Exit(0));
    let n = peek16(&m, 0x600) as u32;
    let entries: Vec<(u64, u64, u32)> = (0..n)
        .map(|i| {
            let e = 0x1000 + 20 * i;
            (
                peek32(&m, e) as u64 | (peek32(&m, e + 4) as u64) << 32,
                peek32(&m, e + 8) as u64 | (peek32(&m, e + 12) as u64) << 32,
                peek32(&m, e + 16),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (0, 0x9FC00, 1),
            (0x9FC00, 0x400, 2),
            (0xF0000, 0x10000, 2),
            (0x100000, (63 << 20) - 0x10000, 1),
            (0x3FF0000, 0x10000, 3),
            (0xFFFF0000, 0x10000, 2),
        ]
    );
    assert_eq!(peek16(&m, 0x602), 15 * 1024, "E801: KiB 1-16 MiB");
    assert_eq!(
        peek16(&m, 0x604),
        ((48u32 << 20) / 65536) as u16,
        "E801: 64 KiB blocks above 16 MiB"
    );
    assert_eq!(peek16(&m, 0x606), 63 * 1024, "AH=88h");
    assert_eq!(peek16(&m, 0x608), 639, "INT 12h");
    Ok(())
}

#[test]
fn int1a_ticks_advance_with_the_pit_and_int15_86_waits() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    a.xor(ah, ah)?;
    a.int(0x1A)?;
    a.mov(word_ptr(0x600), dx)?;
    a.mov(word_ptr(0x602), cx)?;
    // Wait 500 ms (0007A120h µs).
    a.mov(ah, 0x86)?;
    a.mov(cx, 0x0007u32)?;
    a.mov(dx, 0xA120u32)?;
    a.int(0x15)?;
    store_flags(a, 0x604)?;
    a.xor(ah, ah)?;
    a.int(0x1A)?;
    a.mov(word_ptr(0x606), dx)?;
    a.mov(word_ptr(0x608), cx)?;
    // RTC time.
    a.mov(ah, 0x02)?;
    a.int(0x1A)?;
    store_flags(a, 0x60A)?;
    a.mov(word_ptr(0x60C), cx)?;
    a.mov(ah, 0x04)?;
    a.int(0x1A)?;
    a.mov(word_ptr(0x60E), cx)?;
    a.mov(word_ptr(0x610), dx)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(16);
    attach(&mut m, &img);
    assert_eq!(
        run(&mut m, 50_000_000),
        RunOutcome::Exit(0),
        "{}",
        console(&m)
    );
    let before = peek32(&m, 0x600);
    let after = peek32(&m, 0x606);
    assert_eq!(peek16(&m, 0x604) & 1, 0, "INT 15h AH=86h succeeded");
    // 500 ms at 18.2 Hz is 9.1 ticks; the wait ends on the first tick
    // after its deadline.
    assert!(
        (9..=11).contains(&(after - before)),
        "ticks {before} -> {after}"
    );
    // The RTC starts at 2000-01-01 00:00:00 (BCD).
    assert_eq!(peek16(&m, 0x60A) & 1, 0);
    assert_eq!(peek16(&m, 0x60C), 0x0000, "hours 00, minutes 00");
    assert_eq!(peek16(&m, 0x60E), 0x2000, "century 20, year 00");
    assert_eq!(peek16(&m, 0x610), 0x0101, "January 1st");
    Ok(())
}

#[test]
fn int16_reads_typed_keys_including_extended_ones() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    a.mov(byte_ptr(0x5FF), 0)?;
    a.mov(di, 0x600u32)?;
    a.mov(cx, 4u32)?;
    let mut lp = a.create_label();
    a.set_label(&mut lp)?;
    a.mov(byte_ptr(0x5FF), 1)?; // waiting
    a.mov(ah, 0x10)?;
    a.int(0x16)?;
    a.stosw()?;
    a.loop_(lp)?;
    // Nothing left: AH=01h reports ZF=1.
    a.mov(ah, 0x01)?;
    a.int(0x16)?;
    store_flags(a, 0x610)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(16);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 5_000_000), RunOutcome::MaxInstructions);
    assert_eq!(m.cpu.mem.peek(0x5FF), 1, "the boot program waits for a key");
    m.pc.type_text("hI");
    m.pc.key_event(0xE048, true); // cursor up
    m.pc.key_event(0xE048, false);
    m.pc.key_event(0x1C, true); // Enter
    m.pc.key_event(0x1C, false);
    assert_eq!(
        run(&mut m, 100_000_000),
        RunOutcome::Exit(0),
        "{}",
        console(&m)
    );
    assert_eq!(peek16(&m, 0x600), 0x2368, "h");
    assert_eq!(peek16(&m, 0x602), 0x1749, "Shift+I");
    assert_eq!(peek16(&m, 0x604), 0x48E0, "cursor up (extended)");
    assert_eq!(peek16(&m, 0x606), 0x1C0D, "Enter");
    assert_eq!(peek16(&m, 0x610) & 0x40, 0x40, "ZF: buffer empty");
    Ok(())
}

/// A minimal El Torito no-emulation ISO: PVD at 16, boot record at 17,
/// terminator at 18, catalog at 19, the boot image (one 2048-byte block,
/// 4 virtual sectors) at 20, a data block at 21.
fn iso(boot_image: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; 24 * 2048];
    let blk = |n: usize| n * 2048;
    img[blk(16)] = 1;
    img[blk(16) + 1..blk(16) + 6].copy_from_slice(b"CD001");
    img[blk(16) + 6] = 1;
    img[blk(17) + 1..blk(17) + 6].copy_from_slice(b"CD001");
    img[blk(17) + 6] = 1;
    img[blk(17) + 7..blk(17) + 30].copy_from_slice(b"EL TORITO SPECIFICATION");
    img[blk(17) + 0x47..blk(17) + 0x4B].copy_from_slice(&19u32.to_le_bytes());
    img[blk(18)] = 255;
    img[blk(18) + 1..blk(18) + 6].copy_from_slice(b"CD001");
    img[blk(18) + 6] = 1;
    let cat = blk(19);
    img[cat] = 1; // validation entry, platform x86
    img[cat + 30] = 0x55;
    img[cat + 31] = 0xAA;
    let sum = img[cat..cat + 32].chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    img[cat + 28..cat + 30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    img[cat + 32] = 0x88; // bootable, no emulation
    img[cat + 32 + 6..cat + 32 + 8].copy_from_slice(&4u16.to_le_bytes());
    img[cat + 32 + 8..cat + 32 + 12].copy_from_slice(&20u32.to_le_bytes());
    img[blk(20)..blk(20) + boot_image.len()].copy_from_slice(boot_image);
    for (i, b) in img[blk(21)..blk(22)].iter_mut().enumerate() {
        *b = (i * 3 + 1) as u8;
    }
    img
}

#[test]
fn cdrom_boots_through_el_torito_and_reads_with_edd() -> R<()> {
    let mut b = Boot::new()?;
    b.say("Hello from the CD\r\n")?;
    let a = &mut b.a;
    a.mov(byte_ptr(0x600), dl)?;
    // Read block 21 to 0000:9000 through the boot drive.
    a.mov(word_ptr(0x700), 0x0010)?;
    a.mov(word_ptr(0x702), 1)?;
    a.mov(word_ptr(0x704), 0x9000)?;
    a.mov(word_ptr(0x706), 0)?;
    a.mov(dword_ptr(0x708), 21)?;
    a.mov(dword_ptr(0x70C), 0)?;
    a.mov(si, 0x700u32)?;
    a.mov(ah, 0x42)?;
    a.int(0x13)?;
    store_flags(a, 0x602)?;
    b.exit(0)?;
    let boot = b.finish(4)?;
    let cd = TempImage::new(&iso(&boot[..2048]));
    let mut m = Machine::with_our_bios(MachineConfig {
        memory_mib: 16,
        console: Console::Capture(Vec::new()),
        bios_log: BiosLog::Capture(Vec::new()),
        boot_order: vec![ringside_machine::BootDevice::Cdrom],
        ..MachineConfig::default()
    })?;
    m.pc.ide
        .attach(1, 0, DeviceKind::CdRom, Disk::open(&cd.0, DiskMode::CdRom)?);
    let out = run(&mut m, 50_000_000);
    let con = console(&m);
    let log = bios_log(&m);
    assert_eq!(out, RunOutcome::Exit(0), "{con}");
    assert!(log.contains("CD-ROM \"RINGSIDE CD-ROM\""), "{log}");
    assert!(log.contains("Booting from CD-ROM (drive E0h)"), "{log}");
    assert_eq!(con, "Hello from the CD\r\n");
    assert_eq!(m.cpu.mem.peek(0x600), 0xE0, "DL = the CD's drive number");
    assert_eq!(peek16(&m, 0x602) & 1, 0);
    let want: Vec<u8> = (0..2048).map(|i| (i * 3 + 1) as u8).collect();
    assert_eq!(peek_bytes(&m, 0x9000, 2048), want);
    Ok(())
}

#[test]
fn guest_writes_to_the_service_port_are_refused() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    // A boot program that tries to call the disk service itself.
    a.mov(al, 0x13)?;
    a.out(0xE0, al)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(16);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 50_000_000), RunOutcome::Exit(0));
    let bios = m.bios.as_ref().unwrap();
    assert_eq!(bios.refused, 1);
    let last = bios.last.unwrap();
    assert_eq!(last.outcome, bios::HypercallOutcome::Refused);
    assert_eq!((last.cs, last.service), (0, 0x13));
    Ok(())
}

#[test]
fn services_survive_garbage_in_the_bda_and_their_arguments() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    // Cursor far off the screen, keyboard buffer pointers crossed.
    a.mov(word_ptr(0x450), 0xFFFF)?;
    a.mov(word_ptr(0x480), 0x3E)?;
    a.mov(word_ptr(0x482), 0x1E)?;
    a.mov(word_ptr(0x41A), 0xFF)?;
    a.mov(ax, 0x0E41u32)?;
    a.int(0x10)?;
    a.mov(ah, 0x01)?;
    a.int(0x16)?;
    a.mov(ah, 0x05)?;
    a.mov(cx, 0x1234u32)?;
    a.int(0x16)?;
    // Scroll with corners swapped and beyond the screen.
    a.mov(ax, 0x06FFu32)?;
    a.mov(cx, 0xFFFFu32)?;
    a.mov(dx, 0x0000u32)?;
    a.int(0x10)?;
    // EDD read of 65535 sectors at a huge LBA into the ROM area.
    a.mov(word_ptr(0x700), 0x0018)?;
    a.mov(word_ptr(0x702), 0xFFFF)?;
    a.mov(word_ptr(0x704), 0xFFFF)?;
    a.mov(word_ptr(0x706), 0xFFFF)?;
    a.mov(dword_ptr(0x708), 0xFFFF_FFFFu32)?;
    a.mov(dword_ptr(0x70C), 0xFFFF_FFFFu32)?;
    a.mov(dword_ptr(0x710), 0xFFFF_0000u32)?;
    a.mov(si, 0x700u32)?;
    a.mov(ax, 0x4200u32)?;
    a.mov(dl, 0x80)?;
    a.int(0x13)?;
    // CHS with sector 0 and every head; user font with count past 256.
    a.mov(ax, 0x02FFu32)?;
    a.mov(cx, 0xFFC0u32)?;
    a.mov(dx, 0xFF80u32)?;
    a.int(0x13)?;
    a.mov(ax, 0x1110u32)?;
    a.mov(bx, 0xFF00u32)?;
    a.mov(cx, 0xFFFFu32)?;
    a.mov(dx, 0x00FFu32)?;
    a.int(0x10)?;
    // Unknown functions everywhere.
    for int in [0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x1A] {
        a.mov(ax, 0xFFFFu32)?;
        a.mov(dx, 0xFFFFu32)?;
        a.int(int)?;
    }
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(16);
    attach(&mut m, &img);
    assert_eq!(
        run(&mut m, 50_000_000),
        RunOutcome::Exit(0),
        "{}",
        console(&m)
    );
    Ok(())
}

fn sum(m: &Machine, at: u32, len: u32) -> u8 {
    peek_bytes(m, at, len as usize)
        .iter()
        .fold(0u8, |s, &b| s.wrapping_add(b))
}

/// The POST's ACPI tables as an OS finds them: the RSDP on a 16-byte
/// boundary in the EBDA's first KiB, the RSDT, the FADT with the PM
/// registers, the DSDT holding `\_S5`; then a boot sector that does what
/// an OS's power-off does with them (SLP_TYP from `\_S5`, SLP_EN) ends the
/// run as a power-off.
#[test]
fn acpi_tables_lead_to_the_pm_registers_and_s5_powers_off() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    // Read the PM timer twice with a delay between: it must advance.
    a.mov(dx, 0xB008u32)?;
    a.in_(eax, dx)?;
    a.mov(dword_ptr(0x600), eax)?;
    a.mov(cx, 1000u32)?;
    let mut spin = a.create_label();
    a.set_label(&mut spin)?;
    a.loop_(spin)?;
    a.in_(eax, dx)?;
    a.mov(dword_ptr(0x604), eax)?;
    // SLP_TYP=5 alone does nothing; with SLP_EN the machine turns off.
    a.mov(dx, 0xB004u32)?;
    a.mov(ax, 5u32 << 10)?;
    a.out(dx, ax)?;
    a.mov(byte_ptr(0x608), 1)?;
    a.mov(ax, (5u32 << 10) | (1 << 13))?;
    a.out(dx, ax)?;
    a.mov(byte_ptr(0x609), 1)?;
    b.exit(0x42)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(64);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 50_000_000), RunOutcome::PowerOff);
    assert_eq!(RunOutcome::PowerOff.exit_status(), 0);
    assert_eq!(peek_bytes(&m, 0x608, 2), [1, 0], "nothing ran after SLP_EN");
    assert!(peek32(&m, 0x604) > peek32(&m, 0x600), "PM timer advances");

    let ebda = (peek16(&m, 0x40E) as u32) << 4;
    let rsdp = (ebda..ebda + 1024)
        .step_by(16)
        .find(|&a| peek_bytes(&m, a, 8) == b"RSD PTR ")
        .expect("RSDP in the EBDA's first KiB");
    assert_eq!(sum(&m, rsdp, 20), 0, "RSDP checksum");
    let rsdt = peek32(&m, rsdp + 16);
    assert_eq!(peek_bytes(&m, rsdt, 4), b"RSDT");
    assert_eq!(sum(&m, rsdt, peek32(&m, rsdt + 4)), 0);
    assert_eq!(peek32(&m, rsdt + 4), 40, "one entry");
    let fadt = peek32(&m, rsdt + 36);
    assert_eq!(peek_bytes(&m, fadt, 4), b"FACP");
    assert_eq!(sum(&m, fadt, peek32(&m, fadt + 4)), 0);
    assert_eq!(peek32(&m, fadt + 56), 0xB000, "PM1a_EVT_BLK");
    assert_eq!(peek32(&m, fadt + 64), 0xB004, "PM1a_CNT_BLK");
    assert_eq!(peek32(&m, fadt + 76), 0xB008, "PM_TMR_BLK");
    let facs = peek32(&m, fadt + 36);
    assert_eq!(facs % 64, 0);
    assert_eq!(peek_bytes(&m, facs, 4), b"FACS");
    let dsdt = peek32(&m, fadt + 40);
    assert_eq!(peek_bytes(&m, dsdt, 4), b"DSDT");
    let len = peek32(&m, dsdt + 4);
    assert_eq!(sum(&m, dsdt, len), 0);
    let aml = peek_bytes(&m, dsdt + 36, len as usize - 36);
    assert_eq!(
        aml,
        [0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0, 0]
    );
    // All of it inside the E820 ACPI range (the last 64 KiB of RAM).
    for t in [rsdt, fadt, facs, dsdt] {
        assert!((0x3FF0000..0x4000000).contains(&t), "{t:#x}");
    }
    Ok(())
}

/// VBE through our BIOS: 4F00h/4F01h describe the adapter and a mode,
/// 4F02h sets 640x480x16 with the linear frame buffer, and the guest
/// draws through the frame buffer (big real mode, at the PhysBasePtr the
/// mode information gave) and through bank 1 of the 0xA0000 window; the
/// rendered frame shows both, and the two views of video memory agree.
#[test]
fn vbe_controller_and_mode_information_lfb_and_bank_window() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    a.mov(dword_ptr(0x1000), u32::from_le_bytes(*b"VBE2"))?;
    a.mov(ax, 0x4F00u32)?;
    a.mov(di, 0x1000u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x600), ax)?;
    a.mov(ax, 0x4F01u32)?;
    a.mov(cx, 0x111u32)?;
    a.mov(di, 0x1400u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x602), ax)?;
    a.mov(ax, 0x4F01u32)?;
    a.mov(cx, 0x1FFu32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x610), ax)?;
    a.mov(ax, 0x4F02u32)?;
    a.mov(bx, 0x4111u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x604), ax)?;
    // Big real mode: FS with a 4 GiB limit from a flat data descriptor.
    a.mov(dword_ptr(0x808), 0x0000_FFFFu32)?;
    a.mov(dword_ptr(0x80C), 0x00CF_9200u32)?;
    a.mov(word_ptr(0x810), 0x0Fu32)?;
    a.mov(dword_ptr(0x812), 0x800u32)?;
    a.cli()?;
    a.lgdt(ptr(0x810))?;
    a.mov(eax, cr0)?;
    a.or(al, 1)?;
    a.mov(cr0, eax)?;
    a.mov(bx, 8u32)?;
    a.mov(fs, bx)?;
    a.and(al, 0xFEu32 as i32)?;
    a.mov(cr0, eax)?;
    a.sti()?;
    // (10, 5) red and (11, 5) blue through the frame buffer.
    a.mov(edi, dword_ptr(0x1400 + 40))?;
    a.mov(dword_ptr(edi + 5 * 1280 + 20).fs(), 0x001F_F800u32)?;
    // (0, 100) green through bank 1: byte 128000 = 0x1F400.
    a.mov(ax, 0x4F05u32)?;
    a.xor(bx, bx)?;
    a.mov(dx, 1u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x606), ax)?;
    a.push(0xA000u32)?;
    a.pop(es)?;
    a.mov(word_ptr(0xF400).es(), 0x07E0u32)?;
    a.mov(eax, dword_ptr(edi + 128000).fs())?;
    a.mov(dword_ptr(0x608), eax)?;
    a.mov(ax, 0x4F03u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x60C), bx)?;
    // Before the exit, back to a VGA mode (12h, which clears its planes).
    a.push(0u32)?;
    a.pop(es)?;
    a.mov(eax, dword_ptr(edi + 5 * 1280 + 20).fs())?;
    a.mov(dword_ptr(0x614), eax)?;
    a.mov(ax, 0x0012u32)?;
    a.int(0x10)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(32);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 50_000_000), RunOutcome::Exit(0));

    assert_eq!(peek16(&m, 0x600), 0x004F, "4F00h");
    assert_eq!(peek_bytes(&m, 0x1000, 4), b"VESA");
    assert_eq!(peek16(&m, 0x1004), 0x0300, "VBE 3.0");
    assert_eq!(peek16(&m, 0x1012), 256, "16 MiB in 64 KiB units");
    let lin = |far: u32| (far >> 16) * 16 + (far & 0xFFFF);
    let oem = peek_bytes(&m, lin(peek32(&m, 0x1006)), 8);
    assert_eq!(oem, b"Ringside");
    let list = lin(peek32(&m, 0x100E));
    let modes: Vec<u16> = (0..64)
        .map(|i| peek16(&m, list + 2 * i))
        .take_while(|&x| x != 0xFFFF)
        .collect();
    assert!(
        modes.contains(&0x111) && modes.contains(&0x144),
        "{modes:x?}"
    );
    assert!(modes.len() < 64, "the list ends in FFFFh");

    assert_eq!(peek16(&m, 0x602), 0x004F, "4F01h");
    assert_eq!(peek16(&m, 0x610), 0x014F, "4F01h of an unknown mode");
    let mi = 0x1400;
    assert_eq!(
        peek16(&m, mi) & 0x99,
        0x99,
        "supported, colour graphics, LFB"
    );
    assert_eq!(peek16(&m, mi + 8), 0xA000, "window A segment");
    assert_eq!(peek16(&m, mi + 16), 1280, "bytes per line");
    assert_eq!((peek16(&m, mi + 18), peek16(&m, mi + 20)), (640, 480));
    assert_eq!(
        peek_bytes(&m, mi + 25, 3),
        [16, 1, 6],
        "bpp, banks, direct colour"
    );
    assert_eq!(
        peek_bytes(&m, mi + 31, 6),
        [5, 11, 6, 5, 5, 0],
        "5-6-5 masks"
    );
    assert_eq!(peek32(&m, mi + 40), 0xE000_0000, "PhysBasePtr = BAR0");

    assert_eq!(peek16(&m, 0x604), 0x004F, "4F02h");
    assert_eq!(peek16(&m, 0x606), 0x004F, "4F05h");
    assert_eq!(
        peek32(&m, 0x608) & 0xFFFF,
        0x07E0,
        "bank write seen at the LFB"
    );
    assert_eq!(
        peek16(&m, 0x60C),
        0x4111,
        "4F03h: the mode with its LFB bit"
    );
    assert_eq!(peek32(&m, 0x614), 0x001F_F800, "the LFB reads back");
    // The frame buffer as the VBE mode left it (the guest switched to mode
    // 12h at the end: the pixels are in video memory, shown as that mode
    // was).
    let vram = m.cpu.mem.video_memory();
    let px = |x: usize, y: usize| {
        u16::from_le_bytes([vram[y * 1280 + 2 * x], vram[y * 1280 + 2 * x + 1]])
    };
    assert_eq!(
        (px(10, 5), px(11, 5), px(0, 100), px(1, 100)),
        (0xF800, 0x001F, 0x07E0, 0)
    );
    // Mode 12h cleared its planes, not the VBE bank still mapped when the
    // service began; the frame is the VGA's again.
    assert_eq!(
        m.pc.vga.plane_byte(0, 0),
        0,
        "plane 0 cleared (it held text)"
    );
    assert!(!m.pc.vga.dispi().enabled());
    assert_eq!(m.cpu.mem.vram_window(), None);
    assert_eq!(m.frame().pixel(10, 5), [0, 0, 0, 255]);
    // The VBE mode's picture: the same shape again, memory kept.
    use ringside_machine::vga::dispi::{enable, reg};
    for (r, v) in [(reg::XRES, 640), (reg::YRES, 480), (reg::BPP, 16)] {
        m.pc.vga.dispi_write(r, v);
    }
    m.pc.vga
        .dispi_write(reg::ENABLE, enable::ENABLED | enable::NOCLEARMEM);
    let f = m.frame();
    assert_eq!((f.width, f.height), (640, 480));
    assert_eq!(f.pixel(10, 5), [255, 0, 0, 255]);
    assert_eq!(f.pixel(11, 5), [0, 0, 255, 255]);
    assert_eq!(f.pixel(0, 100), [0, 255, 0, 255]);
    assert_eq!(f.pixel(1, 100), [0, 0, 0, 255], "cleared by the mode set");
    Ok(())
}

/// VBE 4F04h: the state size for everything, a save in a VBE mode, a
/// switch to text mode 3 through 4F02h, and a restore that brings the VBE
/// mode back (4F03h reports it; the adapter shows it again).
#[test]
fn vbe_state_save_and_restore() -> R<()> {
    let mut b = Boot::new()?;
    let a = &mut b.a;
    a.mov(ax, 0x4F02u32)?;
    a.mov(bx, 0x4101u32)?;
    a.int(0x10)?;
    a.mov(ax, 0x4F04u32)?;
    a.mov(dl, 0u32)?;
    a.mov(cx, 0x0Fu32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x600), ax)?;
    a.mov(word_ptr(0x602), bx)?;
    a.mov(ax, 0x4F04u32)?;
    a.mov(dl, 1u32)?;
    a.mov(bx, 0x2000u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x604), ax)?;
    a.mov(ax, 0x4F02u32)?;
    a.mov(bx, 0x0003u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x606), ax)?;
    a.mov(ax, 0x4F03u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x608), bx)?;
    a.mov(ax, 0x4F04u32)?;
    a.mov(dl, 2u32)?;
    a.mov(bx, 0x2000u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x60A), ax)?;
    a.mov(ax, 0x4F03u32)?;
    a.int(0x10)?;
    a.mov(word_ptr(0x60C), bx)?;
    b.exit(0)?;
    let img = TempImage::new(&pattern_disk(64, &b.finish(1)?));
    let mut m = machine(32);
    attach(&mut m, &img);
    assert_eq!(run(&mut m, 50_000_000), RunOutcome::Exit(0));
    assert_eq!(peek16(&m, 0x600), 0x004F, "4F04h size");
    let blocks = peek16(&m, 0x602) as usize;
    assert!((14..=20).contains(&blocks), "64-byte blocks: {blocks}");
    assert_eq!(peek16(&m, 0x604), 0x004F, "save");
    assert_eq!(peek16(&m, 0x606), 0x004F, "4F02h to VGA mode 3");
    assert_eq!(peek16(&m, 0x608), 0x0003, "text mode");
    assert_eq!(peek16(&m, 0x60A), 0x004F, "restore");
    assert_eq!(peek16(&m, 0x60C), 0x4101, "the VBE mode is back");
    assert_eq!(m.frame().width, 640);
    assert_eq!(m.frame().height, 480);
    Ok(())
}
