//! The instruction set in Popek and Goldberg's terms (CACM 1974), as data.
//!
//! Every instruction this CPU implements is in one of five classes:
//!
//! * **privileged**: traps (#GP) whenever CPL > 0 — a trap-and-emulate
//!   virtual machine monitor (VMM) running its guest kernel in ring 1 or 3
//!   sees every use and can emulate it;
//! * **IOPL-sensitive**: traps when CPL > IOPL (and in virtual-8086 mode when
//!   IOPL < 3), so a VMM that keeps IOPL below the guest's ring sees them;
//! * **control-sensitive**: changes the machine's configuration (interrupt
//!   flag, segment registers, privilege level) — if it does not trap at the
//!   guest's ring, the VMM cannot keep the real configuration apart from the
//!   guest's;
//! * **behaviour-sensitive**: its result depends on the configuration
//!   (CPL, the real descriptor tables, CR0) — if it does not trap, the guest
//!   sees the VMM's machine instead of its own virtual one;
//! * **innocuous**: neither; it runs directly at full speed in any ring.
//!
//! Popek and Goldberg's theorem: a machine can be virtualized by trap and
//! emulate if every sensitive instruction is privileged. On x86 seventeen
//! are not (Robin & Irvine, USENIX Security 2000); they are marked
//! [`Classification::robin_irvine`]. VMware (binary translation, 1999),
//! Xen (paravirtualization, 2003) and finally Intel VT-x / AMD-V (2005–06,
//! which make them trap to a new root mode) are the three ways around them.
//!
//! The table is data: [`classify`] looks a mnemonic up, [`TABLE`] lists
//! the system instructions one by one and [`INNOCUOUS`] the rest in groups.
//! It is the one place these facts live: the run loop's events
//! ([`untrapped_reason`] for `SensitiveUntrapped`, [`gp_is_trap`] and
//! [`is_privileged_form`] for `PrivilegedTrap`, both one array load), the
//! trap log's sentences, `ringside explain` and a monitor all read it.
//! Tests check both directions: every mnemonic the CPU implements
//! ([`implemented_mnemonics`]) has an entry, and every entry has a handler.

use iced_x86::{
    Code, Decoder, DecoderOptions, EncodingKind, Instruction, MandatoryPrefix, Mnemonic,
    OpCodeTableKind, OpKind, Register,
};

/// Popek and Goldberg's classes, refined for x86's IOPL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Traps at CPL > 0.
    Privileged,
    /// Traps at CPL > IOPL (or in virtual-8086 mode with IOPL < 3).
    IoplSensitive,
    /// Changes the configuration of the machine without trapping.
    ControlSensitive,
    /// Behaves differently depending on the configuration, without trapping.
    BehaviourSensitive,
    /// Neither: safe to run directly.
    Innocuous,
}

impl Class {
    /// The class in plain words, as `explain` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Class::Privileged => "privileged",
            Class::IoplSensitive => "IOPL-sensitive",
            Class::ControlSensitive => "control-sensitive",
            Class::BehaviourSensitive => "behaviour-sensitive",
            Class::Innocuous => "innocuous",
        }
    }

    /// Whether a trap-and-emulate VMM sees it when run deprivileged.
    pub fn traps_deprivileged(self) -> bool {
        matches!(self, Class::Privileged | Class::IoplSensitive)
    }
}

impl Classification {
    /// Whether it traps when a guest kernel runs it deprivileged, in a few
    /// words, as `explain` prints it.
    pub fn trap_words(&self) -> &'static str {
        match self.class {
            Class::Privileged => "yes: #GP(0) at CPL > 0",
            Class::IoplSensitive => "yes when CPL > IOPL: #GP(0)",
            _ if self.robin_irvine || self.class != Class::Innocuous => {
                "no — it runs at CPL > 0 without a trap"
            }
            _ => "no (and it need not)",
        }
    }
}

/// One mnemonic's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The mnemonic (iced-x86's name for it).
    pub mnemonic: Mnemonic,
    /// Its class (for a mnemonic with several forms, the most telling one;
    /// [`Classification::forms`] says which forms differ).
    pub class: Class,
    /// One of Robin & Irvine's sensitive-but-unprivileged instructions: the
    /// reason x86 was not classically virtualizable.
    pub robin_irvine: bool,
    /// How the forms differ, when they do (empty otherwise).
    pub forms: &'static str,
    /// One line: what it does to the protection state.
    pub summary: &'static str,
    /// A paragraph: what a trap-and-emulate VMM would see or miss.
    pub explanation: &'static str,
    /// For a sensitive instruction that runs at CPL > 0 without trapping
    /// (Robin & Irvine's set): what it reveals or silently drops, in a few
    /// words, as the run loop's `SensitiveUntrapped` event carries it.
    /// Empty otherwise.
    pub untrapped: &'static str,
    /// Whether its #GP at CPL > 0 (or in virtual-8086 mode) is a trap a
    /// trap-and-emulate monitor relies on even though the class does not
    /// trap unconditionally: MOV to/from CRn/DRn (SDM Vol. 3A 2.8 lists it
    /// as CPL-0 only), RDTSC with CR4.TSD = 1 (Vol. 2B RDTSC), and
    /// PUSHF/POPF/INT n/IRET in virtual-8086 mode with IOPL < 3 (Vol. 3A
    /// 20.2.7). Always true for privileged and IOPL-sensitive entries.
    pub gp_is_trap: bool,
}

const fn sys(
    mnemonic: Mnemonic,
    class: Class,
    robin_irvine: bool,
    forms: &'static str,
    summary: &'static str,
    explanation: &'static str,
) -> Classification {
    Classification {
        mnemonic,
        class,
        robin_irvine,
        forms,
        summary,
        explanation,
        untrapped: "",
        gp_is_trap: matches!(class, Class::Privileged | Class::IoplSensitive),
    }
}

impl Classification {
    /// This entry with its untrapped-sensitive reason (see
    /// [`Classification::untrapped`]).
    const fn reveals(self, untrapped: &'static str) -> Self {
        Classification { untrapped, ..self }
    }

    /// This entry marked as trapping in some forms or modes (see
    /// [`Classification::gp_is_trap`]).
    const fn traps_sometimes(self) -> Self {
        Classification {
            gp_is_trap: true,
            ..self
        }
    }
}

use Class::*;
use Mnemonic as M;

const PRIV_LOAD_TABLE: &str = "A guest kernel loads its own descriptor tables; run deprivileged, the load traps with #GP(0) and the VMM records the guest's table as virtual state while keeping its own shadow table loaded. This is the textbook case Popek and Goldberg require: sensitive and privileged, so trap-and-emulate works.";
const PRIV_CACHE: &str = "Cache and TLB control only the real kernel may do. At CPL > 0 it raises #GP(0); the VMM emulates it (for INVLPG: drops the page from its shadow page table). Sensitive and privileged: no hole.";
const PRIV_MSR: &str = "Model-specific registers configure the processor itself (SYSENTER entry point, MTRRs). At CPL > 0 the access raises #GP(0), so the VMM sees every guest access and keeps a virtual copy. Sensitive and privileged: no hole.";
const R_I_SEG: &str = "Robin & Irvine hole. Segment selectors carry a requested privilege level in their low two bits, and CS's is the CPL. A guest kernel deprivileged to ring 1 or 3 that reads CS or SS sees RPL 1 or 3, not the 0 it expects; loads of DS/ES/FS/GS/SS are checked against the real CPL and the real GDT/LDT, not the guest's. None of this traps, so the VMM can neither fix the value the guest reads nor check the load against the guest's tables.";
const R_I_FAR: &str = "Robin & Irvine hole. Far transfers check the target descriptor's DPL and the selector's RPL against the real CPL: a deprivileged guest kernel calling its own ring-0 code through a call gate, or returning to 'ring 0', is judged as the ring it really runs in. Where the check passes nothing traps, so the VMM cannot emulate the privilege change the guest believed it made; where it fails the #GP does not say what the guest intended.";
const R_I_TABLE_STORE: &str = "Robin & Irvine hole. Storing a descriptor-table register is allowed at every CPL (only the load is privileged). A guest kernel running deprivileged reads the VMM's real table base and limit instead of its own virtual ones, and nothing traps: the VMM never gets a chance to lie. Malware used exactly this ('Red Pill', 2004) to detect it was running in a VM.";
const R_I_DESC_QUERY: &str = "Robin & Irvine hole. These instructions inspect a descriptor and answer in ZF (and a register) whether the current privilege level could use it. They read the real GDT/LDT and compare with the real CPL, at any CPL, without trapping: a deprivileged guest kernel is told 'no' for its own ring-0 segments, and sees the VMM's descriptors rather than its own.";

/// The system instructions, one entry each.
pub const TABLE: &[Classification] = &[
    // Privileged.
    sys(M::Hlt, Privileged, false, "", "halts the processor until an interrupt", "Only ring 0 may stop the processor. At CPL > 0 HLT raises #GP(0): the VMM sees it and can schedule another guest instead. Sensitive and privileged: no hole."),
    sys(M::Lgdt, Privileged, false, "", "loads GDTR (base and limit of the GDT)", PRIV_LOAD_TABLE),
    sys(M::Lidt, Privileged, false, "", "loads IDTR (base and limit of the IDT)", PRIV_LOAD_TABLE),
    sys(M::Lldt, Privileged, false, "", "loads LDTR from a GDT selector", PRIV_LOAD_TABLE),
    sys(M::Ltr, Privileged, false, "", "loads the task register (the current TSS)", PRIV_LOAD_TABLE),
    sys(M::Lmsw, Privileged, false, "", "writes CR0's low four bits (PE, MP, EM, TS)", "The 286's way to enter protected mode. At CPL > 0 it raises #GP(0) and the VMM emulates the guest's virtual CR0. Note that its mirror, SMSW, is not privileged (see SMSW)."),
    sys(M::Clts, Privileged, false, "", "clears CR0.TS (task switched)", "Kernels clear TS after saving the x87 state lazily. At CPL > 0 CLTS raises #GP(0); the VMM tracks the guest's virtual TS. Sensitive and privileged: no hole."),
    sys(M::Invd, Privileged, false, "", "invalidates caches without writing back", PRIV_CACHE),
    sys(M::Wbinvd, Privileged, false, "", "writes back and invalidates caches", PRIV_CACHE),
    sys(M::Invlpg, Privileged, false, "", "drops one page's translation from the TLB", PRIV_CACHE),
    sys(M::Rdmsr, Privileged, false, "", "reads a model-specific register", PRIV_MSR),
    sys(M::Wrmsr, Privileged, false, "", "writes a model-specific register", PRIV_MSR),
    sys(M::Rdpmc, Privileged, false, "privileged unless CR4.PCE = 1", "reads a performance-monitoring counter", "With CR4.PCE clear (the default) RDPMC raises #GP(0) at CPL > 0, so the VMM can virtualize the counters. A kernel that sets PCE hands them to user mode, where they reveal real event counts."),
    sys(M::Rsm, Privileged, false, "#UD outside system-management mode, at every CPL", "resumes from system-management mode (restores the state the SMI saved)", "Only an SMI handler can execute it: everywhere else, ring 0 included, it raises #UD. SMM sits below every ring (it is entered by the chipset's SMI#, never by software), so a VMM neither sees nor needs to emulate it; firmware uses it to return from its hidden handler."),
    sys(M::Sysexit, Privileged, false, "", "fast return from ring 0 to ring 3 (SYSENTER_CS + 24)", "The fast system-call return: only CPL 0 may execute it (#GP(0) otherwise), so a deprivileged guest kernel's SYSEXIT traps and the VMM performs the return into the guest's user mode."),
    // IOPL-sensitive.
    sys(M::Cli, IoplSensitive, false, "", "clears IF: maskable interrupts off", "Allowed when CPL <= IOPL, #GP(0) otherwise (and in virtual-8086 mode when IOPL < 3). A VMM runs its guest kernel with IOPL below the guest's ring, so every CLI traps and the VMM keeps a virtual IF. Compare POPF, which changes IF too but silently ignores the change instead of trapping."),
    sys(M::Sti, IoplSensitive, false, "", "sets IF: maskable interrupts on (after the next instruction)", "The mirror of CLI: allowed when CPL <= IOPL, otherwise #GP(0), which the VMM uses to deliver the guest's pending virtual interrupts at the right moment."),
    sys(M::In, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "reads an I/O port", "Port I/O is allowed when CPL <= IOPL; otherwise the TSS I/O permission bitmap decides port by port, and a denied access raises #GP(0). A VMM denies the ports of devices it emulates and sees every access (trap and emulate); a paravirtual guest instead calls the VMM directly (a hypercall)."),
    sys(M::Out, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "writes an I/O port", "As IN: CPL <= IOPL or the TSS I/O permission bitmap allows it, otherwise #GP(0), which is how a VMM intercepts a guest's device accesses."),
    sys(M::Insb, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string input from a port (bytes)", "The string forms of IN follow IN's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    sys(M::Insw, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string input from a port (words)", "The string forms of IN follow IN's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    sys(M::Insd, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string input from a port (dwords)", "The string forms of IN follow IN's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    sys(M::Outsb, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string output to a port (bytes)", "The string forms of OUT follow OUT's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    sys(M::Outsw, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string output to a port (words)", "The string forms of OUT follow OUT's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    sys(M::Outsd, IoplSensitive, false, "also allowed at CPL > IOPL when the TSS I/O bitmap permits the port", "string output to a port (dwords)", "The string forms of OUT follow OUT's rule: CPL <= IOPL or the I/O permission bitmap, else #GP(0)."),
    // Robin & Irvine: sensitive, unprivileged.
    sys(M::Sgdt, BehaviourSensitive, true, "", "stores GDTR (base and limit)", R_I_TABLE_STORE).reveals("reveals the real GDT/IDT base, not the guest's"),
    sys(M::Sidt, BehaviourSensitive, true, "", "stores IDTR (base and limit)", R_I_TABLE_STORE).reveals("reveals the real GDT/IDT base, not the guest's"),
    sys(M::Sldt, BehaviourSensitive, true, "", "stores the LDTR selector", R_I_TABLE_STORE).reveals("reveals the real LDT/task register selector"),
    sys(M::Str, BehaviourSensitive, true, "", "stores the task register selector", "Robin & Irvine hole. STR works at every CPL and returns the real task register, so a deprivileged guest kernel sees the VMM's TSS selector, not the one it loaded with LTR (which did trap). The VMM cannot intercept the read.").reveals("reveals the real LDT/task register selector"),
    sys(M::Smsw, BehaviourSensitive, true, "", "stores CR0's low 16 bits (PE, MP, EM, TS, ...)", "Robin & Irvine hole. MOV from CR0 is privileged, but the 286's SMSW reads the same low bits at any CPL without trapping. A guest that believes it runs in real mode (PE = 0) sees PE = 1, and the real TS bit leaks the VMM's lazy x87 switching.").reveals("reveals the real CR0 low bits (PE, TS) without trapping"),
    sys(M::Pushf, BehaviourSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "pushes FLAGS, including IF and IOPL", "Robin & Irvine hole. PUSHF stores the real IF and IOPL at any CPL in protected mode. A guest kernel that executed CLI (which trapped, so the VMM cleared only the guest's virtual IF) reads back IF = 1, and sees the IOPL the VMM chose, not its own. Only in virtual-8086 mode with IOPL < 3 does it trap.").reveals("reveals the real IF and IOPL").traps_sometimes(),
    sys(M::Pushfd, BehaviourSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "pushes EFLAGS, including IF and IOPL", "Robin & Irvine hole. As PUSHF: the real IF and IOPL are visible at any CPL in protected mode without a trap.").reveals("reveals the real IF and IOPL").traps_sometimes(),
    sys(M::Popf, ControlSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "pops FLAGS; IF only changes if CPL <= IOPL, IOPL only at CPL 0", "Robin & Irvine hole, the most famous one. At CPL > IOPL, POPF silently ignores a change to IF (and at CPL > 0 to IOPL) instead of trapping. A deprivileged guest kernel that restores interrupts with POPF (the usual spin_unlock_irqrestore) has its change dropped and the VMM never hears of it: the guest thinks interrupts are on, the VMM thinks they are off.").reveals("silently ignores IF/IOPL changes at CPL > IOPL instead of trapping").traps_sometimes(),
    sys(M::Popfd, ControlSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "pops EFLAGS; IF only changes if CPL <= IOPL, IOPL only at CPL 0", "Robin & Irvine hole. As POPF: IF and IOPL changes are silently ignored at insufficient privilege instead of trapping, so a VMM never sees the guest's attempt.").reveals("silently ignores IF/IOPL changes at CPL > IOPL instead of trapping").traps_sometimes(),
    sys(M::Lar, BehaviourSensitive, true, "", "loads a descriptor's access rights if visible at CPL/RPL", R_I_DESC_QUERY).reveals("answers from the real descriptor tables with the real CPL"),
    sys(M::Lsl, BehaviourSensitive, true, "", "loads a segment limit if visible at CPL/RPL", R_I_DESC_QUERY).reveals("answers from the real descriptor tables with the real CPL"),
    sys(M::Verr, BehaviourSensitive, true, "", "is the segment readable at CPL/RPL?", R_I_DESC_QUERY).reveals("answers from the real descriptor tables with the real CPL"),
    sys(M::Verw, BehaviourSensitive, true, "", "is the segment writable at CPL/RPL?", R_I_DESC_QUERY).reveals("answers from the real descriptor tables with the real CPL"),
    sys(M::Push, BehaviourSensitive, true, "only PUSH CS/SS/DS/ES/FS/GS is sensitive; other forms are innocuous", "PUSH of a segment register exposes its selector's RPL", R_I_SEG).reveals("segment selectors expose the real RPL/CPL"),
    sys(M::Pop, ControlSensitive, true, "only POP SS/DS/ES/FS/GS is sensitive; other forms are innocuous", "POP into a segment register loads a descriptor checked against the real CPL", R_I_SEG).reveals("segment selectors expose the real RPL/CPL"),
    sys(M::Mov, ControlSensitive, true, "MOV to/from CRn or DRn is privileged (#GP at CPL > 0); MOV to/from a segment register is sensitive and does not trap; other forms are innocuous", "MOV with a segment register reads a selector or loads a descriptor", R_I_SEG).reveals("segment selectors expose the real RPL/CPL").traps_sometimes(),
    sys(M::Call, ControlSensitive, true, "only far CALL (direct or through a call gate/TSS) is sensitive; near CALL is innocuous", "far CALL: through a call gate to an inner ring, or a task switch", R_I_FAR).reveals("far transfers check privilege against the real CPL"),
    sys(M::Jmp, ControlSensitive, true, "only far JMP is sensitive; near JMP is innocuous", "far JMP: loads CS (privilege checked), or switches task", R_I_FAR).reveals("far transfers check privilege against the real CPL"),
    sys(M::Retf, ControlSensitive, true, "", "far RET: may return to an outer ring (switching stacks)", R_I_FAR).reveals("far transfers check privilege against the real CPL"),
    sys(M::Int, BehaviourSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "software interrupt through the IDT, checked against the gate's DPL", "Robin & Irvine hole. INT n is allowed when CPL <= the gate's DPL, so a system-call gate with DPL 3 lets user code into ring 0 directly — into the VMM's handler, not the guest kernel's. Gates with DPL 0 raise #GP instead, with an error code pointing at the IDT entry. Which of these the guest gets depends on the real CPL, not the one the guest believes it has.").reveals("gate DPL checks use the real CPL").traps_sometimes(),
    sys(M::Iret, ControlSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "returns from an interrupt; IF/IOPL restored only with enough privilege", "Robin & Irvine hole. IRET restores FLAGS from the stack, but at CPL > 0 the IOPL field and at CPL > IOPL the IF field keep their real values, silently, as with POPF. A guest kernel returning to 'itself' at ring 0 is checked against the real CPL and may be sent to an outer ring instead.").reveals("IRET's IF/IOPL behaviour depends on the real CPL").traps_sometimes(),
    sys(M::Iretd, ControlSensitive, true, "traps in virtual-8086 mode when IOPL < 3", "32-bit IRET; may also return to virtual-8086 mode or switch tasks (NT)", "Robin & Irvine hole. As IRET: IF/IOPL changes are ignored at insufficient privilege without a trap, and the privilege checks use the real CPL.").reveals("IRET's IF/IOPL behaviour depends on the real CPL").traps_sometimes(),
    // Sensitive, not on Robin & Irvine's list.
    sys(M::Int3, BehaviourSensitive, false, "", "breakpoint trap (#BP) through the IDT gate's DPL check", "Like INT n (its DPL check uses the real CPL) but aimed at debuggers; a VMM usually gives vector 3 a DPL-3 gate and reflects it to the guest."),
    sys(M::Into, BehaviourSensitive, false, "", "overflow trap (#OF) when OF = 1, DPL-checked like INT n", "Like INT n: the IDT gate's DPL is checked against the real CPL."),
    sys(M::Int1, Innocuous, false, "", "ICEBP: raises #DB without a DPL check", "An in-circuit-emulator breakpoint: delivers #DB like a hardware debug exception (no gate DPL check). It enters the kernel's (or VMM's) #DB handler, which is a trap the VMM sees."),
    sys(M::Lds, ControlSensitive, false, "", "loads DS and a register from a far pointer", "Loads a segment register like MOV DS: the descriptor is checked against the real CPL without trapping. Not on Robin & Irvine's list (which names MOV/PUSH/POP), but the same hole."),
    sys(M::Les, ControlSensitive, false, "", "loads ES and a register from a far pointer", "Loads a segment register like MOV ES: checked against the real CPL without trapping — the same hole as MOV to a segment register."),
    sys(M::Lfs, ControlSensitive, false, "", "loads FS and a register from a far pointer", "Loads a segment register like MOV FS: checked against the real CPL without trapping — the same hole as MOV to a segment register."),
    sys(M::Lgs, ControlSensitive, false, "", "loads GS and a register from a far pointer", "Loads a segment register like MOV GS: checked against the real CPL without trapping — the same hole as MOV to a segment register."),
    sys(M::Lss, ControlSensitive, false, "", "loads SS and a register from a far pointer", "Loads SS like MOV SS: the stack segment's DPL must equal the real CPL, so a deprivileged guest kernel cannot load its ring-0 stack, and nothing traps to let the VMM intervene."),
    sys(M::Arpl, BehaviourSensitive, false, "#UD in real and virtual-8086 mode", "raises a selector's RPL to another's", "A helper for kernels checking pointers from user mode; it only compares two selector values, but run by a deprivileged kernel on its own CS it sees the real RPL."),
    sys(M::Sysenter, ControlSensitive, false, "#GP(0) in real mode or when SYSENTER_CS is 0", "fast system call: to ring 0 at SYSENTER_CS:SYSENTER_EIP", "Changes CPL to 0, but only to the entry point that WRMSR (privileged) configured. Under a VMM it lands in the VMM's ring-0 code, so it behaves as a trap the VMM sees."),
    sys(M::Rdtsc, BehaviourSensitive, false, "privileged only when CR4.TSD = 1", "reads the time-stamp counter", "With CR4.TSD clear (the default) any ring reads the real cycle counter and can time the VMM's emulation (a classic VM-detection trick). A VMM sets TSD to make RDTSC trap and offsets the counter.").traps_sometimes(),
    sys(M::Cpuid, BehaviourSensitive, false, "", "identifies the processor and its features", "Unprivileged and untrapped on this (P6-class) CPU: a guest sees the real processor's features. VT-x makes CPUID trap unconditionally so a VMM can present a virtual CPU."),
];

/// The innocuous instructions, in groups that share an explanation.
pub const INNOCUOUS: &[(&str, &[Mnemonic], &str)] = &[
    ("arithmetic and logic", &[M::Add, M::Adc, M::Sub, M::Sbb, M::Cmp, M::And, M::Or, M::Xor, M::Test, M::Inc, M::Dec, M::Neg, M::Not, M::Mul, M::Imul, M::Div, M::Idiv, M::Cbw, M::Cwde, M::Cwd, M::Cdq, M::Aaa, M::Aas, M::Aad, M::Aam, M::Daa, M::Das, M::Salc, M::Xadd, M::Cmpxchg, M::Cmpxchg8b],
     "Computes on registers and memory through the current segments and page tables. The result does not depend on the privilege level or the VMM's configuration, so it runs directly in any ring (faults such as #DE go to the IDT, which the VMM owns)."),
    ("shifts and bits", &[M::Shl, M::Sal, M::Shr, M::Sar, M::Rol, M::Ror, M::Rcl, M::Rcr, M::Shld, M::Shrd, M::Bt, M::Bts, M::Btr, M::Btc, M::Bsf, M::Bsr, M::Bswap, M::Lzcnt, M::Tzcnt],
     "Pure computation on registers and memory: innocuous."),
    ("data movement", &[M::Movsx, M::Movzx, M::Lea, M::Xchg, M::Xlatb, M::Nop, M::Pause, M::Cmova, M::Cmovae, M::Cmovb, M::Cmovbe, M::Cmove, M::Cmovg, M::Cmovge, M::Cmovl, M::Cmovle, M::Cmovne, M::Cmovno, M::Cmovnp, M::Cmovns, M::Cmovo, M::Cmovp, M::Cmovs, M::Seta, M::Setae, M::Setb, M::Setbe, M::Sete, M::Setg, M::Setge, M::Setl, M::Setle, M::Setne, M::Setno, M::Setnp, M::Setns, M::Seto, M::Setp, M::Sets, M::Bound],
     "Moves data between registers and memory through the current segments and paging: innocuous (memory protection is enforced by the MMU the VMM configures)."),
    ("stack", &[M::Pusha, M::Pushad, M::Popa, M::Popad, M::Enter, M::Leave],
     "Stack operations on general registers: innocuous (PUSH/POP of segment registers are the sensitive forms; see PUSH and POP)."),
    ("string", &[M::Movsb, M::Movsw, M::Movsd, M::Cmpsb, M::Cmpsw, M::Cmpsd, M::Scasb, M::Scasw, M::Scasd, M::Lodsb, M::Lodsw, M::Lodsd, M::Stosb, M::Stosw, M::Stosd],
     "Memory-to-memory string operations: innocuous (the port string operations INS/OUTS are IOPL-sensitive)."),
    ("near control flow", &[M::Ret, M::Ja, M::Jae, M::Jb, M::Jbe, M::Je, M::Jg, M::Jge, M::Jl, M::Jle, M::Jne, M::Jno, M::Jnp, M::Jns, M::Jo, M::Jp, M::Js, M::Jcxz, M::Jecxz, M::Loop, M::Loope, M::Loopne],
     "Transfers within the current code segment never change the privilege level: innocuous."),
    ("hints", &[M::Prefetchnta, M::Prefetcht0, M::Prefetcht1, M::Prefetcht2, M::Cldemote, M::Endbr32, M::Endbr64, M::Reservednop],
     "Cache hints and reserved no-ops: no architectural effect at any privilege level, so innocuous."),
    ("status flags", &[M::Clc, M::Stc, M::Cmc, M::Cld, M::Std, M::Lahf, M::Sahf],
     "These touch only the arithmetic flags and DF, never IF or IOPL: innocuous."),
    ("x87 floating point", &[M::Wait, M::F2xm1, M::Fabs, M::Fadd, M::Faddp, M::Fbld, M::Fbstp, M::Fchs, M::Fcmovb, M::Fcmovbe, M::Fcmove, M::Fcmovnb, M::Fcmovnbe, M::Fcmovne, M::Fcmovnu, M::Fcmovu, M::Fcom, M::Fcomi, M::Fcomip, M::Fcomp, M::Fcompp, M::Fcos, M::Fdecstp, M::Fdiv, M::Fdivp, M::Fdivr, M::Fdivrp, M::Ffree, M::Ffreep, M::Fiadd, M::Ficom, M::Ficomp, M::Fidiv, M::Fidivr, M::Fild, M::Fimul, M::Fincstp, M::Fist, M::Fistp, M::Fisub, M::Fisubr, M::Fld, M::Fld1, M::Fldcw, M::Fldenv, M::Fldl2e, M::Fldl2t, M::Fldlg2, M::Fldln2, M::Fldpi, M::Fldz, M::Fmul, M::Fmulp, M::Fnclex, M::Fndisi, M::Fneni, M::Fninit, M::Fnop, M::Fnsave, M::Fnsetpm, M::Fnstcw, M::Fnstenv, M::Fnstsw, M::Fpatan, M::Fprem, M::Fprem1, M::Fptan, M::Frndint, M::Frstor, M::Fscale, M::Fsin, M::Fsincos, M::Fsqrt, M::Fst, M::Fstp, M::Fstpnce, M::Fsub, M::Fsubp, M::Fsubr, M::Fsubrp, M::Ftst, M::Fucom, M::Fucomi, M::Fucomip, M::Fucomp, M::Fucompp, M::Fxam, M::Fxch, M::Fxrstor, M::Fxsave, M::Fxtract, M::Fyl2x, M::Fyl2xp1, M::Finit, M::Fclex, M::Fstcw, M::Fstenv, M::Fsave, M::Fstsw, M::Fdisi, M::Feni, M::Fsetpm],
     "Floating-point computation: innocuous. The kernel (or VMM) controls it only through CR0.EM/TS, which make these raise #NM — the trap that lazy x87 context switching relies on."),
];

/// Room for every iced-x86 mnemonic (1.22 has 1,894); a mnemonic past the
/// end would fail to compile in [`SYSTEM_INDEX`], not misbehave.
const MNEMONIC_SLOTS: usize = 2048;

/// `SYSTEM_INDEX[m]` is 1 + the position of `m` in [`TABLE`], or 0: the
/// run loop's per-instruction questions ([`untrapped_reason`],
/// [`gp_is_trap`]) are one array load, never a search.
const SYSTEM_INDEX: [u8; MNEMONIC_SLOTS] = {
    let mut idx = [0u8; MNEMONIC_SLOTS];
    let mut i = 0;
    while i < TABLE.len() {
        idx[TABLE[i].mnemonic as usize] = i as u8 + 1;
        i += 1;
    }
    idx
};

/// The [`TABLE`] entry of a system instruction, by index.
fn system_entry(m: Mnemonic) -> Option<&'static Classification> {
    match SYSTEM_INDEX.get(m as usize) {
        Some(&n) if n > 0 => TABLE.get(n as usize - 1),
        _ => None,
    }
}

/// The entry for a mnemonic, or `None` if the table has none (a test
/// makes sure every implemented mnemonic has one).
pub fn classify(m: Mnemonic) -> Option<Classification> {
    if let Some(c) = system_entry(m) {
        return Some(*c);
    }
    INNOCUOUS.iter().find_map(|(group, ms, text)| {
        ms.contains(&m).then_some(Classification {
            mnemonic: m,
            class: Innocuous,
            robin_irvine: false,
            forms: "",
            summary: group,
            explanation: text,
            untrapped: "",
            gp_is_trap: false,
        })
    })
}

/// What a sensitive instruction reveals or silently drops when it runs at
/// CPL > 0 (or in virtual-8086 mode) without trapping: the reason the run
/// loop's `SensitiveUntrapped` event carries. `None` for instructions that
/// are not Robin & Irvine's (ask [`is_sensitive_form`] about the form).
pub fn untrapped_reason(m: Mnemonic) -> Option<&'static str> {
    system_entry(m)
        .map(|c| c.untrapped)
        .filter(|r| !r.is_empty())
}

/// Whether a #GP raised by this mnemonic at CPL > 0 (or in virtual-8086
/// mode) is the trap a trap-and-emulate monitor relies on (see
/// [`Classification::gp_is_trap`]); [`is_privileged_form`] narrows MOV.
pub fn gp_is_trap(m: Mnemonic) -> bool {
    system_entry(m).is_some_and(|c| c.gp_is_trap)
}

/// Every entry, system instructions first, then the innocuous groups.
pub fn all() -> Vec<Classification> {
    let mut v: Vec<Classification> = TABLE.to_vec();
    for (_, ms, _) in INNOCUOUS {
        v.extend(ms.iter().filter_map(|&m| classify(m)));
    }
    v
}

/// Whether a register is a segment register (ES, CS, SS, DS, FS, GS).
pub fn is_sreg(r: Register) -> bool {
    (Register::ES as u32..=Register::GS as u32).contains(&(r as u32))
}

/// The class of one decoded instruction, telling the forms of MOV, PUSH,
/// POP, CALL and JMP apart. `None` for mnemonics outside the table.
pub fn classify_instruction(ins: &Instruction) -> Option<Class> {
    let c = classify(ins.mnemonic())?;
    let regs = || {
        (0..ins.op_count())
            .filter(|&n| ins.op_kind(n) == OpKind::Register)
            .map(|n| ins.op_register(n))
    };
    Some(match ins.mnemonic() {
        M::Mov => {
            if regs().any(|r| r.is_cr() || r.is_dr() || r.is_tr()) {
                Privileged
            } else if regs().any(is_sreg) {
                c.class
            } else {
                Innocuous
            }
        }
        M::Push | M::Pop if !regs().any(is_sreg) => Innocuous,
        M::Call | M::Jmp if !is_far(ins) => Innocuous,
        _ => c.class,
    })
}

/// Whether this form of a privileged mnemonic is the privileged one (MOV
/// only to or from a control or debug register): the CPU reports a #GP
/// as a privileged trap only then.
pub fn is_privileged_form(ins: &Instruction) -> bool {
    ins.mnemonic() != M::Mov || classify_instruction(ins) == Some(Privileged)
}

/// Whether this form of a Robin & Irvine mnemonic is the sensitive one
/// (MOV/PUSH/POP only with a segment register, CALL/JMP only far); true
/// for every other mnemonic.
pub fn is_sensitive_form(ins: &Instruction) -> bool {
    match ins.mnemonic() {
        M::Mov | M::Push | M::Pop => (0..ins.op_count())
            .any(|n| ins.op_kind(n) == OpKind::Register && is_sreg(ins.op_register(n))),
        M::Call | M::Jmp => is_far(ins),
        _ => true,
    }
}

/// Whether a CALL/JMP is a far transfer.
fn is_far(ins: &Instruction) -> bool {
    matches!(ins.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32)
        || (ins.op0_kind() == OpKind::Memory
            && matches!(
                ins.memory_size(),
                iced_x86::MemorySize::SegPtr16 | iced_x86::MemorySize::SegPtr32
            ))
}

/// Whether this instruction (this form) is one of Robin & Irvine's.
pub fn is_robin_irvine(ins: &Instruction) -> bool {
    classify(ins.mnemonic()).is_some_and(|c| c.robin_irvine)
        && classify_instruction(ins).is_some_and(|k| k != Innocuous && k != Privileged)
}

/// One encoding of an iced-x86 `Code` in 16- or 32-bit code, built from
/// iced's opcode table (prefixes, opcode map, opcode, the ModRM `reg` and
/// `rm` a group needs) and checked by decoding it back: `(instruction,
/// code32)`. `None` for codes this can not build (64-bit only, VEX/EVEX,
/// and a few forms no single ModRM choice reaches).
fn representative(code: Code) -> Option<(Instruction, bool)> {
    let op = code.op_code();
    if op.encoding() != EncodingKind::Legacy || !op.is_instruction() {
        return None;
    }
    let modes = [(16u32, op.mode16()), (32, op.mode32())];
    let reg = op.group_index().max(0) as u8;
    let rm = op.rm_group_index().max(0) as u8;
    for (bits, ok) in modes {
        if !ok {
            continue;
        }
        for size_prefixes in [&[][..], &[0x66], &[0x67], &[0x66, 0x67]] {
            for modrm in [0xC0 | reg << 3 | rm, reg << 3] {
                let mut buf = [0u8; 16];
                let mut n = 0;
                let mut put = |b: u8| {
                    buf[n] = b;
                    n += 1;
                };
                if op.fwait() {
                    put(0x9B);
                }
                size_prefixes.iter().for_each(|&b| put(b));
                match op.mandatory_prefix() {
                    MandatoryPrefix::P66 => put(0x66),
                    MandatoryPrefix::PF3 => put(0xF3),
                    MandatoryPrefix::PF2 => put(0xF2),
                    _ => {}
                }
                match op.table() {
                    OpCodeTableKind::Normal => {}
                    OpCodeTableKind::T0F => put(0x0F),
                    OpCodeTableKind::T0F38 => [0x0F, 0x38].iter().for_each(|&b| put(b)),
                    OpCodeTableKind::T0F3A => [0x0F, 0x3A].iter().for_each(|&b| put(b)),
                    _ => return None,
                }
                for i in (0..op.op_code_len()).rev() {
                    put((op.op_code() >> (8 * i)) as u8);
                }
                put(modrm);
                let ins = Decoder::with_ip(bits, &buf, 0, DecoderOptions::NONE).decode();
                if ins.code() == code {
                    return Some((ins, bits == 32));
                }
            }
        }
    }
    None
}

/// Every mnemonic the CPU has a handler for: one representative encoding
/// of each of iced-x86's legacy opcodes (`representative`, a few
/// thousand decodes), each asked of the handler selection that the decode
/// cache uses.
pub fn implemented_mnemonics() -> Vec<Mnemonic> {
    let mut seen = vec![false; Mnemonic::values().count()];
    for code in Code::values() {
        if let Some((ins, code32)) = representative(code) {
            let e = crate::exec::make_entry(ins, code32);
            if !std::ptr::fn_addr_eq(e.handler, crate::exec::undefined as crate::exec::Handler) {
                seen[ins.mnemonic() as usize] = true;
            }
        }
    }
    Mnemonic::values().filter(|m| seen[*m as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implemented_mnemonic_is_classified() {
        let implemented = implemented_mnemonics();
        // The enumeration itself must find the instruction set, not a stub.
        assert!(implemented.len() > 250, "only {} found", implemented.len());
        for m in [
            M::Hlt,
            M::Popfd,
            M::Sgdt,
            M::Fsin,
            M::Sysenter,
            M::Cmpxchg8b,
            M::Iretd,
        ] {
            assert!(implemented.contains(&m), "{m:?} not found implemented");
        }
        let missing: Vec<_> = implemented
            .iter()
            .filter(|m| classify(**m).is_none())
            .collect();
        assert!(missing.is_empty(), "no classification for {missing:?}");
    }

    #[test]
    fn every_classified_mnemonic_has_a_handler() {
        let implemented = implemented_mnemonics();
        // iced-x86 decodes WAIT FNINIT as two instructions, so the waiting
        // x87 forms (FINIT, FSTSW, ...) never come out of the decoder; the
        // handler selection still has them: ask it about the no-wait
        // encoding relabelled as the waiting code.
        let wait_form_handled = |m: Mnemonic| {
            Code::values()
                .filter(|c| c.mnemonic() == m && c.op_code().fwait())
                .any(|c| {
                    let nowait = Code::values().find_map(|n| {
                        let o = n.op_code();
                        (!o.fwait()
                            && o.op_code() == c.op_code().op_code()
                            && o.group_index() == c.op_code().group_index()
                            && o.rm_group_index() == c.op_code().rm_group_index()
                            && o.operand_size() == c.op_code().operand_size())
                        .then(|| representative(n))
                        .flatten()
                    });
                    nowait.is_some_and(|(mut ins, code32)| {
                        ins.set_code(c);
                        let e = crate::exec::make_entry(ins, code32);
                        !std::ptr::fn_addr_eq(
                            e.handler,
                            crate::exec::undefined as crate::exec::Handler,
                        )
                    })
                })
        };
        let missing: Vec<_> = all()
            .iter()
            .map(|c| c.mnemonic)
            .filter(|m| !implemented.contains(m) && !wait_form_handled(*m))
            .collect();
        assert!(missing.is_empty(), "classified but no handler: {missing:?}");
    }

    #[test]
    fn no_mnemonic_is_listed_twice() {
        let all = all();
        for (i, a) in all.iter().enumerate() {
            assert!(
                !all[i + 1..].iter().any(|b| b.mnemonic == a.mnemonic),
                "{:?} listed twice",
                a.mnemonic
            );
        }
    }

    #[test]
    fn robin_irvine_set_is_the_papers() {
        let mut ri: Vec<_> = TABLE
            .iter()
            .filter(|c| c.robin_irvine)
            .map(|c| c.mnemonic)
            .collect();
        ri.sort();
        let mut want = vec![
            M::Sgdt,
            M::Sidt,
            M::Sldt,
            M::Smsw,
            M::Str,
            M::Pushf,
            M::Pushfd,
            M::Popf,
            M::Popfd,
            M::Lar,
            M::Lsl,
            M::Verr,
            M::Verw,
            M::Push,
            M::Pop,
            M::Mov,
            M::Call,
            M::Jmp,
            M::Retf,
            M::Int,
            M::Iret,
            M::Iretd,
        ];
        want.sort();
        assert_eq!(ri, want);
        // Every one of them is sensitive yet does not trap in protected mode.
        for c in TABLE.iter().filter(|c| c.robin_irvine) {
            assert!(!c.class.traps_deprivileged(), "{:?}", c.mnemonic);
            assert!(
                c.explanation.starts_with("Robin & Irvine hole"),
                "{:?}",
                c.mnemonic
            );
        }
    }

    #[test]
    fn classes_agree_with_the_cpus_trap_list() {
        // The mnemonics whose #GP the CPU reports as a privileged trap
        // (the list the CPU kept before the table held it).
        let mut want = vec![
            M::Hlt,
            M::Lgdt,
            M::Lidt,
            M::Lldt,
            M::Ltr,
            M::Lmsw,
            M::Clts,
            M::Mov,
            M::Invd,
            M::Wbinvd,
            M::Invlpg,
            M::Rdmsr,
            M::Wrmsr,
            M::Sysexit,
            M::Rsm,
            M::Rdpmc,
            M::Rdtsc,
            M::Cli,
            M::Sti,
            M::In,
            M::Out,
            M::Insb,
            M::Insw,
            M::Insd,
            M::Outsb,
            M::Outsw,
            M::Outsd,
            M::Pushf,
            M::Pushfd,
            M::Popf,
            M::Popfd,
            M::Iret,
            M::Iretd,
            M::Int,
        ];
        want.sort();
        let mut got: Vec<_> = Mnemonic::values().filter(|m| gp_is_trap(*m)).collect();
        got.sort();
        assert_eq!(got, want);
        // Whatever traps deprivileged is a trap the CPU reports.
        for c in TABLE {
            if c.class.traps_deprivileged() {
                assert!(gp_is_trap(c.mnemonic), "{:?}", c.mnemonic);
            }
        }
    }

    #[test]
    fn untrapped_reasons_are_robin_and_irvines() {
        for m in Mnemonic::values() {
            let ri = classify(m).is_some_and(|c| c.robin_irvine);
            assert_eq!(untrapped_reason(m).is_some(), ri, "{m:?}");
        }
        assert_eq!(
            untrapped_reason(M::Popfd),
            Some("silently ignores IF/IOPL changes at CPL > IOPL instead of trapping")
        );
        assert_eq!(untrapped_reason(M::Hlt), None);
        assert_eq!(untrapped_reason(M::Add), None);
    }

    fn decode32(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(32, bytes, 0, DecoderOptions::NONE).decode()
    }

    #[test]
    fn forms_are_told_apart() {
        assert_eq!(
            classify_instruction(&decode32(&[0x0F, 0x22, 0xC0])),
            Some(Privileged)
        ); // mov cr0,eax
        assert_eq!(
            classify_instruction(&decode32(&[0x8E, 0xD8])),
            Some(ControlSensitive)
        ); // mov ds,ax
        assert_eq!(
            classify_instruction(&decode32(&[0x89, 0xC3])),
            Some(Innocuous)
        ); // mov ebx,eax
        assert_eq!(
            classify_instruction(&decode32(&[0x0E])),
            Some(BehaviourSensitive)
        ); // push cs
        assert_eq!(classify_instruction(&decode32(&[0x50])), Some(Innocuous)); // push eax
        assert!(is_robin_irvine(&decode32(&[0x9D]))); // popfd
        assert!(!is_robin_irvine(&decode32(&[0xFF, 0xD0]))); // call eax
        assert!(is_robin_irvine(&decode32(&[0x9A, 0, 0, 0, 0, 8, 0]))); // call far
        assert_eq!(classify_instruction(&decode32(&[0xF4])), Some(Privileged)); // hlt
        assert!(is_sensitive_form(&decode32(&[0x8E, 0xD8]))); // mov ds,ax
        assert!(!is_sensitive_form(&decode32(&[0x0F, 0x22, 0xC0]))); // mov cr0,eax
        assert!(!is_sensitive_form(&decode32(&[0x50]))); // push eax
        assert!(is_sensitive_form(&decode32(&[0x0E]))); // push cs
        assert!(!is_sensitive_form(&decode32(&[0xFF, 0xD0]))); // call eax
        assert!(is_sensitive_form(&decode32(&[0x9A, 0, 0, 0, 0, 8, 0]))); // call far
        assert!(is_sensitive_form(&decode32(&[0x9C]))); // pushfd
    }
}
