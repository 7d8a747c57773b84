//! The protected-mode test ROM: a guest of our own that enters protected
//! mode, goes to ring 3, comes back through each kind of gate, faults on
//! purpose and reports each event on the debug console (port 0xE9). It runs
//! on QEMU (`-bios`) too, and the two must print the same.
//!
//! Layout (linear addresses; the ROM is at 0xF0000–0xFFFFF):
//! - 0xF0000 real-mode entry (16-bit): copies the system tables to RAM,
//!   LGDT/LIDT, sets CR0.PE and far-jumps to 32-bit code.
//! - 0xF0800 `print` (ESI = NUL-terminated string), 0xF0900 `print_hex`
//!   (EAX as 8 hex digits): ring-0 and ring-3 code both call them; ring 3 may
//!   write port 0xE9 because the TSS I/O bitmap leaves that one port open.
//! - 0xF1000 ring-0 main, 0xF2000 ring-3 code, 0xF3000.. handlers and gate
//!   targets, 0xF4000 virtual-8086 code, 0xF8000 the RAM image (GDT, IDT,
//!   TSSs) copied to 0x400, 0xFE000 strings.
//!
//! Every address is fixed, so no code address is ever needed as data
//! (code_asm labels are branch targets only).

use iced_x86::code_asm::*;

use crate::pmkit::*;

const PRINT: u64 = 0xF0800;
const PRINT_HEX: u64 = 0xF0900;
const MAIN: u32 = 0xF1000;
const RING3: u32 = 0xF2000;
const GP_HANDLER: u32 = 0xF3000;
const NP_HANDLER: u32 = 0xF3200;
const INT80_HANDLER: u32 = 0xF3400;
const INT82_HANDLER: u32 = 0xF3500;
const GATE_TARGET: u32 = 0xF3600;
const PHASE2: u32 = 0xF3800;
const TASK2: u32 = 0xF3C00;
const PHASE3: u32 = 0xF3E00;
const V86_CODE: u32 = 0xF4000;
const PAGING: u32 = 0xF5000;
const PF_HANDLER: u32 = 0xF5800;
const RAM_IMAGE: u32 = 0xF8000;
const STRINGS: u32 = 0xFE000;

/// RAM layout (linear).
const RAM_IMAGE_AT: u32 = 0x400;
const GDT: u32 = 0x800;
const IDT: u32 = 0x1000;
const TSS1: u32 = 0x3000;
const TSS2: u32 = 0x6000;
const SKIP_LEN: u32 = 0x704;
const V86_DONE: u32 = 0x705;
const SCRATCH: u32 = 0x710;
/// What the #PF handler does: 0 map the page and retry, 1 make it
/// writable and retry.
const PF_MODE: u32 = 0x706;
const PAGE_DIR: u32 = 0xB000;
const PAGE_TABLE: u32 = 0xC000;
const DEMAND_PAGE: u32 = 0x30_0000;

const SEL_CODE0: u16 = 0x08;
const SEL_DATA0: u16 = 0x10;
const SEL_CODE3: u16 = 0x18 | 3;
const SEL_DATA3: u16 = 0x20 | 3;
const SEL_TSS1: u16 = 0x28;
const SEL_GATE: u16 = 0x30 | 3;
const SEL_NOT_PRESENT: u16 = 0x38;
const SEL_TSS2: u16 = 0x40;

struct Strings {
    bytes: Vec<u8>,
}

impl Strings {
    fn add(&mut self, s: &str) -> u32 {
        let at = STRINGS + self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        at
    }
}

fn print(a: &mut CodeAssembler, s: u32) -> R<()> {
    a.mov(esi, s)?;
    a.call(PRINT)?;
    Ok(())
}

/// The system tables, laid out as they will be at `RAM_IMAGE_AT`.
fn ram_image() -> Vec<u8> {
    let mut img = vec![0u8; (TSS2 + 0x68 - RAM_IMAGE_AT) as usize];
    let mut w = |at: u32, b: &[u8]| {
        let o = (at - RAM_IMAGE_AT) as usize;
        img[o..o + b.len()].copy_from_slice(b);
    };
    // Pseudo-descriptors for LGDT and LIDT.
    let gdt_entries: [u64; 9] = [
        0,
        seg(0, 0xFFFFF, 0x9A, 0xC),
        seg(0, 0xFFFFF, 0x92, 0xC),
        seg(0, 0xFFFFF, 0xFA, 0xC),
        seg(0, 0xFFFFF, 0xF2, 0xC),
        seg(TSS1, 0x68 + 0x2000, 0x89, 0),
        gate(SEL_CODE0, GATE_TARGET, 0xC, 3, 1),
        seg(0, 0xFFFFF, 0x12, 0xC), // data, not present
        seg(TSS2, 0x67, 0x89, 0),
    ];
    let mut gdtr = ((gdt_entries.len() * 8 - 1) as u16).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    w(RAM_IMAGE_AT, &gdtr);
    let mut idtr = 0x7FFu16.to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    w(RAM_IMAGE_AT + 0x10, &idtr);
    for (i, d) in gdt_entries.iter().enumerate() {
        w(GDT + 8 * i as u32, &d.to_le_bytes());
    }
    let idt = [
        (0x0Du32, gate(SEL_CODE0, GP_HANDLER, 0xE, 0, 0)),
        (0x0B, gate(SEL_CODE0, NP_HANDLER, 0xE, 0, 0)),
        (0x0E, gate(SEL_CODE0, PF_HANDLER, 0xE, 0, 0)),
        (0x80, gate(SEL_CODE0, INT80_HANDLER, 0xF, 3, 0)),
        (0x81, gate(SEL_CODE0, INT80_HANDLER, 0xF, 0, 0)),
        (0x82, gate(SEL_CODE0, INT82_HANDLER, 0xF, 3, 0)),
    ];
    for (v, d) in idt {
        w(IDT + 8 * v, &d.to_le_bytes());
    }
    // TSS 1: ring-0 stack, and an I/O bitmap that opens only port 0xE9.
    w(TSS1 + 4, &0x9000u32.to_le_bytes());
    w(TSS1 + 8, &(SEL_DATA0 as u32).to_le_bytes());
    w(TSS1 + 0x66, &0x68u16.to_le_bytes());
    let mut bitmap = vec![0xFFu8; 0x2001];
    bitmap[0xE9 / 8] &= !(1 << (0xE9 % 8));
    w(TSS1 + 0x68, &bitmap);
    // TSS 2: a ring-0 task on its own stack.
    w(TSS2 + 0x20, &TASK2.to_le_bytes());
    w(TSS2 + 0x24, &2u32.to_le_bytes());
    w(TSS2 + 0x38, &0xA000u32.to_le_bytes()); // ESP
    for (i, s) in [
        SEL_DATA0, SEL_CODE0, SEL_DATA0, SEL_DATA0, SEL_DATA0, SEL_DATA0,
    ]
    .iter()
    .enumerate()
    {
        w(TSS2 + 0x48 + 4 * i as u32, &(*s as u32).to_le_bytes());
    }
    img
}

/// A fault handler that prints its name, the error code and the saved CS,
/// then resumes after the faulting instruction (whose length the faulting
/// code left at `SKIP_LEN`), or goes to phase 3 once the V86 part is over.
fn fault_handler(a: &mut CodeAssembler, name: u32, s_cs: u32, s_nl: u32) -> R<()> {
    a.push(ds)?;
    a.push(eax)?;
    a.mov(ax, SEL_DATA0 as u32)?;
    a.mov(ds, ax)?;
    print(a, name)?;
    a.mov(eax, dword_ptr(esp + 8))?;
    a.call(PRINT_HEX)?;
    print(a, s_cs)?;
    a.mov(eax, dword_ptr(esp + 16))?;
    a.call(PRINT_HEX)?;
    print(a, s_nl)?;
    a.cmp(byte_ptr(V86_DONE), 0xFF)?;
    let mut resume = a.create_label();
    a.jne(resume)?;
    a.jmp(PHASE3 as u64)?;
    a.set_label(&mut resume)?;
    a.movzx(eax, byte_ptr(SKIP_LEN))?;
    a.add(dword_ptr(esp + 12), eax)?;
    a.pop(eax)?;
    a.pop(ds)?;
    a.add(esp, 4)?;
    a.iretd()?;
    Ok(())
}

/// The ROM and the console text it must print.
pub fn pmtest_rom() -> R<(Vec<u8>, String)> {
    let mut rom = vec![0xF4u8; 0x1_0000]; // HLT everywhere unused
    let mut st = Strings { bytes: Vec::new() };
    let mut expect = String::new();
    let mut say = |s: &str| expect.push_str(s);

    let s_title = st.add("Ringside protected-mode test ROM\n");
    let s_pm = st.add("ring 0: protected mode on, CS=");
    let s_nl = st.add("\n");
    let s_r3 = st.add("ring 3: entered by IRETD, CS=");
    let s_gp = st.add("#GP error=");
    let s_np = st.add("#NP error=");
    let s_cs = st.add(" saved CS=");
    let s_cli = st.add("ring 3: CLI (IOPL 0)\n");
    let s_in = st.add("ring 3: IN AL,60h (I/O bitmap)\n");
    let s_hlt = st.add("ring 3: HLT\n");
    let s_movds = st.add("ring 3: MOV DS,10h (DPL 0 data)\n");
    let s_int81 = st.add("ring 3: INT 81h (gate DPL 0)\n");
    let s_crx = st.add("ring 3: MOV EAX,CR0\n");
    let s_int80 = st.add("ring 3: INT 80h (trap gate DPL 3)\n");
    let s_int80h = st.add("  int 80h handler, saved CS=");
    let s_gate = st.add("ring 3: CALL FAR through call gate 33h with one parameter\n");
    let s_gateh = st.add("  call gate target: param=");
    let s_cpl = st.add(" CPL=");
    let s_back = st.add("ring 3: back from the gate, CS=");
    let s_esp = st.add(" ESP=");
    let s_popf = st.add("ring 3: POPFD of 00003202h leaves EFLAGS=");
    let s_sgdt = st.add("ring 3: SGDT does not trap, GDT base=");
    let s_p2 = st.add("ring 0: back through INT 82h\n");
    let s_npt = st.add("ring 0: MOV DS,38h (not present)\n");
    let s_task = st.add("ring 0: CALL FAR 40h (a TSS)\n");
    let s_task2 = st.add("  task 2: back link=");
    let s_nt = st.add(" NT=");
    let s_tr = st.add("ring 0: back in task 1, TR=");
    let s_v86 = st.add("ring 0: IRETD to virtual-8086 mode\n");
    let s_v86a = st.add("v86: hello from F000:4000, INT 21h next\n");
    let s_v86b = st.add("v86: HLT next\n");
    let s_v86c = st.add("v86: leaving\n");
    let s_done = st.add("ring 0: all done\n");

    // The strings are also used from V86 code as offsets in segment F000.
    let off16 = |s: u32| s - ROM_BASE;

    say("Ringside protected-mode test ROM\n");
    // Real-mode entry.
    let image = ram_image();
    let entry = code16(ROM_BASE, |a| {
        real_mode_entry(
            a,
            off16(s_title),
            false,
            RAM_IMAGE,
            RAM_IMAGE_AT,
            image.len(),
            MAIN,
            SEL_CODE0,
        )?;
        Ok(())
    })?;
    put(&mut rom, ROM_BASE, &entry);
    put(&mut rom, RAM_IMAGE, &image);

    put(
        &mut rom,
        PRINT as u32,
        &code32(PRINT as u32, print_routine)?,
    );
    put(
        &mut rom,
        PRINT_HEX as u32,
        &code32(PRINT_HEX as u32, print_hex_routine)?,
    );

    // Ring-0 main: flat segments, a TSS, then IRETD to ring 3.
    say("ring 0: protected mode on, CS=00000008\n");
    put(
        &mut rom,
        MAIN,
        &code32(MAIN, |a| {
            a.mov(ax, SEL_DATA0 as u32)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            a.mov(fs, ax)?;
            a.mov(gs, ax)?;
            a.mov(ss, ax)?;
            a.mov(esp, 0x9000u32)?;
            print(a, s_pm)?;
            a.xor(eax, eax)?;
            a.mov(ax, cs)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.mov(ax, SEL_TSS1 as u32)?;
            a.ltr(ax)?;
            a.push(SEL_DATA3 as u32)?;
            a.push(0x8000u32)?;
            a.push(2u32)?;
            a.push(SEL_CODE3 as u32)?;
            a.push(RING3)?;
            a.iretd()?;
            Ok(())
        })?,
    );

    // Ring 3: one fault after another; the handlers resume us.
    say("ring 3: entered by IRETD, CS=0000001B\n");
    let gp = |say: &mut dyn FnMut(&str), err: u32, saved_cs: u32| {
        say(&format!("#GP error={err:08X} saved CS={saved_cs:08X}\n"))
    };
    say("ring 3: CLI (IOPL 0)\n");
    gp(&mut say, 0, 0x1B);
    say("ring 3: IN AL,60h (I/O bitmap)\n");
    gp(&mut say, 0, 0x1B);
    say("ring 3: HLT\n");
    gp(&mut say, 0, 0x1B);
    say("ring 3: MOV DS,10h (DPL 0 data)\n");
    gp(&mut say, 0x10, 0x1B);
    say("ring 3: INT 81h (gate DPL 0)\n");
    gp(&mut say, 0x81 * 8 + 2, 0x1B);
    say("ring 3: MOV EAX,CR0\n");
    gp(&mut say, 0, 0x1B);
    say("ring 3: INT 80h (trap gate DPL 3)\n");
    say("  int 80h handler, saved CS=0000001B\n");
    say("ring 3: CALL FAR through call gate 33h with one parameter\n");
    say("  call gate target: param=1234ABCD CPL=00000000\n");
    say("ring 3: back from the gate, CS=0000001B ESP=00008000\n");
    say("ring 3: POPFD of 00003202h leaves EFLAGS=00000002\n");
    say(&format!("ring 3: SGDT does not trap, GDT base={GDT:08X}\n"));
    put(
        &mut rom,
        RING3,
        &code32(RING3, |a| {
            a.mov(ax, SEL_DATA3 as u32)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            print(a, s_r3)?;
            a.xor(eax, eax)?;
            a.mov(ax, cs)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            print(a, s_cli)?;
            a.mov(byte_ptr(SKIP_LEN), 1)?;
            a.cli()?;
            print(a, s_in)?;
            a.mov(byte_ptr(SKIP_LEN), 2)?;
            a.in_(al, 0x60)?;
            print(a, s_hlt)?;
            a.mov(byte_ptr(SKIP_LEN), 1)?;
            a.hlt()?;
            print(a, s_movds)?;
            a.mov(bx, SEL_DATA0 as u32)?;
            a.mov(byte_ptr(SKIP_LEN), 3)?; // 66 8E DB: code_asm adds an operand-size prefix
            a.mov(ds, bx)?;
            print(a, s_int81)?;
            a.mov(byte_ptr(SKIP_LEN), 2)?;
            a.int(0x81)?;
            print(a, s_crx)?;
            a.mov(byte_ptr(SKIP_LEN), 3)?;
            a.mov(eax, cr0)?;
            print(a, s_int80)?;
            a.int(0x80)?;
            print(a, s_gate)?;
            a.push(0x1234_ABCDu32)?;
            a.db(&[0x9A, 0, 0, 0, 0])?; // call far 33h:0
            a.dw(&[SEL_GATE])?;
            print(a, s_back)?;
            a.xor(eax, eax)?;
            a.mov(ax, cs)?;
            a.call(PRINT_HEX)?;
            print(a, s_esp)?;
            a.mov(eax, esp)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            print(a, s_popf)?;
            a.push(0x3202u32)?;
            a.popfd()?;
            a.pushfd()?;
            a.pop(eax)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            print(a, s_sgdt)?;
            a.sgdt(ptr(SCRATCH))?;
            a.mov(eax, dword_ptr(SCRATCH + 2))?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.int(0x82)?;
            Ok(())
        })?,
    );

    put(
        &mut rom,
        GP_HANDLER,
        &code32(GP_HANDLER, |a| fault_handler(a, s_gp, s_cs, s_nl))?,
    );
    put(
        &mut rom,
        NP_HANDLER,
        &code32(NP_HANDLER, |a| fault_handler(a, s_np, s_cs, s_nl))?,
    );
    put(
        &mut rom,
        INT80_HANDLER,
        &code32(INT80_HANDLER, |a| {
            print(a, s_int80h)?;
            a.mov(eax, dword_ptr(esp + 4))?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.iretd()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        INT82_HANDLER,
        &code32(INT82_HANDLER, |a| {
            a.mov(ax, SEL_DATA0 as u32)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            a.mov(esp, 0x9000u32)?;
            a.jmp(PHASE2 as u64)?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        GATE_TARGET,
        &code32(GATE_TARGET, |a| {
            print(a, s_gateh)?;
            a.mov(eax, dword_ptr(esp + 8))?;
            a.call(PRINT_HEX)?;
            print(a, s_cpl)?;
            a.xor(eax, eax)?;
            a.mov(ax, cs)?;
            a.and(eax, 3)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.db(&[0xCA, 4, 0])?; // retf 4
            Ok(())
        })?,
    );

    say("ring 0: back through INT 82h\n");
    say("ring 0: MOV DS,38h (not present)\n");
    say("#NP error=00000038 saved CS=00000008\n");
    say("ring 0: CALL FAR 40h (a TSS)\n");
    say("  task 2: back link=00000028 NT=00000001\n");
    say("ring 0: back in task 1, TR=00000028\n");
    say("@PAGING@");
    say("ring 0: IRETD to virtual-8086 mode\n");
    say("v86: hello from F000:4000, INT 21h next\n");
    say("#GP error=00000000 saved CS=0000F000\n");
    say("v86: HLT next\n");
    say("#GP error=00000000 saved CS=0000F000\n");
    say("v86: leaving\n");
    say("#GP error=00000000 saved CS=0000F000\n");
    say("ring 0: all done\n");
    put(
        &mut rom,
        PHASE2,
        &code32(PHASE2, |a| {
            print(a, s_p2)?;
            print(a, s_npt)?;
            a.mov(byte_ptr(SKIP_LEN), 3)?;
            a.mov(bx, SEL_NOT_PRESENT as u32)?;
            a.mov(ds, bx)?;
            print(a, s_task)?;
            a.db(&[0x9A, 0, 0, 0, 0])?; // call far 40h:0
            a.dw(&[SEL_TSS2])?;
            print(a, s_tr)?;
            a.xor(eax, eax)?;
            a.str(ax)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.call(PAGING as u64)?;
            print(a, s_v86)?;
            for v in [
                0u32,
                0,
                0,
                0,
                0,
                0x7000,
                0x0002_0002,
                0xF000,
                V86_CODE - ROM_BASE,
            ] {
                a.push(v)?;
            }
            a.iretd()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        TASK2,
        &code32(TASK2, |a| {
            print(a, s_task2)?;
            a.movzx(eax, word_ptr(TSS2))?;
            a.call(PRINT_HEX)?;
            print(a, s_nt)?;
            a.pushfd()?;
            a.pop(eax)?;
            a.shr(eax, 14)?;
            a.and(eax, 1)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            a.iretd()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        PHASE3,
        &code32(PHASE3, |a| {
            a.mov(ax, SEL_DATA0 as u32)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            a.mov(ss, ax)?;
            a.mov(esp, 0x9000u32)?;
            print(a, s_done)?;
            a.mov(al, 0)?;
            a.out(0xF4, al)?;
            a.hlt()?;
            Ok(())
        })?,
    );
    // Paging: identity-map the first 4 MiB with 4 KiB pages, turn paging
    // on, then demand-page a missing page and fix a write-protect fault.
    let s_pg_on = st.add("ring 0: paging on (CR3=0000B000, 4 KiB pages, identity map)\n");
    let s_pg_read = st.add("ring 0: read of unmapped 00300000\n");
    let s_pf = st.add("#PF error=");
    let s_cr2 = st.add(" CR2=");
    let s_fix_map = st.add(": map it, retry\n");
    let s_fix_rw = st.add(": make it writable, retry\n");
    let s_pg_val = st.add("ring 0: read after the fix gave ");
    let s_pte = st.add("ring 0: PTE after read=");
    let s_pte_w = st.add(" after write=");
    let s_wp = st.add("ring 0: CR0.WP=1, write to a read-only page\n");
    let s_pg_done = st.add("ring 0: write went through, paging stays on for V86\n");
    let paging_expected = "ring 0: paging on (CR3=0000B000, 4 KiB pages, identity map)\n\
        ring 0: read of unmapped 00300000\n\
        #PF error=00000000 CR2=00300000: map it, retry\n\
        ring 0: read after the fix gave 00000000\n\
        ring 0: PTE after read=00300027 after write=00300067\n\
        ring 0: CR0.WP=1, write to a read-only page\n\
        #PF error=00000003 CR2=00300004: make it writable, retry\n\
        ring 0: write went through, paging stays on for V86\n";
    put(
        &mut rom,
        PAGING,
        &code32(PAGING, |a| {
            a.mov(edi, PAGE_TABLE)?;
            a.mov(eax, 7u32)?;
            a.mov(ecx, 1024u32)?;
            let mut fill = a.create_label();
            a.set_label(&mut fill)?;
            a.mov(dword_ptr(edi), eax)?;
            a.add(edi, 4)?;
            a.add(eax, 0x1000)?;
            a.dec(ecx)?;
            a.jnz(fill)?;
            a.mov(dword_ptr(PAGE_DIR), PAGE_TABLE | 7)?;
            // The demand page starts out not present.
            a.mov(dword_ptr(PAGE_TABLE + (DEMAND_PAGE >> 12) * 4), 0u32)?;
            a.mov(eax, PAGE_DIR)?;
            a.mov(cr3, eax)?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x8000_0000u32)?;
            a.mov(cr0, eax)?;
            print(a, s_pg_on)?;
            print(a, s_pg_read)?;
            a.mov(byte_ptr(PF_MODE), 0)?;
            a.mov(ebx, dword_ptr(DEMAND_PAGE))?;
            print(a, s_pg_val)?;
            a.mov(eax, ebx)?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            print(a, s_pte)?;
            a.mov(eax, dword_ptr(PAGE_TABLE + (DEMAND_PAGE >> 12) * 4))?;
            a.call(PRINT_HEX)?;
            a.mov(dword_ptr(DEMAND_PAGE), ebx)?;
            print(a, s_pte_w)?;
            a.mov(eax, dword_ptr(PAGE_TABLE + (DEMAND_PAGE >> 12) * 4))?;
            a.call(PRINT_HEX)?;
            print(a, s_nl)?;
            // Read-only now (and the TLB told), then CR0.WP makes ring 0
            // honour it.
            a.and(dword_ptr(PAGE_TABLE + (DEMAND_PAGE >> 12) * 4), !2u32)?;
            a.invlpg(ptr(DEMAND_PAGE))?;
            a.mov(eax, cr0)?;
            a.or(eax, 1u32 << 16)?;
            a.mov(cr0, eax)?;
            print(a, s_wp)?;
            a.mov(byte_ptr(PF_MODE), 1)?;
            a.mov(dword_ptr(DEMAND_PAGE + 4), ebx)?;
            print(a, s_pg_done)?;
            a.ret()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        PF_HANDLER,
        &code32(PF_HANDLER, |a| {
            a.push(eax)?;
            a.push(ebx)?;
            print(a, s_pf)?;
            a.mov(eax, dword_ptr(esp + 8))?;
            a.call(PRINT_HEX)?;
            print(a, s_cr2)?;
            a.mov(eax, cr2)?;
            a.call(PRINT_HEX)?;
            // The PTE of the faulting page.
            a.mov(ebx, eax)?;
            a.shr(ebx, 12)?;
            a.shl(ebx, 2)?;
            a.add(ebx, PAGE_TABLE)?;
            let mut writable = a.create_label();
            let mut done = a.create_label();
            a.cmp(byte_ptr(PF_MODE), 1)?;
            a.je(writable)?;
            print(a, s_fix_map)?;
            a.and(eax, 0xFFFF_F000u32)?;
            a.or(eax, 7)?;
            a.mov(dword_ptr(ebx), eax)?;
            a.jmp(done)?;
            a.set_label(&mut writable)?;
            print(a, s_fix_rw)?;
            a.or(dword_ptr(ebx), 2)?;
            a.set_label(&mut done)?;
            // No INVLPG needed: the faulting translation was never cached.
            a.pop(ebx)?;
            a.pop(eax)?;
            a.add(esp, 4)?;
            a.iretd()?;
            Ok(())
        })?,
    );
    // Virtual-8086 code at F000:4000.
    let v86_print = |a: &mut CodeAssembler, s: u32| -> R<()> {
        a.mov(si, off16(s))?;
        let mut l = a.create_label();
        let mut d = a.create_label();
        a.set_label(&mut l)?;
        a.lodsb()?;
        a.test(al, al)?;
        a.jz(d)?;
        a.out(0xE9, al)?;
        a.jmp(l)?;
        a.set_label(&mut d)?;
        Ok(())
    };
    put(
        &mut rom,
        V86_CODE,
        &code16(V86_CODE - ROM_BASE, |a| {
            // DS = F000 for the strings; the handler's mailbox bytes are in
            // segment 0000, reached through SS (= 0).
            a.push(cs)?;
            a.pop(ds)?;
            a.xor(bp, bp)?;
            v86_print(a, s_v86a)?;
            a.mov(byte_ptr(bp + SKIP_LEN as i32), 2)?;
            a.int(0x21)?;
            v86_print(a, s_v86b)?;
            a.mov(byte_ptr(bp + SKIP_LEN as i32), 1)?;
            a.hlt()?;
            v86_print(a, s_v86c)?;
            a.mov(byte_ptr(bp + V86_DONE as i32), 0xFF)?;
            a.int(0x21)?;
            Ok(())
        })?,
    );

    put(&mut rom, STRINGS, &st.bytes);
    // Reset vector: jmp far F000:0000.
    put(&mut rom, 0xFFFF0, &[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    let expect = expect.replace("@PAGING@", paging_expected);
    Ok((rom, expect))
}
