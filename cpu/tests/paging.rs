//! Paging as guest code sees it: page tables built in memory, paging
//! switched on by the guest (MOV CR3, MOV CR0), then each kind of #PF with
//! its error code and CR2, accessed/dirty bits, CR0.WP, 4 MiB pages, global
//! pages across CR3 loads, INVLPG, PAE with 2 MiB pages and reserved bits,
//! and self-modifying code written through a second linear alias.

mod common;

use common::*;
use iced_x86::code_asm::*;
use ringside_cpu::Cpu;

const PD: u32 = 0x10_0000;
const PT: u32 = 0x10_1000;
const PDPT: u32 = 0x10_4000;
const PAE_PD: u32 = 0x10_5000;
const PAE_PT: u32 = 0x10_6000;
const TEST_PAGE: u32 = 0x30_0000;

fn rd32(cpu: &Cpu, a: u32) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(a + i as u32)))
}

fn pte_addr(linear: u32) -> u32 {
    PT + (linear >> 12) * 4
}

fn set_pte(cpu: &mut Cpu, linear: u32, v: u32) {
    write(cpu, pte_addr(linear), &v.to_le_bytes());
}

/// Identity-map the first 4 MiB with 4 KiB user/rw pages, then let the
/// guest turn paging on with `cr4` in CR4.
fn paged_machine(cr4_bits: u32) -> (Cpu, TestBus) {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    write(&mut cpu, PD, &(PT | 7).to_le_bytes());
    for i in 0..1024u32 {
        set_pte(&mut cpu, i << 12, (i << 12) | 7);
    }
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, cr4)?;
        a.or(eax, cr4_bits)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PD)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32)?;
        a.mov(cr0, eax)
    });
    assert_eq!(end, End::Done);
    (cpu, bus)
}

fn pf(code: u32) -> End {
    End::Fault(14, Some(code), 0, 0)
}

#[test]
fn not_present_and_protection_faults_with_cr2() {
    let (mut cpu, mut bus) = paged_machine(0);
    set_pte(&mut cpu, TEST_PAGE, 0); // not present
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a
            .mov(eax, dword_ptr(TEST_PAGE + 0x10))),
        pf(0)
    );
    assert_eq!(cpu.cr[2], TEST_PAGE + 0x10);
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a
            .mov(dword_ptr(TEST_PAGE + 4), eax)),
        pf(0b110)
    );
    // Present, supervisor only: user read is a protection fault (P|U).
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 3);
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.mov(eax, dword_ptr(TEST_PAGE))),
        pf(0b101)
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(eax, dword_ptr(TEST_PAGE))),
        End::Done
    );
    // User, read-only: user write is P|W|U; user read fine.
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 5);
    run_invlpg(&mut cpu, &mut bus, TEST_PAGE);
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.mov(eax, dword_ptr(TEST_PAGE))),
        End::Done
    );
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.mov(dword_ptr(TEST_PAGE), eax)),
        pf(0b111)
    );
    assert_eq!(cpu.cr[2], TEST_PAGE);
}

fn run_invlpg(cpu: &mut Cpu, bus: &mut TestBus, linear: u32) {
    assert_eq!(run(cpu, 0, bus, |a| a.invlpg(ptr(linear))), End::Done);
}

#[test]
fn write_protect_applies_to_supervisor_writes_only_with_cr0_wp() {
    let (mut cpu, mut bus) = paged_machine(0);
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 5); // user, read-only
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(dword_ptr(TEST_PAGE), eax)),
        End::Done
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| {
            a.mov(eax, cr0)?;
            a.or(eax, 1u32 << 16)?;
            a.mov(cr0, eax)?;
            a.mov(dword_ptr(TEST_PAGE), eax)
        }),
        pf(0b011)
    );
}

#[test]
fn accessed_and_dirty_bits() {
    let (mut cpu, mut bus) = paged_machine(0);
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 7);
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(eax, dword_ptr(TEST_PAGE))),
        End::Done
    );
    assert_eq!(
        rd32(&cpu, pte_addr(TEST_PAGE)) & 0x60,
        0x20,
        "read: A set, D clear"
    );
    assert_eq!(rd32(&cpu, PD) & 0x20, 0x20, "PDE.A set");
    // The TLB holds the page without write permission (D clear), so the
    // first write walks again and sets D.
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(dword_ptr(TEST_PAGE), eax)),
        End::Done
    );
    assert_eq!(rd32(&cpu, pte_addr(TEST_PAGE)) & 0x60, 0x60, "write: D set");
    // A faulting access sets neither.
    set_pte(&mut cpu, TEST_PAGE + 0x1000, (TEST_PAGE + 0x1000) | 1);
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a
            .mov(eax, dword_ptr(TEST_PAGE + 0x1000))),
        pf(0b101)
    );
    assert_eq!(rd32(&cpu, pte_addr(TEST_PAGE + 0x1000)) & 0x60, 0);
}

#[test]
fn tlb_keeps_stale_entries_until_invlpg_or_cr3() {
    let (mut cpu, mut bus) = paged_machine(0);
    write(&mut cpu, 0x30_1000, &0x1111_1111u32.to_le_bytes());
    write(&mut cpu, 0x30_2000, &0x2222_2222u32.to_le_bytes());
    set_pte(&mut cpu, TEST_PAGE, 0x30_1000 | 7);
    run_invlpg(&mut cpu, &mut bus, TEST_PAGE);
    let read = |a: &mut CodeAssembler| a.mov(ebx, dword_ptr(TEST_PAGE));
    run(&mut cpu, 0, &mut bus, read);
    assert_eq!(cpu.regs[3], 0x1111_1111);
    // Remap without telling the TLB: the old translation is still used.
    set_pte(&mut cpu, TEST_PAGE, 0x30_2000 | 7);
    run(&mut cpu, 0, &mut bus, read);
    assert_eq!(cpu.regs[3], 0x1111_1111, "stale TLB entry, as on hardware");
    run_invlpg(&mut cpu, &mut bus, TEST_PAGE);
    run(&mut cpu, 0, &mut bus, read);
    assert_eq!(cpu.regs[3], 0x2222_2222);
    let flushes = cpu.tlb.stats.flush_invlpg;
    assert!(flushes >= 2);
}

#[test]
fn global_pages_survive_cr3_loads_only_with_pge() {
    let (mut cpu, mut bus) = paged_machine(1 << 7); // CR4.PGE
    write(&mut cpu, 0x30_1000, &0x1111_1111u32.to_le_bytes());
    write(&mut cpu, 0x30_2000, &0x2222_2222u32.to_le_bytes());
    for (linear, g) in [(TEST_PAGE, 0x100u32), (TEST_PAGE + 0x1000 * 16, 0)] {
        set_pte(&mut cpu, linear, 0x30_1000 | 7 | g);
        run_invlpg(&mut cpu, &mut bus, linear);
        run(&mut cpu, 0, &mut bus, |a| a.mov(ebx, dword_ptr(linear)));
        set_pte(&mut cpu, linear, 0x30_2000 | 7 | g);
    }
    let reload = |a: &mut CodeAssembler| {
        a.mov(eax, cr3)?;
        a.mov(cr3, eax)?;
        a.mov(ebx, dword_ptr(TEST_PAGE))?;
        a.mov(ecx, dword_ptr(TEST_PAGE + 0x1000 * 16))
    };
    run(&mut cpu, 0, &mut bus, reload);
    assert_eq!(cpu.regs[3], 0x1111_1111, "global entry kept across MOV CR3");
    assert_eq!(cpu.regs[1], 0x2222_2222, "non-global entry dropped");
    assert!(cpu.tlb.stats.flush_cr3 >= 1);
}

#[test]
fn four_mib_pages_with_pse() {
    let (mut cpu, mut bus) = paged_machine(1 << 4); // CR4.PSE
                                                    // PDE 1 (0x400000–0x7FFFFF) → 4 MiB page at physical 0 (beyond our 4 MiB
                                                    // of RAM would read as ones), user/rw.
    write(&mut cpu, PD + 4, &(0x83u32 | 4).to_le_bytes());
    write(&mut cpu, 0x1234, &0xCAFE_F00Du32.to_le_bytes());
    assert_end!(
        run(&mut cpu, 3, &mut bus, |a| a.mov(ebx, dword_ptr(0x40_1234))),
        End::Done
    );
    assert_eq!(cpu.regs[3], 0xCAFE_F00D);
    // A reserved bit (21:13) in the 4 MiB PDE: #PF with RSVD.
    write(&mut cpu, PD + 4, &(0x83u32 | 4 | 1 << 13).to_le_bytes());
    run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, cr3)?;
        a.mov(cr3, eax)
    });
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(ebx, dword_ptr(0x40_1234))),
        pf(0b1001)
    );
}

#[test]
fn pae_with_two_mib_pages_and_reserved_bits() {
    let mut cpu = machine();
    let mut bus = TestBus::default();
    // PDPT entry 0 → PD; PDE 0 → PT identity-mapping the first 2 MiB with
    // 4 KiB pages; PDE 1 → 2 MiB page at 0 (an alias of low memory).
    write(&mut cpu, PDPT, &((PAE_PD | 1) as u64).to_le_bytes());
    write(&mut cpu, PAE_PD, &((PAE_PT | 7) as u64).to_le_bytes());
    for i in 0..512u64 {
        write(
            &mut cpu,
            PAE_PT + 8 * i as u32,
            &((i << 12) | 7).to_le_bytes(),
        );
    }
    write(&mut cpu, PAE_PD + 8, &(0x87u64).to_le_bytes());
    write(&mut cpu, 0x5678, &0x1357_9BDFu32.to_le_bytes());
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, 1u32 << 5)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PDPT)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32)?;
        a.mov(cr0, eax)?;
        a.mov(ebx, dword_ptr(0x20_5678))
    });
    assert_eq!(end, End::Done);
    assert_eq!(cpu.regs[3], 0x1357_9BDF);
    // Bit 63 (NX, reserved on a P6) in a PTE → RSVD.
    write(
        &mut cpu,
        PAE_PT + 8 * 0x50,
        &((0x50u64 << 12) | 7 | 1 << 63).to_le_bytes(),
    );
    assert_end!(
        run(&mut cpu, 0, &mut bus, |a| a.mov(ebx, dword_ptr(0x5_0000))),
        pf(0b1001)
    );
    assert_eq!(cpu.cr[2], 0x5_0000);
}

#[test]
fn self_modifying_code_through_a_linear_alias() {
    let (mut cpu, mut bus) = paged_machine(0);
    // Map linear TEST_PAGE onto the physical page that holds CODE.
    set_pte(&mut cpu, TEST_PAGE, CODE | 7);
    // A two-pass loop: pass 1 runs (and caches) `mov ebx, 0x11111111`, then
    // patches its immediate through the alias; pass 2 must run the new bytes.
    let end = run(&mut cpu, 0, &mut bus, |a| {
        let mut top = a.create_label();
        a.mov(ecx, 2u32)?; // CODE+0, 5 bytes
        a.set_label(&mut top)?;
        a.mov(ebx, 0x1111_1111u32)?; // CODE+5, immediate at CODE+6
        a.mov(dword_ptr(TEST_PAGE + 6), 0x2222_2222u32)?;
        a.dec(ecx)?;
        a.jnz(top)
    });
    assert_eq!(end, End::Done);
    assert_eq!(
        cpu.regs[3], 0x2222_2222,
        "the write through the alias reached the cached instruction"
    );
    assert!(cpu.decode_cache.invalidations > 0);
}

/// What ENTER left behind when it faulted: how it ended, CR2, EBP, the
/// ESP of the interrupted code (from the exception frame) and the byte at
/// the saved EIP.
struct EnterOutcome {
    end: End,
    cr2: u32,
    ebp: u32,
    esp: u32,
    at_eip: u8,
}

const EBP_MARK: u32 = 0x1234_5678;

/// Run `enter` (raw bytes) at `cpl` with ESP = `start` on the flat stack
/// (or, with `stack16`, on the 16-bit ring-0 stack segment).
fn run_enter(cpu: &mut Cpu, cpl: u8, stack16: bool, start: u32, op: &[u8]) -> EnterOutcome {
    let mut bus = TestBus::default();
    cpu.cr[2] = 0;
    let end = run(cpu, cpl, &mut bus, |a| {
        if stack16 {
            a.mov(ax, DATA0_16BIT_STACK as u32)?;
            a.mov(ss, ax)?;
        }
        a.mov(ebp, EBP_MARK)?;
        a.mov(esp, start)?;
        a.db(op)
    });
    let top = cpu.regs[ringside_cpu::gpr::ESP];
    // Error code, EIP, CS, EFLAGS, then ESP when the fault changed rings.
    let old_esp = if cpl == 3 {
        rd32(cpu, top + 16)
    } else {
        top + 16
    };
    let eip = rd32(cpu, top + 4);
    EnterOutcome {
        end,
        cr2: cpu.cr[2],
        ebp: cpu.regs[ringside_cpu::gpr::EBP],
        esp: old_esp,
        at_eip: cpu.mem.peek(eip),
    }
}

fn assert_enter_faults(o: EnterOutcome, code: u32, want_cr2: u32, start: u32, op0: u8) {
    assert_end!(o.end, pf(code));
    assert_eq!(o.cr2, want_cr2, "CR2 is the final frame's address");
    assert_eq!(o.ebp, EBP_MARK, "EBP unchanged");
    assert_eq!(o.esp, start, "ESP unchanged");
    assert_eq!(o.at_eip, op0, "the saved EIP is the ENTER");
}

#[test]
fn enter_faults_on_a_final_frame_the_page_tables_forbid() {
    let (mut cpu, _) = paged_machine(0);
    // The page above TEST_PAGE holds EBP's push; the final ESP of a
    // 16-byte frame lands 12 bytes below it, on TEST_PAGE.
    let start = TEST_PAGE + 0x1008;
    let enter32 = [0xC8, 0x10, 0x00, 0x00]; // enter 16, 0
    let enter16 = [0x66, 0xC8, 0x10, 0x00, 0x00]; // o16 enter 16, 0
    let final32 = start - 4 - 16;
    let final16 = start - 2 - 16;
    // User write to a supervisor page: P|W|U.
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 3);
    let o = run_enter(&mut cpu, 3, false, start, &enter32);
    assert_enter_faults(o, 0b111, final32, start, 0xC8);
    let o = run_enter(&mut cpu, 3, false, start, &enter16);
    assert_enter_faults(o, 0b111, final16, start, 0x66);
    // Not present: W|U.
    set_pte(&mut cpu, TEST_PAGE, 0);
    let o = run_enter(&mut cpu, 3, false, start, &enter32);
    assert_enter_faults(o, 0b110, final32, start, 0xC8);
    // Read-only user page: P|W|U.
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 5);
    let o = run_enter(&mut cpu, 3, false, start, &enter16);
    assert_enter_faults(o, 0b111, final16, start, 0x66);
    // A writable user page: ENTER completes.
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 7);
    let o = run_enter(&mut cpu, 3, false, start, &enter32);
    assert_end!(o.end, End::Done);
    // A frame of zero bytes writes nothing beyond EBP's push.
    set_pte(&mut cpu, TEST_PAGE, 0);
    let o = run_enter(&mut cpu, 3, false, TEST_PAGE + 0x1004, &[0xC8, 0, 0, 0]);
    assert_end!(o.end, End::Done);
}

#[test]
fn enter_on_a_16_bit_stack_checks_the_final_sp() {
    let (mut cpu, _) = paged_machine(0);
    // SS is 16-bit: the final pointer is SP - 64 (page 0xE000), not present;
    // the exception frame (at CPL 0, on the same stack) fits above it.
    let page = 0xE000;
    set_pte(&mut cpu, page, 0);
    let start = 0xF018;
    let o = run_enter(&mut cpu, 0, true, start, &[0x66, 0xC8, 0x40, 0x00, 0x00]);
    assert_enter_faults(o, 0b010, start - 2 - 0x40, start, 0x66);
    let o = run_enter(&mut cpu, 0, true, start, &[0xC8, 0x40, 0x00, 0x00]);
    assert_enter_faults(o, 0b010, start - 4 - 0x40, start, 0xC8);
    set_pte(&mut cpu, page, page | 3);
    let o = run_enter(&mut cpu, 0, true, start, &[0xC8, 0x40, 0x00, 0x00]);
    assert_end!(o.end, End::Done);
}

#[test]
fn enter_at_cpl0_honours_cr0_wp() {
    let (mut cpu, _) = paged_machine(0);
    set_pte(&mut cpu, TEST_PAGE, TEST_PAGE | 5); // read-only
    let start = TEST_PAGE + 0x1018;
    let enter32 = [0xC8, 0x40, 0x00, 0x00];
    // WP clear: a supervisor write to a read-only page is allowed.
    let o = run_enter(&mut cpu, 0, false, start, &enter32);
    assert_end!(o.end, End::Done);
    let mut bus = TestBus::default();
    let end = run(&mut cpu, 0, &mut bus, |a| {
        a.mov(eax, cr0)?;
        a.or(eax, 1u32 << 16)?;
        a.mov(cr0, eax)
    });
    assert_end!(end, End::Done);
    let o = run_enter(&mut cpu, 0, false, start, &enter32);
    assert_enter_faults(o, 0b011, start - 4 - 0x40, start, 0xC8);
}
