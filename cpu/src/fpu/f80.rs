//! The x87 80-bit extended-precision format and exactly rounded arithmetic
//! on it, written for the x87's rules rather than IEEE 754's defaults.
//!
//! Every basic operation computes its exact result (or an exact result plus a
//! sticky bit) in a `u128` and rounds it once in [`Ctx::round`], which knows
//! the three precision-control settings (24, 53, 64 significand bits with the
//! full 15-bit exponent range, SDM Vol. 1 §8.1.5.2), the four rounding modes,
//! denormalisation, tininess after rounding (as Intel processors detect it),
//! and the masked and unmasked responses to overflow and underflow (SDM
//! Vol. 1 §4.9.1.4–5, §8.5.4–5: an unmasked response rebiases the exponent by
//! 24576). NaN handling follows SDM Vol. 1 Table 4-7 and §8.5.1.
//!
//! Why not `rustc_apfloat`: it has the format and the rounding modes, but not
//! precision control inside the extended exponent range, the x87 encodings a
//! P6 rejects (unnormals, pseudo-NaN/-infinity), the unmasked rebiasing, nor
//! the condition-code side effects (C1 = rounded up). Those would be a layer
//! as large as this file around it, and the core here is a few hundred lines
//! of integer arithmetic that the host-x87 oracle checks bit for bit.

/// Invalid operation (status and control word bit 0).
pub const IE: u16 = 1 << 0;
/// Denormal operand.
pub const DE: u16 = 1 << 1;
/// Zero divide.
pub const ZE: u16 = 1 << 2;
/// Overflow.
pub const OE: u16 = 1 << 3;
/// Underflow.
pub const UE: u16 = 1 << 4;
/// Precision (inexact result).
pub const PE: u16 = 1 << 5;
/// Stack fault.
pub const SF: u16 = 1 << 6;
/// Exception summary status.
pub const ES: u16 = 1 << 7;
/// Condition code C0.
pub const C0: u16 = 1 << 8;
/// Condition code C1.
pub const C1: u16 = 1 << 9;
/// Condition code C2.
pub const C2: u16 = 1 << 10;
/// Condition code C3.
pub const C3: u16 = 1 << 14;
/// FPU busy (mirrors ES on a 387 and later).
pub const B: u16 = 1 << 15;
/// The six exception flags.
pub const EXC: u16 = IE | DE | ZE | OE | UE | PE;

/// Exponent bias of the extended format.
pub const BIAS: i32 = 16383;
/// Bias adjustment applied to an overflowing or underflowing result when the
/// exception is unmasked (SDM Vol. 1 §8.5.4, §8.5.5).
pub const REBIAS: i32 = 24576;

/// An 80-bit extended-precision value exactly as stored: sign and 15-bit
/// biased exponent in `se`, 64-bit significand with its explicit integer bit
/// in `sig`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct F80 {
    /// Significand, bit 63 is the integer bit.
    pub sig: u64,
    /// Bit 15 sign, bits 0–14 biased exponent.
    pub se: u16,
}

/// What an encoding means to a P6 (SDM Vol. 1 §8.2.2, Table 8-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// ±0.
    Zero,
    /// Exponent 0 and a non-zero significand: a denormal, or a
    /// pseudo-denormal when the integer bit is set (both are accepted as
    /// operands and raise DE).
    Denormal,
    /// A normalised finite number.
    Normal,
    /// ±∞.
    Infinity,
    /// Quiet NaN.
    QNaN,
    /// Signalling NaN.
    SNaN,
    /// Pseudo-NaN, pseudo-infinity, unnormal: invalid operands on a 387 and
    /// later.
    Unsupported,
}

/// A finite non-zero value unpacked: `sig` has bit 63 set and the value is
/// `sig / 2^63 * 2^exp`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unpacked {
    pub sign: bool,
    pub exp: i32,
    pub sig: u64,
}

impl F80 {
    /// +0.
    pub const ZERO: F80 = F80 { sig: 0, se: 0 };
    /// +1.
    pub const ONE: F80 = F80 {
        sig: 1 << 63,
        se: 0x3FFF,
    };
    /// +∞.
    pub const INFINITY: F80 = F80 {
        sig: 1 << 63,
        se: 0x7FFF,
    };
    /// The real indefinite (default QNaN): negative, quiet bit only.
    pub const INDEFINITE: F80 = F80 {
        sig: 0xC000_0000_0000_0000,
        se: 0xFFFF,
    };

    /// From the 10 little-endian bytes of memory.
    pub fn from_bytes(b: [u8; 10]) -> F80 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[..8]);
        F80 {
            sig: u64::from_le_bytes(s),
            se: u16::from_le_bytes([b[8], b[9]]),
        }
    }

    /// The 10 little-endian bytes stored in memory.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.sig.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }

    /// The sign bit.
    #[inline]
    pub fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }

    /// The biased exponent.
    #[inline]
    pub fn biased_exp(self) -> i32 {
        (self.se & 0x7FFF) as i32
    }

    /// The same value with the sign bit cleared.
    #[inline]
    pub fn abs(self) -> F80 {
        F80 {
            sig: self.sig,
            se: self.se & 0x7FFF,
        }
    }

    /// The same value with the sign bit flipped (FCHS: a bit operation on
    /// any encoding, NaNs included, hence not `std::ops::Neg`).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn neg(self) -> F80 {
        F80 {
            sig: self.sig,
            se: self.se ^ 0x8000,
        }
    }

    /// With the sign bit set to `s`.
    #[inline]
    pub fn with_sign(self, s: bool) -> F80 {
        F80 {
            sig: self.sig,
            se: (self.se & 0x7FFF) | if s { 0x8000 } else { 0 },
        }
    }

    /// Signed zero.
    pub fn zero(sign: bool) -> F80 {
        F80::ZERO.with_sign(sign)
    }

    /// Signed infinity.
    pub fn inf(sign: bool) -> F80 {
        F80::INFINITY.with_sign(sign)
    }

    /// How a P6 interprets this encoding.
    #[inline]
    pub fn class(self) -> Class {
        let e = self.se & 0x7FFF;
        let j = self.sig >> 63 != 0;
        match e {
            0 if self.sig == 0 => Class::Zero,
            0 => Class::Denormal,
            0x7FFF if !j => Class::Unsupported,
            0x7FFF if self.sig << 1 == 0 => Class::Infinity,
            0x7FFF if self.sig & (1 << 62) != 0 => Class::QNaN,
            0x7FFF => Class::SNaN,
            _ if !j => Class::Unsupported,
            _ => Class::Normal,
        }
    }

    /// Whether this is a NaN (quiet or signalling).
    pub fn is_nan(self) -> bool {
        matches!(self.class(), Class::QNaN | Class::SNaN)
    }

    /// The quiet version of a NaN.
    #[inline]
    pub fn quiet(self) -> F80 {
        F80 {
            sig: self.sig | (1 << 62),
            se: self.se,
        }
    }

    /// Unpack a finite non-zero value (normal, denormal or pseudo-denormal).
    pub(crate) fn unpack(self) -> Unpacked {
        let mut e = self.biased_exp();
        if e == 0 {
            e = 1; // denormals and pseudo-denormals have exponent emin
        }
        let lz = self.sig.leading_zeros() as i32;
        Unpacked {
            sign: self.sign(),
            exp: e - BIAS - lz,
            sig: self.sig << lz,
        }
    }

    /// Exact conversion from an integer.
    pub fn from_i64(v: i64) -> F80 {
        if v == 0 {
            return F80::ZERO;
        }
        let m = v.unsigned_abs();
        let lz = m.leading_zeros();
        F80 {
            sig: m << lz,
            se: (BIAS + 63 - lz as i32) as u16 | if v < 0 { 0x8000 } else { 0 },
        }
    }

    /// A host `f64` widened exactly (for tests and constants).
    pub fn from_f64(v: f64) -> F80 {
        let mut ctx = Ctx::new(0x037F);
        ctx.load_f64(v.to_bits())
    }

    /// Nearest `f64` (round to nearest), for display.
    pub fn to_f64(self) -> f64 {
        let mut ctx = Ctx::new(0x037F);
        f64::from_bits(ctx.store_f64(self))
    }
}

/// Ordering of a comparison, with the unordered case for NaNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// a < b
    Less,
    /// a = b
    Equal,
    /// a > b
    Greater,
    /// A NaN or unsupported operand.
    Unordered,
}

/// A destination format for rounding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Format {
    /// Significand bits including the integer bit.
    pub prec: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Largest biased exponent of a finite number.
    pub emax: i32,
}

/// Extended format with precision control applied.
pub(crate) const fn ext(prec: u32) -> Format {
    Format {
        prec,
        bias: BIAS,
        emax: 0x7FFE,
    }
}
/// IEEE double.
pub(crate) const F64: Format = Format {
    prec: 53,
    bias: 1023,
    emax: 0x7FE,
};
/// IEEE single.
pub(crate) const F32: Format = Format {
    prec: 24,
    bias: 127,
    emax: 0xFE,
};

/// A rounded result before packing: biased exponent (0 for denormals and
/// zero) and the significand aligned so that the integer bit would be bit
/// `prec - 1`. `special` is set when the result overflowed to ±∞.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rounded {
    pub sign: bool,
    pub exp: i32,
    pub sig: u64,
    pub inf: bool,
}

/// The rounding environment of one instruction and the flags it raised.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Rounding control (0 nearest, 1 down, 2 up, 3 toward zero).
    pub rc: u8,
    /// Precision control in significand bits (24, 53 or 64).
    pub prec: u32,
    /// Exception masks (control word bits 0–5).
    pub masks: u16,
    /// Exception flags raised so far, plus C1 when a result was rounded up.
    pub flags: u16,
    /// The memory source operand was a single/double denormal (it is
    /// normal once widened, but still raises DE in the operation, after
    /// the invalid-operation checks).
    pub src_denormal: bool,
}

impl Ctx {
    /// The environment a control word sets up.
    pub fn new(cw: u16) -> Ctx {
        Ctx {
            rc: ((cw >> 10) & 3) as u8,
            prec: match (cw >> 8) & 3 {
                0 => 24,
                2 => 53,
                _ => 64,
            },
            masks: cw & EXC,
            flags: 0,
            src_denormal: false,
        }
    }

    /// Whether an exception raised so far is unmasked and forbids storing
    /// the result (IE, DE and ZE: SDM Vol. 1 §8.5.1–3).
    #[inline]
    pub fn blocks_store(&self) -> bool {
        self.flags & !self.masks & (IE | DE | ZE) != 0
    }

    /// Whether any raised exception is unmasked.
    #[inline]
    pub fn unmasked(&self) -> bool {
        self.flags & !self.masks & EXC != 0
    }

    #[inline]
    fn masked(&self, f: u16) -> bool {
        self.masks & f != 0
    }

    /// Invalid operation: the default NaN.
    #[inline]
    pub fn invalid(&mut self) -> F80 {
        self.flags |= IE;
        F80::INDEFINITE
    }

    /// Round `sig` (bit 127 set, value `sig / 2^127 * 2^exp`) to `fmt`,
    /// raising OE/UE/PE and C1. With `rebias` (extended register
    /// destinations), unmasked overflow and underflow deliver the result
    /// scaled by 2^∓24576.
    pub(crate) fn round_to(
        &mut self,
        sign: bool,
        exp: i32,
        sig: u128,
        fmt: Format,
        rebias: bool,
    ) -> Rounded {
        debug_assert!(sig >> 127 == 1);
        let mut e = exp + fmt.bias;
        let base_shift = 128 - fmt.prec;
        // Tininess after rounding (unbounded exponent): the value is tiny if
        // it lies below 2^emin even once rounded to `prec` bits.
        let tiny = e < 1 && !(e == 0 && self.rounds_to_carry(sign, sig, base_shift, fmt.prec));
        if tiny && !self.masked(UE) {
            self.flags |= UE;
            if rebias {
                e += REBIAS;
            }
        }
        let shift = if e < 1 {
            base_shift + (1 - e).min(200) as u32
        } else {
            base_shift
        };
        let (mut keep, inexact, up) = self.round_bits(sign, sig, shift);
        // An unmasked underflow to memory stores nothing, so nothing is
        // inexact either.
        let no_store = tiny && !rebias && !self.masked(UE);
        let inexact = inexact && !no_store;
        let up = up && !no_store;
        if inexact {
            self.flags |= PE;
            if tiny {
                self.flags |= UE;
            }
        }
        if up {
            self.flags |= C1;
        } else {
            self.flags &= !C1;
        }
        if e < 1 {
            // Denormal (or rounded up into the smallest normal).
            let normal = keep >> (fmt.prec - 1) != 0;
            return Rounded {
                sign,
                exp: normal as i32,
                sig: keep as u64,
                inf: false,
            };
        }
        if keep >> fmt.prec != 0 {
            keep >>= 1;
            e += 1;
        }
        if e > fmt.emax {
            self.flags |= OE;
            if !self.masked(OE) && rebias {
                e -= REBIAS;
            } else if !self.masked(OE) {
                // Memory destination: nothing is stored (and so nothing is
                // inexact).
                self.flags &= !(PE | C1);
                return Rounded {
                    sign,
                    exp: fmt.emax + 1,
                    sig: 1 << (fmt.prec - 1),
                    inf: true,
                };
            } else {
                return self.overflow(sign, fmt);
            }
        }
        Rounded {
            sign,
            exp: e,
            sig: keep as u64,
            inf: false,
        }
    }

    /// Masked overflow: ∞ or the largest finite number by rounding mode.
    fn overflow(&mut self, sign: bool, fmt: Format) -> Rounded {
        self.flags |= PE;
        let to_inf = match self.rc {
            0 => true,
            1 => sign,
            2 => !sign,
            _ => false,
        };
        if to_inf {
            self.flags |= C1;
            Rounded {
                sign,
                exp: fmt.emax + 1,
                sig: 1 << (fmt.prec - 1),
                inf: true,
            }
        } else {
            self.flags &= !C1;
            Rounded {
                sign,
                exp: fmt.emax,
                sig: (1u64 << (fmt.prec - 1) << 1).wrapping_sub(1),
                inf: false,
            }
        }
    }

    /// Whether rounding `sig` at `shift` would carry out to `prec + 1` bits.
    fn rounds_to_carry(&self, sign: bool, sig: u128, shift: u32, prec: u32) -> bool {
        let (keep, _, _) = self.round_bits(sign, sig, shift);
        keep >> prec != 0
    }

    /// Drop the low `shift` bits of `sig` with the current rounding mode:
    /// (kept bits, inexact, rounded up in magnitude).
    #[inline]
    pub(crate) fn round_bits(&self, sign: bool, sig: u128, shift: u32) -> (u128, bool, bool) {
        let (keep, rem, half) = if shift == 0 {
            (sig, 0, 0)
        } else if shift < 128 {
            (
                sig >> shift,
                sig & ((1u128 << shift) - 1),
                1u128 << (shift - 1),
            )
        } else if shift == 128 {
            (0, sig, 1u128 << 127)
        } else {
            // Everything is below half an ulp.
            (0, sig | 1, u128::MAX)
        };
        if rem == 0 {
            return (keep, false, false);
        }
        let up = match self.rc {
            0 => rem > half || (rem == half && keep & 1 == 1),
            1 => sign,
            2 => !sign,
            _ => false,
        };
        (keep + up as u128, true, up)
    }

    /// Round and pack into the extended format with precision control.
    pub(crate) fn round_ext(&mut self, sign: bool, exp: i32, sig: u128) -> F80 {
        let r = self.round_to(sign, exp, sig, ext(self.prec), true);
        pack_ext(r, self.prec)
    }

    /// Round and pack into the extended format at full precision.
    pub(crate) fn round_ext64(&mut self, sign: bool, exp: i32, sig: u128) -> F80 {
        let r = self.round_to(sign, exp, sig, ext(64), true);
        pack_ext(r, 64)
    }

    /// Normalise `x * 2^e0` (any non-zero `x`) and round it.
    pub(crate) fn round_raw(&mut self, sign: bool, e0: i32, x: u128, full: bool) -> F80 {
        let lz = x.leading_zeros() as i32;
        let sig = x << lz;
        let exp = e0 + 127 - lz;
        if full {
            self.round_ext64(sign, exp, sig)
        } else {
            self.round_ext(sign, exp, sig)
        }
    }

    /// NaN operands of a two-operand arithmetic instruction (SDM Vol. 1
    /// Table 4-7, x87 column): an SNaN raises IE and is quieted; a QNaN
    /// beats an SNaN; of two NaNs of the same kind the one with the larger
    /// significand wins.
    pub(crate) fn propagate2(&mut self, a: F80, b: F80) -> F80 {
        let an = a.is_nan();
        let bn = b.is_nan();
        if (an && a.class() == Class::SNaN) || (bn && b.class() == Class::SNaN) {
            self.flags |= IE;
        }
        match (an, bn) {
            (true, true) => {
                let (qa, qb) = (a.quiet(), b.quiet());
                let (sa, sb) = (a.class() == Class::SNaN, b.class() == Class::SNaN);
                if sa != sb {
                    if sa {
                        qb
                    } else {
                        qa
                    }
                } else if qa.sig > qb.sig {
                    qa
                } else if qb.sig > qa.sig {
                    qb
                } else if !qa.sign() {
                    qa
                } else {
                    qb
                }
            }
            (true, false) => a.quiet(),
            _ => b.quiet(),
        }
    }

    /// Operand screening shared by the two-operand arithmetic, in the
    /// priority order of SDM Vol. 1 §8.7: unsupported encodings and NaNs
    /// give their result here, then an operation-specific invalid case
    /// (`invalid`, e.g. ∞ − ∞), then denormal operands raise DE.
    #[inline]
    pub(crate) fn screen2(&mut self, a: F80, b: F80, invalid: bool) -> Option<F80> {
        let (ca, cb) = (a.class(), b.class());
        if ca == Class::Unsupported || cb == Class::Unsupported {
            return Some(self.invalid());
        }
        if matches!(ca, Class::QNaN | Class::SNaN) || matches!(cb, Class::QNaN | Class::SNaN) {
            return Some(self.propagate2(a, b));
        }
        if invalid {
            return Some(self.invalid());
        }
        if ca == Class::Denormal || cb == Class::Denormal || self.src_denormal {
            return self.denormal_operand();
        }
        None
    }

    /// A denormal operand: DE; when DE is unmasked the operation is not
    /// performed at all (SDM Vol. 1 §8.5.2), so no other flag is raised.
    #[inline]
    pub(crate) fn denormal_operand(&mut self) -> Option<F80> {
        self.flags |= DE;
        if self.masked(DE) {
            None
        } else {
            Some(F80::INDEFINITE)
        }
    }

    /// One-operand screening (same order as [`Ctx::screen2`]).
    #[inline]
    pub(crate) fn screen1(&mut self, a: F80, invalid: bool) -> Option<F80> {
        match a.class() {
            Class::Unsupported => Some(self.invalid()),
            Class::SNaN => {
                self.flags |= IE;
                Some(a.quiet())
            }
            Class::QNaN => Some(a),
            _ if invalid => Some(self.invalid()),
            Class::Denormal => self.denormal_operand(),
            _ => None,
        }
    }

    /// a + b (or a − b with `negate_b`), rounded with precision control.
    pub fn add(&mut self, a: F80, b: F80, negate_b: bool) -> F80 {
        let inf_minus_inf = a.class() == Class::Infinity
            && b.class() == Class::Infinity
            && (a.sign() != b.sign()) != negate_b;
        if let Some(r) = self.screen2(a, b, inf_minus_inf) {
            return r;
        }
        let b = if negate_b { b.neg() } else { b };
        let (ca, cb) = (a.class(), b.class());
        match (ca == Class::Infinity, cb == Class::Infinity) {
            (true, true) => {
                return if a.sign() == b.sign() {
                    a
                } else {
                    self.invalid()
                }
            }
            (true, false) => return a,
            (false, true) => return b,
            _ => {}
        }
        match (ca == Class::Zero, cb == Class::Zero) {
            (true, true) => {
                let s = if a.sign() == b.sign() {
                    a.sign()
                } else {
                    self.rc == 1
                };
                return F80::zero(s);
            }
            // x + 0 is x, rounded to the precision control setting.
            (false, true) => return self.reround(a),
            (true, false) => return self.reround(b),
            _ => {}
        }
        let (ua, ub) = (a.unpack(), b.unpack());
        let (big, small) = if (ua.exp, ua.sig) >= (ub.exp, ub.sig) {
            (ua, ub)
        } else {
            (ub, ua)
        };
        let x = (big.sig as u128) << 63;
        let d = (big.exp - small.exp) as u32;
        let ys = (small.sig as u128) << 63;
        let y = if d == 0 {
            ys
        } else if d < 127 {
            (ys >> d) | ((ys & ((1u128 << d) - 1)) != 0) as u128
        } else {
            1
        };
        let e0 = big.exp - 126;
        if big.sign == small.sign {
            self.round_raw(big.sign, e0, x + y, false)
        } else {
            let r = x - y;
            if r == 0 {
                return F80::zero(self.rc == 1);
            }
            self.round_raw(big.sign, e0, r, false)
        }
    }

    /// A finite value rounded again to the precision control setting (what
    /// x + 0 gives).
    fn reround(&mut self, a: F80) -> F80 {
        let u = a.unpack();
        self.round_ext(u.sign, u.exp, (u.sig as u128) << 64)
    }

    /// a × b.
    pub fn mul(&mut self, a: F80, b: F80) -> F80 {
        let (ca, cb) = (a.class(), b.class());
        let zero_inf = (ca == Class::Zero && cb == Class::Infinity)
            || (ca == Class::Infinity && cb == Class::Zero);
        if let Some(r) = self.screen2(a, b, zero_inf) {
            return r;
        }
        let s = a.sign() != b.sign();
        let (ca, cb) = (a.class(), b.class());
        let (ai, bi) = (ca == Class::Infinity, cb == Class::Infinity);
        let (az, bz) = (ca == Class::Zero, cb == Class::Zero);
        if (ai && bz) || (az && bi) {
            return self.invalid();
        }
        if ai || bi {
            return F80::inf(s);
        }
        if az || bz {
            return F80::zero(s);
        }
        let (ua, ub) = (a.unpack(), b.unpack());
        let x = ua.sig as u128 * ub.sig as u128;
        self.round_raw(s, ua.exp + ub.exp - 126, x, false)
    }

    /// a ÷ b.
    pub fn div(&mut self, a: F80, b: F80) -> F80 {
        // A finite non-zero dividend over zero is a zero divide and nothing
        // else: the denormal-operand check does not happen (seen on hardware).
        if b.class() == Class::Zero && matches!(a.class(), Class::Normal | Class::Denormal) {
            self.flags |= ZE;
            return F80::inf(a.sign() != b.sign());
        }
        let (ca, cb) = (a.class(), b.class());
        let bad = (ca == Class::Zero && cb == Class::Zero)
            || (ca == Class::Infinity && cb == Class::Infinity);
        if let Some(r) = self.screen2(a, b, bad) {
            return r;
        }
        let s = a.sign() != b.sign();
        let (ca, cb) = (a.class(), b.class());
        let (ai, bi) = (ca == Class::Infinity, cb == Class::Infinity);
        let (az, bz) = (ca == Class::Zero, cb == Class::Zero);
        if (ai && bi) || (az && bz) {
            return self.invalid();
        }
        if ai {
            return F80::inf(s);
        }
        if bi {
            return F80::zero(s);
        }
        if bz {
            self.flags |= ZE;
            return F80::inf(s);
        }
        if az {
            return F80::zero(s);
        }
        let (ua, ub) = (a.unpack(), b.unpack());
        let n = (ua.sig as u128) << 63;
        let d = ub.sig as u128;
        let qh = n / d;
        let r = n % d;
        let ql = (r << 64) / d;
        let r2 = (r << 64) % d;
        let x = (qh << 64) | ql | (r2 != 0) as u128;
        self.round_raw(s, ua.exp - ub.exp - 127, x, false)
    }

    /// √a.
    pub fn sqrt(&mut self, a: F80) -> F80 {
        if let Some(r) = self.screen1(a, a.sign() && a.class() != Class::Zero) {
            return r;
        }
        match a.class() {
            Class::Zero => return a,
            Class::Infinity if !a.sign() => return a,
            _ if a.sign() => return self.invalid(),
            _ => {}
        }
        let u = a.unpack();
        // value = m * 2^e2 with e2 even.
        let mut e2 = u.exp - 63;
        let mut m = u.sig as u128;
        if e2 & 1 != 0 {
            m <<= 1;
            e2 -= 1;
        }
        // Digit-by-digit square root of m * 2^128 (at most 194 bits).
        let bit = |p: u32| -> u128 {
            if p < 128 {
                0
            } else {
                (m >> (p - 128)) & 1
            }
        };
        let mut root: u128 = 0;
        let mut rem: u128 = 0;
        for i in (0..97u32).rev() {
            rem = (rem << 2) | (bit(2 * i + 1) << 1) | bit(2 * i);
            let trial = (root << 2) | 1;
            if rem >= trial {
                rem -= trial;
                root = (root << 1) | 1;
            } else {
                root <<= 1;
            }
        }
        let x = (root << 1) | (rem != 0) as u128;
        self.round_raw(false, e2 / 2 - 65, x, false)
    }

    /// Round to an integer by the rounding mode (FRNDINT).
    pub fn round_int(&mut self, a: F80) -> F80 {
        if let Some(r) = self.screen1(a, false) {
            return r;
        }
        match a.class() {
            Class::Zero | Class::Infinity => return a,
            _ => {}
        }
        let u = a.unpack();
        if u.exp >= 63 {
            return a;
        }
        let shift = (63 - u.exp) as u32;
        let x = (u.sig as u128) << 64;
        let (keep, inexact, up) = self.round_bits(u.sign, x, shift + 64);
        if inexact {
            self.flags |= PE;
        }
        if up {
            self.flags |= C1;
        }
        if keep == 0 {
            return F80::zero(u.sign);
        }
        let lz = keep.leading_zeros() as i32;
        F80 {
            sig: (keep << lz >> 64) as u64,
            se: (BIAS + 127 - lz) as u16 | if u.sign { 0x8000 } else { 0 },
        }
    }

    /// Convert to a signed integer of `bits` bits (FIST/FISTP): `None` is
    /// invalid (NaN, ∞, out of range: IE raised).
    pub fn to_int(&mut self, a: F80, bits: u32) -> Option<i64> {
        match a.class() {
            Class::Zero => return Some(0),
            Class::Normal | Class::Denormal => {}
            _ => {
                self.flags |= IE;
                return None;
            }
        }
        // No DE: FIST lists no #D (a denormal rounds to 0 or ±1).
        let u = a.unpack();
        let limit: u128 = 1u128 << (bits - 1);
        if u.exp >= 64 {
            self.flags |= IE;
            return None;
        }
        let x = (u.sig as u128) << 64;
        let shift = (127 - u.exp).min(200) as u32;
        let (keep, inexact, up) = self.round_bits(u.sign, x, shift);
        if keep > limit || (keep == limit && !u.sign) {
            self.flags |= IE;
            return None;
        }
        if inexact {
            self.flags |= PE;
        }
        if up {
            self.flags |= C1;
        }
        let v = keep as i128;
        Some(if u.sign { -v } else { v } as i64)
    }

    /// Widen an IEEE single (FLD m32): SNaN → IE and quieted, denormal → DE.
    pub fn load_f32(&mut self, bits: u32) -> F80 {
        self.load_ieee(bits as u64, 23, 8)
    }

    /// Widen an IEEE double (FLD m64).
    pub fn load_f64(&mut self, bits: u64) -> F80 {
        self.load_ieee(bits, 52, 11)
    }

    fn load_ieee(&mut self, bits: u64, frac_bits: u32, exp_bits: u32) -> F80 {
        let sign = (bits >> (frac_bits + exp_bits)) & 1 != 0;
        let emask = (1u64 << exp_bits) - 1;
        let e = ((bits >> frac_bits) & emask) as i32;
        let frac = bits & ((1u64 << frac_bits) - 1);
        let bias = (1i32 << (exp_bits - 1)) - 1;
        let s16 = if sign { 0x8000 } else { 0 };
        if e as u64 == emask {
            let sig = (1u64 << 63) | (frac << (63 - frac_bits));
            if frac != 0 && frac >> (frac_bits - 1) == 0 {
                self.flags |= IE;
                return F80 {
                    sig: sig | (1 << 62),
                    se: 0x7FFF | s16,
                };
            }
            return F80 {
                sig,
                se: 0x7FFF | s16,
            };
        }
        if e == 0 {
            if frac == 0 {
                return F80::zero(sign);
            }
            self.flags |= DE;
            let lz = frac.leading_zeros() as i32;
            // value = frac * 2^(1 - bias - frac_bits)
            let exp = 1 - bias - frac_bits as i32 + (63 - lz);
            return F80 {
                sig: frac << lz,
                se: (exp + BIAS) as u16 | s16,
            };
        }
        F80 {
            sig: (1u64 << 63) | (frac << (63 - frac_bits)),
            se: (e - bias + BIAS) as u16 | s16,
        }
    }

    /// Narrow to an IEEE single (FST m32).
    pub fn store_f32(&mut self, a: F80) -> u32 {
        self.store_ieee(a, F32, 23, 8) as u32
    }

    /// Narrow to an IEEE double (FST m64).
    pub fn store_f64(&mut self, a: F80) -> u64 {
        self.store_ieee(a, F64, 52, 11)
    }

    fn store_ieee(&mut self, a: F80, fmt: Format, frac_bits: u32, exp_bits: u32) -> u64 {
        let sbit = (a.sign() as u64) << (frac_bits + exp_bits);
        let emask = (1u64 << exp_bits) - 1;
        let inf = sbit | (emask << frac_bits);
        match a.class() {
            Class::Zero => return sbit,
            Class::Infinity => return inf,
            Class::Unsupported => {
                self.flags |= IE;
                return (1 << (frac_bits + exp_bits)) | inf | (1 << (frac_bits - 1));
            }
            Class::SNaN | Class::QNaN => {
                if a.class() == Class::SNaN {
                    self.flags |= IE;
                }
                let frac = ((a.sig << 1) >> (64 - frac_bits)) | (1 << (frac_bits - 1));
                return inf | frac;
            }
            // No DE here: FST/FSTP m32/m64 list no #D (SDM Vol. 2A FST);
            // the value simply underflows.
            Class::Denormal | Class::Normal => {}
        }
        let u = a.unpack();
        let r = self.round_to(u.sign, u.exp, (u.sig as u128) << 64, fmt, false);
        if r.inf {
            return inf;
        }
        let frac = r.sig & ((1u64 << frac_bits) - 1);
        sbit | ((r.exp as u64) << frac_bits) | frac
    }

    /// Compare `a` with `b`. `quiet` (FUCOM*) raises IE only for SNaNs and
    /// unsupported encodings; otherwise any NaN is invalid.
    pub fn compare(&mut self, a: F80, b: F80, quiet: bool) -> Ordering {
        let (ca, cb) = (a.class(), b.class());
        let bad = |c: Class| match c {
            Class::Unsupported | Class::SNaN => true,
            Class::QNaN => !quiet,
            _ => false,
        };
        if bad(ca) || bad(cb) {
            self.flags |= IE;
            return Ordering::Unordered;
        }
        if matches!(ca, Class::QNaN) || matches!(cb, Class::QNaN) {
            return Ordering::Unordered;
        }
        if ca == Class::Denormal || cb == Class::Denormal || self.src_denormal {
            self.flags |= DE;
        }
        cmp_ordered(a, b)
    }

    /// FXTRACT: (exponent, significand) of `a`.
    pub fn extract(&mut self, a: F80) -> (F80, F80) {
        if let Some(r) = self.screen1(a, false) {
            return (r, r);
        }
        match a.class() {
            Class::Zero => {
                self.flags |= ZE;
                return (F80::inf(true), a);
            }
            Class::Infinity => return (F80::INFINITY, a),
            _ => {}
        }
        let u = a.unpack();
        let sig = F80 {
            sig: u.sig,
            se: BIAS as u16 | if u.sign { 0x8000 } else { 0 },
        };
        (F80::from_i64(u.exp as i64), sig)
    }

    /// FSCALE: a × 2^trunc(b).
    pub fn scale(&mut self, a: F80, b: F80) -> F80 {
        let (ca, cb) = (a.class(), b.class());
        let bad = cb == Class::Infinity
            && ((ca == Class::Zero && !b.sign()) || (ca == Class::Infinity && b.sign()));
        if let Some(r) = self.screen2(a, b, bad) {
            return r;
        }
        if cb == Class::Infinity {
            return match (ca, b.sign()) {
                (Class::Zero, false) | (Class::Infinity, true) => self.invalid(),
                (_, false) => F80::inf(a.sign()),
                (_, true) => F80::zero(a.sign()),
            };
        }
        if ca == Class::Zero || ca == Class::Infinity {
            return a;
        }
        let n: i64 = if cb == Class::Zero {
            0
        } else {
            let ub = b.unpack();
            if ub.exp >= 20 {
                if ub.sign {
                    -(1 << 20)
                } else {
                    1 << 20
                }
            } else if ub.exp < 0 {
                0
            } else {
                let m = (ub.sig >> (63 - ub.exp)) as i64;
                if ub.sign {
                    -m
                } else {
                    m
                }
            }
        };
        let u = a.unpack();
        let r = self.round_ext64(u.sign, u.exp + n as i32, (u.sig as u128) << 64);
        // The reference host reports an unmasked FSCALE overflow under
        // round-to-nearest as inexact and rounded up as well, although the
        // rebiased result is exact (not under the directed modes).
        if self.flags & OE != 0 && !self.masked(OE) && self.rc == 0 {
            self.flags |= PE | C1;
        }
        r
    }

    /// Load a constant held to 128 bits, rounded by RC (FLDPI & co; the
    /// 387 and later round their constants, SDM Vol. 1 §8.3.7). No flags.
    pub fn constant(&mut self, sig: u128, exp: i32) -> F80 {
        let (keep, _, _) = self.round_bits(false, sig, 64);
        let mut e = exp;
        let mut k = keep;
        if k >> 64 != 0 {
            k >>= 1;
            e += 1;
        }
        F80 {
            sig: k as u64,
            se: (e + BIAS) as u16,
        }
    }
}

/// Pack a rounded extended result whose significand has `prec` bits.
pub(crate) fn pack_ext(r: Rounded, prec: u32) -> F80 {
    let s16 = if r.sign { 0x8000 } else { 0 };
    if r.inf {
        return F80 {
            sig: 1 << 63,
            se: 0x7FFF | s16,
        };
    }
    F80 {
        sig: r.sig << (64 - prec),
        se: (r.exp as u16 & 0x7FFF) | s16,
    }
}

/// Order of two finite-or-infinite values (no NaNs).
pub(crate) fn cmp_ordered(a: F80, b: F80) -> Ordering {
    let key = |x: F80| -> (i32, u64) {
        match x.class() {
            Class::Zero => (i32::MIN, 0),
            Class::Infinity => (i32::MAX, 0),
            _ => {
                let u = x.unpack();
                (u.exp, u.sig)
            }
        }
    };
    let za = a.class() == Class::Zero;
    let zb = b.class() == Class::Zero;
    if za && zb {
        return Ordering::Equal;
    }
    let sa = a.sign() && !za;
    let sb = b.sign() && !zb;
    if sa != sb {
        return if sa {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let o = key(a).cmp(&key(b));
    let o = if sa { o.reverse() } else { o };
    match o {
        std::cmp::Ordering::Less => Ordering::Less,
        std::cmp::Ordering::Equal => Ordering::Equal,
        std::cmp::Ordering::Greater => Ordering::Greater,
    }
}

/// Result of FPREM/FPREM1.
#[derive(Clone, Copy, Debug)]
pub struct Remainder {
    /// The new ST(0).
    pub value: F80,
    /// Low three quotient bits (Q2 Q1 Q0), valid when `complete`.
    pub q: u8,
    /// False for a partial remainder (C2 = 1).
    pub complete: bool,
    /// The result is a NaN from NaN or invalid operands (no quotient).
    pub special: bool,
}

impl Ctx {
    /// FPREM (`ieee` false: truncating quotient) or FPREM1 (round to
    /// nearest), SDM Vol. 2A FPREM/FPREM1. A partial remainder reduces the
    /// exponent difference by `d − N` with N = 32..63 implementation
    /// specific; we use the value `partial_n` below.
    pub fn remainder(&mut self, a: F80, b: F80, ieee: bool) -> Remainder {
        let done = |v: F80| Remainder {
            value: v,
            q: 0,
            complete: true,
            special: false,
        };
        let special = |v: F80| Remainder {
            special: true,
            ..done(v)
        };
        let (ca, cb) = (a.class(), b.class());
        if let Some(r) = self.screen2(a, b, ca == Class::Infinity || cb == Class::Zero) {
            return special(r);
        }
        if ca == Class::Zero || cb == Class::Infinity {
            return done(a);
        }
        let (ua, ub) = (a.unpack(), b.unpack());
        let d = ua.exp - ub.exp;
        if d >= 64 {
            let n = partial_n(d);
            // Reduce by b * 2^(d - n): the exponent difference shrinks to n.
            let num = (ua.sig as u128) << n;
            let r = num % ub.sig as u128;
            let e0 = ub.exp + (d - n) - 63;
            let value = if r == 0 {
                F80::zero(ua.sign)
            } else {
                self.round_raw(ua.sign, e0, r, true)
            };
            return Remainder {
                value,
                q: 0,
                complete: false,
                special: false,
            };
        }
        if d < -1 {
            return done(self.exact(a));
        }
        let (num, den, e0) = if d >= 0 {
            ((ua.sig as u128) << d, ub.sig as u128, ub.exp - 63)
        } else {
            (ua.sig as u128, (ub.sig as u128) << 1, ua.exp - 63)
        };
        let mut q = num / den;
        let mut r = num % den;
        let mut sign = ua.sign;
        if ieee && (2 * r > den || (2 * r == den && q & 1 == 1)) {
            q += 1;
            r = den - r;
            sign = !sign;
        }
        let value = if r == 0 {
            F80::zero(ua.sign)
        } else {
            self.round_raw(sign, e0, r, true)
        };
        Remainder {
            value,
            q: (q & 7) as u8,
            complete: true,
            special: false,
        }
    }

    /// A finite operand passed through unchanged except that a denormal is
    /// handled like a computed result (it may underflow).
    fn exact(&mut self, a: F80) -> F80 {
        let u = a.unpack();
        self.round_ext64(u.sign, u.exp, (u.sig as u128) << 64)
    }
}

/// N of the partial-remainder step (SDM: "an implementation-dependent
/// number between 32 and 63"); checked against the host.
fn partial_n(d: i32) -> i32 {
    32 + (d - 32) % 32
}

/// Packed BCD (FBLD): 18 digits and a sign byte. Invalid digits give an
/// undefined result on real parts; here each nibble simply counts with its
/// face value.
pub fn from_bcd(b: [u8; 10]) -> F80 {
    let mut v: i64 = 0;
    for i in (0..9).rev() {
        v = v * 10 + (b[i] >> 4) as i64;
        v = v * 10 + (b[i] & 15) as i64;
    }
    let mut f = F80::from_i64(v);
    if b[9] & 0x80 != 0 {
        f = f.neg();
    }
    f
}

/// The packed BCD indefinite (FBSTP of an invalid operand, masked).
pub const BCD_INDEFINITE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF];

impl Ctx {
    /// FBSTP: round by RC and encode as 18 BCD digits. `None`: invalid.
    pub fn to_bcd(&mut self, a: F80) -> Option<[u8; 10]> {
        let sign = a.sign();
        let v = match a.class() {
            Class::Zero => 0u64,
            Class::Normal | Class::Denormal => {
                let u = a.unpack();
                if u.exp >= 64 {
                    self.flags |= IE;
                    return None;
                }
                let x = (u.sig as u128) << 64;
                let (keep, inexact, up) = self.round_bits(u.sign, x, (127 - u.exp).min(200) as u32);
                if keep >= 1_000_000_000_000_000_000 {
                    self.flags |= IE;
                    return None;
                }
                if inexact {
                    self.flags |= PE;
                }
                if up {
                    self.flags |= C1;
                }
                keep as u64
            }
            _ => {
                self.flags |= IE;
                return None;
            }
        };
        let mut b = [0u8; 10];
        let mut n = v;
        for byte in b.iter_mut().take(9) {
            let lo = (n % 10) as u8;
            n /= 10;
            let hi = (n % 10) as u8;
            n /= 10;
            *byte = (hi << 4) | lo;
        }
        b[9] = if sign { 0x80 } else { 0 };
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> F80 {
        F80::from_f64(v)
    }

    #[test]
    fn basic_arithmetic_matches_f64_where_exact() {
        let mut c = Ctx::new(0x037F);
        assert_eq!(c.add(f(1.5), f(2.25), false), f(3.75));
        assert_eq!(c.add(f(1.5), f(2.25), true), f(-0.75));
        assert_eq!(c.mul(f(1.5), f(-2.0)), f(-3.0));
        assert_eq!(c.div(f(1.0), f(4.0)), f(0.25));
        assert_eq!(c.sqrt(f(2.25)), f(1.5));
        assert_eq!(c.flags & PE, 0);
        let third = c.div(f(1.0), f(3.0));
        assert_eq!(third.sig, 0xAAAA_AAAA_AAAA_AAAB);
        assert_ne!(c.flags & PE, 0);
    }

    #[test]
    fn precision_control_rounds_to_double() {
        let mut c = Ctx::new(0x027F);
        let third = c.div(f(1.0), f(3.0));
        assert_eq!(third.to_f64(), 1.0 / 3.0);
        assert_eq!(third.sig & 0x7FF, 0);
    }

    #[test]
    fn conversions_round_trip() {
        let mut c = Ctx::new(0x037F);
        for v in [0.0, -0.0, 1.0, 3.5e-310, -7.25e300, f64::INFINITY] {
            let x = c.load_f64(v.to_bits());
            assert_eq!(c.store_f64(x), v.to_bits());
        }
        assert_eq!(c.to_int(f(2.5), 16), Some(2));
        assert_eq!(c.to_int(f(-3.5), 32), Some(-4));
        assert_eq!(c.to_int(f(40000.0), 16), None);
        let b = c.to_bcd(f(-1234.0)).unwrap();
        assert_eq!(from_bcd(b), f(-1234.0));
    }
}
