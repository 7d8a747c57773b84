//! The lesson ROMs behind `ringside lesson NAME`: small guests of our own,
//! each demonstrating one idea about privilege levels and traps. They print
//! their explanations on the debug console (port 0xE9) and pause between
//! steps with a ring-0 `HLT` while IF = 0 — the frontend waits for Enter
//! there, then wakes the CPU.
//!
//! Every lesson shares one skeleton (linear addresses; the ROM is at
//! 0xF0000–0xFFFFF):
//! - 0xF0000 real-mode entry: prints the lesson's introduction, pauses,
//!   copies the system tables to RAM, enters protected mode.
//! - 0xF0800 `print` (ESI = NUL-terminated string), 0xF0900 `print_hex`
//!   (EAX), callable from ring 3: the TSS I/O bitmap opens port 0xE9 only.
//! - 0xF0A00.. handlers: #GP (prints the error code and returns to the
//!   kernel), INT 80h (interrupt gate DPL 3), the call gate's target, the
//!   SYSENTER target (the way back from ring 3 at the end of a step), #UD.
//! - 0xF1000 + 0x100·i: the kernel's block for step i (ring 0). It stores
//!   the next block's address at `RESUME`, so handlers return to it.
//! - 0xF4000 + 0x100·i: step i's ring-3 code (entered by IRETD or SYSEXIT;
//!   it ends with SYSENTER).
//! - 0xF8000 the RAM image (GDT, IDT, TSS), 0xFB800 strings.
//!
//! Every address is fixed, so no code address is ever needed as data.

use iced_x86::code_asm::*;

use crate::pmkit::*;

const PRINT: u32 = 0xF0800;
const PRINT_HEX: u32 = 0xF0900;
const GP_HANDLER: u32 = 0xF0A00;
const INT80_HANDLER: u32 = 0xF0B00;
const GATE_TARGET: u32 = 0xF0C00;
const SYSENTER_TARGET: u32 = 0xF0D00;
const UD_HANDLER: u32 = 0xF0E00;
const PF_HANDLER: u32 = 0xF0E80;
const MAIN: u32 = 0xF0F00;
const KSTEP: u32 = 0xF1000;
const R3STEP: u32 = 0xF4000;
const MAX_STEPS: u32 = 0x30;
/// Ring-3 continuations reached by far transfers: SYSENTER.
const R3_BACK: u32 = 0xF7000;
/// Ring-3 continuation that prints EFLAGS, then SYSENTER.
const R3_SHOW_FLAGS: u32 = 0xF7100;
/// The virtual-8086 monitor (the #GP handler's V86 half).
const V86_MONITOR: u32 = 0xF7200;
/// The hypercall handler (INT 82h, DPL 3): prints the string at ESI.
const HYPERCALL: u32 = 0xF7600;
/// Nonzero: the #GP handler emulates `OUT DX, AL` from ring 3 (a device).
const EMULATE_OUT: u32 = 0x70C;
/// Where a lesson's real-mode (V86) program lives: F000:7800.
const V86_PROGRAM: u32 = 0xF7800;
/// The V86 guest's virtual IF, kept by the monitor.
const VIF: u32 = 0x708;
const RAM_IMAGE: u32 = 0xF8000;
const STRINGS: u32 = 0xFB800;
const STRINGS_END: u32 = 0xFFF00;

const RAM_IMAGE_AT: u32 = 0x400;
const RESUME: u32 = 0x700;
const SCRATCH: u32 = 0x720;
const GDT: u32 = 0x800;
const IDT: u32 = 0x1000;
const TSS: u32 = 0x1800;
const KSTACK: u32 = 0x9000;
const R3STACK: u32 = 0x8000;
const SYSENTER_STACK: u32 = 0xA000;

const SEL_CODE0: u16 = 0x08;
const SEL_DATA0: u16 = 0x10;
const SEL_CODE3: u16 = 0x18 | 3;
const SEL_DATA3: u16 = 0x20 | 3;
const SEL_TSS: u16 = 0x28;
const SEL_GATE: u16 = 0x30 | 3;

/// NUL-terminated strings in the ROM.
pub struct Strings {
    bytes: Vec<u8>,
}

impl Strings {
    fn find(&self, prefix: &str) -> Option<u32> {
        self.bytes
            .windows(prefix.len())
            .position(|w| w == prefix.as_bytes())
            .map(|i| STRINGS + i as u32)
    }

    fn add(&mut self, s: &str) -> u32 {
        let at = STRINGS + self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        at
    }
}

type Body = Box<dyn Fn(&mut CodeAssembler) -> R<()>>;

/// One step of a lesson.
enum Step {
    /// Print a string (ring 0).
    Say(u32),
    /// Wait for the teacher (HLT with IF = 0 in ring 0).
    Pause,
    /// Run `body` in ring 3 (entered by IRETD with this IOPL); it ends with
    /// SYSENTER or a fault, either of which returns to the next step.
    Ring3(u8, Body),
    /// Run `body` in ring 3, entered by SYSEXIT.
    Sysexit(Body),
    /// Run `body` in ring 0.
    Ring0(Body),
}

struct Lesson {
    name: &'static str,
    title: &'static str,
    intro: u32,
    steps: Vec<Step>,
}

fn print(a: &mut CodeAssembler, s: u32) -> R<()> {
    a.mov(esi, s)?;
    a.call(PRINT as u64)?;
    Ok(())
}

/// Print `s`, then EAX in hex, then `tail`.
fn print_value(a: &mut CodeAssembler, s: u32, tail: u32) -> R<()> {
    print(a, s)?;
    a.call(PRINT_HEX as u64)?;
    print(a, tail)?;
    Ok(())
}

fn ram_image() -> Vec<u8> {
    let end = TSS + 0x68 + 0x2001;
    let mut img = vec![0u8; (end - RAM_IMAGE_AT) as usize];
    let mut w = |at: u32, b: &[u8]| {
        let o = (at - RAM_IMAGE_AT) as usize;
        img[o..o + b.len()].copy_from_slice(b);
    };
    let gdt: [u64; 7] = [
        0,
        seg(0, 0xFFFFF, 0x9A, 0xC),
        seg(0, 0xFFFFF, 0x92, 0xC),
        seg(0, 0xFFFFF, 0xFA, 0xC),
        seg(0, 0xFFFFF, 0xF2, 0xC),
        seg(TSS, 0x68 + 0x2000, 0x89, 0),
        gate(SEL_CODE0, GATE_TARGET, 0xC, 3, 0),
    ];
    let mut gdtr = ((gdt.len() * 8 - 1) as u16).to_le_bytes().to_vec();
    gdtr.extend_from_slice(&GDT.to_le_bytes());
    w(RAM_IMAGE_AT, &gdtr);
    let mut idtr = 0x7FFu16.to_le_bytes().to_vec();
    idtr.extend_from_slice(&IDT.to_le_bytes());
    w(RAM_IMAGE_AT + 0x10, &idtr);
    for (i, d) in gdt.iter().enumerate() {
        w(GDT + 8 * i as u32, &d.to_le_bytes());
    }
    for (v, d) in [
        (0x06u32, gate(SEL_CODE0, UD_HANDLER, 0xE, 0, 0)),
        (0x0D, gate(SEL_CODE0, GP_HANDLER, 0xE, 0, 0)),
        (0x0E, gate(SEL_CODE0, PF_HANDLER, 0xE, 0, 0)),
        (0x80, gate(SEL_CODE0, INT80_HANDLER, 0xE, 3, 0)),
        (0x81, gate(SEL_CODE0, INT80_HANDLER, 0xE, 0, 0)),
        (0x82, gate(SEL_CODE0, HYPERCALL, 0xE, 3, 0)),
    ] {
        w(IDT + 8 * v, &d.to_le_bytes());
    }
    // The TSS: the ring-0 stack for entries from ring 3, and an I/O bitmap
    // that opens only the console port 0xE9.
    w(TSS + 4, &KSTACK.to_le_bytes());
    w(TSS + 8, &(SEL_DATA0 as u32).to_le_bytes());
    w(TSS + 0x66, &0x68u16.to_le_bytes());
    let mut bitmap = vec![0xFFu8; 0x2001];
    bitmap[0xE9 / 8] &= !(1 << (0xE9 % 8));
    w(TSS + 0x68, &bitmap);
    img
}

fn build(lesson: &Lesson, st: &Strings, s: &Common) -> R<Vec<u8>> {
    let mut rom = vec![0xF4u8; 0x1_0000];
    let image = ram_image();
    assert!(RAM_IMAGE + image.len() as u32 <= STRINGS);
    assert!(
        (lesson.steps.len() as u32) < MAX_STEPS,
        "{}: too many steps",
        lesson.name
    );
    let intro = lesson.intro - ROM_BASE;
    let mut a = CodeAssembler::new(16)?;
    real_mode_entry(
        &mut a,
        intro,
        true,
        RAM_IMAGE,
        RAM_IMAGE_AT,
        image.len(),
        MAIN,
        SEL_CODE0,
    )?;
    put(&mut rom, ROM_BASE, &a.assemble(ROM_BASE as u64)?);
    put(&mut rom, RAM_IMAGE, &image);

    put(&mut rom, PRINT, &code32(PRINT, print_routine)?);
    put(&mut rom, PRINT_HEX, &code32(PRINT_HEX, print_hex_routine)?);
    let back_to_kernel = |a: &mut CodeAssembler| -> R<()> {
        a.mov(esp, KSTACK)?;
        a.jmp(dword_ptr(RESUME))?;
        Ok(())
    };
    put(
        &mut rom,
        GP_HANDLER,
        &code32(GP_HANDLER, |a| {
            // From virtual-8086 mode: the monitor emulates the instruction.
            a.test(dword_ptr(esp + 12), 0x2_0000)?;
            a.jnz(V86_MONITOR as u64)?;
            // A device the VMM emulates: OUT DX, AL goes to the console.
            let mut generic = a.create_label();
            let mut not_out = a.create_label();
            a.cmp(byte_ptr(EMULATE_OUT), 0)?;
            a.je(generic)?;
            a.push(ebx)?;
            a.mov(ebx, dword_ptr(esp + 8))?; // the faulting EIP
            a.cmp(byte_ptr(ebx), 0xEE)?;
            a.jne(not_out)?;
            a.out(0xE9, al)?;
            a.inc(dword_ptr(esp + 8))?;
            a.pop(ebx)?;
            a.add(esp, 4)?;
            a.iretd()?;
            a.set_label(&mut not_out)?;
            a.pop(ebx)?;
            a.set_label(&mut generic)?;
            a.mov(eax, dword_ptr(esp))?;
            print_value(a, s.gp, s.gp_tail)?;
            back_to_kernel(a)
        })?,
    );
    put(
        &mut rom,
        PF_HANDLER,
        &code32(PF_HANDLER, |a| {
            a.mov(eax, dword_ptr(esp))?;
            print_value(a, s.pf, s.pf_cr2)?;
            a.mov(eax, cr2)?;
            a.call(PRINT_HEX as u64)?;
            print(a, s.nl)?;
            back_to_kernel(a)
        })?,
    );
    put(
        &mut rom,
        UD_HANDLER,
        &code32(UD_HANDLER, |a| {
            print(a, s.ud)?;
            back_to_kernel(a)
        })?,
    );
    put(
        &mut rom,
        INT80_HANDLER,
        &code32(INT80_HANDLER, back_to_kernel)?,
    );
    put(
        &mut rom,
        GATE_TARGET,
        &code32(GATE_TARGET, |a| {
            a.mov(eax, dword_ptr(esp + 4))?; // the caller's CS
            print_value(a, s.gate, s.gate_tail)?;
            a.retf()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        SYSENTER_TARGET,
        &code32(SYSENTER_TARGET, back_to_kernel)?,
    );
    put(
        &mut rom,
        MAIN,
        &code32(MAIN, |a| {
            // Data segments with DPL 3 serve ring 0 and ring 3 alike, so
            // returns to ring 3 keep them.
            a.mov(ax, SEL_DATA3 as u32)?;
            a.mov(ds, ax)?;
            a.mov(es, ax)?;
            a.mov(fs, ax)?;
            a.mov(gs, ax)?;
            a.mov(ax, SEL_DATA0 as u32)?;
            a.mov(ss, ax)?;
            a.mov(esp, KSTACK)?;
            a.mov(ax, SEL_TSS as u32)?;
            a.ltr(ax)?;
            a.xor(edx, edx)?;
            for (msr, v) in [
                (0x174u32, SEL_CODE0 as u32),
                (0x175, SYSENTER_STACK),
                (0x176, SYSENTER_TARGET),
            ] {
                a.mov(ecx, msr)?;
                a.mov(eax, v)?;
                a.wrmsr()?;
            }
            a.jmp(KSTEP as u64)?;
            Ok(())
        })?,
    );
    let monitor = v86_monitor(s)?;
    assert!(V86_MONITOR + (monitor.len() as u32) <= HYPERCALL);
    put(&mut rom, V86_MONITOR, &monitor);
    put(
        &mut rom,
        HYPERCALL,
        &code32(HYPERCALL, |a| {
            a.call(PRINT as u64)?;
            a.iretd()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        R3_BACK,
        &code32(R3_BACK, |a| {
            a.sysenter()?;
            Ok(())
        })?,
    );
    put(
        &mut rom,
        R3_SHOW_FLAGS,
        &code32(R3_SHOW_FLAGS, |a| {
            a.pushfd()?;
            a.pop(eax)?;
            print_value(a, s.eflags_now, s.nl)?;
            a.sysenter()?;
            Ok(())
        })?,
    );

    let n = lesson.steps.len() as u32;
    for (i, step) in lesson.steps.iter().enumerate() {
        let i = i as u32;
        let here = KSTEP + 0x100 * i;
        let next = here + 0x100;
        let r3 = R3STEP + 0x100 * i;
        let k = code32(here, |a| {
            a.mov(dword_ptr(RESUME), next)?;
            match step {
                Step::Say(t) => print(a, *t)?,
                Step::Pause => a.hlt()?,
                Step::Ring0(body) => body(a)?,
                Step::Ring3(iopl, _) => {
                    a.push(SEL_DATA3 as u32)?;
                    a.push(R3STACK)?;
                    a.push(2 | ((*iopl as u32) << 12))?;
                    a.push(SEL_CODE3 as u32)?;
                    a.push(r3)?;
                    a.iretd()?;
                }
                Step::Sysexit(_) => {
                    a.mov(edx, r3)?;
                    a.mov(ecx, R3STACK)?;
                    a.sysexit()?;
                }
            }
            if !matches!(step, Step::Ring3(..) | Step::Sysexit(_)) {
                a.jmp(next as u64)?;
            }
            Ok(())
        })?;
        assert!(
            k.len() <= 0x100,
            "{} step {i}: kernel block too long",
            lesson.name
        );
        put(&mut rom, here, &k);
        if let Step::Ring3(_, body) | Step::Sysexit(body) = step {
            let c = code32(r3, |a| {
                body(a)?;
                a.sysenter()?;
                Ok(())
            })?;
            assert!(
                c.len() <= 0x100,
                "{} step {i}: ring-3 block too long",
                lesson.name
            );
            put(&mut rom, r3, &c);
        }
    }
    // After the last step: the end message and the exit port.
    put(
        &mut rom,
        KSTEP + 0x100 * n,
        &code32(KSTEP + 0x100 * n, |a| {
            print(a, s.end)?;
            a.xor(eax, eax)?;
            a.out(0xF4, eax)?;
            a.hlt()?;
            Ok(())
        })?,
    );
    assert!(
        STRINGS + st.bytes.len() as u32 <= STRINGS_END,
        "strings too long"
    );
    put(&mut rom, STRINGS, &st.bytes);
    put(&mut rom, 0xFFFF0, &[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    Ok(rom)
}

/// The #GP handler's virtual-8086 half: look at the opcode at CS:IP,
/// emulate CLI, STI, INT 21h/09h, IN AL,imm8, OUT imm8,AL and HLT.
fn v86_monitor(s: &Common) -> R<Vec<u8>> {
    code32(V86_MONITOR, |a| {
        a.pushad()?;
        a.mov(ax, SEL_DATA3 as u32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        // Frame after PUSHAD: 32 bytes of registers, the error code, then
        // EIP, CS, EFLAGS, ESP, SS, ES, DS, FS, GS.
        let f = 36;
        a.movzx(ebx, word_ptr(esp + f + 4))?; // CS
        a.shl(ebx, 4)?;
        a.movzx(eax, word_ptr(esp + f))?; // IP
        a.add(ebx, eax)?;
        a.mov(eax, ebx)?;
        print(a, s.mon)?;
        a.call(PRINT_HEX as u64)?;
        a.movzx(eax, byte_ptr(ebx))?;
        let mut cli = a.create_label();
        let mut sti = a.create_label();
        let mut int = a.create_label();
        let mut inp = a.create_label();
        let mut out = a.create_label();
        let mut hlt = a.create_label();
        let mut other = a.create_label();
        let mut done1 = a.create_label();
        let mut done2 = a.create_label();
        a.cmp(al, 0xFA)?;
        a.je(cli)?;
        a.cmp(al, 0xFB)?;
        a.je(sti)?;
        a.cmp(al, 0xCD)?;
        a.je(int)?;
        a.cmp(al, 0xE4)?;
        a.je(inp)?;
        a.cmp(al, 0xE6)?;
        a.je(out)?;
        a.cmp(al, 0xF4)?;
        a.je(hlt)?;
        a.jmp(other)?;

        a.set_label(&mut cli)?;
        a.mov(byte_ptr(VIF), 0)?;
        print(a, s.mon_cli)?;
        a.jmp(done1)?;

        a.set_label(&mut sti)?;
        a.mov(byte_ptr(VIF), 1)?;
        print(a, s.mon_sti)?;
        a.jmp(done1)?;

        a.set_label(&mut int)?;
        a.cmp(byte_ptr(ebx + 1), 0x21)?;
        a.jne(other)?;
        a.cmp(byte_ptr(esp + 29), 0x09)?; // AH
        a.jne(other)?;
        print(a, s.mon_int)?;
        a.movzx(esi, word_ptr(esp + f + 24))?; // DS
        a.shl(esi, 4)?;
        a.movzx(eax, word_ptr(esp + 20))?; // DX
        a.add(esi, eax)?;
        a.mov(edx, 0xE9u32)?;
        let mut l = a.create_label();
        let mut e = a.create_label();
        a.set_label(&mut l)?;
        a.mov(al, byte_ptr(esi))?;
        a.cmp(al, b'$' as u32)?;
        a.je(e)?;
        a.out(dx, al)?;
        a.inc(esi)?;
        a.jmp(l)?;
        a.set_label(&mut e)?;
        print(a, s.mon_int_end)?;
        a.jmp(done2)?;

        a.set_label(&mut inp)?;
        a.mov(byte_ptr(esp + 28), 0x1C)?; // the guest's AL
        print(a, s.mon_in)?;
        a.jmp(done2)?;

        a.set_label(&mut out)?;
        print(a, s.mon_out)?;
        a.jmp(done2)?;

        a.set_label(&mut hlt)?;
        print(a, s.mon_hlt)?;
        a.mov(esp, KSTACK)?;
        a.jmp(dword_ptr(RESUME))?;

        a.set_label(&mut other)?;
        print(a, s.mon_other)?;
        a.mov(esp, KSTACK)?;
        a.jmp(dword_ptr(RESUME))?;

        // Skip the emulated instruction (one or two bytes) and resume.
        a.set_label(&mut done2)?;
        a.inc(word_ptr(esp + f))?;
        a.set_label(&mut done1)?;
        a.inc(word_ptr(esp + f))?;
        a.popad()?;
        a.add(esp, 4)?;
        a.iretd()?;
        Ok(())
    })
}

/// Strings every lesson uses.
struct Common {
    gp: u32,
    gp_tail: u32,
    ud: u32,
    gate: u32,
    gate_tail: u32,
    eflags_now: u32,
    nl: u32,
    end: u32,
    pf: u32,
    pf_cr2: u32,
    mon: u32,
    mon_cli: u32,
    mon_sti: u32,
    mon_int: u32,
    mon_int_end: u32,
    mon_in: u32,
    mon_out: u32,
    mon_hlt: u32,
    mon_other: u32,
}

fn common(st: &mut Strings) -> Common {
    Common {
        gp: st.add("  -> #GP, error code "),
        gp_tail: st.add(": trapped, ring 0 has control (a VMM would see it)\n"),
        ud: st.add("  -> #UD: invalid opcode\n"),
        gate: st.add("  ring 0, in the call gate's target; the caller's CS was "),
        gate_tail: st.add(". RETF goes back out.\n"),
        eflags_now: st.add("  EFLAGS now "),
        nl: st.add("\n"),
        end: st.add("End of the lesson.\n"),
        pf: st.add("  -> #PF, error code "),
        pf_cr2: st.add(", CR2 (the faulting address) = "),
        mon: st.add("  monitor: #GP from virtual-8086 mode at linear "),
        mon_cli: st.add(": CLI, so the guest's virtual IF = 0 (the real IF is untouched)\n"),
        mon_sti: st.add(": STI, so the guest's virtual IF = 1\n"),
        mon_int: st.add(": INT 21h, AH = 09h, emulated as DOS would: \""),
        mon_int_end: st.add("\"\n"),
        mon_in: st.add(": IN AL, 60h, emulated: the guest gets AL = 1Ch (a virtual Enter key)\n"),
        mon_out: st.add(": OUT 80h, AL, emulated: a POST code for a device we pretend to have\n"),
        mon_hlt: st.add(": HLT, the guest is done; the monitor takes over\n"),
        mon_other: st.add(": not an instruction this monitor emulates; stopping the guest\n"),
    }
}

/// Ring-3 code: run `ins`, then say it did not trap.
fn attempt(
    st: &mut Strings,
    label: &str,
    ins: impl Fn(&mut CodeAssembler) -> R<()> + 'static,
) -> Step {
    let s = st.add(&format!("ring 3: {label}\n"));
    let ok = st.add("  ran without a trap\n");
    Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s)?;
            ins(a)?;
            print(a, ok)?;
            Ok(())
        }),
    )
}

fn rings(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: rings\n\
         The CPU starts in real mode: no protection and no rings, every instruction allowed.\n\
         Next: load a GDT and an IDT, set CR0.PE, jump to a ring-0 code segment.\n",
    );
    let r3_hello = st.add("  ring 3 now (CS = 1Bh: index 3, RPL 3). INT 80h next.\n");
    let r3_gate = st.add("  ring 3: CALL FAR 33h:0 (a call gate, DPL 3)\n");
    let r3_back = st.add("  ring 3 again, on the ring-3 stack. INT 80h next.\n");
    let r3_sysenter = st.add("  ring 3: SYSENTER\n");
    let r3_sysexit = st.add("  ring 3 via SYSEXIT: CS = ");
    let r3_hlt = st.add("  ring 3: HLT (not allowed here)\n");
    let nl = st.add("\n");
    Lesson {
        name: "rings",
        title: "real mode, protected mode, ring 3 and the ways back to ring 0",
        intro,
        steps: vec![
            say(st, "Protected mode: we run in ring 0, the kernel's ring (CS = 08h).\n\
                     The TSS holds the stack for entries from ring 3: SS0:ESP0 = 0010:00009000.\n\
                     Next: IRETD with a ring-3 frame. The only way down to ring 3 is to 'return' there.\n"),
            Step::Pause,
            Step::Ring3(
                0,
                Box::new(move |a| {
                    print(a, r3_hello)?;
                    a.int(0x80)?;
                    Ok(())
                }),
            ),
            say(st, "Back in ring 0 through interrupt gate 80h (DPL 3, so ring 3 may use it).\n\
                     The CPU switched to the TSS's ring-0 stack and pushed ring 3's SS, ESP, EFLAGS, CS, EIP there.\n\
                     Next: a far CALL through a call gate.\n"),
            Step::Pause,
            Step::Ring3(
                0,
                Box::new(move |a| {
                    print(a, r3_gate)?;
                    a.db(&[0x9A, 0, 0, 0, 0])?; // call far 33h:0
                    a.dw(&[SEL_GATE])?;
                    print(a, r3_back)?;
                    a.int(0x80)?;
                    Ok(())
                }),
            ),
            say(st, "Next: SYSENTER, the fast system call. No gate and no TSS: CS, EIP and ESP come from\n\
                     MSRs 174h-176h, which ring 0 wrote with WRMSR (a privileged instruction).\n"),
            Step::Pause,
            Step::Ring3(0, Box::new(move |a| {
                print(a, r3_sysenter)?;
                a.sysenter()?;
                Ok(())
            })),
            say(st, "Back in ring 0 via SYSENTER, on the stack MSR 175h named (0010:0000A000).\n"),
            say(st, "Next: SYSEXIT back to ring 3: CS = SYSENTER_CS + 16 (RPL 3), EIP = EDX, ESP = ECX.\n"),
            Step::Pause,
            Step::Sysexit(Box::new(move |a| {
                print(a, r3_sysexit)?;
                a.xor(eax, eax)?;
                a.mov(ax, cs)?;
                a.call(PRINT_HEX as u64)?;
                print(a, nl)?;
                print(a, r3_hlt)?;
                a.hlt()?;
                Ok(())
            })),
            say(st, "An exception is the last way up: #GP went through IDT entry 0Dh, again onto the TSS's stack.\n\
                     Summary: down only by returning (IRET, RETF, SYSEXIT); up only through doors ring 0 built\n\
                     (interrupt and trap gates, call gates, SYSENTER's MSRs), each onto a stack ring 0 chose.\n"),
        ],
    }
}

fn privileged(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: privileged instructions\n\
         A ring-3 program tries, one by one, the instructions only ring 0 may execute.\n\
         Each raises #GP: the kernel - or a virtual machine monitor (VMM) - gets control and could\n\
         emulate it. Popek and Goldberg call them privileged; trap-and-emulate relies on them.\n",
    );
    let mut steps = vec![
        say(
            st,
            "Protected mode, ring 0. Next: ring 3 tries the privileged instructions (IOPL = 0).\n",
        ),
        Step::Pause,
    ];
    type Ins = fn(&mut CodeAssembler) -> R<()>;
    let list: [(&str, Ins); 17] = [
        ("HLT", |a| Ok(a.hlt()?)),
        ("LGDT [400h]", |a| Ok(a.lgdt(ptr(RAM_IMAGE_AT))?)),
        ("LIDT [410h]", |a| Ok(a.lidt(ptr(RAM_IMAGE_AT + 0x10))?)),
        ("LLDT AX", |a| {
            a.xor(eax, eax)?;
            Ok(a.lldt(ax)?)
        }),
        ("LTR AX", |a| {
            a.mov(eax, SEL_TSS as u32)?;
            Ok(a.ltr(ax)?)
        }),
        ("LMSW AX", |a| {
            a.mov(eax, 1u32)?;
            Ok(a.lmsw(ax)?)
        }),
        ("CLTS", |a| Ok(a.clts()?)),
        ("MOV EAX, CR0", |a| Ok(a.mov(eax, cr0)?)),
        ("MOV CR3, EAX", |a| {
            a.xor(eax, eax)?;
            Ok(a.mov(cr3, eax)?)
        }),
        ("MOV EAX, DR7", |a| Ok(a.mov(eax, dr7)?)),
        ("INVLPG [0]", |a| Ok(a.invlpg(ptr(0u32))?)),
        ("WBINVD", |a| Ok(a.wbinvd()?)),
        ("INVD", |a| Ok(a.invd()?)),
        ("RDMSR (ECX = 174h)", |a| {
            a.mov(ecx, 0x174u32)?;
            Ok(a.rdmsr()?)
        }),
        ("WRMSR (ECX = 174h)", |a| {
            a.mov(ecx, 0x174u32)?;
            Ok(a.wrmsr()?)
        }),
        ("CLI (IOPL-sensitive: CPL 3 > IOPL 0)", |a| Ok(a.cli()?)),
        ("STI (IOPL-sensitive)", |a| Ok(a.sti()?)),
    ];
    for (label, ins) in list {
        steps.push(attempt(st, label, ins));
    }
    steps.push(say(st, "Every one trapped. Port I/O is IOPL-sensitive too, with a second chance:\n\
                        the TSS I/O permission bitmap. Ours opens port E9h (this console) and nothing else.\n"));
    steps.push(Step::Pause);
    steps.push(attempt(
        st,
        "OUT E9h, AL (port open in the bitmap; prints '!')",
        |a| {
            a.mov(al, b'!' as u32)?;
            a.out(0xE9, al)?;
            a.mov(al, b'\n' as u32)?;
            Ok(a.out(0xE9, al)?)
        },
    ));
    steps.push(attempt(
        st,
        "IN AL, 60h (keyboard port, closed in the bitmap)",
        |a| Ok(a.in_(al, 0x60)?),
    ));
    steps.push(attempt(st, "INT 81h (an interrupt gate with DPL 0)", |a| {
        Ok(a.int(0x81)?)
    }));
    steps.push(say(
        st,
        "Next: the same CLI and IN with IOPL = 3 in EFLAGS: now ring 3 may do them.\n",
    ));
    steps.push(Step::Pause);
    let s_iopl = st.add("ring 3 with IOPL 3: CLI, IN AL,60h\n");
    let s_ok = st.add("  both ran without a trap\n");
    steps.push(Step::Ring3(
        3,
        Box::new(move |a| {
            print(a, s_iopl)?;
            a.cli()?;
            a.in_(al, 0x60)?;
            print(a, s_ok)
        }),
    ));
    steps.push(say(st, "Some instructions are privileged only if ring 0 says so. RDTSC with CR4.TSD = 0 runs\n\
                        anywhere (and tells ring 3 the real time); ring 0 now sets CR4.TSD and ring 3 tries again.\n"));
    steps.push(Step::Pause);
    steps.push(attempt(st, "RDTSC (CR4.TSD = 0)", |a| Ok(a.rdtsc()?)));
    steps.push(Step::Ring0(Box::new(|a| {
        a.mov(eax, cr4)?;
        a.or(eax, 4)?;
        a.mov(cr4, eax)?;
        Ok(())
    })));
    steps.push(attempt(st, "RDTSC (CR4.TSD = 1)", |a| Ok(a.rdtsc()?)));
    steps.push(say(st, "Summary: privileged and IOPL-sensitive instructions trap when ring 3 runs them, so a VMM\n\
                        that runs its guest's kernel deprivileged sees each one and can emulate it.\n\
                        Next lesson (holes): the instructions that should trap but do not.\n"));
    Lesson {
        name: "privileged",
        title: "privileged and IOPL-sensitive instructions trapping in ring 3; the TSS I/O bitmap",
        intro,
        steps,
    }
}

fn holes(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: the holes in x86 virtualization\n\
         A VMM runs its guest's kernel in ring 3 and waits for it to trap. Popek and Goldberg (1974):\n\
         this works if every sensitive instruction - one that reads or changes the machine's protection\n\
         state - is privileged. On x86 seventeen are not (Robin and Irvine, 2000). Each runs here in\n\
         ring 3, as a deprivileged guest kernel would run it. Watch the trap log: none reaches ring 0.\n",
    );
    let mut steps = vec![
        say(
            st,
            "First the instructions that reveal state the VMM would want to hide.\n",
        ),
        Step::Pause,
    ];
    let nl = st.add("\n");
    let show = |st: &mut Strings, label: &str, what: &str, ins: fn(&mut CodeAssembler) -> R<()>| {
        let s = st.add(&format!("ring 3: {label}\n  {what} "));
        Step::Ring3(
            0,
            Box::new(move |a| {
                print(a, s)?;
                ins(a)?;
                a.call(PRINT_HEX as u64)?;
                print(a, nl)
            }),
        )
    };
    steps.push(show(
        st,
        "SGDT [720h]",
        "no trap; the real GDT base is",
        |a| {
            a.sgdt(ptr(SCRATCH))?;
            Ok(a.mov(eax, dword_ptr(SCRATCH + 2))?)
        },
    ));
    steps.push(show(
        st,
        "SIDT [720h]",
        "no trap; the real IDT base is",
        |a| {
            a.sidt(ptr(SCRATCH))?;
            Ok(a.mov(eax, dword_ptr(SCRATCH + 2))?)
        },
    ));
    steps.push(show(st, "SLDT AX", "no trap; LDTR =", |a| {
        a.xor(eax, eax)?;
        Ok(a.sldt(ax)?)
    }));
    steps.push(show(st, "STR AX", "no trap; TR (the VMM's TSS) =", |a| {
        a.xor(eax, eax)?;
        Ok(a.str(ax)?)
    }));
    steps.push(show(
        st,
        "SMSW EAX",
        "no trap; CR0's low bits (PE = 1 even if the guest thinks real mode) =",
        |a| {
            a.smsw(eax)?;
            Ok(a.and(eax, 0xFFFF)?)
        },
    ));
    steps.push(show(
        st,
        "PUSHFD",
        "no trap; the real EFLAGS (IF, IOPL) =",
        |a| {
            a.pushfd()?;
            Ok(a.pop(eax)?)
        },
    ));
    steps.push(show(
        st,
        "MOV AX, CS",
        "no trap; CS (RPL 3 tells the guest kernel it is not in ring 0) =",
        |a| {
            a.xor(eax, eax)?;
            Ok(a.mov(ax, cs)?)
        },
    ));
    steps.push(show(st, "PUSH CS / POP EAX", "no trap; CS =", |a| {
        a.push(cs)?;
        a.pop(eax)?;
        Ok(a.and(eax, 0xFFFF)?)
    }));
    steps.push(say(
        st,
        "Next: instructions that change protection state, or fail to, without a trap.\n",
    ));
    steps.push(Step::Pause);
    steps.push(show(
        st,
        "PUSH 3202h / POPFD (asks IF = 1, IOPL = 3)",
        "no trap, changes silently dropped; EFLAGS =",
        |a| {
            a.push(0x3202u32)?;
            a.popfd()?;
            a.pushfd()?;
            Ok(a.pop(eax)?)
        },
    ));
    let s_iret = st.add("ring 3: IRETD to ring 3 with IF = 1, IOPL = 3 in the frame\n");
    steps.push(Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s_iret)?;
            a.push(0x3202u32)?;
            a.push(SEL_CODE3 as u32)?;
            a.push(R3_SHOW_FLAGS)?;
            a.iretd()?;
            Ok(())
        }),
    ));
    steps.push(show(
        st,
        "MOV AX, 23h / MOV DS, AX",
        "no trap; the load was checked against the real CPL, DS =",
        |a| {
            a.mov(eax, SEL_DATA3 as u32)?;
            a.mov(ds, ax)?;
            Ok(a.mov(ax, ds)?)
        },
    ));
    steps.push(show(st, "PUSH DS / POP DS", "no trap; DS =", |a| {
        a.push(ds)?;
        a.pop(ds)?;
        a.xor(eax, eax)?;
        Ok(a.mov(ax, ds)?)
    }));
    steps.push(say(
        st,
        "Next: asking about descriptors. The answers use the real CPL (3) and the real tables.\n",
    ));
    steps.push(Step::Pause);
    steps.push(show(
        st,
        "LAR EAX, 10h (the kernel's data segment)",
        "no trap; ZF (1 = usable) =",
        |a| {
            a.mov(ecx, SEL_DATA0 as u32)?;
            a.lar(eax, ecx)?;
            a.setz(al)?;
            Ok(a.movzx(eax, al)?)
        },
    ));
    steps.push(show(
        st,
        "LSL EAX, 23h (the user data segment)",
        "no trap; the limit =",
        |a| {
            a.mov(ecx, SEL_DATA3 as u32)?;
            Ok(a.lsl(eax, ecx)?)
        },
    ));
    steps.push(show(st, "VERR 10h", "no trap; ZF =", |a| {
        a.mov(ecx, SEL_DATA0 as u32)?;
        a.verr(cx)?;
        a.setz(al)?;
        Ok(a.movzx(eax, al)?)
    }));
    steps.push(show(st, "VERW 23h", "no trap; ZF =", |a| {
        a.mov(ecx, SEL_DATA3 as u32)?;
        a.verw(cx)?;
        a.setz(al)?;
        Ok(a.movzx(eax, al)?)
    }));
    steps.push(say(
        st,
        "Next: far transfers and INT n, checked against the real CPL.\n",
    ));
    steps.push(Step::Pause);
    let s_jmp = st.add("ring 3: JMP FAR 1Bh:... (same ring): no trap\n");
    steps.push(Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s_jmp)?;
            a.db(&[0xEA])?;
            a.dd(&[R3_BACK])?;
            a.dw(&[SEL_CODE3])?;
            Ok(())
        }),
    ));
    let s_retf = st.add("ring 3: RETF to 1Bh:... (same ring): no trap\n");
    steps.push(Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s_retf)?;
            a.push(SEL_CODE3 as u32)?;
            a.push(R3_BACK)?;
            a.retf()?;
            Ok(())
        }),
    ));
    let s_call = st.add(
        "ring 3: CALL FAR 33h:0 (call gate to ring 0): no trap to the VMM, straight into ring 0\n",
    );
    steps.push(Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s_call)?;
            a.db(&[0x9A, 0, 0, 0, 0])?;
            a.dw(&[SEL_GATE])?;
            Ok(())
        }),
    ));
    let s_int = st.add(
        "ring 3: INT 80h (gate DPL 3): straight into ring 0's handler, not the guest kernel's\n",
    );
    steps.push(Step::Ring3(
        0,
        Box::new(move |a| {
            print(a, s_int)?;
            a.int(0x80)?;
            Ok(())
        }),
    ));
    steps.push(say(st, "Summary: none of these trapped, so a trap-and-emulate VMM could not hide its own state\n\
                        nor follow its guest. Workarounds: binary translation (VMware, 1999) rewrites them;\n\
                        paravirtualization (Xen, 2003) changes the guest to call the VMM instead (hypercalls);\n\
                        Intel VT-x and AMD-V (2005-06) add a mode below ring 0 in which they cause VM exits.\n"));
    Lesson {
        name: "holes",
        title: "the Robin & Irvine instructions: sensitive, yet they run in ring 3 without a trap",
        intro,
        steps,
    }
}

const PD: u32 = 0x20000;
const PT: u32 = 0x21000;

fn pte(page: u32) -> u32 {
    PT + 4 * page
}

fn paging(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: paging\n\
         Paging maps linear addresses to physical ones through tables in memory, page by page (4 KiB),\n\
         with a present bit, a writable bit and a user bit per page. The CPU caches translations in the\n\
         TLB, and the kernel must tell it when a table changes.\n",
    );
    let nl = st.add("\n");
    let value = move |st: &mut Strings, label: &str| -> u32 { st.add(label) };
    let s_pte_read = value(st, "  PTE of 300000h after a read (A = bit 5): ");
    let s_pte_write = value(st, "  PTE of 300000h after a write (D = bit 6): ");
    let s_first = value(st, "  read [304000h] = ");
    let s_stale = value(
        st,
        "  PTE now points to 305000h; without INVLPG, read [304000h] = ",
    );
    let s_fresh = value(st, "  after INVLPG [304000h], read [304000h] = ");
    let s_wp0 = value(
        st,
        "  ring 0 wrote the read-only page 301000h with CR0.WP = 0: no fault\n",
    );
    let s_r3 = value(st, "ring 3: read [303000h], a supervisor-only page\n");
    let s_r3w = value(st, "ring 3: write [301000h], a read-only user page\n");
    let steps = vec![
        say(st, "Ring 0 builds a page directory at 20000h and one page table at 21000h mapping the first\n\
                 4 MiB to themselves (present, writable, user), except:\n\
                 300000h not present, 301000h read-only, 303000h supervisor-only.\n"),
        Step::Ring0(Box::new(|a| {
            a.mov(edi, PT)?;
            a.mov(eax, 7u32)?;
            a.mov(ecx, 1024u32)?;
            let mut l = a.create_label();
            a.set_label(&mut l)?;
            a.mov(dword_ptr(edi), eax)?;
            a.add(eax, 0x1000)?;
            a.add(edi, 4)?;
            a.loop_(l)?;
            a.mov(dword_ptr(PD), PT | 7)?;
            a.mov(dword_ptr(pte(0x300)), 0u32)?;
            a.mov(dword_ptr(pte(0x301)), 0x30_1000u32 | 5)?;
            a.mov(dword_ptr(pte(0x303)), 0x30_3000u32 | 3)?;
            a.mov(dword_ptr(0x30_4000u32), 0xAAAA_AAAAu32)?;
            a.mov(dword_ptr(0x30_5000u32), 0xBBBB_BBBBu32)?;
            Ok(())
        })),
        say(st, "Next: CR3 = 20000h (the page directory), then CR0.PG = 1.\n"),
        Step::Pause,
        Step::Ring0(Box::new(|a| {
            a.mov(eax, PD)?;
            a.mov(cr3, eax)?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x8000_0000u32 as i32)?;
            a.mov(cr0, eax)?;
            Ok(())
        })),
        say(st, "Paging is on, and we are still running: the code's pages map to themselves.\n\
                 Next: read 300000h, which is not present.\n"),
        Step::Pause,
        Step::Ring0(Box::new(|a| {
            a.mov(eax, dword_ptr(0x30_0000u32))?;
            Ok(())
        })),
        say(st, "A page fault: error code bit 0 = 0 means 'not present'. A kernel would now load the page\n\
                 (demand paging). We map it, read it, then write it, and watch the PTE's A and D bits.\n"),
        Step::Pause,
        Step::Ring0(Box::new(move |a| {
            a.mov(dword_ptr(pte(0x300)), 0x30_0000u32 | 3)?;
            a.mov(eax, dword_ptr(0x30_0000u32))?;
            a.mov(eax, dword_ptr(pte(0x300)))?;
            print_value(a, s_pte_read, nl)?;
            a.mov(dword_ptr(0x30_0000u32), 1u32)?;
            a.mov(eax, dword_ptr(pte(0x300)))?;
            print_value(a, s_pte_write, nl)
        })),
        say(st, "Next: the TLB. Read 304000h, point its PTE at 305000h, read again, then INVLPG.\n"),
        Step::Pause,
        Step::Ring0(Box::new(move |a| {
            a.mov(eax, dword_ptr(0x30_4000u32))?;
            print_value(a, s_first, nl)?;
            a.mov(dword_ptr(pte(0x304)), 0x30_5000u32 | 7)?;
            a.mov(eax, dword_ptr(0x30_4000u32))?;
            print_value(a, s_stale, nl)?;
            a.invlpg(ptr(0x30_4000u32))?;
            a.mov(eax, dword_ptr(0x30_4000u32))?;
            print_value(a, s_fresh, nl)
        })),
        say(st, "The stale value came from the TLB: changing a page table is not enough, the kernel must\n\
                 invalidate the translation (INVLPG one page, or reload CR3 for all non-global ones).\n\
                 Next: protection. Ring 0 writes a read-only page, first with CR0.WP = 0, then with WP = 1.\n"),
        Step::Pause,
        Step::Ring0(Box::new(move |a| {
            a.mov(dword_ptr(0x30_1000u32), 1u32)?;
            print(a, s_wp0)?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x1_0000)?;
            a.mov(cr0, eax)?;
            a.mov(dword_ptr(0x30_1000u32), 2u32)?;
            Ok(())
        })),
        say(st, "With WP = 1 even ring 0 may not write read-only pages (error code 3: present, write).\n\
                 Next: ring 3 touches a supervisor page, then writes a read-only one.\n"),
        Step::Pause,
        Step::Ring3(
            0,
            Box::new(move |a| {
                print(a, s_r3)?;
                a.mov(eax, dword_ptr(0x30_3000u32))?;
                Ok(())
            }),
        ),
        Step::Ring3(
            0,
            Box::new(move |a| {
                print(a, s_r3w)?;
                a.mov(dword_ptr(0x30_1000u32), 3u32)?;
                Ok(())
            }),
        ),
        say(st, "Error code bit 2 = 1: the access came from user mode. Last: MOV CR3, CR3 flushes the TLB.\n"),
        Step::Ring0(Box::new(|a| {
            a.mov(eax, cr3)?;
            a.mov(cr3, eax)?;
            Ok(())
        })),
        say(st, "Summary: a page fault says which rule failed (present, write, user); A and D bits record\n\
                 use; the TLB must be invalidated by hand. A VMM without hardware help keeps shadow page\n\
                 tables in step with the guest's by write-protecting them: every guest PTE write traps.\n"),
    ];
    Lesson {
        name: "paging",
        title: "page tables, page faults by kind, accessed/dirty bits, the TLB and INVLPG",
        intro,
        steps,
    }
}

fn v86(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: virtual-8086 mode, x86's own trap-and-emulate\n\
         A 16-bit real-mode program runs in virtual-8086 mode under a tiny ring-0 monitor.\n\
         Ordinary instructions run directly on the CPU; with IOPL < 3 the ones that touch interrupts\n\
         or devices (CLI, STI, INT n, IN, OUT, HLT) raise #GP, and the monitor emulates them.\n\
         This is exactly what a trap-and-emulate VMM does, in hardware, since the 386 (1985).\n",
    );
    // Found again by `v86_program`'s caller, which places the program.
    st.add("Hello from a DOS-style program in virtual-8086 mode!$");
    let steps = vec![
        say(st, "Protected mode, ring 0: the monitor. Next: IRETD with EFLAGS.VM = 1 into F000:7800,\n\
                 with IOPL = 0, so every sensitive instruction of the program comes to the monitor.\n"),
        Step::Pause,
        Step::Ring0(Box::new(|a| {
            a.mov(byte_ptr(VIF), 1)?;
            for seg in [0u32, 0, 0xF000, 0] {
                a.push(seg)?; // GS, FS, DS, ES
            }
            a.push(0u32)?; // SS
            a.push(0x7000u32)?; // SP
            a.push(0x2_0002u32)?; // EFLAGS: VM = 1, IOPL = 0, IF = 0
            a.push(0xF000u32)?; // CS
            a.push(V86_PROGRAM - 0xF0000)?; // IP
            a.iretd()?;
            Ok(())
        })),
        say(st, "Back in the monitor for good. Every #GP above was a trap from virtual-8086 mode; the\n\
                 additions, moves and jumps in between ran natively, at full speed. Popek and Goldberg's\n\
                 recipe, in silicon, for real mode: x86 could virtualize 8086 programs (DOS boxes in\n\
                 Windows 386), but not itself (see the holes lesson).\n"),
    ];
    Lesson {
        name: "v86",
        title: "virtual-8086 mode: a ring-0 monitor emulating CLI, STI, INT, IN, OUT for a real-mode program",
        intro,
        steps,
    }
}

fn hypercall(st: &mut Strings) -> Lesson {
    let say = |st: &mut Strings, t: &str| Step::Say(st.add(t));
    let intro = st.add(
        "Lesson: hypercalls (paravirtualization) versus trapping on port I/O\n\
         A guest kernel, deprivileged in ring 3, prints a line on a serial port that the VMM emulates.\n\
         First the way an unmodified guest does it: one OUT per byte, each one a trap. Then the way a\n\
         guest that knows it is virtualized does it: one call to the VMM for the whole line.\n",
    );
    let trapped = st.add("one trap per byte\n");
    let direct = st.add("one hypercall for the whole line\n");
    let steps = vec![
        say(st, "Next: ring 3 writes 18 bytes to port 3F8h, closed in the I/O bitmap. Each OUT raises #GP;\n\
                 the VMM emulates it (here: copies the byte to the console) and resumes the guest.\n"),
        Step::Pause,
        Step::Ring0(Box::new(|a| {
            a.mov(byte_ptr(EMULATE_OUT), 1)?;
            Ok(())
        })),
        Step::Ring3(
            0,
            Box::new(move |a| {
                a.mov(esi, trapped)?;
                a.mov(edx, 0x3F8u32)?;
                let mut l = a.create_label();
                let mut d = a.create_label();
                a.set_label(&mut l)?;
                a.lodsb()?;
                a.test(al, al)?;
                a.jz(d)?;
                a.out(dx, al)?;
                a.jmp(l)?;
                a.set_label(&mut d)?;
                Ok(())
            }),
        ),
        Step::Ring0(Box::new(|a| {
            a.mov(byte_ptr(EMULATE_OUT), 0)?;
            Ok(())
        })),
        say(st, "18 traps, each a round trip ring 3 -> ring 0 -> ring 3 (count the #GP lines in the log).\n\
                 Next: the same line with one hypercall, INT 82h with ESI = the string. The gate has DPL 3\n\
                 and leads straight into the VMM: an interface made for a guest that knows.\n"),
        Step::Pause,
        Step::Ring3(
            0,
            Box::new(move |a| {
                a.mov(esi, direct)?;
                a.int(0x82)?;
                Ok(())
            }),
        ),
        say(st, "Summary: one switch into the VMM instead of one per byte. Xen's hypercalls, virtio's\n\
                 queues and Ringside's own BIOS (its stubs do OUT 0E0h with a service number and the\n\
                 emulator answers in Rust) are this idea: paravirtualization trades an unmodified guest\n\
                 for far fewer traps.\n"),
    ];
    Lesson {
        name: "hypercall",
        title: "paravirtualization: one hypercall versus a trap per emulated port write",
        intro,
        steps,
    }
}

/// The real-mode program the v86 lesson runs at F000:7800.
fn v86_program(hello_off: u32) -> R<Vec<u8>> {
    let mut a = CodeAssembler::new(16)?;
    a.cli()?;
    a.mov(dx, hello_off)?;
    a.mov(ah, 9)?;
    a.int(0x21)?;
    a.mov(cx, 3)?;
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.add(bx, cx)?;
    a.loop_(l)?;
    a.in_(al, 0x60)?;
    a.out(0x80, al)?;
    a.sti()?;
    a.hlt()?;
    Ok(a.assemble((V86_PROGRAM - 0xF0000) as u64)?)
}

/// Build every lesson into `out`, with `lessons.rs` listing them.
pub fn write_all(out: &std::path::Path) -> R<()> {
    let mut list = String::from(
        "// Generated by roms/build/lessons.rs.\n\
         /// A built-in lesson guest.\n\
         #[derive(Debug)]\n\
         pub struct Lesson {\n    /// Its name on the command line.\n    pub name: &'static str,\n\
         \x20   /// One line: what it shows.\n    pub title: &'static str,\n\
         \x20   /// The ROM image (64 KiB at 0xF0000).\n    pub rom: &'static [u8],\n}\n\
         /// The lessons, in teaching order.\n\
         pub static LESSONS: &[Lesson] = &[\n",
    );
    for make in [rings, privileged, holes, v86, paging, hypercall] {
        let mut st = Strings { bytes: Vec::new() };
        let c = common(&mut st);
        let lesson = make(&mut st);
        let mut rom = build(&lesson, &st, &c)?;
        if lesson.name == "v86" {
            let hello = st.find("Hello from a DOS").expect("v86 string");
            put(&mut rom, V86_PROGRAM, &v86_program(hello - ROM_BASE)?);
        }
        let file = format!("lesson_{}.bin", lesson.name);
        std::fs::write(out.join(&file), &rom)?;
        list.push_str(&format!(
            "    Lesson {{ name: {:?}, title: {:?}, rom: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\")) }},\n",
            lesson.name, lesson.title
        ));
    }
    list.push_str("];\n");
    std::fs::write(out.join("lessons.rs"), list)?;
    Ok(())
}
