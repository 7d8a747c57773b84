//! `ringside run --floppy` (`--fda`): a 1.44 MB diskette built here whose
//! boot sector reads 19 more sectors through INT 13h (across both heads of
//! cylinder 0), prints what it read on port 0xE9, asks for the drive
//! parameters (AH=08h, 15h), writes a sector back (AH=03h) and exits through
//! port 0xF4. It boots on our BIOS (services in Rust driving the floppy
//! controller through its ports and ISA DMA) and on SeaBIOS, whose own
//! floppy driver programs the controller and the 8237 itself. Optionally a
//! GRUB diskette (boot.img + core.img) when GRUB's tools are installed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEABIOS: &str = "/usr/share/seabios/bios.bin";
const SIZE: usize = 1_474_560;

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-floppy-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny 16-bit assembler: bytes, labels, rel8 jumps and rel16 calls.
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
    labels: HashMap<&'static str, usize>,
    rel8: Vec<(usize, &'static str)>,
    rel16: Vec<(usize, &'static str)>,
}

impl Asm {
    fn b(&mut self, bytes: &[u8]) -> &mut Self {
        self.code.extend_from_slice(bytes);
        self
    }
    fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.insert(name, self.code.len());
        self
    }
    /// A short conditional or unconditional jump (`op` is its opcode).
    fn j(&mut self, op: u8, to: &'static str) -> &mut Self {
        self.code.push(op);
        self.rel8.push((self.code.len(), to));
        self.code.push(0);
        self
    }
    fn call(&mut self, to: &'static str) -> &mut Self {
        self.code.push(0xE8);
        self.rel16.push((self.code.len(), to));
        self.code.extend_from_slice(&[0, 0]);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        for (at, to) in &self.rel8 {
            let d = self.labels[to] as isize - (*at as isize + 1);
            self.code[*at] = i8::try_from(d).expect("short jump") as u8;
        }
        for (at, to) in &self.rel16 {
            let d = (self.labels[to] as isize - (*at as isize + 2)) as i16;
            self.code[*at..*at + 2].copy_from_slice(&d.to_le_bytes());
        }
        self.code
    }
}

const JC: u8 = 0x72;
const JNE: u8 = 0x75;
const JZ: u8 = 0x74;
const JMP: u8 = 0xEB;

/// Where the boot sector writes itself back: cylinder 2, head 1, sector 5.
const WRITE_LBA: usize = (2 * 2 + 1) * 18 + 4;

/// The diskette: the boot sector, then sectors that say who they are; the
/// 20th sector (cylinder 0, head 1, sector 2) holds the message the boot
/// sector prints once its read succeeded.
fn diskette() -> Vec<u8> {
    let mut a = Asm::default();
    a.b(&[0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0]) // cli; ds=es=ss=0
        .b(&[0xBC, 0x00, 0x7C, 0xFB]) // mov sp,7C00h; sti
        .b(&[0x80, 0xFA, 0x00]) // cmp dl,0
        .j(JNE, "fail")
        .b(&[0xBE, 0x00, 0x7D]) // mov si,7D00h
        .call("print")
        // INT 13h AH=02h: 19 sectors from C0 H0 S2 to 0000:8000.
        .b(&[
            0xB8, 0x13, 0x02, 0xB9, 0x02, 0x00, 0xB6, 0x00, 0xBB, 0x00, 0x80,
        ])
        .b(&[0xCD, 0x13])
        .j(JC, "fail")
        .b(&[0x3C, 0x13]) // cmp al,19
        .j(JNE, "fail")
        .b(&[0xBE, 0x00, 0xA4]) // mov si,8000h + 18*512
        .call("print")
        // AH=08h: type 4, 79 cylinders, 18 sectors, heads 0-1, one drive.
        .b(&[0xB4, 0x08, 0xB2, 0x00, 0xCD, 0x13])
        .j(JC, "fail")
        .b(&[0x80, 0xFB, 0x04]) // cmp bl,4
        .j(JNE, "fail")
        .b(&[0x81, 0xF9, 0x12, 0x4F]) // cmp cx,4F12h
        .j(JNE, "fail")
        .b(&[0x81, 0xFA, 0x01, 0x01]) // cmp dx,0101h
        .j(JNE, "fail")
        // AH=15h: a diskette drive, with change line (AH=02h: ours) or
        // without (01h: SeaBIOS says so).
        .b(&[0xB4, 0x15, 0xB2, 0x00, 0xCD, 0x13])
        .j(JC, "fail")
        .b(&[0x80, 0xFC, 0x01]) // cmp ah,1
        .j(JZ, "type_ok")
        .b(&[0x80, 0xFC, 0x02]) // cmp ah,2
        .j(JNE, "fail")
        .label("type_ok")
        .b(&[0xBE, 0x40, 0x7D]) // mov si,7D40h
        .call("print")
        // AH=03h: write this boot sector to C2 H1 S5 (ES was F000h).
        .b(&[0x31, 0xC0, 0x8E, 0xC0])
        .b(&[
            0xB8, 0x01, 0x03, 0xB9, 0x05, 0x02, 0xBA, 0x00, 0x01, 0xBB, 0x00, 0x7C,
        ])
        .b(&[0xCD, 0x13])
        .j(JC, "fail")
        .b(&[0xBE, 0x80, 0x7D]) // mov si,7D80h
        .call("print")
        .b(&[0xB0, 0x00, 0xE6, 0xF4, 0xF4]) // exit 0 (status 1)
        .label("fail")
        .b(&[0xB0, b'F', 0xE6, 0xE9]) // "F"
        .b(&[0x88, 0xE0, 0x0C, 0x40, 0xE6, 0xF4, 0xF4]) // exit AH|40h
        .label("print")
        .label("next")
        .b(&[0xAC, 0x84, 0xC0]) // lodsb; test al,al
        .j(JZ, "done")
        .b(&[0xE6, 0xE9])
        .j(JMP, "next")
        .label("done")
        .b(&[0xC3]);
    let code = a.finish();
    let mut img = vec![0u8; SIZE];
    // A FAT-ish start: JMP over a BPB-sized gap, as DOS diskettes begin.
    img[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    img[0x3E..0x3E + code.len()].copy_from_slice(&code);
    assert!(0x3E + code.len() <= 0x100, "boot code overlaps its strings");
    let put = |img: &mut Vec<u8>, at: usize, s: &str| {
        img[at..at + s.len()].copy_from_slice(s.as_bytes());
        img[at + s.len()] = 0;
    };
    put(
        &mut img,
        0x100,
        "floppy boot sector running from drive 00h\n",
    );
    put(&mut img, 0x140, "INT 13h AH=08h and 15h: 1.44M drive\n");
    put(&mut img, 0x180, "INT 13h AH=03h: sector written\n");
    img[510] = 0x55;
    img[511] = 0xAA;
    for lba in 1..SIZE / 512 {
        let s = &mut img[lba * 512..(lba + 1) * 512];
        s[..4].copy_from_slice(b"LBA ");
        s[4..8].copy_from_slice(&(lba as u32).to_le_bytes());
    }
    put(
        &mut img,
        19 * 512,
        "read 19 sectors across both heads: the last one says hello\n",
    );
    img
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .arg("run")
        .args(["--headless", "--max-instructions", "200000000"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn check_guest(dir: &Path, o: &Output, img: &[u8]) {
    let (out, err) = text(o);
    for want in [
        "floppy boot sector running from drive 00h\n",
        "read 19 sectors across both heads: the last one says hello\n",
        "INT 13h AH=08h and 15h: 1.44M drive\n",
        "INT 13h AH=03h: sector written\n",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{out}\n{err}");
    }
    assert_eq!(o.status.code(), Some(1), "exit 0 → status 1\n{out}\n{err}");
    let after = std::fs::read(dir.join("a.img")).unwrap();
    assert_eq!(after.len(), SIZE);
    assert_eq!(
        &after[WRITE_LBA * 512..(WRITE_LBA + 1) * 512],
        &img[..512],
        "the written sector reached the image"
    );
}

#[test]
fn boots_on_our_bios_in_the_default_order() {
    let dir = scratch("ours");
    let img = diskette();
    std::fs::write(dir.join("a.img"), &img).unwrap();
    let o = run(&dir, &["--floppy", "a.img", "--debugcon", "stdio"]);
    check_guest(&dir, &o, &img);
    // Our BIOS's log is on stderr (`--bios-log`'s default).
    let (_, log) = text(&o);
    assert!(
        log.contains("Floppy A: 1.44M 3.5\" drive, CHS 80/2/18, drive 00h"),
        "{log}"
    );
    assert!(log.contains("Booting from floppy (drive 00h)"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn boots_on_seabios_which_drives_the_controller_itself() {
    if !Path::new(SEABIOS).is_file() {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_SEABIOS").is_none(),
            "RINGSIDE_REQUIRE_SEABIOS is set but {SEABIOS} is missing"
        );
        common::not_run(&format!(
            "diskette boot on SeaBIOS: {SEABIOS} not found (apt-get install seabios)"
        ));
        return;
    }
    let dir = scratch("seabios");
    let img = diskette();
    std::fs::write(dir.join("a.img"), &img).unwrap();
    let o = run(
        &dir,
        &[
            "--bios",
            SEABIOS,
            "--fda",
            "a.img",
            "--boot",
            "floppy",
            "--debugcon",
            "stdio",
        ],
    );
    // The guest checked DL = 00h: SeaBIOS booted it from the diskette.
    check_guest(&dir, &o, &img);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_only_images_are_write_protected_and_snapshot_keeps_the_file() {
    let dir = scratch("ro");
    let img = diskette();
    let path = dir.join("a.img");
    std::fs::write(&path, &img).unwrap();
    // --snapshot: the write succeeds for the guest, the file stays.
    let o = run(
        &dir,
        &["--floppy", "a.img", "--snapshot", "--debugcon", "stdio"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert_eq!(std::fs::read(&path).unwrap(), img);
    // A read-only file is a write-protected diskette: AH=03h fails with
    // status 03h, so the guest exits with 03h|40h (status 0x87).
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&path, perm).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        common::not_run("the write-protect test: running as root, read-only files are writable (run the tests as a user)");
    } else {
        let o = run(&dir, &["--floppy", "a.img", "--debugcon", "stdio"]);
        let (out, err) = text(&o);
        assert!(out.contains("INT 13h AH=08h and 15h"), "{out}\n{err}");
        assert!(out.ends_with('F'), "{out}");
        assert_eq!(o.status.code(), Some(0x87), "{out}\n{err}");
        assert_eq!(std::fs::read(&path).unwrap(), img);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_floppy_sizes_are_one_line_errors_naming_the_file() {
    let dir = scratch("bad");
    std::fs::write(dir.join("odd.img"), vec![0u8; 1_000_448]).unwrap();
    let o = run(&dir, &["--floppy", "odd.img"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ringside: error: odd.img: floppy image is 1000448 bytes"),
        "{err}"
    );
    let o = run(&dir, &["--fda", "missing.img"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("missing.img"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diskette_without_signature_does_not_boot_but_says_why() {
    let dir = scratch("nosig");
    let mut img = diskette();
    img[510] = 0;
    img[511] = 0;
    std::fs::write(dir.join("a.img"), &img).unwrap();
    let o = run(&dir, &["--floppy", "a.img", "--boot", "floppy"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    // Why, on our BIOS's log (stderr), even with the debug console off.
    let o = run(
        &dir,
        &[
            "--floppy",
            "a.img",
            "--boot",
            "floppy",
            "--debugcon",
            "null",
        ],
    );
    let (_, log) = text(&o);
    assert!(
        log.contains("Boot from floppy failed: floppy 00h: no boot signature"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// GRUB on a diskette: boot.img in sector 0, core.img (with an embedded
/// grub.cfg: serial console, the root it derived from DL, `ls`, `halt`)
/// from sector 1. boot.img sees DL = 00h, asks INT 13h AH=08h for the
/// geometry and reads core.img in CHS mode, as on a real diskette.
/// Built here with `grub-mkimage` when GRUB's tools are installed (required
/// with `RINGSIDE_REQUIRE_GRUB`).
fn grub_floppy(dir: &Path) -> Option<PathBuf> {
    let grub = Path::new("/usr/lib/grub/i386-pc");
    let have = grub.join("boot.img").is_file()
        && Command::new("grub-mkimage")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_GRUB").is_none(),
            "RINGSIDE_REQUIRE_GRUB is set but grub-mkimage or {} is missing",
            grub.display()
        );
        common::not_run(
            "GRUB diskette test: grub-mkimage not installed (apt-get install grub-pc-bin)",
        );
        return None;
    }
    let cfg = dir.join("early.cfg");
    std::fs::write(
        &cfg,
        "serial --unit=0 --speed=115200\nterminal_output serial\n\
         echo \"GRUB-FLOPPY-OK root=$root\"\nls\necho GRUB-FLOPPY-HALT\nhalt\n",
    )
    .unwrap();
    let core = dir.join("core.img");
    let o = Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-d"])
        .arg(grub)
        .arg("-o")
        .arg(&core)
        .arg("-c")
        .arg(&cfg)
        .args(["-p", "(fd0)/boot/grub"])
        .args(["biosdisk", "serial", "terminal", "echo", "ls", "halt"])
        .output()
        .expect("run grub-mkimage");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let core = std::fs::read(&core).unwrap();
    let mut img = vec![0u8; SIZE];
    img[..512].copy_from_slice(&std::fs::read(grub.join("boot.img")).unwrap()[..512]);
    img[512..512 + core.len()].copy_from_slice(&core);
    let path = dir.join("grub.img");
    std::fs::write(&path, img).unwrap();
    Some(path)
}

#[test]
fn grub_boots_from_a_diskette_on_our_bios_and_seabios() {
    let dir = scratch("grub");
    let Some(_) = grub_floppy(&dir) else {
        return;
    };
    let mut bioses = vec![None];
    if Path::new(SEABIOS).is_file() {
        bioses.push(Some(SEABIOS));
    }
    for bios in bioses {
        let mut args = vec!["--fda", "grub.img", "--boot", "floppy", "--serial", "stdio"];
        if let Some(b) = bios {
            args.extend(["--bios", b]);
        }
        let o = run(&dir, &args);
        let (out, err) = text(&o);
        let out = out.replace('\r', "");
        assert!(
            out.contains("GRUB-FLOPPY-OK root=fd0"),
            "{bios:?}\n{out}\n{err}"
        );
        assert!(out.contains("(fd0)"), "`ls` lists the diskette\n{out}");
        assert!(out.contains("GRUB-FLOPPY-HALT"), "{out}");
        assert_eq!(o.status.code(), Some(0), "halt powers off\n{out}\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
