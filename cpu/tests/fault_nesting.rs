//! Faults raised while delivering faults end by the double-fault rules
//! (SDM Vol. 3A §6.15, Table 6-5), wherever the delivery recurses: through
//! task gates whose switches fault after their commit point, through the new
//! task's bad segments, through gates with null or non-code selectors. Each
//! case here overflowed the host stack before the nesting was bounded.

mod common;

use common::*;
use iced_x86::code_asm::*;
use ringside_cpu::{Cpu, PhysMem};

/// Where the GDT copy lives in ROM (physical; the ROM's first byte).
const ROM_GDT: u32 = 0xF_0000;

/// The harness machine with its GDT copied into ROM: the task switch's
/// busy-bit writes are lost there, so a TSS stays "available" however often
/// a task gate switches to it — as with a GDT in ROM or in a page the guest
/// mapped over ROM.
fn machine_with_gdt_in_rom() -> Cpu {
    let mut cpu = machine();
    let mut rom = vec![0xFFu8; 64 * 1024];
    for i in 0..0x100u32 {
        rom[i as usize] = cpu.mem.peek(GDT + i);
    }
    let mut mem = PhysMem::pc(4, rom).unwrap();
    let ram = cpu.mem.ram().to_vec();
    mem.poke(0, &ram[..ROM_GDT as usize]);
    mem.poke(0x10_0000, &ram[0x10_0000..]);
    cpu.mem = mem;
    cpu.gdtr.base = ROM_GDT;
    // TSS2's ESP, so a handler in the new task has a stack to push on.
    write(&mut cpu, 0x5000 + 0x38, &0xA000u32.to_le_bytes());
    cpu
}

/// TSS2 (at 0x5000, all zero: a null CS) faults after the commit point of
/// every switch to it, with #TS(0).
fn bad_load(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(ax, 0x1000u32)?; // beyond the GDT limit: #GP(0x1000)
    a.mov(ds, ax)
}

#[test]
fn task_gates_to_a_tss_that_faults_after_commit_end_in_shutdown() {
    let mut cpu = machine_with_gdt_in_rom();
    let mut bus = TestBus::default();
    // #GP, #TS and #DF all switch to TSS2. #GP → switch → #TS in the new
    // task (contributory during contributory) → #DF → switch → #TS while
    // delivering #DF → shutdown.
    for v in [8, 10, 13] {
        set_idt(&mut cpu, v, gate(TSS2_SEL, 0, 0x5, 0, 0));
    }
    assert_end!(run(&mut cpu, 0, &mut bus, bad_load), End::Shutdown);
    assert_eq!(cpu.tr.selector, TSS2_SEL, "the switches happened");
}

#[test]
fn a_task_gate_fault_after_commit_becomes_a_double_fault() {
    let mut cpu = machine_with_gdt_in_rom();
    let mut bus = TestBus::default();
    // #GP and #TS switch to TSS2; #DF is an ordinary interrupt gate and is
    // delivered in the new task (whose CS selector is null but whose CS
    // descriptor cache still holds the old code segment).
    for v in [10, 13] {
        set_idt(&mut cpu, v, gate(TSS2_SEL, 0, 0x5, 0, 0));
    }
    assert_end!(
        run(&mut cpu, 0, &mut bus, bad_load),
        End::Fault(8, Some(0), 0, 0)
    );
    assert_eq!(cpu.tr.selector, TSS2_SEL);
}

#[test]
fn a_software_interrupt_through_a_task_gate_faults_in_the_new_task() {
    // INT n is an instruction: its switch's late fault is delivered as a
    // fresh event in the new task (here through an interrupt gate).
    let mut cpu = machine_with_gdt_in_rom();
    let mut bus = TestBus::default();
    set_idt(&mut cpu, 0x40, gate(TSS2_SEL, 0, 0x5, 0, 0));
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.int(0x40)),
        End::Fault(10, Some(0), 0, 0)
    );
    assert_eq!(cpu.tr.selector, TSS2_SEL);
}

#[test]
fn a_benign_fault_repeating_during_its_own_delivery_ends() {
    // #AC at CPL 3 whose gate leads to conforming code (the CPL stays 3),
    // with a misaligned ESP: every push of the frame raises #AC again, a
    // benign fault, delivered serially (Table 6-5) — for ever, unless the
    // chain is bounded. It used to spin inside the delivery, so `run` never
    // returned; now it ends in shutdown.
    let mut cpu = machine();
    set_idt(
        &mut cpu,
        17,
        gate(CONFORMING, HANDLERS + 17 * 16, 0xE, 0, 0),
    );
    cpu.cr[0] |= 1 << 18; // AM
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bus = TestBus::default();
        let end = run(&mut cpu, 3, &mut bus, |a| {
            a.pushfd()?;
            a.or(dword_ptr(esp), 1u32 << 18)?; // AC
            a.popfd()?;
            a.mov(esp, 0x8001u32)?;
            a.mov(eax, dword_ptr(0x1001))
        });
        let _ = tx.send(end);
    });
    let end = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the delivery never ended");
    assert_end!(end, End::Shutdown);
}
