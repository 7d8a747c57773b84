//! x87 instruction handlers.
//!
//! Every handler starts with [`begin`]: CR0.EM or CR0.TS → #NM (SDM Vol. 3A
//! §2.5, Table 2-2), then, for waiting instructions, a pending unmasked
//! exception → #MF or FERR# (SDM Vol. 1 §8.6–8.7). Results are computed in
//! a [`Ctx`] and committed with the status-word rules of SDM Vol. 1 §8.5:
//! an unmasked IE/DE/ZE leaves the destination and the stack alone, an
//! unmasked OE/UE stores the rebiased result to a register destination and
//! nothing to memory.

use iced_x86::{Mnemonic, OpKind, Register};

use super::f80::{self, Class, Ctx, Ordering, B as _B, C0, C1, C2, C3, DE, ES, EXC, F80, IE, SF};
use super::transcendental::{self as tr, Trig};
use crate::decode::Entry;
use crate::exec::Handler;
use crate::flags;
use crate::interrupt::{Fault, Vector};
use crate::processor::{Cpu, CpuMode};
use crate::regs::{cr0, SegReg};
use crate::Bus;

type R = Result<(), Fault>;

// ---------------------------------------------------------------------------
// Prologue, pointers, memory

/// Start of the current instruction (EIP was advanced before the handler).
#[inline]
fn start_eip(cpu: &Cpu, e: &Entry) -> u32 {
    let s = cpu.eip.wrapping_sub(e.len as u32);
    if e.code32 {
        s
    } else {
        s & 0xFFFF
    }
}

/// #NM and pending-exception checks. `Ok(false)`: stalled for FERR#.
#[inline(always)]
fn begin(cpu: &mut Cpu, e: &Entry, waiting: bool) -> Result<bool, Fault> {
    if cpu.cr[0] & (cr0::EM | cr0::TS) != 0 {
        return Err(Fault::NM);
    }
    if waiting && cpu.fpu.sw & ES != 0 {
        return pending(cpu, e);
    }
    Ok(true)
}

/// A pending unmasked exception at a waiting instruction.
#[cold]
fn pending(cpu: &mut Cpu, e: &Entry) -> Result<bool, Fault> {
    if cpu.cr[0] & cr0::NE != 0 {
        return Err(Fault::new(Vector::FloatingPoint));
    }
    if cpu.fpu.ferr {
        // FERR# already signalled and the guest did not clear it: proceed,
        // as a PC does once IGNNE# is asserted.
        return Ok(true);
    }
    // MS-DOS compatible reporting (SDM Vol. 1 §D.2.1): assert FERR# and
    // freeze before this instruction; the board raises IRQ13.
    cpu.fpu.ferr = true;
    cpu.eip = start_eip(cpu, e);
    cpu.request_yield();
    Ok(false)
}

/// Record FCS:FIP for a non-control instruction (SDM Vol. 1 §8.1.8).
#[inline(always)]
fn note_ip(cpu: &mut Cpu, e: &Entry) {
    let ip = start_eip(cpu, e);
    let cs = &cpu.segs[SegReg::Cs as usize];
    cpu.fpu.fip = ip;
    cpu.fpu.fcs = cs.selector;
    cpu.fpu.fip_linear = cs.base.wrapping_add(ip);
}

/// Record FDS:FDP for a memory operand.
#[inline(always)]
fn note_dp(cpu: &mut Cpu, seg: SegReg, off: u32) {
    cpu.fpu.fdp = off;
    cpu.fpu.fds = cpu.segs[seg as usize].selector;
}

fn addr_wrap(e: &Entry) -> u32 {
    if e.addr32 {
        u32::MAX
    } else {
        0xFFFF
    }
}

/// Read `buf.len()` (even) bytes at seg:off, checking the whole range first.
fn read_at(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    seg: SegReg,
    off: u32,
    wrap: u32,
    buf: &mut [u8],
) -> R {
    cpu.seg_check(seg, off, buf.len() as u32)?;
    for (i, chunk) in buf.chunks_mut(4).enumerate() {
        let o = off.wrapping_add(4 * i as u32) & wrap;
        let v = cpu.read_mem(bus, seg, o, chunk.len() as u8)?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

/// Write `buf` (even length) at seg:off, checking the whole range first.
fn write_at(cpu: &mut Cpu, bus: &mut dyn Bus, seg: SegReg, off: u32, wrap: u32, buf: &[u8]) -> R {
    cpu.seg_check(seg, off, buf.len() as u32)?;
    for (i, chunk) in buf.chunks(4).enumerate() {
        let o = off.wrapping_add(4 * i as u32) & wrap;
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        cpu.write_mem(bus, seg, o, chunk.len() as u8, u32::from_le_bytes(b))?;
    }
    Ok(())
}

/// The memory operand's location; records FDS:FDP.
#[inline]
fn mem_loc(cpu: &mut Cpu, e: &Entry) -> (SegReg, u32) {
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    note_dp(cpu, seg, off);
    (seg, off)
}

/// Read the memory operand as a value (any x87 memory format).
fn read_value(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry, ctx: &mut Ctx) -> Result<F80, Fault> {
    use iced_x86::MemorySize as M;
    let (seg, off) = mem_loc(cpu, e);
    let w = addr_wrap(e);
    Ok(match e.ins.memory_size() {
        M::Float32 => {
            let v = cpu.read_mem(bus, seg, off, 4)?;
            ctx.load_f32(v)
        }
        M::Float64 => {
            let mut b = [0u8; 8];
            read_at(cpu, bus, seg, off, w, &mut b)?;
            ctx.load_f64(u64::from_le_bytes(b))
        }
        M::Float80 => {
            let mut b = [0u8; 10];
            read_at(cpu, bus, seg, off, w, &mut b)?;
            F80::from_bytes(b)
        }
        M::Int16 => F80::from_i64(cpu.read_mem(bus, seg, off, 2)? as u16 as i16 as i64),
        M::Int32 => F80::from_i64(cpu.read_mem(bus, seg, off, 4)? as i32 as i64),
        M::Int64 => {
            let mut b = [0u8; 8];
            read_at(cpu, bus, seg, off, w, &mut b)?;
            F80::from_i64(i64::from_le_bytes(b))
        }
        M::Bcd => {
            let mut b = [0u8; 10];
            read_at(cpu, bus, seg, off, w, &mut b)?;
            f80::from_bcd(b)
        }
        _ => return Err(Fault::UD),
    })
}

/// ST index of an iced register operand.
#[inline(always)]
fn sti(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ST0 as usize) & 7
}

// ---------------------------------------------------------------------------
// Stack and status helpers

impl super::Fpu {
    #[inline(always)]
    fn set_st(&mut self, i: usize, v: F80) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.valid |= 1 << p;
    }

    #[inline(always)]
    fn push(&mut self, v: F80) {
        self.top = self.top.wrapping_sub(1) & 7;
        self.set_st(0, v);
    }

    #[inline(always)]
    fn pop(&mut self) {
        let p = self.phys(0);
        self.valid &= !(1 << p);
        self.top = (self.top + 1) & 7;
    }

    /// Merge an instruction's flags: exceptions and SF are sticky, C1 is
    /// replaced, ES/B follow unmasked exceptions.
    #[inline(always)]
    fn commit(&mut self, ctx: &Ctx) {
        self.sw = (self.sw & !C1) | (ctx.flags & (EXC | SF | C1));
        if ctx.unmasked() {
            self.sw |= ES;
        }
    }

    fn set_cc(&mut self, c: u16) {
        self.sw = (self.sw & !(C0 | C1 | C2 | C3)) | c;
    }

    fn ctx(&self) -> Ctx {
        Ctx::new(self.cw)
    }
}

/// Stack underflow (SDM Vol. 1 §8.5.1.1): IE + SF, C1 = 0.
#[inline]
fn underflow(ctx: &mut Ctx) -> F80 {
    ctx.flags = (ctx.flags | IE | SF) & !C1;
    F80::INDEFINITE
}

/// Stack overflow: IE + SF, C1 = 1.
#[inline]
fn overflow(ctx: &mut Ctx) -> F80 {
    ctx.flags |= IE | SF | C1;
    F80::INDEFINITE
}

fn cc_of(o: Ordering) -> u16 {
    match o {
        Ordering::Greater => 0,
        Ordering::Less => C0,
        Ordering::Equal => C3,
        Ordering::Unordered => C0 | C2 | C3,
    }
}

// ---------------------------------------------------------------------------
// Arithmetic

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    SubR,
    Mul,
    Div,
    DivR,
}

fn arith(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    let op = match m {
        Fadd | Faddp | Fiadd => Op::Add,
        Fsub | Fsubp | Fisub => Op::Sub,
        Fsubr | Fsubrp | Fisubr => Op::SubR,
        Fmul | Fmulp | Fimul => Op::Mul,
        Fdiv | Fdivp | Fidiv => Op::Div,
        _ => Op::DivR,
    };
    let pop = matches!(m, Faddp | Fsubp | Fsubrp | Fmulp | Fdivp | Fdivrp);
    let mut ctx = cpu.fpu.ctx();
    let (dst, a, b) = if e.ins.op0_kind() == OpKind::Memory {
        let b = read_value(cpu, bus, e, &mut ctx)?;
        ctx.src_denormal = ctx.flags & DE != 0;
        ctx.flags &= !DE;
        note_ip(cpu, e);
        if cpu.fpu.st_empty(0) {
            ctx.flags = 0;
            (0, None, b)
        } else {
            (0, Some(cpu.fpu.st(0)), b)
        }
    } else {
        note_ip(cpu, e);
        let d = sti(e.ins.op0_register());
        let s = sti(e.ins.op1_register());
        if cpu.fpu.st_empty(d) || cpu.fpu.st_empty(s) {
            (d, None, F80::ZERO)
        } else {
            (d, Some(cpu.fpu.st(d)), cpu.fpu.st(s))
        }
    };
    let r = match a {
        None => underflow(&mut ctx),
        Some(a) => match op {
            Op::Add => ctx.add(a, b, false),
            Op::Sub => ctx.add(a, b, true),
            Op::SubR => ctx.add(b, a, true),
            Op::Mul => ctx.mul(a, b),
            Op::Div => ctx.div(a, b),
            Op::DivR => ctx.div(b, a),
        },
    };
    if !ctx.blocks_store() {
        cpu.fpu.set_st(dst, r);
        if pop {
            cpu.fpu.pop();
        }
    }
    cpu.fpu.commit(&ctx);
    Ok(())
}

// ---------------------------------------------------------------------------
// Loads and stores

fn load(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    let mut ctx = cpu.fpu.ctx();
    let v = if e.ins.op0_kind() == OpKind::Memory {
        let v = read_value(cpu, bus, e, &mut ctx)?;
        note_ip(cpu, e);
        v
    } else {
        note_ip(cpu, e);
        let i = sti(e.ins.op0_register());
        if cpu.fpu.st_empty(i) {
            underflow(&mut ctx)
        } else {
            cpu.fpu.st(i)
        }
    };
    push_result(cpu, ctx, v);
    Ok(())
}

/// Push a computed value, with the stack-overflow check.
fn push_result(cpu: &mut Cpu, mut ctx: Ctx, v: F80) {
    let v = if !cpu.fpu.st_empty(7) && ctx.flags & SF == 0 {
        ctx.flags = 0;
        overflow(&mut ctx)
    } else {
        // (A source underflow takes precedence: C1 stays 0.)
        v
    };
    if !ctx.blocks_store() {
        cpu.fpu.push(v);
    }
    cpu.fpu.commit(&ctx);
}

fn load_const(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    let mut ctx = cpu.fpu.ctx();
    // 128-bit significands, value = sig / 2^127 × 2^exp.
    let (sig, exp): (u128, i32) = match e.ins.mnemonic() {
        Mnemonic::Fld1 => (1 << 127, 0),
        Mnemonic::Fldz => (0, 0),
        Mnemonic::Fldpi => (0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1, 1),
        Mnemonic::Fldl2e => (0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88, 0),
        Mnemonic::Fldl2t => (0xd49a_784b_cd1b_8afe_492b_f6ff_4daf_db4c, 1),
        Mnemonic::Fldlg2 => (0x9a20_9a84_fbcf_f798_8f89_59ac_0b7c_9178, -2),
        _ => (0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af, -1),
    };
    let v = if sig == 0 {
        F80::ZERO
    } else {
        ctx.constant(sig, exp)
    };
    ctx.flags = 0;
    push_result(cpu, ctx, v);
    Ok(())
}

fn store(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    use iced_x86::MemorySize as M;
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    let pop = matches!(m, Fstp | Fistp | Fbstp | Fstpnce);
    let mut ctx = cpu.fpu.ctx();
    let empty = cpu.fpu.st_empty(0);
    let v = cpu.fpu.st(0);
    if e.ins.op0_kind() != OpKind::Memory {
        note_ip(cpu, e);
        let d = sti(e.ins.op0_register());
        let v = if empty { underflow(&mut ctx) } else { v };
        if !ctx.blocks_store() {
            cpu.fpu.set_st(d, v);
            if pop {
                cpu.fpu.pop();
            }
        }
        cpu.fpu.commit(&ctx);
        return Ok(());
    }
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let w = addr_wrap(e);
    // Build the bytes first so a fault leaves the FPU untouched.
    let mut buf = [0u8; 10];
    let len = match e.ins.memory_size() {
        M::Float32 => {
            let b = if empty {
                underflow(&mut ctx);
                0xFFC0_0000
            } else {
                ctx.store_f32(v)
            };
            buf[..4].copy_from_slice(&b.to_le_bytes());
            4
        }
        M::Float64 => {
            let b = if empty {
                underflow(&mut ctx);
                0xFFF8_0000_0000_0000
            } else {
                ctx.store_f64(v)
            };
            buf[..8].copy_from_slice(&b.to_le_bytes());
            8
        }
        M::Float80 => {
            let b = if empty { underflow(&mut ctx) } else { v };
            buf = b.to_bytes();
            10
        }
        M::Int16 | M::Int32 | M::Int64 => {
            let (bits, len) = match e.ins.memory_size() {
                M::Int16 => (16, 2),
                M::Int32 => (32, 4),
                _ => (64, 8),
            };
            let r = if empty {
                underflow(&mut ctx);
                None
            } else {
                ctx.to_int(v, bits)
            };
            // The integer indefinite is the most negative integer.
            let iv = r.unwrap_or(i64::MIN >> (64 - bits));
            buf[..8].copy_from_slice(&iv.to_le_bytes());
            len
        }
        M::Bcd => {
            let r = if empty {
                underflow(&mut ctx);
                None
            } else {
                ctx.to_bcd(v)
            };
            buf = r.unwrap_or(f80::BCD_INDEFINITE);
            10
        }
        _ => return Err(Fault::UD),
    };
    // Unmasked IE/DE, and for memory destinations OE/UE too, store nothing.
    let blocked = ctx.flags & !ctx.masks & (EXC & !f80::PE) != 0;
    if !blocked {
        write_at(cpu, bus, seg, off, w, &buf[..len])?;
        if pop {
            cpu.fpu.pop();
        }
    }
    note_dp(cpu, seg, off);
    note_ip(cpu, e);
    cpu.fpu.commit(&ctx);
    Ok(())
}

// ---------------------------------------------------------------------------
// Compares

fn compare(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    let quiet = matches!(m, Fucom | Fucomp | Fucompp | Fucomi | Fucomip);
    let pops = match m {
        Fcomp | Fucomp | Ficomp | Fcomip | Fucomip => 1,
        Fcompp | Fucompp => 2,
        _ => 0,
    };
    let eflags = matches!(m, Fcomi | Fcomip | Fucomi | Fucomip);
    let mut ctx = cpu.fpu.ctx();
    let (b, b_empty) = if e.ins.op_count() > 0 && e.ins.op0_kind() == OpKind::Memory {
        let v = read_value(cpu, bus, e, &mut ctx)?;
        ctx.src_denormal = ctx.flags & DE != 0;
        ctx.flags &= !DE;
        (v, false)
    } else if m == Ftst {
        (F80::ZERO, false)
    } else {
        // Register forms: the source is the last operand (ST(1) when
        // implicit, as in FCOMPP).
        let i = match e.ins.op_count() {
            0 => 1,
            n => sti(e.ins.op_register(n - 1)),
        };
        (cpu.fpu.st(i), cpu.fpu.st_empty(i))
    };
    note_ip(cpu, e);
    let o = if cpu.fpu.st_empty(0) || b_empty {
        ctx.flags = 0;
        underflow(&mut ctx);
        Ordering::Unordered
    } else {
        let r = ctx.compare(cpu.fpu.st(0), b, quiet);
        // FCOM* clear C1; FCOMI* leave it alone.
        ctx.flags = (ctx.flags & !C1) | if eflags { cpu.fpu.sw & C1 } else { 0 };
        r
    };
    // The condition codes (or EFLAGS) report "unordered" even when the
    // invalid-operation exception is unmasked; only the pops are skipped.
    {
        if eflags {
            let (zf, pf, cf) = match o {
                Ordering::Greater => (false, false, false),
                Ordering::Less => (false, false, true),
                Ordering::Equal => (true, false, false),
                Ordering::Unordered => (true, true, true),
            };
            let v = (zf as u32 * flags::ZF) | (pf as u32 * flags::PF) | (cf as u32 * flags::CF);
            cpu.flags.set_masked(
                v,
                flags::ZF | flags::PF | flags::CF | flags::OF | flags::SF | flags::AF,
            );
        } else {
            let c1 = cpu.fpu.sw & C1;
            cpu.fpu.set_cc(cc_of(o) | c1);
        }
    }
    if !ctx.blocks_store() {
        for _ in 0..pops {
            cpu.fpu.pop();
        }
    }
    cpu.fpu.commit(&ctx);
    Ok(())
}

fn fxam(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    let v = cpu.fpu.st(0);
    let c1 = if v.sign() { C1 } else { 0 };
    let cc = if cpu.fpu.st_empty(0) {
        C3 | C0
    } else {
        match v.class() {
            Class::Unsupported => 0,
            Class::QNaN | Class::SNaN => C0,
            Class::Normal => C2,
            Class::Infinity => C2 | C0,
            Class::Zero => C3,
            Class::Denormal => C3 | C2,
        }
    };
    cpu.fpu.set_cc(cc | c1);
    Ok(())
}

// ---------------------------------------------------------------------------
// One- and two-operand stack instructions

fn unary(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    let mut ctx = cpu.fpu.ctx();
    let pushes = matches!(m, Fptan | Fsincos | Fxtract);
    let trig = matches!(m, Fsin | Fcos | Fsincos | Fptan);
    if cpu.fpu.st_empty(0) {
        let v = underflow(&mut ctx);
        if trig {
            cpu.fpu.sw &= !C2;
        }
        if !ctx.blocks_store() {
            cpu.fpu.set_st(0, v);
            if pushes {
                if cpu.fpu.st_empty(7) {
                    cpu.fpu.push(v);
                } else {
                    cpu.fpu.set_st(7, v);
                    cpu.fpu.top = (cpu.fpu.top + 7) & 7;
                }
            }
        }
        cpu.fpu.commit(&ctx);
        return Ok(());
    }
    if pushes && !cpu.fpu.st_empty(7) {
        let v = overflow(&mut ctx);
        if trig {
            cpu.fpu.sw &= !C2;
        }
        if !ctx.blocks_store() {
            cpu.fpu.set_st(0, v);
            cpu.fpu.push(v);
        }
        cpu.fpu.commit(&ctx);
        return Ok(());
    }
    let x = cpu.fpu.st(0);
    let mut c2 = None;
    let (r0, push) = match m {
        Fchs => (x.neg(), None),
        Fabs => (x.abs(), None),
        Fsqrt => (ctx.sqrt(x), None),
        Frndint => (ctx.round_int(x), None),
        F2xm1 => (tr::f2xm1(&mut ctx, x), None),
        Fxtract => {
            let (ex, sig) = ctx.extract(x);
            (ex, Some(sig))
        }
        _ => {
            let t = match m {
                Fsin => tr::sin(&mut ctx, x),
                Fcos => tr::cos(&mut ctx, x),
                Fptan => tr::tan(&mut ctx, x),
                _ => tr::sincos(&mut ctx, x),
            };
            match t {
                Trig::OutOfRange => {
                    let c = cpu.fpu.sw & (C0 | C3);
                    cpu.fpu.set_cc(c | C2);
                    return Ok(());
                }
                Trig::Special(v) => {
                    c2 = Some(0);
                    (v, pushes.then_some(v))
                }
                Trig::Done(a, b) => {
                    c2 = Some(0);
                    match m {
                        Fsin | Fcos => (a, None),
                        Fptan => (a, Some(F80::ONE)),
                        _ => (a, Some(b)),
                    }
                }
            }
        }
    };
    if !ctx.blocks_store() {
        cpu.fpu.set_st(0, r0);
        if let Some(p) = push {
            cpu.fpu.push(p);
        }
    }
    if let Some(c) = c2 {
        cpu.fpu.sw = (cpu.fpu.sw & !C2) | c;
    }
    cpu.fpu.commit(&ctx);
    Ok(())
}

/// FSCALE, FPREM, FPREM1 (ST(0) ← f(ST(0), ST(1))) and FYL2X, FYL2XP1,
/// FPATAN (ST(1) ← f(ST(0), ST(1)), pop).
fn binary(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    let mut ctx = cpu.fpu.ctx();
    let to_st1 = matches!(m, Fyl2x | Fyl2xp1 | Fpatan);
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(1) {
        let v = underflow(&mut ctx);
        if matches!(m, Fprem | Fprem1) {
            cpu.fpu.sw &= !C2;
        }
        if !ctx.blocks_store() {
            if to_st1 {
                cpu.fpu.set_st(1, v);
                cpu.fpu.pop();
            } else {
                cpu.fpu.set_st(0, v);
            }
        }
        cpu.fpu.commit(&ctx);
        return Ok(());
    }
    let (x, y) = (cpu.fpu.st(0), cpu.fpu.st(1));
    let r = match m {
        Fscale => ctx.scale(x, y),
        Fprem | Fprem1 => {
            let q = ctx.remainder(x, y, m == Fprem1);
            let cc = if q.special {
                // NaN or invalid operands: C0 and C3 are left alone.
                cpu.fpu.sw & (C0 | C3)
            } else if !q.complete {
                // Partial remainder: C2 = 1, the quotient bits are cleared.
                C2
            } else {
                let b = |n: u8, f: u16| if q.q & (1 << n) != 0 { f } else { 0 };
                b(2, C0) | b(1, C3) | b(0, C1)
            };
            if !ctx.blocks_store() {
                cpu.fpu.set_st(0, q.value);
            }
            cpu.fpu.set_cc(cc);
            ctx.flags = (ctx.flags & !C1) | (cc & C1);
            cpu.fpu.commit(&ctx);
            return Ok(());
        }
        Fyl2x => tr::fyl2x(&mut ctx, x, y),
        Fyl2xp1 => tr::fyl2xp1(&mut ctx, x, y),
        _ => tr::fpatan(&mut ctx, x, y),
    };
    if !ctx.blocks_store() {
        if to_st1 {
            cpu.fpu.set_st(1, r);
            cpu.fpu.pop();
        } else {
            cpu.fpu.set_st(0, r);
        }
    }
    cpu.fpu.commit(&ctx);
    Ok(())
}

// ---------------------------------------------------------------------------
// Register-stack management

fn stack_op(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    use Mnemonic::*;
    let fpu = &mut cpu.fpu;
    match e.ins.mnemonic() {
        Fincstp => {
            fpu.top = (fpu.top + 1) & 7;
            fpu.sw &= !C1;
        }
        Fdecstp => {
            fpu.top = (fpu.top + 7) & 7;
            fpu.sw &= !C1;
        }
        Ffree | Ffreep => {
            let p = fpu.phys(sti(e.ins.op0_register()));
            fpu.valid &= !(1 << p);
            if e.ins.mnemonic() == Ffreep {
                fpu.pop();
            }
            // C0–C3 are undefined; the reference host clears C1.
            fpu.sw &= !C1;
        }
        Fxch => {
            let i = if e.ins.op_count() == 0 {
                1
            } else {
                sti(e.ins.op_register(e.ins.op_count() - 1))
            };
            let mut ctx = fpu.ctx();
            let (e0, ei) = (fpu.st_empty(0), fpu.st_empty(i));
            if e0 || ei {
                underflow(&mut ctx);
                if ctx.blocks_store() {
                    fpu.commit(&ctx);
                    return Ok(());
                }
                if e0 {
                    fpu.set_st(0, F80::INDEFINITE);
                }
                if ei {
                    fpu.set_st(i, F80::INDEFINITE);
                }
            }
            let (a, b) = (fpu.st(0), fpu.st(i));
            fpu.set_st(0, b);
            fpu.set_st(i, a);
            fpu.commit(&ctx);
        }
        _ => {} // FNOP, FENI/FDISI/FSETPM (no-ops since the 387)
    }
    Ok(())
}

fn fcmov(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if !begin(cpu, e, true)? {
        return Ok(());
    }
    note_ip(cpu, e);
    use Mnemonic::*;
    let f = &cpu.flags;
    let cond = match e.ins.mnemonic() {
        Fcmovb => f.cf(),
        Fcmove => f.zf(),
        Fcmovbe => f.cf() || f.zf(),
        Fcmovu => f.pf(),
        Fcmovnb => !f.cf(),
        Fcmovne => !f.zf(),
        Fcmovnbe => !f.cf() && !f.zf(),
        _ => !f.pf(),
    };
    let i = sti(e.ins.op1_register());
    let mut ctx = cpu.fpu.ctx();
    if cpu.fpu.st_empty(0) || cpu.fpu.st_empty(i) {
        let v = underflow(&mut ctx);
        if !ctx.blocks_store() {
            cpu.fpu.set_st(0, v);
        }
    } else {
        // C1 is left alone (only a stack underflow clears it).
        ctx.flags = (ctx.flags & !C1) | (cpu.fpu.sw & C1);
        if cond {
            let v = cpu.fpu.st(i);
            cpu.fpu.set_st(0, v);
        }
    }
    cpu.fpu.commit(&ctx);
    Ok(())
}

// ---------------------------------------------------------------------------
// Control instructions

/// Whether a control instruction is the waiting form (FINIT = WAIT FNINIT).
fn waits(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Finit | Fclex | Fstcw | Fstsw | Fstenv | Fsave | Fldcw | Fldenv | Frstor
    )
}

fn control(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    let m = e.ins.mnemonic();
    if !begin(cpu, e, waits(m))? {
        return Ok(());
    }
    use Mnemonic::*;
    match m {
        Finit | Fninit => cpu.fpu.init(),
        Fclex | Fnclex => {
            cpu.fpu.sw &= !(EXC | SF | ES | _B);
            cpu.fpu.ferr = false;
        }
        Fldcw => {
            let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
            let v = cpu.read_mem(bus, seg, off, 2)? as u16;
            set_cw(cpu, v);
        }
        Fstcw | Fnstcw => {
            let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
            let v = cpu.fpu.cw;
            cpu.write_mem(bus, seg, off, 2, v as u32)?;
        }
        Fstsw | Fnstsw => {
            let v = cpu.fpu.status_word();
            if e.ins.op0_kind() == OpKind::Register {
                cpu.set_reg(Register::AX, v as u32);
            } else {
                let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
                cpu.write_mem(bus, seg, off, 2, v as u32)?;
            }
        }
        Fstenv | Fnstenv | Fsave | Fnsave => {
            let save = matches!(m, Fsave | Fnsave);
            let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
            let mut buf = [0u8; 108];
            let n = env_image(cpu, bus, e, &mut buf);
            let mut len = n;
            if save {
                for i in 0..8 {
                    let b = cpu.fpu.st(i).to_bytes();
                    buf[n + 10 * i..n + 10 * i + 10].copy_from_slice(&b);
                }
                len += 80;
            }
            write_at(cpu, bus, seg, off, addr_wrap(e), &buf[..len])?;
            if save {
                cpu.fpu.init();
            } else {
                // FSTENV masks every exception after storing (SDM Vol. 2A).
                cpu.fpu.cw |= EXC;
            }
        }
        Fldenv | Frstor => {
            let rstor = m == Frstor;
            let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
            let n = env_size(e);
            let len = if rstor { n + 80 } else { n };
            let mut buf = [0u8; 108];
            read_at(cpu, bus, seg, off, addr_wrap(e), &mut buf[..len])?;
            load_env(cpu, e, &buf[..n]);
            if rstor {
                let top = cpu.fpu.top as usize;
                for i in 0..8 {
                    let mut b = [0u8; 10];
                    b.copy_from_slice(&buf[n + 10 * i..n + 10 * i + 10]);
                    cpu.fpu.regs[(top + i) & 7] = F80::from_bytes(b);
                }
            }
        }
        _ => return Err(Fault::UD),
    }
    Ok(())
}

/// FLDCW: bit 6 reads as 1 and bits 13–15 as 0 on a 387 and later.
fn set_cw(cpu: &mut Cpu, v: u16) {
    cpu.fpu.cw = (v & 0x1F3F) | 0x0040;
    cpu.fpu.update_es();
}

fn env_size(e: &Entry) -> usize {
    use iced_x86::MemorySize as M;
    match e.ins.memory_size() {
        M::FpuEnv14 | M::FpuState94 => 14,
        _ => 28,
    }
}

/// The opcode of the last non-control instruction (FOP, 11 bits): low 3
/// bits of the escape byte and the ModR/M byte, read back from its code
/// when an image is stored (cheaper than keeping it per instruction).
/// The bytes are read through paging as a supervisor access; if the page
/// went away since, FOP reads as 0 rather than faulting (it is diagnostic).
fn last_opcode(cpu: &mut Cpu, bus: &mut dyn Bus) -> u16 {
    let mut lin = cpu.fpu.fip_linear;
    for _ in 0..15 {
        let Ok(b) = cpu.read_lin(bus, lin, 1, false) else {
            return 0;
        };
        if (0xD8..=0xDF).contains(&b) {
            let modrm = cpu
                .read_lin(bus, lin.wrapping_add(1), 1, false)
                .unwrap_or(0);
            return (((b & 7) << 8) | (modrm & 0xFF)) as u16;
        }
        lin = lin.wrapping_add(1);
    }
    0
}

/// Build the FSTENV image (SDM Vol. 1 Figures 8-9 to 8-12) in the layout
/// the mode and operand size select; returns its length.
fn env_image(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry, buf: &mut [u8; 108]) -> usize {
    let n = env_size(e);
    let cw = cpu.fpu.cw;
    let sw = cpu.fpu.status_word();
    let tw = cpu.fpu.tag_word();
    let fop = last_opcode(cpu, bus) as u32 & 0x7FF;
    let f = &cpu.fpu;
    let real = cpu.mode() != CpuMode::Protected;
    let mut put = |i: usize, v: u32, w: usize| {
        buf[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
    };
    let ip_lin = (f.fcs as u32) * 16 + f.fip;
    let dp_lin = (f.fds as u32) * 16 + f.fdp;
    if n == 14 {
        put(0, cw as u32, 2);
        put(2, sw as u32, 2);
        put(4, tw as u32, 2);
        if real {
            put(6, ip_lin & 0xFFFF, 2);
            put(8, ((ip_lin >> 16) & 0xF) << 12 | fop, 2);
            put(10, dp_lin & 0xFFFF, 2);
            put(12, ((dp_lin >> 16) & 0xF) << 12, 2);
        } else {
            put(6, f.fip & 0xFFFF, 2);
            put(8, f.fcs as u32, 2);
            put(10, f.fdp & 0xFFFF, 2);
            put(12, f.fds as u32, 2);
        }
    } else {
        put(0, 0xFFFF_0000 | cw as u32, 4);
        put(4, 0xFFFF_0000 | sw as u32, 4);
        put(8, 0xFFFF_0000 | tw as u32, 4);
        if real {
            put(12, 0xFFFF_0000 | (ip_lin & 0xFFFF), 4);
            put(16, (ip_lin >> 16) << 12 | fop, 4);
            put(20, 0xFFFF_0000 | (dp_lin & 0xFFFF), 4);
            put(24, (dp_lin >> 16) << 12, 4);
        } else {
            put(12, f.fip, 4);
            put(16, fop << 16 | f.fcs as u32, 4);
            put(20, f.fdp, 4);
            put(24, 0xFFFF_0000 | f.fds as u32, 4);
        }
    }
    n
}

/// Load an environment image (FLDENV, the first part of FRSTOR).
fn load_env(cpu: &mut Cpu, e: &Entry, b: &[u8]) {
    let w = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as u32;
    let d = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let real = cpu.mode() != CpuMode::Protected;
    let (cw, sw, tw) = if b.len() == 14 {
        (w(0), w(2), w(4))
    } else {
        (w(0), w(4), w(8))
    };
    let f = &mut cpu.fpu;
    f.cw = (cw as u16 & 0x1F3F) | 0x40;
    f.set_tag_word(tw as u16);
    f.set_status_word(sw as u16);
    if b.len() == 14 {
        if real {
            f.fcs = 0;
            f.fip = w(6) | (w(8) >> 12) << 16;
            f.fds = 0;
            f.fdp = w(10) | (w(12) >> 12) << 16;
        } else {
            f.fip = w(6);
            f.fcs = w(8) as u16;
            f.fdp = w(10);
            f.fds = w(12) as u16;
        }
    } else if real {
        f.fcs = 0;
        f.fip = w(12) | (d(16) >> 12) << 16;
        f.fds = 0;
        f.fdp = w(20) | (d(24) >> 12) << 16;
    } else {
        f.fip = d(12);
        f.fcs = w(16) as u16;
        f.fdp = d(20);
        f.fds = w(24) as u16;
    }
    f.fip_linear = f.fip.wrapping_add((f.fcs as u32) << 4);
    let _ = e;
}

/// FXSAVE/FXRSTOR legacy 512-byte image (SDM Vol. 2A FXSAVE, Table 3-53).
/// No SSE state exists on this part: MXCSR reads as its reset value and the
/// XMM area is left untouched.
fn fxsave(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> R {
    if cpu.cr[0] & cr0::EM != 0 {
        return Err(Fault::UD);
    }
    if cpu.cr[0] & cr0::TS != 0 {
        return Err(Fault::NM);
    }
    if e.ins.op0_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let (seg, off) = (cpu.mem_seg(e), cpu.ea(e));
    let lin = cpu.segs[seg as usize].base.wrapping_add(off);
    if lin & 15 != 0 {
        return Err(Fault::gp(0));
    }
    let w = addr_wrap(e);
    if e.ins.mnemonic() == Mnemonic::Fxsave {
        let mut b = [0u8; 160];
        let fop = last_opcode(cpu, bus);
        let f = &cpu.fpu;
        b[0..2].copy_from_slice(&f.cw.to_le_bytes());
        b[2..4].copy_from_slice(&f.status_word().to_le_bytes());
        b[4] = (0..8).fold(0u8, |t, r| {
            if f.valid & (1 << r) != 0 {
                t | 1 << r
            } else {
                t
            }
        });
        b[6..8].copy_from_slice(&fop.to_le_bytes());
        b[8..12].copy_from_slice(&f.fip.to_le_bytes());
        b[12..14].copy_from_slice(&f.fcs.to_le_bytes());
        b[16..20].copy_from_slice(&f.fdp.to_le_bytes());
        b[20..22].copy_from_slice(&f.fds.to_le_bytes());
        b[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        for i in 0..8 {
            b[32 + 16 * i..42 + 16 * i].copy_from_slice(&f.st(i).to_bytes());
        }
        write_at(cpu, bus, seg, off, w, &b)?;
    } else {
        let mut b = [0u8; 160];
        read_at(cpu, bus, seg, off, w, &mut b)?;
        let h = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let d = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let f = &mut cpu.fpu;
        f.cw = (h(0) & 0x1F3F) | 0x40;
        f.valid = b[4];
        f.set_status_word(h(2));
        f.fip = d(8);
        f.fcs = h(12);
        f.fdp = d(16);
        f.fds = h(20);
        f.fip_linear = f.fip.wrapping_add((f.fcs as u32) << 4);
        for i in 0..8 {
            let mut r = [0u8; 10];
            r.copy_from_slice(&b[32 + 16 * i..42 + 16 * i]);
            let p = f.phys(i);
            f.regs[p] = F80::from_bytes(r);
        }
    }
    Ok(())
}

/// WAIT/FWAIT: #NM only when both MP and TS are set; then a pending
/// unmasked exception is reported.
fn fwait(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    if cpu.cr[0] & (cr0::MP | cr0::TS) == (cr0::MP | cr0::TS) {
        return Err(Fault::NM);
    }
    if cpu.fpu.sw & ES != 0 {
        pending(cpu, e)?;
    }
    Ok(())
}

fn nop_x87(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> R {
    begin(cpu, e, false)?;
    Ok(())
}

/// The handler for an x87 instruction (or WAIT), if this is one.
pub(crate) fn select(e: &Entry) -> Option<Handler> {
    use Mnemonic::*;
    Some(match e.ins.mnemonic() {
        Fadd | Faddp | Fiadd | Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr | Fmul | Fmulp
        | Fimul | Fdiv | Fdivp | Fidiv | Fdivr | Fdivrp | Fidivr => arith,
        Fld | Fild | Fbld => load,
        Fld1 | Fldz | Fldpi | Fldl2e | Fldl2t | Fldlg2 | Fldln2 => load_const,
        Fst | Fstp | Fstpnce | Fist | Fistp | Fbstp => store,
        Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Ficom | Ficomp | Ftst | Fcomi
        | Fcomip | Fucomi | Fucomip => compare,
        Fxam => fxam,
        Fchs | Fabs | Fsqrt | Frndint | F2xm1 | Fsin | Fcos | Fsincos | Fptan | Fxtract => unary,
        Fscale | Fprem | Fprem1 | Fyl2x | Fyl2xp1 | Fpatan => binary,
        Fincstp | Fdecstp | Ffree | Ffreep | Fxch | Fnop => stack_op,
        Fcmovb | Fcmove | Fcmovbe | Fcmovu | Fcmovnb | Fcmovne | Fcmovnbe | Fcmovnu => fcmov,
        Finit | Fninit | Fclex | Fnclex | Fldcw | Fstcw | Fnstcw | Fstsw | Fnstsw | Fstenv
        | Fnstenv | Fsave | Fnsave | Fldenv | Frstor => control,
        Fxsave | Fxrstor => fxsave,
        Feni | Fneni | Fdisi | Fndisi | Fsetpm | Fnsetpm => nop_x87,
        Wait => fwait,
        _ => return None,
    })
}
