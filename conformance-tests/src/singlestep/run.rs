//! Running one test on the CPU and comparing the result.

use std::io::Write;
use std::path::Path;

use iced_x86::{Formatter, NasmFormatter};
use ringside_cpu::{gpr, Bus, Cpu, PhysMem, SegReg, Segment, TableReg};

use super::moo::{MooFile, RegLayout, Registers, TestCase};
use super::profile::{fl, reason, sdm_undefined_flags, Insn, Profile};
use super::{load_moo, moo_stem, Error, RunOptions, Suite, Summary};

/// RAM for the tests: the 286 and 386EX suites assume 16 MiB; real-mode
/// addresses reach 0x10FFEF.
const RAM_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;

/// The test board: ports read as all ones (the suites' READMEs: "IN should
/// return 0xFF or 0xFFFF"), writes go nowhere, no interrupts.
struct TestBus;

impl Bus for TestBus {
    fn io_read(&mut self, _port: u16, size: u8) -> u32 {
        match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        }
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
}

/// Where a register of a MOO layout lives in the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Gpr(usize),
    Seg(SegReg),
    Ip,
    Flags,
    Cr0,
    Cr3,
    Dr(usize),
}

const SLOTS16: [Slot; 14] = [
    Slot::Gpr(gpr::EAX),
    Slot::Gpr(gpr::EBX),
    Slot::Gpr(gpr::ECX),
    Slot::Gpr(gpr::EDX),
    Slot::Seg(SegReg::Cs),
    Slot::Seg(SegReg::Ss),
    Slot::Seg(SegReg::Ds),
    Slot::Seg(SegReg::Es),
    Slot::Gpr(gpr::ESP),
    Slot::Gpr(gpr::EBP),
    Slot::Gpr(gpr::ESI),
    Slot::Gpr(gpr::EDI),
    Slot::Ip,
    Slot::Flags,
];

const SLOTS32: [Slot; 20] = [
    Slot::Cr0,
    Slot::Cr3,
    Slot::Gpr(gpr::EAX),
    Slot::Gpr(gpr::EBX),
    Slot::Gpr(gpr::ECX),
    Slot::Gpr(gpr::EDX),
    Slot::Gpr(gpr::ESI),
    Slot::Gpr(gpr::EDI),
    Slot::Gpr(gpr::EBP),
    Slot::Gpr(gpr::ESP),
    Slot::Seg(SegReg::Cs),
    Slot::Seg(SegReg::Ds),
    Slot::Seg(SegReg::Es),
    Slot::Seg(SegReg::Fs),
    Slot::Seg(SegReg::Gs),
    Slot::Seg(SegReg::Ss),
    Slot::Ip,
    Slot::Flags,
    Slot::Dr(6),
    Slot::Dr(7),
];

fn slots(layout: RegLayout) -> &'static [Slot] {
    match layout {
        RegLayout::Regs16 => &SLOTS16,
        RegLayout::Regs32 => &SLOTS32,
    }
}

/// Result of one test.
enum Outcome {
    Pass,
    Fail(Vec<Diff>),
    Skip(&'static str),
}

/// One difference: what differs (a register name, `flags`, `mem`, `stray`,
/// `run`, `note`) and a readable line.
struct Diff {
    key: &'static str,
    text: String,
}

impl Diff {
    fn new(key: &'static str, text: impl Into<String>) -> Diff {
        Diff {
            key,
            text: text.into(),
        }
    }
}

/// Per-file facts the comparison needs.
struct FileCtx {
    profile: Profile,
    /// AND-mask of defined flags from the suite's side file.
    file_keep: u16,
    /// File-level RMSK/RM32.
    reg_masks: Option<Registers>,
    real_mode: bool,
    check_stray: bool,
    verify_skips: bool,
}

/// Runs tests on one reusable CPU (its 16 MiB of RAM is cleaned after each
/// test rather than reallocated).
pub struct Harness {
    cpu: Cpu,
    /// The CPU executed HLT or shut down: reset before the next test.
    needs_reset: bool,
    /// Control/debug registers right after reset.
    reset_cr: [u32; 5],
    reset_dr: [u32; 8],
    fmt: NasmFormatter,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A harness with a freshly reset CPU.
    pub fn new() -> Harness {
        let cpu = Cpu::new(PhysMem::new(RAM_BYTES));
        let reset_cr = cpu.cr;
        let reset_dr = cpu.dr;
        let mut fmt = NasmFormatter::new();
        fmt.options_mut().set_uppercase_hex(true);
        Harness {
            cpu,
            needs_reset: false,
            reset_cr,
            reset_dr,
            fmt,
        }
    }

    /// Run one MOO file, print its report to `out`, and return its counts.
    pub fn run_file(
        &mut self,
        path: &Path,
        suite: &Suite,
        opts: &RunOptions,
        out: &mut dyn Write,
    ) -> Result<Summary, Error> {
        let file = load_moo(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = moo_stem(&name).unwrap_or(&name).to_string();
        let id = file.header.cpu_name();
        let profile = Profile::from_cpu_id(&id).ok_or_else(|| Error::UnsupportedCpu {
            path: path.to_path_buf(),
            id,
        })?;
        let ctx = FileCtx {
            profile,
            file_keep: suite.masks.for_stem(&stem),
            reg_masks: file.reg_masks.clone(),
            real_mode: file.meta.as_ref().is_none_or(|m| m.cpu_mode == 0),
            check_stray: opts.check_stray_writes,
            verify_skips: opts.verify_skips,
        };
        self.run_tests(&name, &file, &ctx, suite, opts, out)
    }

    fn run_tests(
        &mut self,
        name: &str,
        file: &MooFile,
        ctx: &FileCtx,
        suite: &Suite,
        opts: &RunOptions,
        out: &mut dyn Write,
    ) -> Result<Summary, Error> {
        let mut s = Summary {
            files: 1,
            ..Summary::default()
        };
        let mut fail_text = Vec::new();
        let mut file_skips: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let limit = opts.max_tests_per_file.unwrap_or(usize::MAX);
        for t in file.tests.iter().take(limit) {
            let outcome = if suite.revoked.contains(&t.hash_hex()) {
                Outcome::Skip(reason::REVOKED)
            } else {
                self.run_test(t, ctx)
            };
            match outcome {
                Outcome::Pass => s.passed += 1,
                Outcome::Skip(r) => {
                    s.skipped += 1;
                    *file_skips.entry(r).or_default() += 1;
                    *s.skip_reasons.entry(r.to_string()).or_default() += 1;
                }
                Outcome::Fail(lines) => {
                    s.failed += 1;
                    if (s.failed as usize) <= opts.max_failures_shown {
                        fail_text.push(self.describe(t, &lines));
                    }
                }
            }
        }
        if s.failed > 0 || s.skipped > 0 || opts.verbose {
            writeln!(
                out,
                "{name} [{}]: {} passed, {} failed, {} skipped",
                ctx.profile.name(),
                s.passed,
                s.failed,
                s.skipped
            )?;
            for f in &fail_text {
                write!(out, "{f}")?;
            }
            if s.failed as usize > fail_text.len() {
                writeln!(
                    out,
                    "  ... and {} more failure(s) in {name}",
                    s.failed as usize - fail_text.len()
                )?;
            }
            for (r, n) in &file_skips {
                writeln!(out, "  skipped {n}: {r}")?;
            }
        }
        if s.failed > 0 {
            s.failed_files.push((name.to_string(), s.failed));
        }
        Ok(s)
    }

    /// A failure report: the test, its instruction, and the differences.
    fn describe(&mut self, t: &TestCase, lines: &[Diff]) -> String {
        let ip = t
            .initial
            .regs
            .as_ref()
            .and_then(|r| r.get_named("ip").or_else(|| r.get_named("eip")))
            .unwrap_or(0);
        let insn = Insn::decode(&t.bytes, ip);
        let mut dis = String::new();
        if insn.valid {
            self.fmt.format(&insn.ins, &mut dis);
        } else {
            dis.push_str("(invalid)");
        }
        let bytes: Vec<String> = t.bytes.iter().map(|b| format!("{b:02X}")).collect();
        let mut s = format!(
            "  FAIL test #{} \"{}\": {}  [{}]",
            t.index,
            t.name,
            dis,
            bytes.join(" ")
        );
        let h = t.hash_hex();
        if !h.is_empty() {
            s.push_str(&format!("  hash {h}"));
        }
        s.push('\n');
        for l in lines {
            s.push_str("    ");
            s.push_str(&l.text);
            s.push('\n');
        }
        s
    }

    /// Bring the CPU to a clean real-mode state and load `t`'s initial state.
    fn load(&mut self, t: &TestCase, init: &Registers, profile: Profile) {
        if self.needs_reset {
            self.cpu.reset();
            self.needs_reset = false;
        }
        let cpu = &mut self.cpu;
        cpu.regs = [0; 8];
        for s in SegReg::ALL {
            cpu.segs[s as usize] = Segment::real(0);
        }
        cpu.segs[SegReg::Cs as usize].attrs = 0x9B;
        cpu.cr = self.reset_cr;
        cpu.dr = self.reset_dr;
        cpu.gdtr = TableReg {
            base: 0,
            limit: 0xFFFF,
        };
        cpu.idtr = TableReg {
            base: 0,
            limit: 0x3FF,
        };
        cpu.last_exception = None;
        cpu.set_eflags(0);
        for (i, slot) in slots(init.layout).iter().enumerate() {
            let Some(v) = init.get(i) else { continue };
            match *slot {
                Slot::Gpr(r) => cpu.regs[r] = v,
                Slot::Seg(s) => {
                    cpu.load_seg_real(s, v as u16);
                }
                Slot::Ip => cpu.eip = v,
                Slot::Flags => cpu.set_eflags(v & profile.initial_flags_keep()),
                Slot::Cr0 => cpu.cr[0] = v,
                Slot::Cr3 => cpu.cr[3] = v,
                Slot::Dr(n) => cpu.dr[n] = v,
            }
        }
        for &(a, b) in &t.initial.ram {
            cpu.mem.poke(a, &[b]);
        }
    }

    fn run_test(&mut self, t: &TestCase, ctx: &FileCtx) -> Outcome {
        let Some(init) = t.initial.regs.as_ref() else {
            return Outcome::Fail(vec![Diff::new("run", "test has no initial registers")]);
        };
        if !ctx.real_mode || init.get_named("cr0").is_some_and(|c| c & 0x8000_0001 != 0) {
            return Outcome::Skip(reason::NOT_REAL_MODE);
        }
        let max_addr = (RAM_BYTES - 1) as u32;
        let fina_ram = &t.final_state.ram;
        if t.initial
            .ram
            .iter()
            .chain(fina_ram.iter())
            .any(|(a, _)| *a > max_addr)
        {
            return Outcome::Skip(reason::RAM_RANGE);
        }
        let ip = init
            .get_named("ip")
            .or_else(|| init.get_named("eip"))
            .unwrap_or(0);
        let insn = Insn::decode(&t.bytes, ip);
        let pre_skip = ctx.profile.pre_skip(t, &insn);
        if let Some(r) = pre_skip {
            if !ctx.verify_skips {
                return Outcome::Skip(r);
            }
        }

        self.load(t, init, ctx.profile);
        let init_bases: Vec<u32> = self.cpu.segs.iter().map(|s| s.base).collect();
        let mut bus = TestBus;

        // Step until the next instruction is the terminating HLT. Executing
        // that HLT would halt the CPU; it is "executed" here by stepping EIP
        // over it, as the recorded final IP points past it. The HLT test
        // itself (and a CPU that lands on a HLT of its own) halts for real.
        let max_steps = if insn.has_rep() { 1024 } else { 4 };
        let mut steps = 0;
        let mut problem = None;
        loop {
            let cpu = &mut self.cpu;
            if cpu.is_shutdown() {
                problem = Some("the CPU shut down (triple fault)".to_string());
                break;
            }
            if cpu.is_halted() {
                break;
            }
            if steps > 0 {
                let lin = cpu.segs[SegReg::Cs as usize].base.wrapping_add(cpu.eip);
                if cpu.mem.peek(lin) == 0xF4 {
                    cpu.eip = if cpu.code32() {
                        cpu.eip.wrapping_add(1)
                    } else {
                        (cpu.eip + 1) & 0xFFFF
                    };
                    break;
                }
            }
            if steps >= max_steps {
                problem = Some(format!(
                    "no HLT reached after {steps} instruction(s): next CS:IP {:04X}:{:04X}",
                    cpu.segs[SegReg::Cs as usize].selector,
                    cpu.eip
                ));
                break;
            }
            cpu.step(&mut bus);
            steps += 1;
        }
        if self.cpu.is_halted() || self.cpu.is_shutdown() {
            self.needs_reset = true;
        }
        let got_exc = self.cpu.last_exception.map(|f| f.vector);

        let mut diffs = Vec::new();
        if let Some(p) = problem {
            diffs.push(Diff::new("run", p));
        }
        let undefined = sdm_undefined_flags(&insn, init);
        let fina_masks = t.final_state.reg_masks.as_ref();
        let keep16 = ctx.file_keep & !undefined;
        self.compare_regs(t, init, ctx, keep16, fina_masks, &mut diffs);
        let stray = self.compare_memory(t, keep16, ctx, &init_bases, &mut diffs);
        self.clean_memory(t, &stray);
        if !diffs.is_empty() {
            // A CPU that went astray may have written outside the windows
            // checked above; leave nothing behind for the next test.
            self.scrub_ram();
        }

        if diffs.is_empty() {
            if let Some(r) = pre_skip {
                let msg = format!("profile skip not needed, the test passes: {r}");
                return Outcome::Fail(vec![Diff::new("skip", msg)]);
            }
            return Outcome::Pass;
        }
        if let Some(r) = pre_skip {
            return Outcome::Skip(r);
        }
        let keys: Vec<&str> = diffs.iter().map(|d| d.key).collect();
        if let Some(r) = ctx.profile.post_skip(t, &insn, got_exc, &keys) {
            return Outcome::Skip(r);
        }
        let want = t.exception.map(|e| {
            format!(
                "exception {} (FLAGS pushed at {:#08X})",
                e.number, e.flag_address
            )
        });
        let got = self
            .cpu
            .last_exception
            .map(|f| format!("{f} (vector {})", f.vector));
        if want.is_some() || got.is_some() {
            diffs.push(Diff::new(
                "note",
                format!(
                    "note: test expects {}; CPU delivered {}",
                    want.unwrap_or_else(|| "no exception".into()),
                    got.unwrap_or_else(|| "no exception".into())
                ),
            ));
        }
        Outcome::Fail(diffs)
    }

    fn read_slot(&self, slot: Slot) -> u32 {
        let cpu = &self.cpu;
        match slot {
            Slot::Gpr(r) => cpu.regs[r],
            Slot::Seg(s) => cpu.segs[s as usize].selector as u32,
            Slot::Ip => cpu.eip,
            Slot::Flags => cpu.eflags(),
            Slot::Cr0 => cpu.cr[0],
            Slot::Cr3 => cpu.cr[3],
            Slot::Dr(n) => cpu.dr[n],
        }
    }

    fn compare_regs(
        &self,
        t: &TestCase,
        init: &Registers,
        ctx: &FileCtx,
        keep16: u16,
        fina_masks: Option<&Registers>,
        diffs: &mut Vec<Diff>,
    ) {
        let layout = init.layout;
        let fina = t.final_state.regs.as_ref();
        let wide = layout == RegLayout::Regs32;
        for (i, slot) in slots(layout).iter().enumerate() {
            let name = layout.names()[i];
            let Some(initial) = init.get(i) else { continue };
            let mut expected = fina.and_then(|f| f.get(i)).unwrap_or(match slot {
                Slot::Flags => initial & ctx.profile.initial_flags_keep(),
                _ => initial,
            });
            let got = self.read_slot(*slot);
            let mut mask = match slot {
                Slot::Seg(_) => 0xFFFF,
                Slot::Flags => ctx.profile.flags_compared() & (0xFFFF_0000 | keep16 as u32),
                Slot::Cr0 => ctx.profile.cr0_compared(),
                _ => 0xFFFF_FFFF,
            };
            for m in [ctx.reg_masks.as_ref(), fina_masks].into_iter().flatten() {
                if m.layout == layout {
                    if let Some(v) = m.get(i) {
                        mask &= v;
                    }
                }
            }
            if matches!(slot, Slot::Seg(_)) {
                expected &= 0xFFFF;
            }
            if (expected ^ got) & mask == 0 {
                continue;
            }
            if let Slot::Flags = slot {
                diffs.push(Diff::new(
                    name,
                    format!(
                        "{name}: expected {expected:#06X} got {got:#06X} (compared bits {mask:#X})"
                    ),
                ));
                let lines = flag_diffs(expected & mask, got & mask);
                diffs.extend(lines.into_iter().map(|l| Diff::new(name, l)));
            } else if !wide && got >> 16 != 0 && matches!(slot, Slot::Gpr(_) | Slot::Ip) {
                diffs.push(Diff::new(
                    name,
                    format!(
                        "{name}: expected {expected:#06X} got {got:#010X} (upper 16 bits changed)"
                    ),
                ));
            } else if wide {
                diffs.push(Diff::new(
                    name,
                    format!("{name}: expected {expected:#010X} got {got:#010X}"),
                ));
            } else {
                diffs.push(Diff::new(
                    name,
                    format!("{name}: expected {expected:#06X} got {got:#06X}"),
                ));
            }
        }
        // Real mode: every segment base is selector * 16; the 16-bit layout
        // has no FS/GS, which must stay 0.
        for s in SegReg::ALL {
            let seg = &self.cpu.segs[s as usize];
            if seg.base != (seg.selector as u32) << 4 {
                diffs.push(Diff::new(
                    "base",
                    format!(
                        "{}.base: expected {:#07X} got {:#07X}",
                        s.name(),
                        (seg.selector as u32) << 4,
                        seg.base
                    ),
                ));
            }
            if !wide && matches!(s, SegReg::Fs | SegReg::Gs) && seg.selector != 0 {
                diffs.push(Diff::new(
                    s.name(),
                    format!("{}: expected 0x0000 got {:#06X}", s.name(), seg.selector),
                ));
            }
        }
    }

    /// Compare the RAM bytes; return the stray bytes found (to clean up).
    fn compare_memory(
        &self,
        t: &TestCase,
        keep16: u16,
        ctx: &FileCtx,
        init_bases: &[u32],
        diffs: &mut Vec<Diff>,
    ) -> Vec<u32> {
        // Expected bytes: the initial ones, overridden by the final ones.
        let mut expected: Vec<(u32, u8)> =
            Vec::with_capacity(t.initial.ram.len() + t.final_state.ram.len());
        expected.extend(t.final_state.ram.iter().copied());
        expected.extend(t.initial.ram.iter().copied());
        // Stable sort keeps FINA entries first for equal addresses; dedup keeps the first.
        expected.sort_by_key(|(a, _)| *a);
        expected.dedup_by_key(|(a, _)| *a);
        let flag_addr = t.exception.map(|e| pushed_flags_address(t, e.flag_address));
        let mut shown = 0;
        let mut hidden = 0;
        for &(addr, want) in &expected {
            let got = self.cpu.mem.peek(addr);
            let mask = match flag_addr {
                Some(f) if addr == f => keep16 as u8,
                Some(f) if addr == f.wrapping_add(1) => (keep16 >> 8) as u8,
                _ => 0xFF,
            };
            if (got ^ want) & mask != 0 {
                if shown < 16 {
                    let note = if mask != 0xFF {
                        format!(" (pushed FLAGS, compared bits {mask:#04X})")
                    } else {
                        String::new()
                    };
                    diffs.push(Diff::new(
                        "mem",
                        format!("mem[{addr:#08X}]: expected {want:#04X} got {got:#04X}{note}"),
                    ));
                    shown += 1;
                } else {
                    hidden += 1;
                }
            }
        }
        if hidden > 0 {
            diffs.push(Diff::new(
                "mem",
                format!("... and {hidden} more differing memory byte(s)"),
            ));
        }

        // Stray writes: memory outside the test's lists starts as 0; any
        // nonzero byte in reach of a segment register was written by the CPU
        // although the recorded CPU did not write it.
        let mut windows: Vec<(usize, usize)> = init_bases
            .iter()
            .copied()
            .chain(self.cpu.segs.iter().map(|s| s.base))
            .map(|b| {
                let start = (b as usize).min(RAM_BYTES);
                (start, (start + 0x1_0004).min(RAM_BYTES))
            })
            .collect();
        windows.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (s, e) in windows {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let ram = self.cpu.mem.ram();
        let mut stray = Vec::new();
        for (s, e) in merged {
            find_nonzero(&ram[s..e], s as u32, &mut stray);
        }
        stray.retain(|a| expected.binary_search_by_key(a, |(x, _)| *x).is_err());
        if ctx.check_stray && !stray.is_empty() {
            let list: Vec<String> = stray
                .iter()
                .take(8)
                .map(|a| format!("{a:#08X}={:#04X}", ram[*a as usize]))
                .collect();
            let more = if stray.len() > 8 {
                format!(" (+{} more)", stray.len() - 8)
            } else {
                String::new()
            };
            diffs.push(Diff::new(
                "stray",
                format!(
                    "stray write(s) to bytes the test does not list: {}{more}",
                    list.join(", ")
                ),
            ));
        }
        stray
    }

    /// Zero every nonzero byte of RAM (after a failure only: 16 MiB scan).
    fn scrub_ram(&mut self) {
        let mut nz = Vec::new();
        find_nonzero(self.cpu.mem.ram(), 0, &mut nz);
        for a in nz {
            self.cpu.mem.poke(a, &[0]);
        }
    }

    /// Zero every byte the test could have touched, so RAM is all zero again.
    fn clean_memory(&mut self, t: &TestCase, stray: &[u32]) {
        let mem = &mut self.cpu.mem;
        for &(a, _) in t.initial.ram.iter().chain(t.final_state.ram.iter()) {
            mem.poke(a, &[0]);
        }
        for &a in stray {
            mem.poke(a, &[0]);
        }
    }
}

/// Where the exception frame's FLAGS word really is. The suites record the
/// address of the bus word holding it: with an odd SP the 286 data gives the
/// even address below the FLAGS image. The frame is at the handler's SS:SP
/// (IP, CS, FLAGS), so FLAGS is at SS:SP+4; that address is used when it lies
/// in the recorded word.
fn pushed_flags_address(t: &TestCase, recorded: u32) -> u32 {
    let reg = |n: &str| {
        let f = t.final_state.regs.as_ref().and_then(|r| r.get_named(n));
        f.or_else(|| t.initial.regs.as_ref().and_then(|r| r.get_named(n)))
    };
    let (Some(ss), Some(sp)) = (reg("ss"), reg("sp").or_else(|| reg("esp"))) else {
        return recorded;
    };
    let frame = ((ss & 0xFFFF) << 4) + ((sp + 4) & 0xFFFF);
    if frame & !1 == recorded & !1 {
        frame
    } else {
        recorded
    }
}

/// Push the addresses of the nonzero bytes of `s` (which starts at `base`).
fn find_nonzero(s: &[u8], base: u32, out: &mut Vec<u32>) {
    let mut chunks = s.chunks_exact(16);
    let mut off = 0usize;
    for c in &mut chunks {
        let mut w = [0u8; 16];
        w.copy_from_slice(c);
        if u128::from_ne_bytes(w) != 0 {
            for (i, b) in c.iter().enumerate() {
                if *b != 0 {
                    out.push(base + (off + i) as u32);
                }
            }
        }
        off += 16;
    }
    for (i, b) in chunks.remainder().iter().enumerate() {
        if *b != 0 {
            out.push(base + (off + i) as u32);
        }
    }
}

/// One line per differing flag, e.g. `CF: expected 1 got 0`.
fn flag_diffs(expected: u32, got: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 13] = [
        (fl::CF as u32, "CF"),
        (fl::PF as u32, "PF"),
        (fl::AF as u32, "AF"),
        (fl::ZF as u32, "ZF"),
        (fl::SF as u32, "SF"),
        (1 << 8, "TF"),
        (1 << 9, "IF"),
        (1 << 10, "DF"),
        (fl::OF as u32, "OF"),
        (3 << 12, "IOPL"),
        (1 << 14, "NT"),
        (1 << 16, "RF"),
        (1 << 17, "VM"),
    ];
    let mut out = Vec::new();
    let mut covered = 0;
    for (bit, name) in NAMES {
        covered |= bit;
        if (expected ^ got) & bit != 0 {
            let sh = bit.trailing_zeros();
            out.push(format!(
                "  {name}: expected {} got {}",
                (expected & bit) >> sh,
                (got & bit) >> sh
            ));
        }
    }
    let rest = (expected ^ got) & !covered;
    for b in 0..32 {
        if rest & (1 << b) != 0 {
            out.push(format!(
                "  bit {b}: expected {} got {}",
                (expected >> b) & 1,
                (got >> b) & 1
            ));
        }
    }
    out
}
