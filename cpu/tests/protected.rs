//! Protected-mode rules, one small program each: the harness builds the
//! GDT, IDT and TSS in memory, puts the CPU in protected mode at the wanted
//! CPL, runs a 32-bit snippet and reports how it ended — by reaching its
//! end (INT 80h through a DPL-3 trap gate) or through which exception, with
//! which error code and saved CS:EIP. Each rule is tested where it fires
//! and where it does not.

mod common;

use common::*;
use iced_x86::code_asm::*;
use ringside_cpu::{gpr, Cpu, SegReg};

#[test]
fn expand_down_segment_limits() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, EXPAND_DOWN as u32)?;
            a.mov(es, ax)?;
            a.mov(eax, dword_ptr(0x1000).es())
        }),
        End::Done
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, EXPAND_DOWN as u32)?;
            a.mov(es, ax)?;
            a.mov(eax, dword_ptr(0x0FFE).es())
        }),
        gp(0)
    );
}

#[test]
fn segment_types_on_load_and_on_access() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // Read-only data: reads work, writes are #GP(0).
    let ro = |w: bool| {
        move |a: &mut CodeAssembler| {
            a.mov(ax, READ_ONLY as u32)?;
            a.mov(es, ax)?;
            if w {
                a.mov(dword_ptr(0x500).es(), eax)
            } else {
                a.mov(eax, dword_ptr(0x500).es())
            }
        }
    };
    assert_end!(run(&mut cpu, 0, &mut bus, ro(false)), End::Done);
    assert_end!(run(&mut cpu, 0, &mut bus, ro(true)), gp(0));
    // Execute-only code cannot be loaded into a data register.
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, EXEC_ONLY as u32)?;
            a.mov(ds, ax)
        }),
        gp(EXEC_ONLY as u32)
    );
    // Readable conforming code can, at any CPL.
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ax, CONFORMING as u32)?;
            a.mov(ds, ax)
        }),
        End::Done
    );
    // A code segment is never writable, even through CS.
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(dword_ptr(0x500).cs(), eax)),
        gp(0)
    );
}

#[test]
fn null_selectors() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.xor(eax, eax)?;
            a.mov(es, ax)
        }),
        End::Done
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.xor(eax, eax)?;
            a.mov(es, ax)?;
            a.mov(eax, dword_ptr(0).es())
        }),
        gp(0)
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.xor(eax, eax)?;
            a.mov(ss, ax)
        }),
        gp(0)
    );
}

#[test]
fn privilege_checks_on_data_and_stack_loads() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // CPL 3 may not load DPL-0 data; may load DPL-3 data.
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ax, DATA0 as u32)?;
            a.mov(ds, ax)
        }),
        gp(DATA0 as u32)
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ax, DATA3 as u32)?;
            a.mov(ds, ax)
        }),
        End::Done
    );
    // RPL 3 on a DPL-0 selector at CPL 0 fails too (RPL > DPL).
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, (DATA0 | 3) as u32)?;
            a.mov(ds, ax)
        }),
        gp(DATA0 as u32)
    );
    // SS needs DPL = RPL = CPL; not present is #SS(sel), other data #NP(sel).
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, DATA3 as u32)?;
            a.mov(ss, ax)
        }),
        gp(DATA3 as u32 & !3)
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ax, NOT_PRESENT3 as u32)?;
            a.mov(ss, ax)
        }),
        End::Fault(12, Some(NOT_PRESENT3 as u32 & !3), 0, 0)
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ax, NOT_PRESENT3 as u32)?;
            a.mov(ds, ax)
        }),
        End::Fault(11, Some(NOT_PRESENT3 as u32 & !3), 0, 0)
    );
    // A selector beyond the GDT limit.
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, 0x1000u32)?;
            a.mov(ds, ax)
        }),
        gp(0x1000)
    );
}

#[test]
fn ldt_selectors_need_an_ldt() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, 4u32)?;
            a.mov(ds, ax)
        }),
        gp(4)
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, LDT_SEL as u32)?;
            a.lldt(ax)?;
            a.mov(ax, 4u32)?;
            a.mov(ds, ax)?;
            a.mov(eax, dword_ptr(0x10))
        }),
        End::Done
    );
    assert_eq!(cpu.segs[SegReg::Ds as usize].base, 0x4_0000);
}

#[test]
fn lar_lsl_verr_verw_arpl() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.mov(ecx, DATA3 as u32)?;
            a.lar(eax, ecx)?;
            a.setz(bl)?;
            a.lsl(edx, ecx)?;
            a.mov(ecx, DATA0 as u32)?;
            a.lar(esi, ecx)?; // DPL 0 from CPL 3: ZF=0
            a.setz(bh)?;
            a.mov(ecx, READ_ONLY as u32)?;
            a.verw(cx)?;
            a.setz(cl)?;
            a.mov(edi, DATA3 as u32)?;
            a.verr(di)?;
            a.setz(ch)?;
            a.mov(edi, 0x10u32)?;
            a.mov(ebp, 3u32)?;
            a.arpl(di, bp)
        }),
        End::Done
    );
    assert_eq!(
        cpu.regs[gpr::EBX] & 0xFFFF,
        0x0001,
        "LAR DATA3 ZF=1, LAR DATA0 at CPL3 ZF=0"
    );
    assert_eq!(
        cpu.regs[gpr::EAX],
        0x00CF_F200,
        "access rights: G, D/B, limit 19:16, P, DPL 3, type"
    );
    assert_eq!(cpu.regs[gpr::EDX], 0xFFFF_FFFF);
    assert_eq!(
        cpu.regs[gpr::ECX] & 0xFFFF,
        0x0100,
        "VERW read-only data: ZF=0; VERR DATA3 at CPL 3: ZF=1"
    );
    assert_eq!(cpu.regs[gpr::EDI] & 0xFFFF, 0x13, "ARPL raised RPL to 3");
}

#[test]
fn conforming_code_keeps_the_cpl() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.db(&[0xEA])?; // jmp far CONFORMING:next
            a.dd(&[CODE + 7])?;
            a.dw(&[CONFORMING])?;
            a.mov(eax, cs)
        }),
        End::Done
    );
    assert_eq!(
        cpu.regs[gpr::EAX] & 0xFFFF,
        (CONFORMING | 3) as u32,
        "CS.RPL stays 3"
    );
    assert_eq!(
        cpu.cpl(),
        0,
        "the DONE trap gate took us to ring 0 at the end"
    );
    // A non-conforming DPL-0 target from CPL 3 is #GP(sel).
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.db(&[0xEA])?;
            a.dd(&[CODE + 7])?;
            a.dw(&[CODE0])
        }),
        gp(CODE0 as u32)
    );
}

#[test]
fn call_gate_to_ring0_switches_stacks_and_copies_parameters() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // Target (ring 0): read both parameters and the caller's SS:ESP from the
    // new stack, then RETF 8 back to ring 3.
    let mut t = CodeAssembler::new(32).unwrap();
    t.mov(esi, dword_ptr(esp + 8)).unwrap();
    t.mov(edi, dword_ptr(esp + 12)).unwrap();
    t.mov(ebp, dword_ptr(esp + 16)).unwrap();
    t.mov(ebx, cs).unwrap();
    t.mov(edx, esp).unwrap();
    t.db(&[0xCA, 8, 0]).unwrap(); // retf 8
    write(
        &mut cpu,
        HANDLERS + 0x1300,
        &t.assemble((HANDLERS + 0x1300) as u64).unwrap(),
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.push(0x2222u32)?;
            a.push(0x1111u32)?;
            a.db(&[0x9A, 0, 0, 0, 0])?; // call far GATE32:0
            a.dw(&[GATE32 | 3])?;
            a.mov(eax, esp)
        }),
        End::Done
    );
    assert_eq!(cpu.regs[gpr::ESI], 0x1111, "parameters keep their order");
    assert_eq!(cpu.regs[gpr::EDI], 0x2222);
    assert_eq!(
        cpu.regs[gpr::EBP],
        STACK3 - 8,
        "the caller's ESP follows the parameters"
    );
    assert_eq!(
        cpu.regs[gpr::EBX] & 0xFFFF,
        CODE0 as u32,
        "ring 0 in the target"
    );
    assert_eq!(
        cpu.regs[gpr::EDX],
        STACK0 - 6 * 4,
        "new stack from TSS.ESP0 holds SS, ESP, 2 params, CS, EIP"
    );
    assert_eq!(
        cpu.regs[gpr::EAX],
        STACK3,
        "RETF 8 dropped the parameters on the outer stack"
    );
    // A gate of DPL 3 is usable from ring 3; the same gate at DPL 0 is not.
    set_gdt(&mut cpu, GATE32, gate(CODE0, HANDLERS + 0x1300, 0xC, 0, 2));
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.db(&[0x9A, 0, 0, 0, 0])?;
            a.dw(&[GATE32 | 3])
        }),
        gp(GATE32 as u32)
    );
    let _ = CODE16;
}

#[test]
fn return_to_outer_ring_nulls_privileged_data_segments() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // From ring 0 with DS = DATA0 and ES = DATA3: RETF to ring 3.
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, DATA3 as u32)?;
            a.mov(es, ax)?;
            a.push(DATA3 as u32)?;
            a.push(STACK3)?;
            a.push(CODE3 as u32)?;
            a.push(CODE + 0x40)?;
            a.retf()?;
            a.db(&[0x90; 48])
        }),
        End::Done
    );
    assert_eq!(
        cpu.segs[SegReg::Ds as usize].selector,
        0,
        "DS (DPL 0) nulled"
    );
    assert_eq!(
        cpu.segs[SegReg::Es as usize].selector,
        DATA3,
        "ES (DPL 3) kept"
    );
}

#[test]
fn gate_dpl_for_software_interrupts_only() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.int(0x30)),
        gp(0x30 * 8 + 2)
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.int3()),
        End::Fault(3, None, 0, 0)
    );
    // An external interrupt through a DPL-0 gate from ring 3 is fine.
    bus.irq = Some(0x30);
    let mut b2 = TestBus {
        irq: Some(0x30),
        ..Default::default()
    };
    let end = run(&mut cpu, 3, &mut b2, |a| {
        a.nop()?;
        a.nop()
    });
    let _ = bus;
    assert_end!(end, End::Done); // IF is clear: the interrupt waits
    assert!(b2.irq.is_some());
}

#[test]
fn ext_bit_in_error_codes_of_external_events() {
    let mut cpu = machine();
    // Vector 0x31 not present.
    set_idt(
        &mut cpu,
        0x31,
        gate(CODE0, HANDLERS, 0xE, 0, 0) & !(0x80u64 << 40),
    );
    let mut bus = TestBus {
        irq: Some(0x31),
        ..Default::default()
    };
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.sti()?;
        a.nop()?;
        a.nop()
    });
    assert_end!(end, End::Fault(11, Some(0x31 * 8 + 2 + 1), 0, 0));
    // The same vector by INT n: EXT clear.
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.int(0x31)),
        End::Fault(11, Some(0x31 * 8 + 2), 0, 0)
    );
}

#[test]
fn io_permission_bitmap_and_iopl() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.in_(al, 0x40)), End::Done);
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.in_(al, 0x60)), gp(0));
    // A word at 0x5F touches 0x60: closed.
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.in_(ax, 0x5F)), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.in_(al, 0x5F)), End::Done);
    // IOPL 3: the bitmap is not consulted, CLI is allowed.
    let f = cpu.eflags();
    cpu.set_eflags(f | 0x3000);
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.in_(al, 0x60)?;
            a.cli()
        }),
        End::Done
    );
    cpu.set_eflags(f & !0x3000);
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.cli()), gp(0));
}

#[test]
fn privileged_instructions_at_cpl3() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.hlt()), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.lgdt(ptr(0x500))), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.mov(eax, cr3)), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.mov(dr7, eax)), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.wbinvd()), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.rdmsr()), gp(0));
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.clts()), gp(0));
    // Not privileged: SGDT, SMSW, RDTSC with CR4.TSD clear.
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| {
            a.sgdt(ptr(0x500))?;
            a.smsw(ax)?;
            a.rdtsc()
        }),
        End::Done
    );
    cpu.cr[4] |= 1 << 2;
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.rdtsc()), gp(0));
    assert_end!(run(&mut cpu, 0, &mut bus, |a| a.rdtsc()), End::Done);
}

#[test]
fn alignment_check_needs_am_ac_and_cpl3() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    let misaligned = |a: &mut CodeAssembler| a.mov(eax, dword_ptr(0x501));
    assert_end!(run(&mut cpu, 3, &mut bus, misaligned), End::Done);
    cpu.cr[0] |= 1 << 18;
    let f = cpu.eflags();
    cpu.set_eflags(f | (1 << 18));
    assert_end!(
        run(&mut cpu, 3, &mut bus, misaligned),
        End::Fault(17, Some(0), 0, 0)
    );
    assert_end!(run(&mut cpu, 0, &mut bus, misaligned), End::Done);
}

#[test]
fn sysenter_and_sysexit() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    cpu.sysenter = [CODE0 as u32, 0x7000, CODE + 0x20];
    // SYSENTER at ring 3 → ring 0 at CODE+0x20; there, SYSEXIT back to
    // EDX with ESP = ECX.
    let end = run(&mut cpu, 3, &mut bus, |a| {
        a.mov(edx, CODE + 0x40)?;
        a.mov(ecx, 0x6000u32)?;
        a.sysenter()?;
        a.db(&[0x90; 0x20])?;
        a.mov(ebx, esp)?; // at CODE+0x20-ish is reached via NOP slide
        a.sysexit()?;
        a.db(&[0x90; 0x20])
    });
    assert_end!(end, End::Done);
    assert_eq!(cpu.regs[gpr::EBX], 0x7000, "ring-0 stack from SYSENTER_ESP");
    // SYSEXIT at CPL 3 is #GP(0).
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.sysexit()), gp(0));
    cpu.sysenter[0] = 0;
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.sysenter()), gp(0));
}

#[test]
fn task_gate_in_the_idt_switches_tasks_and_pushes_the_error_code() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // Task 2: ring 0, runs HLT at HANDLERS+0xF00 with its own stack.
    let t2 = 0x5000;
    write(&mut cpu, t2 + 0x20, &(HANDLERS + 0xF00).to_le_bytes());
    write(&mut cpu, t2 + 0x24, &2u32.to_le_bytes());
    write(&mut cpu, t2 + 0x38, &0xA000u32.to_le_bytes());
    for (i, s) in [DATA0, CODE0, DATA0, DATA0, DATA0, DATA0]
        .iter()
        .enumerate()
    {
        write(
            &mut cpu,
            t2 + 0x48 + 4 * i as u32,
            &(*s as u32).to_le_bytes(),
        );
    }
    write(&mut cpu, HANDLERS + 0xF00, &[0xF4]);
    set_idt(&mut cpu, 13, gate(TSS2_SEL, 0, 0x5, 0, 0));
    let mut a = CodeAssembler::new(32).unwrap();
    a.hlt().unwrap(); // #GP at CPL 3
    write(&mut cpu, CODE, &a.assemble(CODE as u64).unwrap());
    load(&mut cpu, SegReg::Cs, CODE3);
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs] {
        load(&mut cpu, s, DATA3);
    }
    cpu.set_cpl(3);
    cpu.eip = CODE;
    cpu.regs[gpr::ESP] = STACK3;
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.tr.selector, TSS2_SEL);
    assert_eq!(cpu.eip, HANDLERS + 0xF01);
    assert_eq!(
        cpu.regs[gpr::ESP],
        0xA000 - 4,
        "error code pushed on the new task's stack"
    );
    assert_eq!(cpu.mem.peek(0xA000 - 4), 0);
    assert!(cpu.eflags() & (1 << 14) != 0, "NT set");
    assert_eq!(
        u16::from_le_bytes([cpu.mem.peek(t2), cpu.mem.peek(t2 + 1)]),
        TSS_SEL,
        "back link"
    );
    // The old task's state was saved: its EIP is the faulting HLT.
    let saved_eip =
        u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(TSS + 0x20 + i as u32)));
    assert_eq!(saved_eip, CODE);
    assert_eq!(cpu.cr[0] & 8, 8, "CR0.TS set by the switch");
}

#[test]
fn jmp_to_a_busy_tss_is_gp() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // Mark the current TSS busy in the GDT (as LTR would) and JMP to it.
    set_gdt(&mut cpu, TSS_SEL, seg(TSS, 0x68 + 0x2000, 0x8B, 0));
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.db(&[0xEA, 0, 0, 0, 0])?;
            a.dw(&[TSS_SEL])
        }),
        gp(TSS_SEL as u32)
    );
}

#[test]
fn contributory_fault_during_delivery_is_double_fault_then_shutdown() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    let bad_load = |a: &mut CodeAssembler| {
        a.mov(ax, 0x1000u32)?;
        a.mov(ds, ax)
    };
    // #GP's gate is not present: #NP while delivering #GP → #DF.
    set_idt(
        &mut cpu,
        13,
        gate(CODE0, HANDLERS + 13 * 16, 0xE, 0, 0) & !(0x80u64 << 40),
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, bad_load),
        End::Fault(8, Some(0), 0, 0)
    );
    // And #DF's gate missing too: shutdown.
    set_idt(&mut cpu, 8, 0);
    assert_end!(run(&mut cpu, 0, &mut bus, bad_load), End::Shutdown);
}

#[test]
fn benign_fault_during_delivery_is_delivered_serially() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // #UD gate not present: #NP(6*8+2+EXT), not #DF (#UD is benign).
    set_idt(
        &mut cpu,
        6,
        gate(CODE0, HANDLERS + 6 * 16, 0xE, 0, 0) & !(0x80u64 << 40),
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.ud2()),
        End::Fault(11, Some(6 * 8 + 3), 0, 0)
    );
    // A gate that is not a gate at all (an all-zero entry) is #GP, checked
    // before the present bit.
    set_idt(&mut cpu, 6, 0);
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.ud2()),
        End::Fault(13, Some(6 * 8 + 3), 0, 0)
    );
    set_idt(
        &mut cpu,
        6,
        gate(CODE0, HANDLERS + 6 * 16, 0xE, 0, 0) & !(0x80u64 << 40),
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.ud2()),
        End::Fault(11, Some(6 * 8 + 3), 0, 0)
    );
}

#[test]
fn iret_to_outer_ring_and_flag_rules() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // From ring 0, IRETD to ring 3 with IF and IOPL=3 in the image: both load.
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.push(DATA3 as u32)?;
        a.push(STACK3)?;
        a.push(0x3202u32)?;
        a.push(CODE3 as u32)?;
        a.push(CODE + 0x30)?;
        a.iretd()?;
        a.db(&[0x90; 0x30])?;
        a.pushfd()?;
        a.pop(ebx)
    });
    assert_end!(end, End::Done);
    assert_eq!(cpu.regs[gpr::EBX] & 0x3200, 0x3200);
}

#[test]
fn stack_switch_fault_reports_the_new_stack() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // INT 90h from ring 3 goes to a ring-1 handler; SS1 in the TSS is a
    // DPL-3 segment: #TS(SS1), delivered on the (good) ring-0 stack.
    set_idt(&mut cpu, 0x90, gate(CODE1, HANDLERS, 0xE, 3, 0));
    write(&mut cpu, TSS + 0x10, &(DATA3 as u32).to_le_bytes());
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.int(0x90)),
        End::Fault(10, Some(DATA3 as u32 & !3), 0, 0)
    );
    // With SS0 itself bad, the #TS cannot be delivered either: #DF, whose
    // delivery fails the same way: shutdown.
    write(&mut cpu, TSS + 8, &(DATA3 as u32).to_le_bytes());
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.int(DONE as u32)),
        End::Shutdown
    );
    let _ = DATA0_16BIT_STACK;
}

#[test]
fn hardware_breakpoints() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // Instruction breakpoint on the second instruction: a #DB fault there,
    // DR6.B0 set, saved EIP = that instruction.
    cpu.dr[0] = CODE + 5;
    cpu.dr[7] = 0x401;
    set_dr7(&mut cpu, 0x401);
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, 1u32)?; // 5 bytes
        a.mov(ebx, 2u32)
    });
    assert_eq!(end, End::Fault(1, None, CODE0, CODE + 5));
    assert_eq!(cpu.dr[6] & 0xF, 1);
    // A data write breakpoint on a dword at 0x500: a trap after the store.
    cpu.dr[6] = 0xFFFF_0FF0;
    cpu.dr[1] = 0x500;
    set_dr7(&mut cpu, 0x401 & !1 | (1 << 2) | (0b1101 << 20));
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, dword_ptr(0x500))?; // a read does not match a write breakpoint
        a.mov(dword_ptr(0x502), eax)?; // overlaps 0x500..0x503: hit
        a.nop()
    });
    match end {
        End::Fault(1, None, saved_cs, saved_eip) => {
            assert_eq!(saved_cs, CODE0);
            assert_eq!(
                saved_eip,
                CODE + 10,
                "trap: saved EIP is after the MOV (A1, A3 forms: 5 bytes each)"
            );
        }
        other => panic!("expected a #DB trap, got {other:?}"),
    }
    assert_eq!(cpu.dr[6] & 0xF, 2);
    // The breakpoint stays armed after it fired.
    let again = run(&mut cpu, 0, &mut bus, |a| a.mov(dword_ptr(0x500), eax));
    assert!(matches!(again, End::Fault(1, None, _, _)), "{again:?}");
    // Disabled in DR7: nothing.
    set_dr7(&mut cpu, 0x400);
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(dword_ptr(0x500), eax)),
        End::Done
    );
}

/// Write DR7 the way a guest does (MOV DR7, EAX at CPL 0).
fn set_dr7(cpu: &mut Cpu, v: u32) {
    let mut bus = TestBus::default();
    cpu.regs[gpr::EAX] = v;
    let mut a = CodeAssembler::new(32).unwrap();
    a.mov(dr7, eax).unwrap();
    a.hlt().unwrap();
    write(
        cpu,
        CODE + 0x800,
        &a.assemble((CODE + 0x800) as u64).unwrap(),
    );
    load(cpu, SegReg::Cs, CODE0);
    cpu.set_cpl(0);
    cpu.wake();
    cpu.eip = CODE + 0x800;
    cpu.run(&mut bus, u64::MAX, 10);
    assert_eq!(cpu.dr[7] & 0xFF, v & 0xFF);
}

#[test]
fn segment_loads_set_the_accessed_bit() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    let acc = |cpu: &Cpu| cpu.mem.peek(GDT + (READ_ONLY as u32 & !7) + 5);
    assert_eq!(acc(&cpu) & 1, 0);
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(ax, READ_ONLY as u32)?;
            a.mov(es, ax)
        }),
        End::Done
    );
    assert_eq!(
        acc(&cpu) & 1,
        1,
        "the load wrote the accessed bit back to the GDT"
    );
}

#[test]
fn lmsw_cannot_clear_pe() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.xor(eax, eax)?;
            a.lmsw(ax)?;
            a.smsw(ebx)
        }),
        End::Done
    );
    assert_eq!(cpu.regs[gpr::EBX] & 1, 1, "PE stays set");
    assert_end!(run(&mut cpu, 3, &mut bus, |a| a.lmsw(ax)), gp(0));
}

/// A ring-0 task at TSS2 (0x5000) that runs HLT at `eip`; `t_bit` sets
/// the debug trap bit.
fn make_task2(cpu: &mut Cpu, eip: u32, t_bit: bool) {
    let t2 = 0x5000;
    write(cpu, t2, &[0; 0x68]);
    write(cpu, t2 + 0x20, &eip.to_le_bytes());
    write(cpu, t2 + 0x24, &2u32.to_le_bytes());
    write(cpu, t2 + 0x38, &0xA000u32.to_le_bytes());
    for (i, s) in [DATA0, CODE0, DATA0, DATA0, DATA0, DATA0]
        .iter()
        .enumerate()
    {
        write(cpu, t2 + 0x48 + 4 * i as u32, &(*s as u32).to_le_bytes());
    }
    write(cpu, t2 + 0x64, &(t_bit as u16).to_le_bytes());
    write(cpu, eip, &[0xF4]);
    set_gdt(cpu, TSS2_SEL, seg(t2, 0x67, 0x89, 0));
    // The current task's TSS must be marked busy (as LTR does).
    set_gdt(cpu, TSS_SEL, seg(TSS, 0x68 + 0x2000, 0x8B, 0));
}

fn tss_type(cpu: &Cpu, sel: u16) -> u8 {
    cpu.mem.peek(GDT + (sel as u32 & !7) + 5) & 0xF
}

#[test]
fn jmp_to_a_tss_frees_the_old_task_and_busies_the_new_one() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    make_task2(&mut cpu, HANDLERS + 0xF00, false);
    let mut a = CodeAssembler::new(32).unwrap();
    a.db(&[0xEA, 0, 0, 0, 0]).unwrap();
    a.dw(&[TSS2_SEL]).unwrap();
    enter(&mut cpu, 0, &a.assemble(CODE as u64).unwrap());
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.eip, HANDLERS + 0xF01);
    assert_eq!(
        tss_type(&cpu, TSS_SEL),
        0x9,
        "old task available again (JMP)"
    );
    assert_eq!(tss_type(&cpu, TSS2_SEL), 0xB, "new task busy");
    assert_eq!(cpu.eflags() & (1 << 14), 0, "JMP does not set NT");
    assert_eq!(
        u16::from_le_bytes([cpu.mem.peek(0x5000), cpu.mem.peek(0x5001)]),
        0,
        "no back link"
    );
}

#[test]
fn tss_debug_trap_bit_raises_db_after_the_switch() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    make_task2(&mut cpu, HANDLERS + 0xF00, true);
    let mut a = CodeAssembler::new(32).unwrap();
    a.db(&[0x9A, 0, 0, 0, 0]).unwrap();
    a.dw(&[TSS2_SEL]).unwrap();
    enter(&mut cpu, 0, &a.assemble(CODE as u64).unwrap());
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(
        cpu.eip,
        HANDLERS + 16 + 1,
        "#DB taken before task 2's first instruction"
    );
    assert_ne!(cpu.dr[6] & (1 << 15), 0, "DR6.BT");
    // The #DB frame holds task 2's first EIP.
    let top = cpu.regs[gpr::ESP];
    let saved = u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(top + i as u32)));
    assert_eq!(saved, HANDLERS + 0xF00);
}

#[test]
fn sixteen_bit_tss_switch() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // A 16-bit TSS (type 1) for task 2: IP, FLAGS, registers, ES CS SS DS.
    let t2 = 0x5000;
    write(&mut cpu, t2, &[0; 0x2C]);
    write(&mut cpu, t2 + 0x0E, &0x0F00u16.to_le_bytes()); // IP in CODE16 (base 0x20000)
    write(&mut cpu, t2 + 0x10, &2u16.to_le_bytes());
    write(&mut cpu, t2 + 0x12 + 2 * 3, &0xBEEFu16.to_le_bytes()); // BX
    write(&mut cpu, t2 + 0x12 + 2 * 4, &0x0800u16.to_le_bytes()); // SP
    for (i, s) in [
        DATA0_16BIT_STACK,
        CODE16,
        DATA0_16BIT_STACK,
        DATA0_16BIT_STACK,
    ]
    .iter()
    .enumerate()
    {
        write(&mut cpu, t2 + 0x22 + 2 * i as u32, &s.to_le_bytes());
    }
    write(&mut cpu, 0x20F00, &[0xF4]);
    set_gdt(&mut cpu, TSS2_SEL, seg(t2, 0x2B, 0x81, 0));
    set_gdt(&mut cpu, TSS_SEL, seg(TSS, 0x68 + 0x2000, 0x8B, 0));
    let mut a = CodeAssembler::new(32).unwrap();
    a.db(&[0x9A, 0, 0, 0, 0]).unwrap();
    a.dw(&[TSS2_SEL]).unwrap();
    enter(&mut cpu, 0, &a.assemble(CODE as u64).unwrap());
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.segs[SegReg::Cs as usize].selector, CODE16);
    assert_eq!(cpu.eip, 0x0F01);
    assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 0xBEEF);
    assert_eq!(tss_type(&cpu, TSS2_SEL), 0x3, "16-bit TSS now busy");
}

#[test]
fn v86_pushf_popf_cli_need_iopl3() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    let v86_run = |cpu: &mut Cpu, bus: &mut TestBus, iopl: u32, code: &[u8]| -> End {
        // Ring 0 at CODE+0x800 IRETDs into V86 code at 1000:0000 (= CODE).
        let mut a = CodeAssembler::new(32).unwrap();
        for v in [
            0u32,
            0,
            0,
            0,
            0x2000,
            0x0800,
            0x0002_0002 | (iopl << 12),
            0x1000,
            0,
        ] {
            a.push(v).unwrap();
        }
        a.iretd().unwrap();
        let stub = a.assemble((CODE + 0x800) as u64).unwrap();
        enter(cpu, 0, code);
        write(cpu, CODE + 0x800, &stub);
        cpu.eip = CODE + 0x800;
        cpu.run(bus, u64::MAX, 100);
        assert!(cpu.is_halted());
        End::Fault(((cpu.eip - 1 - HANDLERS) / 16) as u8, None, 0, 0)
    };
    // PUSHF at IOPL 0 → #GP (vector 13 handler halts).
    assert_eq!(
        v86_run(&mut cpu, &mut bus, 0, &[0x9C]),
        End::Fault(13, None, 0, 0)
    );
    // At IOPL 3, PUSHF, POPF and CLI run; then INT 80h (DPL 3, ring 0).
    assert_eq!(
        v86_run(&mut cpu, &mut bus, 3, &[0x9C, 0x9D, 0xFA, 0xCD, 0x80]),
        End::Fault(DONE, None, 0, 0)
    );
    // CLI at IOPL 0 → #GP.
    assert_eq!(
        v86_run(&mut cpu, &mut bus, 0, &[0xFA]),
        End::Fault(13, None, 0, 0)
    );
}

#[test]
fn sixteen_bit_call_gate_copies_word_parameters() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    const CODE3_16: u16 = 0x90 | 3;
    const STACK3_16: u16 = 0x98 | 3;
    const GATE16: u16 = 0xA0 | 3;
    set_gdt(&mut cpu, CODE3_16, seg(CODE, 0xFFFF, 0xFA, 0x0));
    set_gdt(&mut cpu, STACK3_16, seg(0, 0xFFFF, 0xF2, 0x0));
    set_gdt(&mut cpu, GATE16, gate(CODE16, 0x0300, 0x4, 3, 2));
    // Ring-0 target (16-bit code at CODE16:0300): read the two word
    // parameters, the caller's SS:SP, then RETF 4.
    let mut t = CodeAssembler::new(16).unwrap();
    t.mov(bp, sp).unwrap();
    t.mov(si, word_ptr(bp + 4).ss()).unwrap();
    t.mov(di, word_ptr(bp + 6).ss()).unwrap();
    t.mov(dx, word_ptr(bp + 8).ss()).unwrap();
    t.mov(cx, word_ptr(bp + 10).ss()).unwrap();
    t.mov(bx, cs).unwrap();
    t.db(&[0xCA, 4, 0]).unwrap(); // retf 4
    write(&mut cpu, 0x20300, &t.assemble(0x300).unwrap());
    // Ring-3 16-bit caller at CODE3_16:0000.
    let mut a = CodeAssembler::new(16).unwrap();
    a.push(0x2222u32).unwrap();
    a.push(0x1111u32).unwrap();
    a.db(&[0x9A, 0, 0]).unwrap(); // call far GATE16:0000
    a.dw(&[GATE16]).unwrap();
    a.mov(ax, sp).unwrap();
    a.int(DONE as u32).unwrap();
    enter(&mut cpu, 3, &a.assemble(0).unwrap());
    load(&mut cpu, SegReg::Cs, CODE3_16);
    load(&mut cpu, SegReg::Ss, STACK3_16);
    cpu.eip = 0;
    cpu.regs[gpr::ESP] = 0x7000;
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.eip - 1, HANDLERS + DONE as u32 * 16, "reached the end");
    assert_eq!(
        cpu.regs[gpr::ESI] & 0xFFFF,
        0x1111,
        "last pushed parameter nearest the return address"
    );
    assert_eq!(cpu.regs[gpr::EDI] & 0xFFFF, 0x2222);
    assert_eq!(
        cpu.regs[gpr::EDX] & 0xFFFF,
        0x7000 - 4,
        "caller SP after its pushes"
    );
    assert_eq!(cpu.regs[gpr::ECX] & 0xFFFF, STACK3_16 as u32, "caller SS");
    assert_eq!(
        cpu.regs[gpr::EBX] & 0xFFFF,
        CODE16 as u32,
        "ring 0 in the target"
    );
    assert_eq!(
        cpu.regs[gpr::EAX] & 0xFFFF,
        0x7000,
        "RETF 4 dropped the parameters on the outer stack"
    );
}

/// Run `body` at CPL 0 with SS = `ss` and ESP = `esp`; EBX receives ESP
/// right after the body. Returns EBX and how the snippet ended.
fn run_on_stack(
    cpu: &mut Cpu,
    ss_sel: u16,
    start: u32,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> (u32, End) {
    let mut bus = TestBus::default();
    let end = run(cpu, 0, &mut bus, |a| {
        a.mov(ax, ss_sel as u32)?;
        a.mov(ss, ax)?;
        a.mov(esp, start)?;
        body(a)?;
        a.mov(ebx, esp)
    });
    (cpu.regs[gpr::EBX], end)
}

#[test]
fn pop_ss_uses_the_old_stack_width() {
    // SDM Vol. 2B POP: the increment uses the address size of the stack the
    // value is popped from; SS is loaded afterwards.
    let mut cpu = machine();
    // 16-bit stack → 32-bit SS: only SP moves (0xFFFC + 2 wraps to 0), the
    // upper half of ESP is kept.
    write(&mut cpu, 0xFFFC, &DATA0.to_le_bytes());
    let (after, end) = run_on_stack(&mut cpu, DATA0_16BIT_STACK, 0x0002_FFFC, |a| {
        a.db(&[0x66, 0x17]) // o16 pop ss
    });
    assert_end!(end, End::Done);
    assert_eq!(after, 0x0002_FFFE);
    assert_eq!(cpu.segs[SegReg::Ss as usize].selector, DATA0);
    // The case: a 32-bit pop (4 bytes) from a 16-bit stack.
    write(&mut cpu, 0xFFFC, &(DATA0 as u32).to_le_bytes());
    let (after, end) = run_on_stack(&mut cpu, DATA0_16BIT_STACK, 0x0002_FFFC, |a| a.pop(ss));
    assert_end!(end, End::Done);
    assert_eq!(after, 0x0002_0000, "SP wraps at 64 KiB, ESP[31:16] kept");
    // 32-bit stack → 16-bit SS: the whole ESP moves.
    write(
        &mut cpu,
        0x0001_FFFC,
        &(DATA0_16BIT_STACK as u32).to_le_bytes(),
    );
    let (after, end) = run_on_stack(&mut cpu, DATA0, 0x0001_FFFC, |a| a.pop(ss));
    assert_end!(end, End::Done);
    assert_eq!(after, 0x0002_0000, "ESP carries into bit 16");
    assert_eq!(cpu.segs[SegReg::Ss as usize].selector, DATA0_16BIT_STACK);
    // A faulting POP SS leaves ESP alone.
    write(&mut cpu, 0x0001_FFFC, &(DATA3 as u32).to_le_bytes());
    let mut bus = TestBus::default();
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(esp, 0x0001_FFFCu32)?;
        a.pop(ss)
    });
    assert_end!(end, gp(DATA3 as u32 & !3));
    // The #GP frame (error code, EIP, CS, EFLAGS) sits right below the
    // untouched ESP.
    assert_eq!(cpu.regs[gpr::ESP], 0x0001_FFFC - 16);
}

#[test]
fn pop_data_segment_registers_wrap_sp_on_a_16_bit_stack() {
    let mut cpu = machine();
    for (op, width) in [
        (&[0x66u8, 0x1F][..], 2u32),  // o16 pop ds
        (&[0x07][..], 4),             // pop es
        (&[0x66, 0x0F, 0xA1][..], 2), // o16 pop fs
        (&[0x0F, 0xA9][..], 4),       // pop gs
    ] {
        write(&mut cpu, 0xFFFE, &[DATA0 as u8, 0]);
        write(&mut cpu, 0, &[0, 0, 0, 0]);
        let start = 0x0003_0000 | (0x1_0000 - width);
        let (after, end) = run_on_stack(&mut cpu, DATA0_16BIT_STACK, start, |a| a.db(op));
        assert_end!(end, End::Done);
        assert_eq!(after, 0x0003_0000, "{op:02x?}: SP wraps, ESP[31:16] kept");
    }
}

#[test]
fn return_to_a_16_bit_outer_stack_loads_only_sp() {
    // IRET and RETF to an outer ring pop the new SS:ESP from the inner
    // stack (with the inner stack's width); a 16-bit outer SS then gets
    // only SP, and ESP[31:16] keep the inner stack's value — the leak that
    // Linux's espfix works around on real processors.
    const SS16_3: u16 = 0x93;
    let mut cpu = machine();
    set_gdt(&mut cpu, SS16_3, seg(0, 0xFFFF, 0xF2, 0x0));
    // Ring-3 code: EBX = ESP, then end.
    write(&mut cpu, CODE + 0x800, &[0x89, 0xE3, 0xCD, DONE]);
    for iret in [true, false] {
        let mut bus = TestBus::default();
        let end = run(&mut cpu, 0, &mut bus, |a| {
            a.mov(esp, 0x0001_9000u32)?;
            a.push(SS16_3 as u32)?;
            a.push(0xABCD_7000u32)?;
            if iret {
                a.push(2u32)?;
            }
            a.push(CODE3 as u32)?;
            a.push(CODE + 0x800)?;
            if iret {
                a.iretd()
            } else {
                a.retf()
            }
        });
        assert_end!(end, End::Done);
        assert_eq!(cpu.regs[gpr::EBX], 0x0001_7000, "iret={iret}");
    }
}
