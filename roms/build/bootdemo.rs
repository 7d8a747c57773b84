//! The boot demo: a small disk image whose boot sector a PC BIOS (ours by
//! default, SeaBIOS or QEMU's too) loads at 0000:7C00. It shows the first
//! lesson on the VGA screen and the debug console (port 0xE9):
//!
//! 1. real mode: the boot sector clears the screen (INT 10h AX=0003h),
//!    loads the rest of the program with INT 13h AH=42h (EDD, LBA 1..) and
//!    checks its signature;
//! 2. it loads a GDT and an IDT, sets CR0.PE and far-jumps to 32-bit code;
//! 3. ring 0 loads the task register (the TSS holds the ring-0 stack) and
//!    IRETs to ring 3 with IOPL 0;
//! 4. ring 3 prints through a system call (INT 80h, a DPL-3 trap gate);
//! 5. ring 3 executes CLI: privileged at IOPL 0, so #GP(0). The ring-0
//!    handler prints the error code and the faulting CS:EIP, checks them,
//!    skips the CLI and IRETs back;
//! 6. ring 3 prints again and asks to exit through INT 80h, whose handler
//!    writes 0 to the exit port 0xF4 (QEMU's isa-debug-exit).
//!
//! A failed check writes its number to port 0xF4 instead. In protected
//! mode the text goes straight into the VGA text buffer at 0xB8000 (the
//! BIOS's cursor in the BDA is carried on) and to port 0xE9.
//!
//! Every address is fixed (linear = offset, segment 0), so code addresses
//! are never needed as data (code_asm labels are branch targets only).

use iced_x86::code_asm::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

const LOAD: u32 = 0x7C00;
const SAY16: u32 = 0x7D00;
const BOOT_STRINGS: u32 = 0x7D80;
const STAGE2: u32 = 0x7E00;
const PUTC: u32 = 0x8000;
const PRINT: u32 = 0x8100;
const PRINT_HEX: u32 = 0x8180;
const MAIN32: u32 = 0x8200;
const RING3: u32 = 0x8400;
const RING3_CLI: u32 = 0x8500;
const GP_HANDLER: u32 = 0x8600;
const INT80_HANDLER: u32 = 0x8800;
const DEFAULT_HANDLER: u32 = 0x8900;
const FAIL: u32 = 0x8A00;
const GDTR: u32 = 0x9000;
const IDTR: u32 = 0x9008;
const GDT: u32 = 0x9010;
const TSS: u32 = 0x9100;
const IDT: u32 = 0x9200;
const IDT_VECTORS: u32 = 0x81;
const STRINGS: u32 = 0x9800;
const MAGIC_AT: u32 = 0x9FFC;
const MAGIC: u32 = 0x4D44_5352; // "RSDM"
const END: u32 = 0xA000;
/// Sectors after the boot sector that it loads.
pub const STAGE_SECTORS: u32 = (END - STAGE2) / 512;
/// Size of the whole disk image (the program, then zeros).
pub const DISK_BYTES: usize = 64 * 1024;

/// Scratch in low RAM: the boot drive and the EDD disk address packet.
const BOOT_DRIVE: u32 = 0x600;
const DAP: u32 = 0x610;
const RING0_STACK: u32 = 0x7C00;
const RING3_STACK: u32 = 0x5000;
/// Text attribute of the protected-mode lines: light green on black.
const ATTR: u32 = 0x0A;

const SEL_CODE0: u16 = 0x08;
const SEL_DATA0: u16 = 0x10;
const SEL_CODE3: u16 = 0x18 | 3;
const SEL_DATA3: u16 = 0x20 | 3;
const SEL_TSS: u16 = 0x28;

fn seg(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xFFFF)
        | ((base as u64 & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((flags as u64) & 0xF) << 52)
        | (((base as u64) >> 24) << 56)
}

fn gate(selector: u16, offset: u32, typ: u8, dpl: u8) -> u64 {
    (offset as u64 & 0xFFFF)
        | ((selector as u64) << 16)
        | (((0x80 | (dpl << 5) | typ) as u64) << 40)
        | (((offset >> 16) as u64) << 48)
}

struct Image {
    bytes: Vec<u8>,
    strings: u32,
    boot_strings: u32,
}

impl Image {
    fn put(&mut self, at: u32, b: &[u8]) -> R<()> {
        let o = (at - LOAD) as usize;
        let slot = self
            .bytes
            .get_mut(o..o + b.len())
            .ok_or("boot demo: block outside the image")?;
        if slot.iter().any(|&x| x != 0) {
            return Err(format!("boot demo: block at {at:#x} overlaps another").into());
        }
        slot.copy_from_slice(b);
        Ok(())
    }

    fn string(&mut self, s: &str) -> R<u32> {
        let at = self.strings;
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(at, &b)?;
        self.strings += b.len() as u32;
        if self.strings > MAGIC_AT {
            return Err("boot demo: strings overflow".into());
        }
        Ok(at)
    }

    fn boot_string(&mut self, s: &str) -> R<u32> {
        let at = self.boot_strings;
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.put(at, &b)?;
        self.boot_strings += b.len() as u32;
        if self.boot_strings > LOAD + 510 {
            return Err("boot demo: boot sector strings overflow".into());
        }
        Ok(at)
    }
}

fn code(bits: u32, base: u32, body: impl FnOnce(&mut CodeAssembler) -> R<()>) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(bits)?;
    body(&mut a)?;
    Ok(a.assemble(base as u64)?)
}

fn print(a: &mut CodeAssembler, s: u32) -> R<()> {
    a.mov(esi, s)?;
    a.call(PRINT as u64)?;
    Ok(())
}

fn say16(a: &mut CodeAssembler, s: u32) -> R<()> {
    a.mov(si, s)?;
    a.call(SAY16 as u64)?;
    Ok(())
}

/// `cmp` has been done: on not-equal, fail with check `n`.
fn check(a: &mut CodeAssembler, n: u32) -> R<()> {
    let mut ok = a.create_label();
    a.je(ok)?;
    a.mov(eax, n)?;
    a.jmp(FAIL as u64)?;
    a.set_label(&mut ok)?;
    a.nop()?;
    Ok(())
}

/// The disk image and what the program prints on port 0xE9 when every
/// check holds.
pub fn bootdemo_disk() -> R<(Vec<u8>, String)> {
    let mut img = Image {
        bytes: vec![0u8; (END - LOAD) as usize],
        strings: STRINGS,
        boot_strings: BOOT_STRINGS,
    };
    let mut expected = String::new();

    // --- Boot sector (real mode, 0000:7C00).
    let s_banner =
        img.boot_string("Ringside boot demo: our boot sector, loaded at 0000:7C00 by the BIOS\n")?;
    let s_loadfail = img.boot_string("boot demo: loading the program failed\n")?;
    expected.push_str("Ringside boot demo: our boot sector, loaded at 0000:7C00 by the BIOS\n");
    let boot = code(16, LOAD, |a| {
        a.cli()?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(sp, RING0_STACK)?;
        a.sti()?;
        a.cld()?;
        a.mov(byte_ptr(BOOT_DRIVE), dl)?;
        a.mov(ax, 0x0003u32)?; // set mode 3: clears the screen
        a.int(0x10)?;
        say16(a, s_banner)?;
        // EDD disk address packet: 16 bytes, count, 0000:7E00, LBA 1.
        a.mov(word_ptr(DAP), 0x0010u32)?;
        a.mov(word_ptr(DAP + 2), STAGE_SECTORS)?;
        a.mov(word_ptr(DAP + 4), STAGE2)?;
        a.mov(word_ptr(DAP + 6), 0u32)?;
        a.mov(dword_ptr(DAP + 8), 1u32)?;
        a.mov(dword_ptr(DAP + 12), 0u32)?;
        a.mov(si, DAP)?;
        a.mov(ah, 0x42)?;
        a.mov(dl, byte_ptr(BOOT_DRIVE))?;
        a.int(0x13)?;
        let mut fail = a.create_label();
        a.jc(fail)?;
        a.cmp(dword_ptr(MAGIC_AT), MAGIC)?;
        a.jne(fail)?;
        a.jmp(STAGE2 as u64)?;
        a.set_label(&mut fail)?;
        say16(a, s_loadfail)?;
        a.mov(al, 1)?;
        a.out(0xF4, al)?;
        let mut stop = a.create_label();
        a.set_label(&mut stop)?;
        a.hlt()?;
        a.jmp(stop)?;
        Ok(())
    })?;
    img.put(LOAD, &boot)?;
    // SAY16: SI = string; to port 0xE9 and through INT 10h teletype.
    let say = code(16, SAY16, |a| {
        let mut next = a.create_label();
        let mut plain = a.create_label();
        let mut done = a.create_label();
        a.set_label(&mut next)?;
        a.lodsb()?;
        a.test(al, al)?;
        a.jz(done)?;
        a.out(0xE9, al)?;
        a.mov(bx, 0x0007u32)?;
        a.cmp(al, 10)?;
        a.jne(plain)?;
        a.push(ax)?;
        a.mov(ax, 0x0E0Du32)?;
        a.int(0x10)?;
        a.pop(ax)?;
        a.set_label(&mut plain)?;
        a.mov(ah, 0x0E)?;
        a.int(0x10)?;
        a.jmp(next)?;
        a.set_label(&mut done)?;
        a.ret()?;
        Ok(())
    })?;
    img.put(SAY16, &say)?;
    img.put(LOAD + 510, &[0x55, 0xAA])?;

    // --- Stage 2 (real mode): into protected mode.
    let s_rm =
        img.string("[1] real mode: INT 13h AH=42h loaded the rest of the program from disk\n")?;
    expected.push_str("[1] real mode: INT 13h AH=42h loaded the rest of the program from disk\n");
    let s_rm2 = img.string("    LGDT, LIDT, CR0.PE=1, a far jump to 0008h: protected mode\n")?;
    expected.push_str("    LGDT, LIDT, CR0.PE=1, a far jump to 0008h: protected mode\n");
    let stage2 = code(16, STAGE2, |a| {
        say16(a, s_rm)?;
        say16(a, s_rm2)?;
        a.cli()?;
        a.db(&[0x0F, 0x01, 0x16])?; // lgdt [GDTR]
        a.dw(&[GDTR as u16])?;
        a.db(&[0x0F, 0x01, 0x1E])?; // lidt [IDTR]
        a.dw(&[IDTR as u16])?;
        a.mov(eax, cr0)?;
        a.or(eax, 1)?;
        a.mov(cr0, eax)?;
        a.db(&[0x66, 0xEA])?; // jmp far dword 0008:MAIN32
        a.dd(&[MAIN32])?;
        a.dw(&[SEL_CODE0])?;
        Ok(())
    })?;
    img.put(STAGE2, &stage2)?;

    // --- 32-bit output: PUTC (AL), PRINT (ESI), PRINT_HEX (EAX, ECX digits).
    let putc = code(32, PUTC, |a| {
        let mut newline = a.create_label();
        let mut store = a.create_label();
        a.pushad()?;
        a.out(0xE9, al)?;
        a.movzx(ebx, byte_ptr(0x450))?; // column
        a.movzx(ecx, byte_ptr(0x451))?; // row
        a.cmp(al, 10)?;
        a.je(newline)?;
        a.mov(edx, ecx)?;
        a.imul_3(edx, edx, 80)?;
        a.add(edx, ebx)?;
        a.mov(ah, ATTR)?;
        a.mov(word_ptr(edx * 2 + 0xB8000), ax)?;
        a.inc(ebx)?;
        a.cmp(ebx, 80)?;
        a.jb(store)?;
        a.set_label(&mut newline)?;
        a.xor(ebx, ebx)?;
        a.inc(ecx)?;
        a.cmp(ecx, 25)?;
        a.jb(store)?;
        // Scroll the screen up a line.
        a.cld()?;
        a.mov(esi, 0xB80A0u32)?;
        a.mov(edi, 0xB8000u32)?;
        a.mov(ecx, 24 * 80 / 2)?;
        a.rep().movsd()?;
        a.mov(eax, 0x0720_0720u32)?;
        a.mov(ecx, 80 / 2)?;
        a.rep().stosd()?;
        a.mov(ecx, 24u32)?;
        a.set_label(&mut store)?;
        a.mov(byte_ptr(0x450), bl)?;
        a.mov(byte_ptr(0x451), cl)?;
        // The CRT controller's cursor location (registers 0Eh/0Fh).
        a.imul_3(ecx, ecx, 80)?;
        a.add(ecx, ebx)?;
        a.mov(dx, 0x3D4u32)?;
        a.mov(al, 0x0E)?;
        a.out(dx, al)?;
        a.inc(dx)?;
        a.mov(al, ch)?;
        a.out(dx, al)?;
        a.dec(dx)?;
        a.mov(al, 0x0F)?;
        a.out(dx, al)?;
        a.inc(dx)?;
        a.mov(al, cl)?;
        a.out(dx, al)?;
        a.popad()?;
        a.ret()?;
        Ok(())
    })?;
    img.put(PUTC, &putc)?;
    let printer = code(32, PRINT, |a| {
        let mut next = a.create_label();
        let mut done = a.create_label();
        a.push(esi)?;
        a.push(eax)?;
        a.set_label(&mut next)?;
        a.mov(al, byte_ptr(esi))?;
        a.inc(esi)?;
        a.test(al, al)?;
        a.jz(done)?;
        a.call(PUTC as u64)?;
        a.jmp(next)?;
        a.set_label(&mut done)?;
        a.pop(eax)?;
        a.pop(esi)?;
        a.ret()?;
        Ok(())
    })?;
    img.put(PRINT, &printer)?;
    let hex = code(32, PRINT_HEX, |a| {
        let mut next = a.create_label();
        let mut digit = a.create_label();
        a.pushad()?;
        a.mov(edx, eax)?;
        // Shift the wanted digits to the top: by (8 - ECX) * 4 bits.
        a.mov(ebx, ecx)?;
        a.mov(ecx, 8u32)?;
        a.sub(ecx, ebx)?;
        a.shl(ecx, 2)?;
        a.shl(edx, cl)?;
        a.mov(ecx, ebx)?;
        a.set_label(&mut next)?;
        a.rol(edx, 4)?;
        a.mov(al, dl)?;
        a.and(al, 0x0F)?;
        a.add(al, b'0' as u32)?;
        a.cmp(al, b'9' as u32)?;
        a.jbe(digit)?;
        a.add(al, 7)?;
        a.set_label(&mut digit)?;
        a.call(PUTC as u64)?;
        a.dec(ecx)?;
        a.jnz(next)?;
        a.popad()?;
        a.ret()?;
        Ok(())
    })?;
    img.put(PRINT_HEX, &hex)?;

    // --- Ring 0 main.
    let s_pm =
        img.string("[2] protected mode, CPL 0: CS=0008h (a 32-bit code segment, DPL 0)\n")?;
    expected.push_str("[2] protected mode, CPL 0: CS=0008h (a 32-bit code segment, DPL 0)\n");
    let s_iret = img.string(
        "[3] LTR 0028h (the TSS holds the ring-0 stack), then IRET to ring 3:\n    CS=001Bh SS=0023h, EFLAGS.IOPL=0\n",
    )?;
    expected.push_str(
        "[3] LTR 0028h (the TSS holds the ring-0 stack), then IRET to ring 3:\n    CS=001Bh SS=0023h, EFLAGS.IOPL=0\n",
    );
    let main = code(32, MAIN32, |a| {
        a.mov(ax, SEL_DATA0 as u32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(esp, RING0_STACK)?;
        print(a, s_pm)?;
        a.mov(ax, SEL_TSS as u32)?;
        a.ltr(ax)?;
        print(a, s_iret)?;
        a.push(SEL_DATA3 as u32)?;
        a.push(RING3_STACK)?;
        a.push(0x0002u32)?; // EFLAGS: IF=0, IOPL=0
        a.push(SEL_CODE3 as u32)?;
        a.push(RING3)?;
        a.iretd()?;
        Ok(())
    })?;
    img.put(MAIN32, &main)?;

    // --- Ring 3.
    let s_r3 = img.string("[4] ring 3: printed by a system call, INT 80h (a DPL-3 trap gate)\n")?;
    expected.push_str("[4] ring 3: printed by a system call, INT 80h (a DPL-3 trap gate)\n");
    let s_back = img.string("[6] ring 3 again: the handler returned with IRET\n")?;
    let ring3 = code(32, RING3, |a| {
        a.mov(ax, SEL_DATA3 as u32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(eax, 1u32)?;
        a.mov(esi, s_r3)?;
        a.int(0x80)?;
        a.jmp(RING3_CLI as u64)?;
        Ok(())
    })?;
    img.put(RING3, &ring3)?;
    let ring3_cli = code(32, RING3_CLI, |a| {
        a.cli()?; // #GP(0): CPL 3 > IOPL 0
        a.mov(eax, 1u32)?;
        a.mov(esi, s_back)?;
        a.int(0x80)?;
        a.mov(eax, 2u32)?;
        a.int(0x80)?;
        a.mov(eax, 9u32)?; // the exit call returned: impossible
        a.int(0x80)?;
        let mut stop = a.create_label();
        a.set_label(&mut stop)?;
        a.jmp(stop)?;
        Ok(())
    })?;
    img.put(RING3_CLI, &ring3_cli)?;

    // --- #GP handler (interrupt gate, DPL 0): [ESP] error code, then EIP,
    // CS, EFLAGS, ESP, SS of ring 3.
    let s_gp1 = img.string("[5] #GP trapped: error code ")?;
    let s_gp2 = img.string(", CS:EIP ")?;
    let s_gp3 = img.string(":")?;
    let s_gp4 =
        img.string("\n    ring 3 ran CLI with IOPL 0: the ring-0 handler skips it (EIP+1)\n")?;
    expected.push_str(&format!(
        "[5] #GP trapped: error code 0000, CS:EIP 001B:{RING3_CLI:08X}\n    ring 3 ran CLI with IOPL 0: the ring-0 handler skips it (EIP+1)\n"
    ));
    expected.push_str("[6] ring 3 again: the handler returned with IRET\n");
    let gp = code(32, GP_HANDLER, |a| {
        print(a, s_gp1)?;
        a.mov(eax, dword_ptr(esp))?;
        a.mov(ecx, 4u32)?;
        a.call(PRINT_HEX as u64)?;
        print(a, s_gp2)?;
        a.mov(eax, dword_ptr(esp + 8))?;
        a.call(PRINT_HEX as u64)?;
        print(a, s_gp3)?;
        a.mov(eax, dword_ptr(esp + 4))?;
        a.mov(ecx, 8u32)?;
        a.call(PRINT_HEX as u64)?;
        print(a, s_gp4)?;
        a.cmp(dword_ptr(esp), 0)?;
        check(a, 2)?;
        a.cmp(dword_ptr(esp + 8), SEL_CODE3 as u32)?;
        check(a, 3)?;
        a.cmp(dword_ptr(esp + 4), RING3_CLI)?;
        check(a, 4)?;
        a.add(dword_ptr(esp + 4), 1)?;
        a.add(esp, 4)?;
        a.iretd()?;
        Ok(())
    })?;
    img.put(GP_HANDLER, &gp)?;

    // --- INT 80h (trap gate, DPL 3): EAX=1 print ESI, EAX=2 exit.
    let s_done = img.string(
        "[7] INT 80h exit call from ring 3: all checks passed.\n    Writing 0 to the exit port F4h.\n",
    )?;
    expected.push_str(
        "[7] INT 80h exit call from ring 3: all checks passed.\n    Writing 0 to the exit port F4h.\n",
    );
    let int80 = code(32, INT80_HANDLER, |a| {
        let mut exit = a.create_label();
        a.cmp(dword_ptr(esp + 4), SEL_CODE3 as u32)?;
        check(a, 5)?;
        a.cmp(eax, 1)?;
        a.jne(exit)?;
        a.call(PRINT as u64)?;
        a.iretd()?;
        a.set_label(&mut exit)?;
        a.cmp(eax, 2)?;
        check(a, 6)?;
        print(a, s_done)?;
        a.xor(eax, eax)?;
        a.out(0xF4, al)?;
        let mut stop = a.create_label();
        a.set_label(&mut stop)?;
        a.hlt()?;
        a.jmp(stop)?;
        Ok(())
    })?;
    img.put(INT80_HANDLER, &int80)?;

    let s_unexpected = img.string("boot demo: unexpected exception\n")?;
    let default = code(32, DEFAULT_HANDLER, |a| {
        print(a, s_unexpected)?;
        a.mov(eax, 0x7Fu32)?;
        a.jmp(FAIL as u64)?;
        Ok(())
    })?;
    img.put(DEFAULT_HANDLER, &default)?;
    let s_fail = img.string("boot demo: check failed: ")?;
    let s_nl = img.string("\n")?;
    let fail = code(32, FAIL, |a| {
        a.mov(ebx, eax)?;
        print(a, s_fail)?;
        a.mov(eax, ebx)?;
        a.mov(ecx, 2u32)?;
        a.call(PRINT_HEX as u64)?;
        print(a, s_nl)?;
        a.mov(eax, ebx)?;
        a.out(0xF4, al)?;
        let mut stop = a.create_label();
        a.set_label(&mut stop)?;
        a.cli()?;
        a.hlt()?;
        a.jmp(stop)?;
        Ok(())
    })?;
    img.put(FAIL, &fail)?;

    // --- System tables.
    let gdt: [u64; 6] = [
        0,
        seg(0, 0xFFFFF, 0x9A, 0xC),
        seg(0, 0xFFFFF, 0x92, 0xC),
        seg(0, 0xFFFFF, 0xFA, 0xC),
        seg(0, 0xFFFFF, 0xF2, 0xC),
        seg(TSS, 0x67, 0x89, 0),
    ];
    let mut gdtr = ((gdt.len() * 8 - 1) as u16).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    img.put(GDTR, &gdtr)?;
    let mut idtr = ((IDT_VECTORS * 8 - 1) as u16).to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    img.put(IDTR, &idtr)?;
    let gdt_bytes: Vec<u8> = gdt.iter().flat_map(|d| d.to_le_bytes()).collect();
    img.put(GDT, &gdt_bytes)?;
    let mut tss = vec![0u8; 0x68];
    tss[4..8].copy_from_slice(&RING0_STACK.to_le_bytes()); // ESP0
    tss[8..10].copy_from_slice(&SEL_DATA0.to_le_bytes()); // SS0
    tss[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes()); // no I/O bitmap
    img.put(TSS, &tss)?;
    let mut idt = Vec::new();
    for v in 0..IDT_VECTORS {
        let g = match v {
            13 => gate(SEL_CODE0, GP_HANDLER, 0xE, 0),
            0x80 => gate(SEL_CODE0, INT80_HANDLER, 0xF, 3),
            _ => gate(SEL_CODE0, DEFAULT_HANDLER, 0xE, 0),
        };
        idt.extend_from_slice(&g.to_le_bytes());
    }
    img.put(IDT, &idt)?;
    img.put(MAGIC_AT, &MAGIC.to_le_bytes())?;

    let mut disk = img.bytes;
    disk.resize(DISK_BYTES, 0);
    Ok((disk, expected))
}
