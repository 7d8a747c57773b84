//! F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FSINCOS, FPTAN.
//!
//! Algorithm: every function is evaluated in [`W`], a software float with a
//! 128-bit significand (about 125 good bits after the few dozen operations a
//! series takes), and the result is rounded once to 64 bits by RC (the
//! precision control does not apply to these instructions, SDM Vol. 1
//! §8.1.5.2). With ≥ 60 guard bits the result is the correctly rounded
//! value except in astronomically rare near-halfway cases, so our error is
//! ≤ 0.5 ulp (≤ 1 ulp under directed rounding); a P6 documents ≤ 1 ulp
//! (SDM Vol. 1 §8.3.10), so we may differ from a real part by up to about
//! 1 ulp, which is the tolerance the host oracle allows.
//!
//! - 2^x − 1 = expm1(x·ln 2) by its Taylor series (|x·ln 2| ≤ 0.7).
//! - log2 x: x = m·2^e with m ∈ [√½, √2), ln m = 2·atanh((m−1)/(m+1)) by its
//!   series (|s| ≤ 0.172), then e + ln m · log2 e. log2(1+x) uses
//!   s = x/(2+x) directly, so small x keeps full relative accuracy.
//! - atan: the ratio is reduced to [0, 1] by octant symmetry, then twice by
//!   atan t = 2·atan(t / (1 + √(1+t²))) to |t| ≤ tan(π/16), then the series.
//! - sin/cos/tan: like a real x87 (SDM Vol. 1 §8.3.10), the argument is
//!   reduced modulo π/2 with a 66-bit value of π, exactly (integer
//!   arithmetic), so large arguments give the same answers the hardware
//!   gives; |x| ≥ 2^63 is out of range (C2 = 1, operand unchanged). The
//!   reduced argument (|r| ≤ π/4) goes through the sine and cosine series.

use super::f80::{Class, Ctx, F80, IE, ZE};

/// A working float: value = m / 2^127 × 2^exp, `m` normalised (bit 127
/// set) or zero.
#[derive(Clone, Copy, Debug)]
pub(crate) struct W {
    neg: bool,
    exp: i32,
    m: u128,
}

const LO: u128 = (1u128 << 64) - 1;

impl W {
    const ZERO: W = W {
        neg: false,
        exp: 0,
        m: 0,
    };
    const ONE: W = W {
        neg: false,
        exp: 0,
        m: 1 << 127,
    };
    /// π to 128 bits.
    const PI: W = W {
        neg: false,
        exp: 1,
        m: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1,
    };
    /// ln 2 to 128 bits.
    const LN2: W = W {
        neg: false,
        exp: -1,
        m: 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af,
    };
    /// log2 e to 128 bits.
    const LOG2E: W = W {
        neg: false,
        exp: 0,
        m: 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88,
    };

    fn norm(neg: bool, exp: i32, m: u128) -> W {
        if m == 0 {
            return W::ZERO;
        }
        let lz = m.leading_zeros() as i32;
        W {
            neg,
            exp: exp - lz,
            m: m << lz,
        }
    }

    /// Exact value of a finite F80.
    fn from_f80(x: F80) -> W {
        if x.class() == Class::Zero {
            return W::ZERO;
        }
        let u = x.unpack();
        W {
            neg: u.sign,
            exp: u.exp,
            m: (u.sig as u128) << 64,
        }
    }

    fn int(n: u64) -> W {
        W::norm(false, 127, n as u128)
    }

    fn is_zero(self) -> bool {
        self.m == 0
    }

    fn neg(self) -> W {
        W {
            neg: !self.neg,
            ..self
        }
    }

    fn abs(self) -> W {
        W { neg: false, ..self }
    }

    fn half(self) -> W {
        W {
            exp: self.exp - 1,
            ..self
        }
    }

    fn add(self, o: W) -> W {
        if self.is_zero() {
            return o;
        }
        if o.is_zero() {
            return self;
        }
        let (a, b) = if (self.exp, self.m) >= (o.exp, o.m) {
            (self, o)
        } else {
            (o, self)
        };
        let d = (a.exp - b.exp) as u32;
        // Bits shifted out leave a sticky 1, so a final rounding still sees
        // an inexact (and correctly signed) remainder.
        let bm = if d >= 128 {
            1
        } else if d == 0 {
            b.m
        } else {
            (b.m >> d) | (b.m << (128 - d) != 0) as u128
        };
        if a.neg == b.neg {
            let (s, c) = a.m.overflowing_add(bm);
            if c {
                W {
                    neg: a.neg,
                    exp: a.exp + 1,
                    m: (s >> 1) | (1 << 127),
                }
            } else {
                W {
                    neg: a.neg,
                    exp: a.exp,
                    m: s,
                }
            }
        } else {
            W::norm(a.neg, a.exp, a.m - bm)
        }
    }

    fn sub(self, o: W) -> W {
        self.add(o.neg())
    }

    fn mul(self, o: W) -> W {
        if self.is_zero() || o.is_zero() {
            return W::ZERO;
        }
        let (ah, al) = (self.m >> 64, self.m & LO);
        let (bh, bl) = (o.m >> 64, o.m & LO);
        let t1 = ah * bl;
        let t2 = al * bh;
        let ll = al * bl;
        let mid = (ll >> 64) + (t1 & LO) + (t2 & LO);
        let hi = ah * bh + (t1 >> 64) + (t2 >> 64) + (mid >> 64);
        let neg = self.neg != o.neg;
        if hi >> 127 != 0 {
            W {
                neg,
                exp: self.exp + o.exp + 1,
                m: hi,
            }
        } else {
            W {
                neg,
                exp: self.exp + o.exp,
                m: (hi << 1) | ((mid >> 63) & 1),
            }
        }
    }

    fn div(self, o: W) -> W {
        if self.is_zero() || o.is_zero() {
            return W::ZERO;
        }
        let mut r = self.m;
        let mut e = self.exp - o.exp;
        let mut carry = false;
        if r < o.m {
            carry = r >> 127 != 0;
            r <<= 1;
            e -= 1;
        }
        let mut q: u128 = 0;
        for _ in 0..128 {
            q <<= 1;
            if carry || r >= o.m {
                r = r.wrapping_sub(o.m);
                q |= 1;
            }
            carry = r >> 127 != 0;
            r <<= 1;
        }
        // Sticky: a non-zero remainder keeps the quotient marked inexact.
        q |= (r != 0 || carry) as u128;
        W {
            neg: self.neg != o.neg,
            exp: e,
            m: q,
        }
    }

    /// Division by a small integer (series coefficients).
    fn div_small(self, k: u32) -> W {
        if self.is_zero() {
            return self;
        }
        let k = k as u128;
        let (hi, lo) = (self.m >> 64, self.m & LO);
        let qh = hi / k;
        let t = ((hi % k) << 64) | lo;
        let q = (qh << 64) | (t / k);
        let r = t % k;
        let lz = q.leading_zeros();
        let extra = (r << lz) / k;
        W {
            neg: self.neg,
            exp: self.exp - lz as i32,
            m: (q << lz) | extra,
        }
    }

    fn to_f64(self) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        let v = (self.m >> 64) as f64 * 2f64.powi(self.exp - 63);
        if self.neg {
            -v
        } else {
            v
        }
    }

    fn from_f64(v: f64) -> W {
        if v == 0.0 {
            return W::ZERO;
        }
        W::from_f80(F80::from_f64(v))
    }

    /// √self for self > 0 (Newton from a double seed: 53 → 106 → 212 bits).
    fn sqrt(self) -> W {
        if self.is_zero() {
            return self;
        }
        // Scale into double range for the seed.
        let k = self.exp & !1;
        let scaled = W {
            exp: self.exp - k,
            ..self
        };
        let mut r = W::from_f64(scaled.to_f64().sqrt());
        for _ in 0..3 {
            r = r.add(scaled.div(r)).half();
        }
        W {
            exp: r.exp + k / 2,
            ..r
        }
    }

    /// The value nudged by one unit of the 128-bit significand toward
    /// zero (`toward_zero`) or away from it: "x minus a tiny positive
    /// amount" for series whose next term lies far below 2^-128.
    fn nudge(self, toward_zero: bool) -> W {
        if toward_zero {
            if self.m == 1 << 127 {
                W {
                    exp: self.exp - 1,
                    m: u128::MAX,
                    ..self
                }
            } else {
                W {
                    m: self.m - 1,
                    ..self
                }
            }
        } else {
            W {
                m: self.m | 1,
                ..self
            }
        }
    }

    /// Round to an F80 by RC.
    fn round(self, ctx: &mut Ctx) -> F80 {
        if self.is_zero() {
            return F80::zero(self.neg);
        }
        ctx.round_ext64(self.neg, self.exp, self.m)
    }
}

/// Sum a power series Σ c_k t^k where each term is obtained from the
/// previous one by `step` (returns None to stop when the term vanishes).
fn series(first: W, mut next: impl FnMut(W, u32) -> W) -> W {
    let mut sum = first;
    let mut term = first;
    for k in 1..200u32 {
        term = next(term, k);
        sum = sum.add(term);
        if term.is_zero() || term.exp < sum.exp - 130 {
            break;
        }
    }
    sum
}

/// e^t − 1.
fn expm1(t: W) -> W {
    series(t, |term, k| term.mul(t).div_small(k + 1))
}

/// 2·atanh(s) = ln((1+s)/(1−s)).
fn two_atanh(s: W) -> W {
    let s2 = s.mul(s);
    // Terms s^(2k+1)/(2k+1) kept separately from the power.
    let mut pow = s;
    let mut sum = s;
    for k in 1..200u32 {
        pow = pow.mul(s2);
        let term = pow.div_small(2 * k + 1);
        sum = sum.add(term);
        if term.is_zero() || term.exp < sum.exp - 130 {
            break;
        }
    }
    W {
        exp: sum.exp + 1,
        ..sum
    }
}

/// log2 of a positive finite value.
fn log2(x: W) -> W {
    // x = m·2^e, m ∈ [1, 2).
    let mut e = x.exp as i64;
    let mut m = W {
        neg: false,
        exp: 0,
        m: x.m,
    };
    // √2 ≈ 0xB504F333F9DE6484… × 2^-63
    if m.m > 0xB504_F333_F9DE_6484_597D_89B3_754A_BE9F {
        m.exp = -1;
        e += 1;
    }
    let s = m.sub(W::ONE).div(m.add(W::ONE));
    let ln = two_atanh(s);
    let l = ln.mul(W::LOG2E);
    let ew = if e < 0 {
        W::int(e.unsigned_abs()).neg()
    } else {
        W::int(e as u64)
    };
    ew.add(l)
}

/// atan t for 0 ≤ t ≤ 1.
fn atan01(t: W) -> W {
    if t.exp < TINY {
        return t.nudge(true);
    }
    let mut t = t;
    for _ in 0..2 {
        let d = W::ONE.add(W::ONE.add(t.mul(t)).sqrt());
        t = t.div(d);
    }
    let t2 = t.mul(t);
    let mut pow = t;
    let mut sum = t;
    for k in 1..200u32 {
        pow = pow.mul(t2).neg();
        let term = pow.div_small(2 * k + 1);
        sum = sum.add(term);
        if term.is_zero() || term.exp < sum.exp - 130 {
            break;
        }
    }
    W {
        exp: sum.exp + 2,
        ..sum
    }
}

/// Below this exponent the first neglected term of sin/tan/atan is under
/// 2^-130 relative: the result is r nudged by a sticky unit.
const TINY: i32 = -66;

fn sin_series(r: W) -> W {
    if r.exp < TINY {
        return r.nudge(true);
    }
    let r2 = r.mul(r);
    series(r, |term, k| {
        term.mul(r2).div_small(2 * k).div_small(2 * k + 1).neg()
    })
}

fn cos_series(r: W) -> W {
    if r.exp < TINY {
        return W::ONE.nudge(true);
    }
    let r2 = r.mul(r);
    series(W::ONE, |term, k| {
        term.mul(r2).div_small(2 * k - 1).div_small(2 * k).neg()
    })
}

/// The x87's internal π: 66 bits, as π·2^64 (SDM Vol. 1 §8.3.10).
const PI66: u128 = 0x3_243F_6A88_85A3_08D3;

/// Reduce a finite |x| < 2^63 modulo π/2 (66-bit π): (quadrant, r).
fn reduce(x: F80) -> (u32, W) {
    let w = W::from_f80(x);
    if x.class() == Class::Zero {
        return (0, w);
    }
    let u = x.unpack();
    // π/4 ≈ 0.785: below that no reduction.
    if u.exp < -1 || (u.exp == -1 && (u.sig as u128) << 2 < PI66 >> 1 << 1 >> 1) {
        return (0, w);
    }
    // In units of 2^-65, π/2 is PI66 and |x| is sig << (exp + 2).
    let shift = (u.exp + 2) as u32;
    let p = PI66;
    let mut r = u.sig as u128;
    let mut q: u128 = 0;
    if r >= p {
        r -= p;
        q = 1;
    }
    for _ in 0..shift {
        r <<= 1;
        q <<= 1;
        if r >= p {
            r -= p;
            q |= 1;
        }
    }
    // Nearest multiple: |r| ≤ π/4.
    let mut neg = false;
    if 2 * r > p {
        r = p - r;
        q += 1;
        neg = true;
    }
    let mut rw = W::norm(neg, 127 - 65, r);
    let mut quad = (q & 3) as u32;
    if u.sign {
        rw = rw.neg();
        quad = (4 - quad) & 3;
    }
    (quad, rw)
}

/// Common screening for FSIN/FCOS/FSINCOS/FPTAN: `Err` is the final
/// result (NaN or invalid), `Ok(None)` out of range (C2 = 1).
fn trig_screen(ctx: &mut Ctx, x: F80) -> Result<Option<(u32, W)>, F80> {
    match x.class() {
        Class::Unsupported | Class::Infinity => return Err(ctx.invalid()),
        Class::SNaN => {
            ctx.flags |= IE;
            return Err(x.quiet());
        }
        Class::QNaN => return Err(x),
        Class::Denormal => {
            if let Some(v) = ctx.denormal_operand() {
                return Err(v);
            }
        }
        _ => {}
    }
    if x.class() != Class::Zero && x.unpack().exp >= 63 {
        return Ok(None);
    }
    Ok(Some(reduce(x)))
}

/// Outcome of a trigonometric instruction.
pub enum Trig {
    /// Operand out of range: C2 = 1, nothing changes.
    OutOfRange,
    /// NaN or invalid operand: this value goes wherever results go.
    Special(F80),
    /// (sin, cos) or (tan, 1) as the instruction needs.
    Done(F80, F80),
}

/// sin and cos of x, each rounded once.
pub fn sincos(ctx: &mut Ctx, x: F80) -> Trig {
    let (quad, r) = match trig_screen(ctx, x) {
        Err(v) => return Trig::Special(v),
        Ok(None) => return Trig::OutOfRange,
        Ok(Some(v)) => v,
    };
    if x.class() == Class::Zero {
        return Trig::Done(x, F80::ONE);
    }
    let (s, c) = (sin_series(r), cos_series(r));
    let (s, c) = match quad {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    };
    // Round the cosine first: C1 reports the sine's rounding (as hardware).
    let c = c.round(ctx);
    let s = s.round(ctx);
    Trig::Done(s, c)
}

/// sin x only (FSIN), so flags reflect one rounding.
pub fn sin(ctx: &mut Ctx, x: F80) -> Trig {
    one_trig(ctx, x, |quad, r| match quad {
        0 => sin_series(r),
        1 => cos_series(r),
        2 => sin_series(r).neg(),
        _ => cos_series(r).neg(),
    })
}

/// cos x only (FCOS).
pub fn cos(ctx: &mut Ctx, x: F80) -> Trig {
    if x.class() == Class::Zero {
        return Trig::Done(F80::ONE, F80::ONE);
    }
    one_trig(ctx, x, |quad, r| match quad {
        0 => cos_series(r),
        1 => sin_series(r).neg(),
        2 => cos_series(r).neg(),
        _ => sin_series(r),
    })
}

/// tan x (FPTAN; the caller pushes 1.0).
pub fn tan(ctx: &mut Ctx, x: F80) -> Trig {
    one_trig(ctx, x, |quad, r| {
        if r.exp < TINY && quad & 1 == 0 {
            return r.nudge(false);
        }
        let (s, c) = (sin_series(r), cos_series(r));
        if quad & 1 == 0 {
            s.div(c)
        } else {
            c.div(s).neg()
        }
    })
}

fn one_trig(ctx: &mut Ctx, x: F80, f: impl Fn(u32, W) -> W) -> Trig {
    let (quad, r) = match trig_screen(ctx, x) {
        Err(v) => return Trig::Special(v),
        Ok(None) => return Trig::OutOfRange,
        Ok(Some(v)) => v,
    };
    if x.class() == Class::Zero {
        return Trig::Done(x, F80::ONE);
    }
    Trig::Done(f(quad, r).round(ctx), F80::ONE)
}

/// F2XM1: 2^x − 1 (defined for −1 ≤ x ≤ 1).
pub fn f2xm1(ctx: &mut Ctx, x: F80) -> F80 {
    match x.class() {
        Class::Unsupported => return ctx.invalid(),
        Class::SNaN => {
            ctx.flags |= IE;
            return x.quiet();
        }
        Class::QNaN | Class::Zero => return x,
        Class::Infinity => return if x.sign() { F80::ONE.neg() } else { x },
        Class::Denormal => {
            if let Some(v) = ctx.denormal_operand() {
                return v;
            }
        }
        Class::Normal => {}
    }
    expm1(W::from_f80(x).mul(W::LN2)).round(ctx)
}

/// Shared NaN/unsupported screening of the two-operand transcendentals
/// (x = ST(0), y = ST(1)).
fn screen_xy(ctx: &mut Ctx, x: F80, y: F80, invalid: bool) -> Option<F80> {
    ctx.screen2(x, y, invalid)
}

/// y × L rounded once, where L = `l` (None for L = +0), with the ∞/0 rules.
fn times(ctx: &mut Ctx, y: F80, l: Option<W>) -> F80 {
    let lneg = l.map(|w| w.neg).unwrap_or(false);
    match y.class() {
        Class::Infinity if l.is_none() => ctx.invalid(),
        Class::Infinity => F80::inf(y.sign() != lneg),
        Class::Zero => F80::zero(y.sign() != lneg),
        _ => match l {
            None => F80::zero(y.sign()),
            Some(w) => W::from_f80(y).mul(w).round(ctx),
        },
    }
}

/// FYL2X: y · log2 x.
pub fn fyl2x(ctx: &mut Ctx, x: F80, y: F80) -> F80 {
    let (cx, cy) = (x.class(), y.class());
    let bad = (x.sign() && cx != Class::Zero)
        || (cy == Class::Zero && matches!(cx, Class::Zero | Class::Infinity));
    // y · log2(±0) with finite non-zero y: a zero divide, no DE (as FDIV).
    if cx == Class::Zero && matches!(cy, Class::Normal | Class::Denormal) {
        ctx.flags |= ZE;
        return F80::inf(!y.sign());
    }
    if let Some(r) = screen_xy(ctx, x, y, bad) {
        return r;
    }
    if cx == Class::Zero {
        return match cy {
            Class::Zero => ctx.invalid(),
            Class::Infinity => F80::inf(!y.sign()),
            _ => {
                ctx.flags |= ZE;
                F80::inf(!y.sign())
            }
        };
    }
    if cx == Class::Infinity {
        return if cy == Class::Zero {
            ctx.invalid()
        } else {
            F80::inf(y.sign())
        };
    }
    let l = log2(W::from_f80(x));
    times(ctx, y, (!l.is_zero()).then_some(l))
}

/// FYL2XP1: y · log2(1 + x) (defined for |x| < 1 − √2/2).
pub fn fyl2xp1(ctx: &mut Ctx, x: F80, y: F80) -> F80 {
    let cx = x.class();
    let bad =
        (cx == Class::Zero && y.class() == Class::Infinity) || (cx == Class::Infinity && x.sign());
    if let Some(r) = screen_xy(ctx, x, y, bad) {
        return r;
    }
    if cx == Class::Zero {
        return match y.class() {
            Class::Infinity => ctx.invalid(),
            _ => F80::zero(x.sign() != y.sign()),
        };
    }
    if cx == Class::Infinity {
        // log2(+∞) = +∞ (−∞ was screened as invalid).
        return if y.class() == Class::Zero {
            ctx.invalid()
        } else {
            F80::inf(y.sign())
        };
    }
    let xw = W::from_f80(x);
    let one_plus = W::ONE.add(xw);
    if one_plus.neg || one_plus.is_zero() {
        return ctx.invalid();
    }
    let s = xw.div(W::int(2).add(xw));
    let l = two_atanh(s).mul(W::LOG2E);
    times(ctx, y, Some(l))
}

/// FPATAN: atan2(y, x) with y = ST(1), x = ST(0).
pub fn fpatan(ctx: &mut Ctx, x: F80, y: F80) -> F80 {
    if let Some(r) = screen_xy(ctx, x, y, false) {
        return r;
    }
    let (cx, cy) = (x.class(), y.class());
    let pi = W::PI;
    let sy = y.sign();
    let signed = |w: W| if sy { w.neg() } else { w };
    let r = if cy == Class::Zero {
        if x.sign() {
            signed(pi)
        } else {
            return F80::zero(sy);
        }
    } else if cy == Class::Infinity {
        match cx {
            Class::Infinity if x.sign() => signed(pi.mul(W::int(3)).half().half()),
            Class::Infinity => signed(pi.half().half()),
            _ => signed(pi.half()),
        }
    } else if cx == Class::Zero {
        signed(pi.half())
    } else if cx == Class::Infinity {
        if x.sign() {
            signed(pi)
        } else {
            return F80::zero(sy);
        }
    } else {
        let (ax, ay) = (W::from_f80(x).abs(), W::from_f80(y).abs());
        let a = if (ay.exp, ay.m) <= (ax.exp, ax.m) {
            atan01(ay.div(ax))
        } else {
            pi.half().sub(atan01(ax.div(ay)))
        };
        let a = if x.sign() { pi.sub(a) } else { a };
        signed(a)
    };
    r.round(ctx)
}
