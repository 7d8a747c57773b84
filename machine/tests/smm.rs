//! SMM on the board: the i440FX SMRAM register (0x72) decides whether
//! 0xA0000-0xBFFFF is the VGA or the RAM beneath, outside SMM (D_OPEN)
//! and inside it (G_SMRAME); a write to the APM control port 0xB2 with the
//! PIIX4 PM function's APMC_EN raises an SMI whose handler talks back
//! through the APM status port 0xB3.

use iced_x86::code_asm::*;
use ringside_machine::{Machine, MachineConfig, RunLimits, RunOutcome};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// The SMI handler at the default SMBASE (0x30000) + 0x8000: report the
/// byte at 0xA0000 through port 0xB3, then RSM.
fn handler() -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    a.mov(ebx, 0xA_0000u32)?;
    a.mov(al, byte_ptr(ebx))?; // flat 4 GiB data segments in SMM
    a.out(0xB3, al)?;
    a.rsm()?;
    Ok(a.assemble(0x8000)?)
}

/// Real-mode code at F000:0000: write 0x22 to 0xA0000 with SMRAM closed
/// (the VGA), open SMRAM (D_OPEN) and write 0x11 there (RAM), put the
/// handler at 0x38000, enable APMC SMIs, set SMRAM to `smram`, raise an
/// SMI and exit through port 0xF4 with what the handler saw.
fn program(smram: u8) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    let config_write = |a: &mut CodeAssembler, addr: u32, port: u32, v: u32, dword: bool| {
        a.mov(eax, addr)?;
        a.mov(dx, 0xCF8u32)?;
        a.out(dx, eax)?;
        a.mov(dx, port)?;
        if dword {
            a.mov(eax, v)?;
            a.out(dx, eax)
        } else {
            a.mov(al, v)?;
            a.out(dx, al)
        }
    };
    a.mov(ax, 0xA000u32)?;
    a.mov(ds, ax)?;
    a.mov(byte_ptr(0), 0x22u32)?;
    config_write(&mut a, 0x8000_0070, 0xCFE, 0x4A, false)?; // D_OPEN|G_SMRAME
    a.mov(byte_ptr(0), 0x11u32)?;
    a.mov(ax, 0x3800u32)?;
    a.mov(ds, ax)?;
    for (k, b) in handler()?.into_iter().enumerate() {
        a.mov(byte_ptr(k as u32), b as u32)?;
    }
    config_write(&mut a, 0x8000_0B58, 0xCFC, 1 << 25, true)?; // APMC_EN
    config_write(&mut a, 0x8000_0070, 0xCFE, smram as u32, false)?;
    a.mov(al, 0x01u32)?;
    a.out(0xB3, al)?;
    a.out(0xB2, al)?; // SMI
    a.in_(al, 0xB3)?;
    a.out(0xF4, al)?;
    a.hlt()?;
    Ok(a.assemble(0)?)
}

fn run(smram: u8) -> R<(Machine, RunOutcome)> {
    let rom = ringside_roms::rom_with_code(&program(smram)?);
    let mut m = Machine::new(rom, MachineConfig::default())?;
    let out = m.run(RunLimits {
        max_instructions: Some(10_000),
    });
    Ok((m, out))
}

#[test]
fn smram_is_ram_inside_smm_and_the_vga_outside() -> R<()> {
    // G_SMRAME, closed: the handler sees SMRAM (0x11), the rest the VGA.
    let (m, out) = run(0x0A)?;
    assert_eq!(out, RunOutcome::Exit(0x11));
    assert!(!m.cpu.in_smm());
    assert_eq!(m.cpu.smm_state().smbase, 0x3_0000);
    assert_eq!(m.cpu.mem.read_u8(0xA_0000), None, "outside SMM: the VGA");
    assert_eq!(m.cpu.mem.ram()[0xA_0000], 0x11, "the RAM beneath kept it");
    // SMRAM disabled (G_SMRAME clear): even SMM reaches the VGA, whose
    // byte is not the RAM's.
    let (m, out) = run(0x02)?;
    assert_ne!(out, RunOutcome::Exit(0x11));
    assert!(matches!(out, RunOutcome::Exit(_)), "{out:?}");
    assert!(!m.cpu.in_smm());
    // D_OPEN left set: RAM for everyone.
    let (m, out) = run(0x4A)?;
    assert_eq!(out, RunOutcome::Exit(0x11));
    assert_eq!(m.cpu.mem.read_u8(0xA_0000), Some(0x11));
    Ok(())
}

#[test]
fn no_smi_without_apmc_en_and_a_reset_closes_smram() -> R<()> {
    let (mut m, _) = run(0x4A)?;
    m.reset();
    assert_eq!(m.cpu.mem.read_u8(0xA_0000), None, "SMRAM register reset");
    // Writes to 0xB2 without APMC_EN: a scratch write, no SMI.
    let mut a = CodeAssembler::new(16)?;
    a.mov(al, 0x5Au32)?;
    a.out(0xB3, al)?;
    a.out(0xB2, al)?;
    a.in_(al, 0xB3)?;
    a.out(0xF4, al)?;
    a.hlt()?;
    let rom = ringside_roms::rom_with_code(&a.assemble(0)?);
    let mut m = Machine::new(rom, MachineConfig::default())?;
    let out = m.run(RunLimits {
        max_instructions: Some(1000),
    });
    assert_eq!(out, RunOutcome::Exit(0x5A));
    assert!(!m.cpu.in_smm());
    assert_eq!(m.cpu.smm_state().smbase, 0x3_0000);
    Ok(())
}
