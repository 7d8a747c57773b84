//! Single-step (EFLAGS.TF) and the debug exceptions around it, seen from a
//! guest: a #DB handler of ours logs each trap (saved EIP, saved EFLAGS,
//! DR6, ECX), and the log is compared with the SDM's rules, written out per
//! test as the list of labels each trap must name:
//! - a trap after every instruction that began with TF set, with DR6.BS
//!   (SDM Vol. 3B §17.3.1.4); none after the POPF that sets TF;
//! - a REP string instruction traps after each iteration, EIP still on the
//!   REP while iterations remain, and that trap's saved RF is 1 (§17.3.1.1);
//! - INT n / INT3 / INTO clear TF through their gate and raise no trap for
//!   themselves: the handler runs untraced and the next trap comes after the
//!   instruction that follows the INT (Vol. 3A §6.12.1.2);
//! - a data breakpoint and the single step of one instruction are one #DB;
//! - faults push RF = 1, and RF lasts one instruction.

mod common;

use common::*;
use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use ringside_cpu::{gpr, Cpu, PhysMem, SegReg, StopReason};

/// The #DB logger (ring 0).
const DB_HANDLER: u32 = 0x30000;
/// Software-interrupt handlers and other ring-0 code.
const SVC: u32 = 0x31000;
/// The log's write pointer, then the log: 16-byte records.
const LOG_PTR: u32 = 0x60000;
const LOG: u32 = 0x60010;
/// Where the handler of `SVC` leaves a mark.
const MARK: u32 = 0x5F000;
const SRC: u32 = 0x70000;
const DST: u32 = 0x71000;

const TF: u32 = 1 << 8;
const RF: u32 = 1 << 16;
const BS: u32 = 1 << 14;
const BT: u32 = 1 << 15;

/// One #DB as the guest logged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trap {
    eip: u32,
    eflags: u32,
    dr6: u32,
    ecx: u32,
}

/// An assembler with labels whose addresses come back after assembly.
struct Asm {
    a: CodeAssembler,
    labels: Vec<CodeLabel>,
}

impl Asm {
    fn new(bits: u32) -> Asm {
        Asm {
            a: CodeAssembler::new(bits).unwrap(),
            labels: Vec::new(),
        }
    }

    /// Label the next instruction; returns the label's index.
    fn at(&mut self) -> usize {
        let mut l = self.a.create_label();
        self.a.set_label(&mut l).unwrap();
        self.labels.push(l);
        self.labels.len() - 1
    }

    /// Bytes and label addresses for code placed at `org`.
    fn assemble(mut self, org: u32) -> (Vec<u8>, Vec<u32>) {
        let r = self
            .a
            .assemble_options(
                org as u64,
                BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
            )
            .unwrap();
        let ips = self
            .labels
            .iter()
            .map(|l| r.label_ip(l).unwrap() as u32)
            .collect();
        (r.inner.code_buffer, ips)
    }
}

fn rd32(cpu: &Cpu, a: u32) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(a + i as u32)))
}

/// The 32-bit #DB logger, an interrupt gate at vector 1. DS is reloaded from
/// SS so it also works when the trap comes from virtual-8086 mode.
fn install_logger(cpu: &mut Cpu) {
    let mut a = CodeAssembler::new(32).unwrap();
    (|| -> Result<(), IcedError> {
        a.push(eax)?;
        a.push(ebx)?;
        a.push(ds)?;
        a.push(ss)?;
        a.pop(ds)?;
        a.mov(ebx, dword_ptr(LOG_PTR))?;
        a.mov(eax, dword_ptr(esp + 12))?; // saved EIP
        a.mov(dword_ptr(ebx), eax)?;
        a.mov(eax, dword_ptr(esp + 20))?; // saved EFLAGS
        a.mov(dword_ptr(ebx + 4), eax)?;
        a.mov(eax, dr6)?;
        a.mov(dword_ptr(ebx + 8), eax)?;
        a.mov(dword_ptr(ebx + 12), ecx)?;
        a.xor(eax, eax)?;
        a.mov(dr6, eax)?;
        a.add(ebx, 16)?;
        a.mov(dword_ptr(LOG_PTR), ebx)?;
        a.pop(ds)?;
        a.pop(ebx)?;
        a.pop(eax)?;
        a.iretd()
    })()
    .unwrap();
    let code = a.assemble(DB_HANDLER as u64).unwrap();
    write(cpu, DB_HANDLER, &code);
    set_idt(cpu, 1, gate(CODE0, DB_HANDLER, 0xE, 0, 0));
    write(cpu, LOG_PTR, &LOG.to_le_bytes());
}

fn log(cpu: &Cpu) -> Vec<Trap> {
    let end = rd32(cpu, LOG_PTR);
    (LOG..end)
        .step_by(16)
        .map(|r| Trap {
            eip: rd32(cpu, r),
            eflags: rd32(cpu, r + 4),
            dr6: rd32(cpu, r + 8),
            ecx: rd32(cpu, r + 12),
        })
        .collect()
}

fn eips(t: &[Trap]) -> Vec<u32> {
    t.iter().map(|t| t.eip).collect()
}

/// PUSHFD; OR [ESP], TF; POPFD: TF is on from the next instruction's start.
fn tf_on(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.pushfd()?;
    a.or(dword_ptr(esp), TF as i32)?;
    a.popfd()
}

/// A ring-0 handler at `at`: leaves 1 in MARK (with DS reloaded from SS),
/// then IRETD.
fn marking_handler(cpu: &mut Cpu, at: u32) {
    let mut a = CodeAssembler::new(32).unwrap();
    (|| -> Result<(), IcedError> {
        a.push(ds)?;
        a.push(ss)?;
        a.pop(ds)?;
        a.inc(dword_ptr(MARK))?;
        a.pop(ds)?;
        a.iretd()
    })()
    .unwrap();
    write(cpu, at, &a.assemble(at as u64).unwrap());
}

/// Run the code at CODE (already written) at `cpl` to the DONE handler.
fn run_to_done(cpu: &mut Cpu, bus: &mut TestBus) {
    for _ in 0..100 {
        if cpu.run(bus, u64::MAX, 100_000) == StopReason::Halted {
            break;
        }
    }
    assert!(cpu.is_halted(), "no HLT: {cpu:?}");
    assert_eq!(
        cpu.eip - 1,
        HANDLERS + DONE as u32 * 16,
        "stopped in the wrong handler: {:?} {:x?} {cpu:x?}",
        cpu.last_exception,
        log(cpu)
    );
}

/// A flat protected-mode machine with the logger, `prog` at CODE, run at
/// `cpl` until INT DONE. Returns the CPU, the labels' addresses, the log.
fn run_pm(
    cpl: u8,
    setup: impl FnOnce(&mut Cpu),
    prog: impl FnOnce(&mut Asm) -> Result<(), IcedError>,
) -> (Cpu, Vec<u32>, Vec<Trap>) {
    let mut cpu = machine();
    install_logger(&mut cpu);
    let mut a = Asm::new(32);
    prog(&mut a).unwrap();
    let (code, ips) = a.assemble(CODE);
    enter(&mut cpu, cpl, &code);
    setup(&mut cpu);
    run_to_done(&mut cpu, &mut TestBus::default());
    let l = log(&cpu);
    (cpu, ips, l)
}

/// `body` (which sets ECX itself at label 0) between TF on and INT DONE,
/// ESI = SRC, EDI = DST, EDX = port 0x80. The string instruction must carry
/// label 1 and be followed by a NOP at label 2 and INT DONE at label 3.
fn run_rep(
    prepare: impl FnOnce(&mut Cpu),
    std: bool,
    body: impl FnOnce(&mut Asm) -> Result<(), IcedError>,
) -> (Cpu, Vec<u32>, Vec<Trap>) {
    run_pm(0, prepare, |p| {
        let a = &mut p.a;
        a.mov(esi, SRC)?;
        a.mov(edi, DST)?;
        a.mov(edx, 0x80)?;
        if std {
            a.std()?;
        } else {
            a.cld()?;
        }
        tf_on(a)?;
        body(p)?;
        p.at();
        p.a.nop()?;
        p.at();
        p.a.int(DONE as u32)
    })
}

#[test]
fn rep_movsb_with_ecx_3_traps_after_each_iteration() {
    let (cpu, l, t) = run_rep(
        |cpu| write(cpu, SRC, b"abc"),
        false,
        |p| {
            p.at();
            p.a.mov(ecx, 3)?;
            p.at();
            p.a.rep().movsb()
        },
    );
    // MOV ECX; three iterations (two with EIP still on the REP); NOP.
    assert_eq!(eips(&t), [l[1], l[1], l[1], l[2], l[3]], "{t:x?}");
    assert_eq!(t.iter().map(|t| t.ecx).collect::<Vec<_>>(), [3, 2, 1, 0, 0]);
    // RF = 1 in the image of a trap between two iterations only.
    let rf: Vec<bool> = t.iter().map(|t| t.eflags & RF != 0).collect();
    assert_eq!(rf, [false, true, true, false, false]);
    assert!(t.iter().all(|t| t.dr6 & BS != 0 && t.eflags & TF != 0));
    assert_eq!([0, 1, 2].map(|i| cpu.mem.peek(DST + i)), *b"abc");
}

#[test]
fn repe_cmpsb_with_ecx_4_traps_four_times_and_stops_where_it_stops() {
    // Equal strings: four iterations, four traps from the REP.
    let (_, l, t) = run_rep(
        |cpu| {
            write(cpu, SRC, b"wxyz");
            write(cpu, DST, b"wxyz");
        },
        false,
        |p| {
            p.at();
            p.a.mov(ecx, 4)?;
            p.at();
            p.a.repe().cmpsb()
        },
    );
    assert_eq!(eips(&t), [l[1], l[1], l[1], l[1], l[2], l[3]], "{t:x?}");
    // A difference in the second element ends it after two.
    let (_, l, t) = run_rep(
        |cpu| {
            write(cpu, SRC, b"wxyz");
            write(cpu, DST, b"w?yz");
        },
        false,
        |p| {
            p.at();
            p.a.mov(ecx, 4)?;
            p.at();
            p.a.repe().cmpsb()
        },
    );
    assert_eq!(eips(&t), [l[1], l[1], l[2], l[3]], "{t:x?}");
    assert_eq!(t[2].ecx, 2);
}

/// Every REP string instruction, forward and backward, byte and dword:
/// ECX = 3 gives three traps from the REP.
#[test]
fn every_rep_string_instruction_traps_per_iteration() {
    type Op = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let ops: [(&str, Op); 12] = [
        ("rep movsb", |a| a.rep().movsb()),
        ("rep movsd", |a| a.rep().movsd()),
        ("rep stosb", |a| a.rep().stosb()),
        ("rep stosd", |a| a.rep().stosd()),
        ("rep lodsb", |a| a.rep().lodsb()),
        ("rep lodsw", |a| a.rep().lodsw()),
        ("repe cmpsb", |a| a.repe().cmpsb()),
        ("repe cmpsd", |a| a.repe().cmpsd()),
        ("repe scasb", |a| a.repe().scasb()),
        ("repne scasb", |a| a.repne().scasb()),
        ("rep insb", |a| a.rep().insb()),
        ("rep outsd", |a| a.rep().outsd()),
    ];
    for (name, op) in ops {
        for std in [false, true] {
            let (_, l, t) = run_rep(
                |cpu| {
                    // Equal bytes everywhere REPE compares (AL is 0x55 for
                    // SCAS); REPNE SCAS never finds 0x55 in the zeros.
                    for i in 0..32 {
                        write(cpu, SRC - 16 + i, &[0x55]);
                        write(cpu, DST - 16 + i, &[0x55]);
                    }
                },
                std,
                |p| {
                    p.at();
                    p.a.mov(eax, if name == "repne scasb" { 0x66 } else { 0x55 })?;
                    p.at();
                    p.a.mov(ecx, 3)?;
                    p.at();
                    op(&mut p.a)
                },
            );
            // After the MOVs' traps: three from the REP, one from the NOP.
            let rep: Vec<u32> = eips(&t).into_iter().skip(2).collect();
            assert_eq!(
                rep,
                [l[2], l[2], l[3], l[4]],
                "{name} (DF={}): {t:x?}",
                std as u8
            );
        }
    }
}

#[test]
fn rep_with_ecx_0_traps_once() {
    let (_, l, t) = run_rep(
        |_| {},
        false,
        |p| {
            p.at();
            p.a.xor(ecx, ecx)?;
            p.at();
            p.a.rep().movsb()
        },
    );
    assert_eq!(eips(&t), [l[1], l[2], l[3]], "{t:x?}");
}

/// `instr` at label 1 between NOPs, with TF set: the INT itself raises no
/// trap (its handler runs, untraced), the NOP after it does.
fn int_is_not_traced(cpl: u8, setup: impl FnOnce(&mut Cpu), instr: impl FnOnce(&mut Asm)) {
    let (cpu, l, t) = run_pm(cpl, setup, |p| {
        tf_on(&mut p.a)?;
        p.at();
        p.a.nop()?;
        p.at();
        instr(p);
        p.at();
        p.a.nop()?;
        p.at();
        p.a.int(DONE as u32)
    });
    assert_eq!(rd32(&cpu, MARK), 1, "the handler did not run");
    assert_eq!(eips(&t), [l[1], l[3]], "{t:x?}");
    assert!(t.iter().all(|t| t.dr6 & BS != 0), "{t:x?}");
}

#[test]
fn int_n_through_an_interrupt_gate_is_not_traced() {
    for cpl in [0, 3] {
        int_is_not_traced(
            cpl,
            |cpu| {
                marking_handler(cpu, SVC);
                set_idt(cpu, 0x81, gate(CODE0, SVC, 0xE, 3, 0));
            },
            |p| p.a.int(0x81).unwrap(),
        );
    }
}

#[test]
fn int_n_through_a_trap_gate_is_not_traced() {
    for cpl in [0, 3] {
        int_is_not_traced(
            cpl,
            |cpu| {
                marking_handler(cpu, SVC);
                set_idt(cpu, 0x81, gate(CODE0, SVC, 0xF, 3, 0));
            },
            |p| p.a.int(0x81).unwrap(),
        );
    }
}

#[test]
fn int3_and_into_are_not_traced() {
    int_is_not_traced(
        3,
        |cpu| {
            marking_handler(cpu, SVC);
            set_idt(cpu, 3, gate(CODE0, SVC, 0xE, 3, 0));
        },
        |p| p.a.int3().unwrap(),
    );
    // INTO with OF set (the flags TF_ON's POPFD loads have OF from before).
    int_is_not_traced(
        3,
        |cpu| {
            marking_handler(cpu, SVC);
            set_idt(cpu, 4, gate(CODE0, SVC, 0xE, 3, 0));
            cpu.flags.set(cpu.flags.get() | 1 << 11);
        },
        |p| {
            // Keep OF: INTO at label 1 directly.
            p.a.db(&[0xCE]).unwrap();
        },
    );
}

#[test]
fn into_with_of_clear_is_an_ordinary_traced_instruction() {
    let (cpu, l, t) = run_pm(
        3,
        |cpu| {
            marking_handler(cpu, SVC);
            set_idt(cpu, 4, gate(CODE0, SVC, 0xE, 3, 0));
        },
        |p| {
            tf_on(&mut p.a)?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.db(&[0xCE])?; // INTO, OF clear
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(rd32(&cpu, MARK), 0);
    assert_eq!(eips(&t), [l[1], l[2]], "{t:x?}");
}

/// INT n through a task gate: no single-step trap for the INT; the new
/// task's T bit raises its own #DB (DR6.BT) before its first instruction.
#[test]
fn int_n_through_a_task_gate_is_not_traced() {
    const TSS2: u32 = 0x5000;
    for t_bit in [false, true] {
        let (cpu, l, t) = run_pm(
            0,
            |cpu| {
                // The task: increments MARK, returns with IRETD (NT set).
                let mut a = CodeAssembler::new(32).unwrap();
                a.inc(dword_ptr(MARK)).unwrap();
                a.iretd().unwrap();
                write(cpu, SVC, &a.assemble(SVC as u64).unwrap());
                let d = |cpu: &mut Cpu, off: u32, v: u32| write(cpu, TSS2 + off, &v.to_le_bytes());
                d(cpu, 0x20, SVC); // EIP
                d(cpu, 0x24, 2); // EFLAGS: TF clear
                d(cpu, 0x38, 0x7000); // ESP
                for off in [0x48, 0x50, 0x54, 0x58, 0x5C] {
                    d(cpu, off, DATA0 as u32);
                }
                d(cpu, 0x4C, CODE0 as u32);
                d(cpu, 0x60, 0); // no LDT
                d(cpu, 0x64, t_bit as u32); // T bit
                set_idt(cpu, 0x82, gate(TSS2_SEL, 0, 0x5, 0, 0));
                // The running task's TSS is busy (IRET back checks it).
                set_gdt(cpu, TSS_SEL, seg(TSS, 0x68 + 0x2000, 0x8B, 0));
            },
            |p| {
                tf_on(&mut p.a)?;
                p.at();
                p.a.nop()?;
                p.at();
                p.a.int(0x82)?;
                p.at();
                p.a.nop()?;
                p.at();
                p.a.int(DONE as u32)
            },
        );
        assert_eq!(rd32(&cpu, MARK), 1, "the task did not run");
        if t_bit {
            assert_eq!(eips(&t), [l[1], SVC, l[3]], "{t:x?}");
            assert_eq!(t[1].dr6 & (BT | BS), BT, "{t:x?}");
        } else {
            assert_eq!(eips(&t), [l[1], l[3]], "{t:x?}");
        }
    }
}

/// SYSENTER does not clear TF (SDM Vol. 2B SYSENTER): the trap comes at
/// the kernel entry point, which Linux expects and handles.
#[test]
fn sysenter_with_tf_traps_at_the_entry_point() {
    let mut k = Asm::new(32);
    k.at();
    k.a.nop().unwrap();
    k.at();
    k.a.int(DONE as u32).unwrap();
    let (kcode, kl) = k.assemble(SVC);
    let (_, l, t) = run_pm(
        3,
        |cpu| {
            write(cpu, SVC, &kcode);
            cpu.sysenter = [CODE0 as u32, STACK0, SVC];
        },
        |p| {
            tf_on(&mut p.a)?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.sysenter()
        },
    );
    assert_eq!(eips(&t), [l[1], kl[0], kl[1]], "{t:x?}");
    assert!(t[1].dr6 & BS != 0);
}

/// MOV SS holds the single-step trap off for one instruction (SDM Vol. 3A
/// §6.8.3): the instruction after it reports both.
#[test]
fn mov_ss_delays_the_trap_by_one_instruction() {
    let (_, l, t) = run_pm(
        0,
        |_| {},
        |p| {
            tf_on(&mut p.a)?;
            p.at();
            p.a.mov(eax, ss)?;
            p.at();
            p.a.mov(ss, ax)?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[1], l[3]], "{t:x?}");
}

/// STI's shadow holds off interrupts only, not the single-step trap (SDM
/// Vol. 3A §6.8.3 names MOV SS and POP SS; STI, Vol. 2B, external
/// interrupts).
#[test]
fn sti_does_not_delay_the_trap() {
    let (_, l, t) = run_pm(
        0,
        |_| {},
        |p| {
            p.a.cli()?;
            tf_on(&mut p.a)?;
            p.at();
            p.a.sti()?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[1], l[2]], "{t:x?}");
}

/// A data breakpoint hit by MOV SS's own read is held off, like the single
/// step, until after the next instruction (SDM Vol. 3A §6.8.3).
#[test]
fn data_breakpoint_on_mov_ss_waits_one_instruction() {
    const X: u32 = 0x5E000;
    let (_, l, t) = run_pm(
        0,
        |cpu| write(cpu, X, &DATA0.to_le_bytes()),
        |p| {
            // DR0: 2-byte read/write breakpoint (R/W0 = 11, LEN0 = 01).
            p.a.mov(eax, X)?;
            p.a.mov(dr0, eax)?;
            p.a.mov(eax, 0x0007_0001u32)?;
            p.a.mov(dr7, eax)?;
            p.at();
            p.a.mov(ss, word_ptr(X))?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[2]], "{t:x?}");
    assert_eq!(t[0].dr6 & (BS | 0xF), 1, "{t:x?}");
}

/// DR0 as an I/O breakpoint on port 0x80 (CR4.DE; DR7: L0, R/W0 = 10).
fn io_breakpoint(a: &mut CodeAssembler, de: bool) -> Result<(), IcedError> {
    if de {
        a.mov(eax, cr4)?;
        a.or(eax, 1 << 3)?;
        a.mov(cr4, eax)?;
    }
    a.mov(eax, 0x80)?;
    a.mov(dr0, eax)?;
    a.mov(eax, 0x0002_0001u32)?;
    a.mov(dr7, eax)
}

/// An I/O breakpoint (SDM Vol. 3B §17.2.4) traps after the port access; with
/// TF set the two are one #DB. Without CR4.DE there is no I/O breakpoint.
#[test]
fn io_breakpoint_and_single_step_are_one_debug_exception() {
    let (_, l, t) = run_pm(
        0,
        |_| {},
        |p| {
            io_breakpoint(&mut p.a, true)?;
            tf_on(&mut p.a)?;
            p.at();
            p.a.out(0x80, al)?;
            p.at();
            p.a.out(0x81, al)?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[1], l[2]], "{t:x?}");
    assert_eq!(t[0].dr6 & (BS | 0xF), BS | 1, "{t:x?}");
    assert_eq!(t[1].dr6 & (BS | 0xF), BS, "{t:x?}");
    let (_, _, t) = run_pm(
        0,
        |_| {},
        |p| {
            io_breakpoint(&mut p.a, false)?;
            p.a.out(0x80, al)?;
            p.a.int(DONE as u32)
        },
    );
    assert!(t.is_empty(), "{t:x?}");
}

/// REP OUTSB with an I/O breakpoint on its port: a #DB after each
/// iteration, EIP on the REP while iterations remain.
#[test]
fn io_breakpoint_in_rep_outsb_traps_per_iteration() {
    let (_, l, t) = run_pm(
        0,
        |_| {},
        |p| {
            io_breakpoint(&mut p.a, true)?;
            p.a.mov(esi, SRC)?;
            p.a.mov(edx, 0x80)?;
            p.a.mov(ecx, 3)?;
            p.at();
            p.a.rep().outsb()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[0], l[0], l[1]], "{t:x?}");
    assert_eq!(t.iter().map(|t| t.ecx).collect::<Vec<_>>(), [2, 1, 0]);
    assert!(t.iter().all(|t| t.dr6 & (BS | 0xF) == 1), "{t:x?}");
}

/// DR0 as a 1-byte write breakpoint at `at` (DR7: L0, R/W0 = 01, LEN0 = 00).
fn write_breakpoint(a: &mut CodeAssembler, at: u32) -> Result<(), IcedError> {
    a.mov(eax, at)?;
    a.mov(dr0, eax)?;
    a.mov(eax, 0x0001_0001u32)?;
    a.mov(dr7, eax)
}

/// A data breakpoint and the single step of the same instruction are one
/// #DB with both DR6 bits (SDM Vol. 3B §17.3.1), not two.
#[test]
fn data_breakpoint_and_single_step_are_one_debug_exception() {
    const X: u32 = 0x5E000;
    let (_, l, t) = run_pm(
        0,
        |_| {},
        |p| {
            write_breakpoint(&mut p.a, X)?;
            tf_on(&mut p.a)?;
            p.at();
            p.a.mov(dword_ptr(X), ecx)?;
            p.at();
            p.a.nop()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[1], l[2]], "{t:x?}");
    assert_eq!(t[0].dr6 & (BS | 0xF), BS | 1, "{t:x?}");
    assert_eq!(t[1].dr6 & (BS | 0xF), BS, "{t:x?}");
}

/// A data breakpoint hit by one iteration of a REP: the #DB follows that
/// iteration, EIP on the REP with RF = 1 in the image; the REP then ends.
#[test]
fn data_breakpoint_inside_rep_traps_after_that_iteration() {
    let (cpu, l, t) = run_pm(
        0,
        |cpu| write(cpu, SRC, b"0123456789"),
        |p| {
            write_breakpoint(&mut p.a, DST + 4)?;
            p.a.mov(esi, SRC)?;
            p.a.mov(edi, DST)?;
            p.a.cld()?;
            p.a.mov(ecx, 10)?;
            p.at();
            p.a.rep().movsb()?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert_eq!(eips(&t), [l[0]], "{t:x?}");
    // The fifth byte (DST+4) was the hit: five done, five left.
    assert_eq!(t[0].ecx, 5);
    assert_eq!(t[0].dr6 & (BS | 0xF), 1);
    assert!(t[0].eflags & RF != 0);
    assert_eq!(cpu.regs[gpr::ECX], 0);
    assert_eq!(
        (0..10).map(|i| cpu.mem.peek(DST + i)).collect::<Vec<_>>(),
        b"0123456789"
    );
}

/// RF lasts one instruction: the #UD fault pushes RF = 1 (SDM Vol. 3B
/// §17.3.1.1), its handler's IRETD restores it, the next instruction
/// clears it, and a later INT n pushes RF = 0.
#[test]
fn rf_from_a_fault_lasts_one_instruction() {
    const UD_FLAGS: u32 = 0x5D000;
    const INT_FLAGS: u32 = 0x5D004;
    let (cpu, _, t) = run_pm(
        0,
        |cpu| {
            let mut a = CodeAssembler::new(32).unwrap();
            // #UD: note the saved EFLAGS, step over the 2-byte UD2.
            a.mov(eax, dword_ptr(esp + 8)).unwrap();
            a.mov(dword_ptr(UD_FLAGS), eax).unwrap();
            a.add(dword_ptr(esp), 2).unwrap();
            a.iretd().unwrap();
            let ud = a.assemble(SVC as u64).unwrap();
            write(cpu, SVC, &ud);
            set_idt(cpu, 6, gate(CODE0, SVC, 0xE, 0, 0));
            let mut a = CodeAssembler::new(32).unwrap();
            a.mov(eax, dword_ptr(esp + 8)).unwrap();
            a.mov(dword_ptr(INT_FLAGS), eax).unwrap();
            a.iretd().unwrap();
            write(cpu, SVC + 0x100, &a.assemble((SVC + 0x100) as u64).unwrap());
            set_idt(cpu, 0x83, gate(CODE0, SVC + 0x100, 0xE, 0, 0));
        },
        |p| {
            p.a.ud2()?;
            p.a.nop()?;
            p.a.int(0x83)?;
            p.at();
            p.a.int(DONE as u32)
        },
    );
    assert!(t.is_empty());
    assert!(
        rd32(&cpu, UD_FLAGS) & RF != 0,
        "the #UD fault pushed RF = 0"
    );
    assert!(
        rd32(&cpu, INT_FLAGS) & RF == 0,
        "RF outlived the instruction after the fault"
    );
}

/// An interrupt taken between two iterations of a REP pushes EIP on the REP
/// and RF = 1 (SDM Vol. 3B §17.3.1.1); the REP then completes.
#[test]
fn interrupt_between_rep_iterations_pushes_rf() {
    const BIG: u32 = 0x10_0000;
    const COUNT: u32 = 3 * 65536 + 100;
    const FRAME: u32 = 0x5C000;
    let mut cpu = machine();
    let mut a = Asm::new(32);
    (|| -> Result<(), IcedError> {
        a.a.mov(edi, BIG)?;
        a.a.mov(ecx, COUNT)?;
        a.a.mov(eax, 0x1234_5678)?;
        a.a.cld()?;
        a.a.sti()?;
        a.at();
        a.a.rep().stosd()?;
        a.a.int(DONE as u32)
    })()
    .unwrap();
    let (code, l) = a.assemble(CODE);
    enter(&mut cpu, 0, &code);
    // The interrupt handler notes EIP, EFLAGS and ECX as it found them.
    let mut h = CodeAssembler::new(32).unwrap();
    h.push(eax).unwrap();
    h.mov(eax, dword_ptr(esp + 4)).unwrap();
    h.mov(dword_ptr(FRAME), eax).unwrap();
    h.mov(eax, dword_ptr(esp + 12)).unwrap();
    h.mov(dword_ptr(FRAME + 4), eax).unwrap();
    h.mov(dword_ptr(FRAME + 8), ecx).unwrap();
    h.pop(eax).unwrap();
    h.iretd().unwrap();
    write(&mut cpu, SVC, &h.assemble(SVC as u64).unwrap());
    set_idt(&mut cpu, 0x90, gate(CODE0, SVC, 0xE, 0, 0));
    let mut bus = TestBus::default();
    // Five instructions up to the REP, then the REP's first part.
    cpu.run(&mut bus, u64::MAX, 6);
    assert_eq!(cpu.eip, l[0], "the REP did not pause");
    bus.irq = Some(0x90);
    cpu.poll_interrupts();
    run_to_done(&mut cpu, &mut bus);
    let (eip, eflags, left) = (
        rd32(&cpu, FRAME),
        rd32(&cpu, FRAME + 4),
        rd32(&cpu, FRAME + 8),
    );
    assert_eq!(eip, l[0]);
    assert!(eflags & RF != 0, "RF clear in {eflags:#x}");
    assert!(left > 0 && left < COUNT, "ECX {left}");
    assert_eq!(cpu.regs[gpr::ECX], 0);
    assert_eq!(rd32(&cpu, BIG + (COUNT - 1) * 4), 0x1234_5678);
}

/// Real mode: INT n clears TF through the IVT and is not traced; REP MOVSB
/// traps per iteration with 16-bit addressing.
#[test]
fn real_mode_int_and_rep() {
    const CS: u16 = 0x1000;
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    // #DB logger at 0000:0700: IP, FLAGS, CX in 6-byte records at 0x1000,
    // its pointer at 0x600.
    let mut h = CodeAssembler::new(16).unwrap();
    (|| -> Result<(), IcedError> {
        h.push(bp)?;
        h.mov(bp, sp)?;
        h.push(ax)?;
        h.push(bx)?;
        h.push(ds)?;
        h.xor(ax, ax)?;
        h.mov(ds, ax)?;
        h.mov(bx, word_ptr(0x600))?;
        h.mov(ax, word_ptr(bp + 2))?;
        h.mov(word_ptr(bx), ax)?;
        h.mov(ax, word_ptr(bp + 6))?;
        h.mov(word_ptr(bx + 2), ax)?;
        h.mov(word_ptr(bx + 4), cx)?;
        h.add(bx, 6)?;
        h.mov(word_ptr(0x600), bx)?;
        h.pop(ds)?;
        h.pop(bx)?;
        h.pop(ax)?;
        h.pop(bp)?;
        h.iret()
    })()
    .unwrap();
    cpu.mem.poke(0x700, &h.assemble(0x700).unwrap());
    cpu.mem.poke(0x600, &0x1000u16.to_le_bytes());
    let vector = |cpu: &mut Cpu, v: u32, off: u16| {
        let mut b = off.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        cpu.mem.poke(v * 4, &b);
    };
    vector(&mut cpu, 1, 0x700);
    // INT 21h: counts in 0000:0500. INT 22h: HLT.
    cpu.mem.poke(0x800, &[0xFE, 0x06, 0x00, 0x05, 0xCF]); // inc byte [0x500]; iret
    cpu.mem.poke(0x900, &[0xF4]);
    vector(&mut cpu, 0x21, 0x800);
    vector(&mut cpu, 0x22, 0x900);
    cpu.mem.poke(0x2000, b"xyz");
    let mut p = Asm::new(16);
    (|| -> Result<(), IcedError> {
        p.a.xor(ax, ax)?;
        p.a.mov(ds, ax)?;
        p.a.mov(es, ax)?;
        p.a.mov(si, 0x2000)?;
        p.a.mov(di, 0x2100)?;
        p.a.cld()?;
        p.a.pushf()?;
        p.a.pop(ax)?;
        p.a.or(ax, TF as i32)?;
        p.a.push(ax)?;
        p.a.popf()?;
        p.at();
        p.a.nop()?;
        p.at();
        p.a.int(0x21)?;
        p.at();
        p.a.mov(cx, 3)?;
        p.at();
        p.a.rep().movsb()?;
        p.at();
        p.a.int(0x22)
    })()
    .unwrap();
    let (code, l) = p.assemble(0x100);
    cpu.mem.poke((CS as u32) * 16 + 0x100, &code);
    cpu.load_seg_real(SegReg::Cs, CS);
    cpu.load_seg_real(SegReg::Ss, 0x3000);
    cpu.regs[gpr::ESP] = 0x1000;
    cpu.eip = 0x100;
    cpu.run(&mut TestBus::default(), u64::MAX, 1000);
    assert!(cpu.is_halted());
    assert_eq!(cpu.eip, 0x901, "not halted in INT 22h's handler");
    assert_eq!(cpu.mem.peek(0x500), 1, "INT 21h's handler did not run");
    let end = u16::from_le_bytes([cpu.mem.peek(0x600), cpu.mem.peek(0x601)]) as u32;
    let ips: Vec<u32> = (0x1000..end)
        .step_by(6)
        .map(|r| u16::from_le_bytes([cpu.mem.peek(r), cpu.mem.peek(r + 1)]) as u32)
        .collect();
    // NOP; (INT 21h: none); MOV CX; 3 iterations; (INT 22h: none).
    assert_eq!(ips, [l[1], l[3], l[3], l[3], l[4]]);
    assert_eq!([0, 1, 2].map(|i| cpu.mem.peek(0x2100 + i)), *b"xyz");
}

/// Virtual-8086 mode (IOPL 3): INT n through a DPL-3 interrupt gate to ring
/// 0 is not traced; REP MOVSB traps per iteration.
#[test]
fn v86_int_and_rep() {
    let mut cpu = machine();
    install_logger(&mut cpu);
    marking_handler(&mut cpu, SVC);
    set_idt(&mut cpu, 0x81, gate(CODE0, SVC, 0xE, 3, 0));
    // V86 code at 1000:0000 (= CODE); data at 2000:0000.
    let mut p = Asm::new(16);
    (|| -> Result<(), IcedError> {
        p.at();
        p.a.nop()?;
        p.at();
        p.a.int(0x81)?;
        p.at();
        p.a.mov(cx, 2)?;
        p.at();
        p.a.rep().movsb()?;
        p.at();
        p.a.nop()?;
        p.at();
        p.a.int(DONE as u32)
    })()
    .unwrap();
    let (code, l) = p.assemble(0);
    // Ring 0 at CODE+0x800 IRETDs into V86 with TF set: no trap after the
    // IRETD itself (TF was clear as it began).
    let mut a = CodeAssembler::new(32).unwrap();
    let eflags = 0x0002_0002 | (3 << 12) | TF;
    for v in [0u32, 0, 0x2000, 0x2000, 0x3000, 0x0800, eflags, 0x1000, 0] {
        a.push(v).unwrap();
    }
    a.iretd().unwrap();
    let stub = a.assemble((CODE + 0x800) as u64).unwrap();
    enter(&mut cpu, 0, &code);
    write(&mut cpu, CODE + 0x800, &stub);
    write(&mut cpu, 0x20000, b"pq");
    cpu.eip = CODE + 0x800;
    cpu.regs[gpr::ESI] = 0;
    cpu.regs[gpr::EDI] = 0x100;
    run_to_done(&mut cpu, &mut TestBus::default());
    let t = log(&cpu);
    assert_eq!(rd32(&cpu, MARK), 1, "INT 81h's handler did not run");
    assert_eq!(eips(&t), [l[1], l[3], l[3], l[4], l[5]], "{t:x?}");
    assert_eq!([cpu.mem.peek(0x20100), cpu.mem.peek(0x20101)], *b"pq");
}

/// `Cpu::step` (the debugger's step) runs one iteration of a REP, and a
/// run of steps ends in the same state as one run: same registers,
/// flags, memory, instruction count and cycles, across REP pauses at the
/// CHUNK points too.
#[test]
fn stepping_a_rep_is_one_iteration_per_step_and_ends_as_a_run() {
    let build = || {
        let mut cpu = machine();
        let mut a = CodeAssembler::new(32).unwrap();
        a.mov(esi, SRC).unwrap();
        a.mov(edi, DST).unwrap();
        a.mov(ecx, 3u32).unwrap();
        a.rep().movsb().unwrap();
        a.mov(edi, 0x10_0000u32).unwrap();
        a.mov(ecx, 65536 + 7).unwrap();
        a.mov(eax, 0xABu32).unwrap();
        a.rep().stosb().unwrap();
        a.mov(ecx, 5u32).unwrap();
        a.mov(edx, 0x80u32).unwrap();
        a.rep().insw().unwrap();
        a.hlt().unwrap();
        let code = a.assemble(CODE as u64).unwrap();
        enter(&mut cpu, 0, &code);
        write(&mut cpu, SRC, b"abc");
        cpu
    };
    let mut run = build();
    let mut bus = TestBus::default();
    for _ in 0..100 {
        if run.run(&mut bus, u64::MAX, 1_000_000) == StopReason::Halted {
            break;
        }
    }
    assert!(run.is_halted(), "{run:x?} {:?}", run.last_exception);
    let mut step = build();
    let mut bus = TestBus::default();
    // The first REP MOVSB: each step one iteration, EIP on the REP twice.
    for _ in 0..3 {
        step.step(&mut bus);
    }
    let rep = step.eip;
    let mut seen = Vec::new();
    for _ in 0..3 {
        step.step(&mut bus);
        seen.push((step.eip == rep, step.regs[gpr::ECX]));
    }
    assert_eq!(seen, [(true, 2), (true, 1), (false, 0)]);
    let mut n = 0;
    while !step.is_halted() && n < 200_000 {
        step.step(&mut bus);
        n += 1;
    }
    assert!(step.is_halted());
    assert!(
        n > 65536,
        "the REP STOSB was not stepped by iteration ({n} steps)"
    );
    assert_eq!(step.regs, run.regs);
    assert_eq!(step.eip, run.eip);
    assert_eq!(step.eflags(), run.eflags());
    assert_eq!(step.instructions, run.instructions);
    assert_eq!(step.cycles, run.cycles);
    assert!((0..0x20_0000).all(|a| step.mem.peek(a) == run.mem.peek(a)));
}
