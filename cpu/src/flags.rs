//! EFLAGS with lazy evaluation of the six arithmetic status flags.
//!
//! An arithmetic instruction stores its operands, result, operand size and
//! the kind of operation; CF/PF/AF/ZF/SF/OF are computed only when something
//! reads them (Jcc, PUSHF, ADC, …). Most results are overwritten before any
//! flag is looked at, so most instructions never pay for flag computation.

/// Carry flag.
pub const CF: u32 = 1 << 0;
/// Reserved bit 1, always set.
pub const RESERVED1: u32 = 1 << 1;
/// Parity flag.
pub const PF: u32 = 1 << 2;
/// Auxiliary carry flag.
pub const AF: u32 = 1 << 4;
/// Zero flag.
pub const ZF: u32 = 1 << 6;
/// Sign flag.
pub const SF: u32 = 1 << 7;
/// Trap flag.
pub const TF: u32 = 1 << 8;
/// Interrupt enable flag.
pub const IF: u32 = 1 << 9;
/// Direction flag.
pub const DF: u32 = 1 << 10;
/// Overflow flag.
pub const OF: u32 = 1 << 11;
/// I/O privilege level (two bits).
pub const IOPL: u32 = 3 << 12;
/// Nested task.
pub const NT: u32 = 1 << 14;
/// Resume flag.
pub const RF: u32 = 1 << 16;
/// Virtual-8086 mode.
pub const VM: u32 = 1 << 17;
/// Alignment check.
pub const AC: u32 = 1 << 18;
/// Virtual interrupt flag.
pub const VIF: u32 = 1 << 19;
/// Virtual interrupt pending.
pub const VIP: u32 = 1 << 20;
/// CPUID available.
pub const ID: u32 = 1 << 21;

/// The six arithmetic status flags.
pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;
/// Bits software can change on a P6 (the rest read as fixed values).
pub const WRITABLE: u32 = STATUS | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;

/// Which operation produced the pending lazy flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LazyOp {
    /// Status flags are in `bits`; nothing is pending.
    Known,
    /// `res = a + b + cin`
    Add,
    /// `res = a - b - cin` (also NEG with a = 0, CMP)
    Sub,
    /// `res = a + 1`, CF kept in `bits`
    Inc,
    /// `res = a - 1`, CF kept in `bits`
    Dec,
    /// AND/OR/XOR/TEST: CF = OF = AF = 0
    Logic,
}

/// EFLAGS, with the status flags possibly pending.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    bits: u32,
    op: LazyOp,
    mask: u32,
    sign: u32,
    res: u32,
    a: u32,
    b: u32,
    cin: u32,
}

const PARITY: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 0;
    while i < 256 {
        if (i as u8).count_ones() & 1 == 0 {
            t[i / 8] |= 1 << (i % 8);
        }
        i += 1;
    }
    t
};

/// PF for a result: set when the low byte has an even number of one bits.
#[inline(always)]
pub fn parity(v: u32) -> bool {
    let b = v as u8;
    PARITY[(b >> 3) as usize] & (1 << (b & 7)) != 0
}

/// `flag` if `on`, else 0.
#[inline(always)]
fn bit(on: bool, flag: u32) -> u32 {
    if on {
        flag
    } else {
        0
    }
}

/// Mask and sign bit for an operand size in bytes (1, 2, 4).
#[inline(always)]
pub fn size_mask(size: u8) -> (u32, u32) {
    match size {
        1 => (0xFF, 0x80),
        2 => (0xFFFF, 0x8000),
        _ => (0xFFFF_FFFF, 0x8000_0000),
    }
}

impl Default for Flags {
    fn default() -> Self {
        Flags::new(RESERVED1)
    }
}

impl Flags {
    /// Flags holding `value` exactly.
    pub fn new(value: u32) -> Flags {
        Flags {
            bits: (value & WRITABLE) | RESERVED1,
            op: LazyOp::Known,
            mask: 0xFF,
            sign: 0x80,
            res: 0,
            a: 0,
            b: 0,
            cin: 0,
        }
    }

    /// Record an arithmetic result; status flags become pending.
    #[inline(always)]
    pub fn set_lazy(&mut self, op: LazyOp, size: u8, res: u32, a: u32, b: u32, cin: u32) {
        if matches!(op, LazyOp::Inc | LazyOp::Dec) {
            // INC/DEC keep CF: freeze the current one before the state is replaced.
            let cf = self.cf();
            self.bits = (self.bits & !CF) | cf as u32;
        }
        let (mask, sign) = size_mask(size);
        self.op = op;
        self.mask = mask;
        self.sign = sign;
        self.res = res;
        self.a = a;
        self.b = b;
        self.cin = cin;
    }

    /// Set the status flags from explicit CF/OF/AF and SF/ZF/PF of `res`.
    #[inline]
    pub fn set_result_explicit(&mut self, size: u8, res: u32, cf: bool, of: bool, af: bool) {
        let (mask, sign) = size_mask(size);
        let r = res & mask;
        let mut s = self.bits & !STATUS;
        s |= bit(cf, CF) | bit(of, OF) | bit(af, AF);
        s |= bit(r == 0, ZF) | bit(r & sign != 0, SF) | bit(parity(r), PF);
        self.bits = s;
        self.op = LazyOp::Known;
    }

    /// Carry flag.
    #[inline(always)]
    pub fn cf(&self) -> bool {
        let m = self.mask as u64;
        match self.op {
            LazyOp::Known | LazyOp::Inc | LazyOp::Dec => self.bits & CF != 0,
            LazyOp::Add => (self.a as u64 & m) + (self.b as u64 & m) + self.cin as u64 > m,
            LazyOp::Sub => (self.a as u64 & m) < (self.b as u64 & m) + self.cin as u64,
            LazyOp::Logic => false,
        }
    }

    /// Zero flag.
    #[inline(always)]
    pub fn zf(&self) -> bool {
        match self.op {
            LazyOp::Known => self.bits & ZF != 0,
            _ => self.res & self.mask == 0,
        }
    }

    /// Sign flag.
    #[inline(always)]
    pub fn sf(&self) -> bool {
        match self.op {
            LazyOp::Known => self.bits & SF != 0,
            _ => self.res & self.sign != 0,
        }
    }

    /// Overflow flag.
    #[inline(always)]
    pub fn of(&self) -> bool {
        let s = self.sign;
        match self.op {
            LazyOp::Known => self.bits & OF != 0,
            LazyOp::Add => (self.a ^ self.res) & (self.b ^ self.res) & s != 0,
            LazyOp::Sub => (self.a ^ self.b) & (self.a ^ self.res) & s != 0,
            LazyOp::Inc => self.res & self.mask == s,
            LazyOp::Dec => self.res & self.mask == s - 1,
            LazyOp::Logic => false,
        }
    }

    /// Parity flag.
    #[inline(always)]
    pub fn pf(&self) -> bool {
        match self.op {
            LazyOp::Known => self.bits & PF != 0,
            _ => parity(self.res),
        }
    }

    /// Auxiliary carry flag.
    #[inline(always)]
    pub fn af(&self) -> bool {
        match self.op {
            LazyOp::Known => self.bits & AF != 0,
            LazyOp::Add | LazyOp::Sub => (self.a ^ self.b ^ self.res) & 0x10 != 0,
            LazyOp::Inc => self.res & 0xF == 0,
            LazyOp::Dec => self.res & 0xF == 0xF,
            LazyOp::Logic => false,
        }
    }

    /// The whole EFLAGS value, status flags computed.
    pub fn get(&self) -> u32 {
        if self.op == LazyOp::Known {
            return self.bits;
        }
        (self.bits & !STATUS)
            | bit(self.cf(), CF)
            | bit(self.pf(), PF)
            | bit(self.af(), AF)
            | bit(self.zf(), ZF)
            | bit(self.sf(), SF)
            | bit(self.of(), OF)
    }

    /// Replace EFLAGS (only writable bits are kept; bit 1 reads as one).
    pub fn set(&mut self, value: u32) {
        self.bits = (value & WRITABLE) | RESERVED1;
        self.op = LazyOp::Known;
    }

    /// Replace the bits in `mask` with those of `value`.
    pub fn set_masked(&mut self, value: u32, mask: u32) {
        let cur = self.get();
        self.set((cur & !mask) | (value & mask));
    }

    /// Read a non-status flag (TF, IF, DF, IOPL, …) without computing status flags.
    #[inline(always)]
    pub fn control(&self, bit: u32) -> bool {
        debug_assert!(bit & STATUS == 0);
        self.bits & bit != 0
    }

    /// Set or clear a non-status flag.
    #[inline(always)]
    pub fn set_control(&mut self, bit: u32, on: bool) {
        debug_assert!(bit & STATUS == 0);
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    /// Set or clear CF, keeping the other status flags.
    #[inline]
    pub fn set_cf(&mut self, on: bool) {
        let v = self.get();
        self.set((v & !CF) | on as u32);
    }

    /// Evaluate an x86 condition code (the low nibble of Jcc/SETcc/CMOVcc).
    #[inline(always)]
    pub fn condition(&self, cc: u8) -> bool {
        let r = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() || (self.sf() != self.of()),
        };
        r != (cc & 1 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_sets_carry_and_overflow() {
        let mut f = Flags::default();
        f.set_lazy(LazyOp::Add, 1, 0x7F + 1, 0x7F, 1, 0);
        assert!(f.of() && !f.cf() && f.sf() && !f.zf() && f.af());
        f.set_lazy(LazyOp::Add, 1, 0x100, 0xFF, 1, 0);
        assert!(f.cf() && f.zf() && !f.of());
    }

    #[test]
    fn inc_keeps_carry() {
        let mut f = Flags::default();
        f.set_lazy(LazyOp::Sub, 2, 0u32.wrapping_sub(1), 0, 1, 0);
        assert!(f.cf());
        f.set_lazy(LazyOp::Inc, 2, 5, 4, 1, 0);
        assert!(f.cf(), "INC must not change CF");
        assert_eq!(f.get() & CF, CF);
    }

    #[test]
    fn parity_table() {
        assert!(parity(0));
        assert!(!parity(1));
        assert!(parity(3));
        assert!(parity(0x1FF ^ 0x100));
    }

    #[test]
    fn conditions() {
        let mut f = Flags::default();
        f.set_lazy(LazyOp::Sub, 4, 1u32.wrapping_sub(2), 1, 2, 0);
        assert!(f.condition(0x2)); // B
        assert!(f.condition(0xC)); // L
        assert!(!f.condition(0x4)); // E
        assert!(f.condition(0x5)); // NE
    }
}
