//! Our BIOS on a whole machine: POST with the board's devices, boot from
//! disk images built here at test time (boot sectors assembled with
//! iced-x86's `code_asm`), and the services a boot program uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use iced_x86::code_asm::*;
use ringside_machine::disk::{Disk, DiskMode};
use ringside_machine::ide::DeviceKind;
use ringside_machine::{bios, Console, Machine, MachineConfig, RunLimits, RunOutcome};

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
        ..MachineConfig::default()
    })
    .expect("machine")
}

fn console(m: &Machine) -> String {
    String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned()
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
    let con = console(&m);
    assert!(con.contains("No bootable device"), "{con}");
    assert!(con.contains("16 MiB RAM"), "{con}");
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
    assert_eq!(out, RunOutcome::Exit(0x21), "{con}");
    assert!(con.contains("Booting from hard disk (drive 80h)"), "{con}");
    assert!(con.ends_with("Hello from our MBR\r\n"), "{con}");
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
    let con = console(&m);
    assert!(matches!(out, RunOutcome::HaltedForever { .. }), "{out:?}");
    assert!(con.contains("no boot signature"), "{con}");
    assert!(con.contains("No bootable device"), "{con}");
}
