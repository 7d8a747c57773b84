//! Shadow RAM through the i440FX PAM registers: firmware that copies
//! itself to RAM (SeaBIOS does) opens the BIOS area for writes with PAM
//! WE, then closes it again; a reset gives back the ROM.

use iced_x86::code_asm::*;
use ringside_machine::{Machine, MachineConfig, RunLimits, RunOutcome};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Real-mode code at F000:0000 that sets PAM0's F-segment nibble to `pam`
/// (through PCI configuration mechanism #1, register 0x59), writes `v` to
/// F000:8000 and exits through port 0xF4 with what it reads back.
fn program(pam: u8, v: u8) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    a.mov(eax, 0x8000_0058u32)?;
    a.mov(dx, 0xCF8u32)?;
    a.out(dx, eax)?;
    a.mov(dx, 0xCFDu32)?; // byte 0x59
    a.mov(al, (pam as u32) << 4)?;
    a.out(dx, al)?;
    a.mov(ax, 0xF000u32)?;
    a.mov(ds, ax)?;
    a.mov(byte_ptr(0x8000), v as u32)?;
    a.mov(al, byte_ptr(0x8000))?;
    a.out(0xF4, al)?;
    a.hlt()?;
    Ok(a.assemble(0)?)
}

fn run(pam: u8, v: u8) -> R<(Machine, RunOutcome)> {
    let rom = ringside_roms::rom_with_code(&program(pam, v)?);
    let mut m = Machine::new(rom, MachineConfig::default())?;
    let out = m.run(RunLimits {
        max_instructions: Some(1000),
    });
    Ok((m, out))
}

#[test]
fn pam_write_enable_makes_the_rom_copy_writable() -> R<()> {
    // The ROM's byte at F000:8000 is 0xFF (rom_with_code fills with 0xFF).
    let (_, out) = run(0x0, 0x5A)?;
    assert_eq!(out, RunOutcome::Exit(0xFF), "PAM 0: the write is dropped");
    let (_, out) = run(0x1, 0x5A)?;
    assert_eq!(out, RunOutcome::Exit(0xFF), "RE only: still read-only");
    let (mut m, out) = run(0x3, 0x5A)?;
    assert_eq!(out, RunOutcome::Exit(0x5A), "RE|WE: shadow RAM");
    let (_, out) = run(0x2, 0x77)?;
    assert_eq!(out, RunOutcome::Exit(0x77), "WE: writes reach the RAM copy");
    // A reset clears PAM and the ROM reads as the ROM again.
    assert_eq!(m.cpu.mem.read_u8(0xF8000), Some(0x5A));
    m.reset();
    assert_eq!(m.cpu.mem.read_u8(0xF8000), Some(0xFF));
    Ok(())
}
