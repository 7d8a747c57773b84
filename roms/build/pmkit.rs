//! Building blocks shared by our protected-mode guest ROMs (the pmtest
//! guest and the lessons): descriptor encodings, placing assembled code at a
//! fixed linear address in a ROM at F0000, and the two console routines
//! every one of them calls (print a NUL-terminated string, print EAX in hex)
//! through port 0xE9.

use iced_x86::code_asm::*;

/// Result type of the builders.
pub type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Linear address of the ROM's first byte.
pub const ROM_BASE: u32 = 0xF0000;

/// A code/data/system segment descriptor.
pub fn seg(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xFFFF)
        | ((base as u64 & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((flags as u64) & 0xF) << 52)
        | (((base as u64) >> 24) << 56)
}

/// A gate descriptor (`typ` 0x4/0xC call, 0x5 task, 0x6/0xE interrupt,
/// 0x7/0xF trap), present, with `params` words/dwords for call gates.
pub fn gate(selector: u16, offset: u32, typ: u8, dpl: u8, params: u8) -> u64 {
    (offset as u64 & 0xFFFF)
        | ((selector as u64) << 16)
        | ((params as u64 & 0x1F) << 32)
        | (((0x80 | (dpl << 5) | typ) as u64) << 40)
        | (((offset >> 16) as u64) << 48)
}

/// Copy `bytes` into the ROM image at `linear`.
pub fn put(rom: &mut [u8], linear: u32, bytes: &[u8]) {
    let off = (linear - ROM_BASE) as usize;
    rom[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Assemble 32-bit code for `base`.
pub fn code32(base: u32, body: impl FnOnce(&mut CodeAssembler) -> R<()>) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(32)?;
    body(&mut a)?;
    Ok(a.assemble(base as u64)?)
}

/// Assemble 16-bit code for `base`.
pub fn code16(base: u32, body: impl FnOnce(&mut CodeAssembler) -> R<()>) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    body(&mut a)?;
    Ok(a.assemble(base as u64)?)
}

/// `print`: write the NUL-terminated string at DS:ESI to port 0xE9;
/// preserves every register. Callable from ring 3 when the TSS I/O bitmap
/// opens port 0xE9.
pub fn print_routine(a: &mut CodeAssembler) -> R<()> {
    a.push(eax)?;
    a.push(edx)?;
    a.push(esi)?;
    a.mov(edx, 0xE9u32)?;
    let mut l = a.create_label();
    let mut d = a.create_label();
    a.set_label(&mut l)?;
    a.mov(al, byte_ptr(esi))?;
    a.test(al, al)?;
    a.jz(d)?;
    a.out(dx, al)?;
    a.inc(esi)?;
    a.jmp(l)?;
    a.set_label(&mut d)?;
    a.pop(esi)?;
    a.pop(edx)?;
    a.pop(eax)?;
    a.ret()?;
    Ok(())
}

/// `print_hex`: write EAX as 8 upper-case hex digits to port 0xE9;
/// preserves every register.
pub fn print_hex_routine(a: &mut CodeAssembler) -> R<()> {
    a.pushad()?;
    a.mov(ebx, eax)?;
    a.mov(ecx, 8u32)?;
    a.mov(edx, 0xE9u32)?;
    let mut l = a.create_label();
    let mut digit = a.create_label();
    a.set_label(&mut l)?;
    a.rol(ebx, 4)?;
    a.mov(al, bl)?;
    a.and(al, 0xF)?;
    a.add(al, b'0' as u32)?;
    a.cmp(al, b'9' as u32)?;
    a.jbe(digit)?;
    a.add(al, 7)?;
    a.set_label(&mut digit)?;
    a.out(dx, al)?;
    a.dec(ecx)?;
    a.jnz(l)?;
    a.popad()?;
    a.ret()?;
    Ok(())
}

/// The real-mode entry both guests start with: print the NUL-terminated
/// banner at F000:`banner` on port 0xE9, optionally pause (HLT with IF=0),
/// copy the `image_len`-byte RAM image from linear `image_rom` to
/// `image_at` (where it holds the LGDT and LIDT pseudo-descriptors at
/// `image_at` and `image_at + 0x10`), set CR0.PE and far-jump to
/// `code_sel:main` in 32-bit code.
#[allow(clippy::too_many_arguments)]
pub fn real_mode_entry(
    a: &mut CodeAssembler,
    banner: u32,
    pause: bool,
    image_rom: u32,
    image_at: u32,
    image_len: usize,
    main: u32,
    code_sel: u16,
) -> R<()> {
    a.cli()?;
    a.cld()?;
    a.mov(ax, 0xF000u32)?;
    a.mov(ds, ax)?;
    a.mov(si, banner)?;
    let mut l = a.create_label();
    let mut d = a.create_label();
    a.set_label(&mut l)?;
    a.lodsb()?;
    a.test(al, al)?;
    a.jz(d)?;
    a.out(0xE9, al)?;
    a.jmp(l)?;
    a.set_label(&mut d)?;
    if pause {
        a.hlt()?;
    }
    a.mov(ax, image_rom >> 4)?;
    a.mov(ds, ax)?;
    a.xor(si, si)?;
    a.xor(ax, ax)?;
    a.mov(es, ax)?;
    a.mov(di, image_at)?;
    a.mov(cx, image_len as u32)?;
    a.rep().movsb()?;
    a.xor(ax, ax)?;
    a.mov(ds, ax)?;
    a.db(&[0x0F, 0x01, 0x16])?; // lgdt [image_at]
    a.dw(&[image_at as u16])?;
    a.db(&[0x0F, 0x01, 0x1E])?; // lidt [image_at + 0x10]
    a.dw(&[(image_at + 0x10) as u16])?;
    a.mov(eax, cr0)?;
    a.or(eax, 1)?;
    a.mov(cr0, eax)?;
    a.db(&[0x66, 0xEA])?; // jmp far dword code_sel:main
    a.dd(&[main])?;
    a.dw(&[code_sel])?;
    Ok(())
}
