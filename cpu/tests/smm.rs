//! System-management mode: SMI entry and the state-save map at the SDM's
//! offsets, RSM (and #UD outside SMM), SMBASE relocation, auto-HALT
//! restart, an SMI held while SMM runs.

mod common;

use common::*;
use ringside_cpu::smm::map;
use ringside_cpu::{gpr, Bus, Cpu, CpuMode, Event, Recorder, SegReg};

/// A bus with an SMI# line the test pulls.
#[derive(Default)]
struct SmiBus {
    smi: bool,
    nmi: bool,
}

impl Bus for SmiBus {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        0xFFFF_FFFF
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
    fn take_smi(&mut self) -> bool {
        std::mem::take(&mut self.smi)
    }
    fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }
}

const RSM: [u8; 2] = [0x0F, 0xAA];
const NOP: u8 = 0x90;
const HLT: u8 = 0xF4;

fn dword(cpu: &Cpu, at: u32) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(at + i as u32)))
}

/// Flat protected mode at CPL 0 running `code` at CODE, with distinct
/// values in every GPR, CR3 and CR4.
fn protected(code: &[u8]) -> Cpu {
    let mut cpu = machine();
    enter(&mut cpu, 0, code);
    for (i, r) in cpu.regs.iter_mut().enumerate() {
        if i != gpr::ESP {
            *r = 0x1111_1111 * (i as u32 + 1);
        }
    }
    cpu.write_control_register(3, 0x0005_0000).unwrap();
    cpu.write_control_register(4, 0x10).unwrap(); // PSE
    cpu
}

#[test]
fn smi_saves_the_state_at_the_sdm_offsets_and_rsm_restores_it() {
    let mut cpu = protected(&[NOP, NOP, HLT]);
    let rec = Recorder::default();
    cpu.set_observer(Some(Box::new(rec.clone())));
    let mut bus = SmiBus::default();
    cpu.run(&mut bus, u64::MAX, 1); // NOP
    let before_regs = cpu.regs;
    let before_segs = cpu.segs;
    let (cr0, gdtr, idtr) = (cpu.cr[0], cpu.gdtr, cpu.idtr);
    // The handler at the default SMBASE 0x30000 + 0x8000.
    cpu.mem.poke(0x3_8000, &RSM);
    bus.smi = true;
    cpu.step(&mut bus);

    // The SMM entry state (SDM Table 34-4).
    assert!(cpu.in_smm());
    assert_eq!(cpu.mode(), CpuMode::Real);
    assert_eq!(cpu.eip, 0x8000);
    assert_eq!(cpu.eflags(), 0x2);
    let cs = cpu.segs[SegReg::Cs as usize];
    assert_eq!(
        (cs.selector, cs.base, cs.limit),
        (0x3000, 0x3_0000, 0xFFFF_FFFF)
    );
    let ds = cpu.segs[SegReg::Ds as usize];
    assert_eq!((ds.selector, ds.base, ds.limit), (0, 0, 0xFFFF_FFFF));
    assert_eq!(cpu.cr[0] & 0x8000_000D, 0, "PE, EM, TS, PG clear");
    assert_eq!(cpu.cr[4], 0);
    assert_eq!(cpu.dr[7], 0x400);

    // The state-save map.
    let base = 0x3_0000;
    let at = |off: u32| dword(&cpu, base + off);
    assert_eq!(at(map::CR0), cr0);
    assert_eq!(at(map::CR3), 0x0005_0000);
    assert_eq!(at(map::CR4), 0x10);
    assert_eq!(at(map::EFLAGS), 0x2);
    assert_eq!(at(map::EIP), CODE + 1);
    for (i, &r) in before_regs.iter().enumerate() {
        assert_eq!(at(map::EAX + 4 * i as u32), r, "GPR {i}");
    }
    assert_eq!(at(0xFFEC), before_regs[gpr::EDI], "EDI at 7FECh");
    assert_eq!(at(map::ES_SEL), DATA0 as u32);
    assert_eq!(at(0xFFAC), CODE0 as u32, "CS selector at 7FACh");
    assert_eq!(at(0xFFBC), DATA0 as u32, "GS selector at 7FBCh");
    let cs0 = before_segs[SegReg::Cs as usize];
    assert_eq!(
        [at(0xFF90), at(0xFF94), at(0xFF98)],
        [(cs0.attrs & 0xF0FF) as u32, cs0.limit, cs0.base],
        "CS cache"
    );
    assert_eq!(at(map::GDTR_BASE), gdtr.base);
    assert_eq!(at(map::IDTR_LIMIT), idtr.limit as u32);
    assert_eq!(at(map::TR_SEL), cpu.tr.selector as u32);
    assert_eq!(at(map::IO_RESTART), 0, "not halted, no I/O restart");
    assert_eq!(at(map::REVISION), 0x0002_0000);
    assert_ne!(at(map::REVISION) & (1 << 17), 0, "SMBASE relocation");
    assert_eq!(at(map::SMBASE), 0x3_0000);

    // The handler changes the saved EAX and relocates SMBASE; RSM.
    cpu.mem.poke(base + map::EAX, &0xCAFE_F00Du32.to_le_bytes());
    cpu.mem
        .poke(base + map::SMBASE, &0x000A_0000u32.to_le_bytes());
    cpu.step(&mut bus);
    assert!(!cpu.in_smm());
    assert_eq!(cpu.mode(), CpuMode::Protected);
    assert_eq!(cpu.cpl(), 0);
    assert_eq!(cpu.eip, CODE + 1);
    assert_eq!(cpu.regs[gpr::EAX], 0xCAFE_F00D);
    assert_eq!(cpu.regs[gpr::EBX], before_regs[gpr::EBX]);
    assert_eq!(cpu.segs, before_segs);
    assert_eq!((cpu.cr[0], cpu.cr[3], cpu.cr[4]), (cr0, 0x0005_0000, 0x10));
    assert_eq!(cpu.smm_state().smbase, 0xA_0000);
    // RSM makes the run loop look at its lines again (a yield), then NOP, HLT.
    for _ in 0..3 {
        cpu.run(&mut bus, u64::MAX, 10);
    }
    assert!(cpu.is_halted());

    let smm: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::SmmEntry { .. } | Event::Rsm { .. }))
        .collect();
    assert_eq!(
        smm,
        vec![
            Event::SmmEntry {
                smbase: 0x3_0000,
                cs: CODE0,
                eip: CODE + 1,
                halted: false
            },
            Event::Rsm { smbase: 0xA_0000 },
        ]
    );
}

#[test]
fn rsm_outside_smm_is_ud_at_every_cpl() {
    for cpl in [0, 3] {
        let mut cpu = machine();
        let end = run(&mut cpu, cpl, &mut TestBus::default(), |a| a.rsm());
        assert!(
            matches!(end, End::Fault(6, None, _, eip) if eip == CODE),
            "CPL {cpl}: {end:?}"
        );
    }
}

#[test]
fn a_relocated_smbase_takes_the_next_smi_and_hlt_restarts() {
    // Code: HLT; NOP; HLT. SMIs strike while halted.
    let mut cpu = protected(&[HLT, NOP, HLT]);
    let mut bus = SmiBus::default();
    cpu.mem.poke(0x3_8000, &RSM);
    cpu.mem.poke(0xA_8000, &RSM);
    // First SMI at the default base relocates to 0xA0000.
    bus.smi = true;
    cpu.step(&mut bus);
    cpu.mem
        .poke(0x3_0000 + map::SMBASE, &0x000A_0000u32.to_le_bytes());
    cpu.step(&mut bus);
    assert!(!cpu.in_smm());
    cpu.step(&mut bus); // HLT
    assert!(cpu.is_halted());

    // An SMI wakes the halted CPU into SMM at the new base; the auto-HALT
    // field says it was halted; RSM with the bit set halts again.
    bus.smi = true;
    cpu.step(&mut bus);
    assert!(cpu.in_smm() && !cpu.is_halted());
    assert_eq!(cpu.segs[SegReg::Cs as usize].base, 0xA_0000);
    assert_eq!(dword(&cpu, 0xA_0000 + map::EIP), CODE + 1);
    assert_eq!(dword(&cpu, 0xA_0000 + map::IO_RESTART) >> 16, 1);
    cpu.step(&mut bus);
    assert!(!cpu.in_smm());
    assert!(cpu.is_halted(), "auto-HALT restart");
    assert_eq!(cpu.eip, CODE + 1);

    // Again, but the handler clears the bit: execution goes on after HLT.
    bus.smi = true;
    cpu.step(&mut bus);
    cpu.mem.poke(0xA_0000 + map::AUTO_HALT, &[0, 0]);
    cpu.step(&mut bus);
    assert!(!cpu.is_halted());
    cpu.step(&mut bus); // NOP
    assert_eq!(cpu.eip, CODE + 2);
}

#[test]
fn smi_and_nmi_wait_while_smm_runs() {
    let mut cpu = protected(&[NOP, NOP, NOP, NOP, HLT]);
    let rec = Recorder::default();
    cpu.set_observer(Some(Box::new(rec.clone())));
    let mut bus = SmiBus::default();
    cpu.mem.poke(0x3_8000, &[NOP, NOP, RSM[0], RSM[1]]);
    bus.smi = true;
    cpu.step(&mut bus);
    assert!(cpu.in_smm());
    // A second SMI and an NMI while the handler runs: both held.
    bus.smi = true;
    bus.nmi = true;
    cpu.step(&mut bus);
    cpu.step(&mut bus);
    assert!(cpu.in_smm());
    assert_eq!(cpu.eip, 0x8002, "no nesting, no NMI");
    assert!(cpu.smm_state().pending);
    cpu.step(&mut bus); // RSM
    assert!(!cpu.in_smm());
    // The held SMI comes first (it outranks the NMI), then after its RSM
    // the NMI.
    cpu.step(&mut bus);
    assert!(cpu.in_smm());
    cpu.run(&mut bus, u64::MAX, 3);
    assert!(!cpu.in_smm());
    let kinds: Vec<_> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SmmEntry { .. } => Some("smi"),
            Event::Rsm { .. } => Some("rsm"),
            Event::Interrupt { vector: 2, .. } => Some("nmi"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["smi", "rsm", "smi", "rsm", "nmi"]);
}

#[test]
fn a_snapshot_taken_in_smm_restores_smm_and_the_smram_routing() {
    let mut cpu = protected(&[NOP, HLT]);
    cpu.mem.add_mmio(0xA_0000, 0xB_FFFF);
    cpu.mem.set_smram_control(0x0A); // G_SMRAME, closed
    cpu.mem.poke(0x3_8000, &RSM);
    let mut bus = SmiBus {
        smi: true,
        ..SmiBus::default()
    };
    cpu.step(&mut bus);
    assert!(cpu.in_smm());
    assert_eq!(cpu.mem.read_u8(0xA_0000), Some(0), "SMRAM while in SMM");
    let mut other = protected(&[NOP, HLT]);
    other.mem.add_mmio(0xA_0000, 0xB_FFFF);
    other.restore_state(&cpu.save_state()).unwrap();
    assert!(other.in_smm());
    assert_eq!(other.smm_state(), cpu.smm_state());
    assert_eq!(other.mem.read_u8(0xA_0000), Some(0));
    other.step(&mut bus); // RSM
    assert!(!other.in_smm());
    assert_eq!(other.mem.read_u8(0xA_0000), None, "the VGA again");
    assert_eq!(other.eip, CODE, "the SMI struck before the NOP");
}
