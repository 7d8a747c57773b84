//! Option ROMs: the images cards put in the expansion ROM area
//! (0xC0000–0xDFFFF), here a VGA BIOS given with `--vga-bios`.

use std::path::Path;

use crate::MachineError;

/// Where a VGA card's ROM appears: the start of the expansion ROM area.
pub const VGA_ROM_BASE: u32 = 0xC_0000;
/// The most an option ROM file may hold: the whole expansion ROM area
/// (0xC0000–0xDFFFF).
pub const MAX_OPTION_ROM: u64 = 128 * 1024;

/// Read an option ROM image (a VGA BIOS) and check it as a PC BIOS does
/// before running one: the 55h AAh signature, a size that fits the
/// expansion ROM area. The image is padded with zeros to a multiple of
/// 2 KiB (the granularity BIOSes scan at; zeros keep the checksum). A
/// checksum or length byte that disagrees with the file is only a warning:
/// BIOSes differ in how they treat it, and the ROM may still work.
pub fn load_option_rom(path: &Path) -> Result<Vec<u8>, MachineError> {
    let problem = |problem: String| MachineError::OptionRom {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| problem(format!("cannot read option ROM image: {e}")))?;
    if meta.is_dir() {
        return Err(problem(
            "cannot read option ROM image: is a directory".into(),
        ));
    }
    if meta.len() > MAX_OPTION_ROM {
        return Err(problem(format!(
            "option ROM image is {} bytes; at most {MAX_OPTION_ROM} fit the expansion ROM area 0xC0000-0xDFFFF",
            meta.len()
        )));
    }
    let mut rom =
        std::fs::read(path).map_err(|e| problem(format!("cannot read option ROM image: {e}")))?;
    if rom.len() < 3 || rom[0] != 0x55 || rom[1] != 0xAA {
        return Err(problem(
            "not an option ROM: it does not start with the signature 55h AAh".into(),
        ));
    }
    if rom.len() as u64 > MAX_OPTION_ROM {
        // The file grew between the two looks.
        return Err(problem("option ROM image is too large".into()));
    }
    let declared = rom[2] as usize * 512;
    if declared == 0 || declared > rom.len() {
        log::warn!(
            "{}: the ROM header says {declared} bytes, the file has {}",
            path.display(),
            rom.len()
        );
    } else if rom[..declared].iter().fold(0u8, |s, &b| s.wrapping_add(b)) != 0 {
        log::warn!(
            "{}: the option ROM's checksum is wrong; a BIOS may skip it",
            path.display()
        );
    }
    rom.resize(rom.len().div_ceil(2048) * 2048, 0);
    Ok(rom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ringside-optrom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn error(path: &Path) -> String {
        let e = load_option_rom(path).unwrap_err().to_string();
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(
            e.starts_with(&path.display().to_string()),
            "names the file: {e}"
        );
        e
    }

    #[test]
    fn missing_unreadable_and_directory_are_errors_naming_the_file() {
        let e = error(Path::new("/nonexistent/vgabios.bin"));
        assert!(e.contains("cannot read option ROM image"), "{e}");
        let dir = std::env::temp_dir();
        let e = error(&dir);
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_file_without_the_signature_is_refused() {
        let e = error(&file("nosig.bin", &[0x00, 0x00, 0x04, 0xCB]));
        assert!(e.contains("55h AAh"), "{e}");
        let e = error(&file("empty.bin", &[]));
        assert!(e.contains("55h AAh"), "{e}");
        let e = error(&file("short.bin", &[0x55, 0xAA]));
        assert!(e.contains("55h AAh"), "{e}");
    }

    #[test]
    fn a_file_larger_than_the_rom_area_is_refused() {
        let mut big = vec![0u8; MAX_OPTION_ROM as usize + 1];
        big[0] = 0x55;
        big[1] = 0xAA;
        let e = error(&file("big.bin", &big));
        assert!(e.contains("expansion ROM area"), "{e}");
    }

    #[test]
    fn a_good_rom_is_padded_to_2_kib_with_its_checksum_kept() {
        // 55 AA, 2 blocks, RETF; checksum byte at the end of the 1 KiB.
        let mut rom = vec![0u8; 1024];
        rom[..4].copy_from_slice(&[0x55, 0xAA, 0x02, 0xCB]);
        let sum = rom.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        rom[1023] = sum.wrapping_neg();
        let got = load_option_rom(&file("good.bin", &rom)).unwrap();
        assert_eq!(got.len(), 2048);
        assert_eq!(&got[..1024], &rom[..]);
        assert_eq!(got.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
    }

    /// A one-block option ROM whose init prints `tag` on the debug
    /// console and returns; `good_sum` false spoils its checksum.
    fn tiny_rom(tag: u8, good_sum: bool) -> Vec<u8> {
        let mut rom = vec![0u8; 512];
        rom[..9].copy_from_slice(&[
            0x55, 0xAA, 0x01, // signature, 1 block
            0xB0, tag, // mov al, tag
            0xE6, 0xE9, // out 0xE9, al
            0xCB, // retf
            0x00,
        ]);
        let sum = rom.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        rom[511] = sum.wrapping_neg().wrapping_add(u8::from(!good_sum));
        rom
    }

    /// The debug console (the option ROM's bytes) and our BIOS's log.
    fn boot_our_bios_with(rom: Vec<u8>) -> (String, String) {
        let config = crate::MachineConfig {
            console: crate::Console::Capture(Vec::new()),
            bios_log: crate::BiosLog::Capture(Vec::new()),
            vga_rom: Some(rom),
            ..crate::MachineConfig::default()
        };
        let mut m = crate::Machine::with_our_bios(config).unwrap();
        m.run(crate::RunLimits {
            max_instructions: Some(20_000_000),
        });
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            text(m.pc.debug.captured().unwrap_or_default()),
            text(m.bios_log.captured()),
        )
    }

    #[test]
    fn our_bios_runs_an_option_rom_with_a_good_checksum_only() {
        let (out, log) = boot_our_bios_with(tiny_rom(b'#', true));
        // Run once; the console holds its byte alone.
        assert_eq!(out, "#", "ROM not run once: {out:?}");
        assert!(log.starts_with("ringside-bios: POST"), "{log:?}");
        // INT 10h stays ours (the ROM did not take it): our banner and
        // the boot messages appear as without a ROM.
        assert!(log.contains("No bootable device"), "{log:?}");
        let (out, _) = boot_our_bios_with(tiny_rom(b'#', false));
        assert!(
            !out.contains('#'),
            "a bad checksum must be skipped: {out:?}"
        );
    }
}
