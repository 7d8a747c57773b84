//! The ACPI power-management registers of the board (the fixed-hardware
//! part of the ACPI specification, chapter 4.8): the PM1a event block
//! (status and enable), the PM1a control block (SCI_EN, SLP_TYP, SLP_EN)
//! and the power-management timer (3.579545 MHz, 24 bits).
//!
//! Our BIOS describes these registers to the operating system in its FADT
//! (see `ringside_bios`'s `acpi` module) and its DSDT defines `\_S5` with
//! sleep type [`SLP_TYP_S5`]: writing that type with SLP_EN set to PM1a_CNT
//! turns the machine off, which the machine reports as a power-off.
//!
//! Register block at [`PM_BASE`] (our choice; the FADT tells the OS):
//!
//! | port        | size | register                                       |
//! |-------------|------|------------------------------------------------|
//! | PM_BASE+0   | 2    | PM1a_STS: bit 0 TMR_STS, bit 8 PWRBTN_STS, bit 15 WAK_STS (write 1 to clear) |
//! | PM_BASE+2   | 2    | PM1a_EN: bit 0 TMR_EN, 5 GBL_EN, 8 PWRBTN_EN, 9 SLPBTN_EN, 10 RTC_EN |
//! | PM_BASE+4   | 2    | PM1a_CNT: bit 0 SCI_EN (always 1: no SMI_CMD, the board is always in ACPI mode), bits 10–12 SLP_TYP, bit 13 SLP_EN |
//! | PM_BASE+8   | 4    | PM_TMR: 24-bit count of a 3.579545 MHz clock   |
//!
//! The SCI (IRQ [`SCI_IRQ`]) is a level interrupt: asserted while a status
//! bit and its enable bit are both set. The timer's carry (TMR_STS, set
//! each time bit 23 of the count changes) is computed when read; it raises
//! the SCI only when the guest next touches a PM register, not at the
//! exact cycle (no OS we boot enables TMR_EN).

use crate::clock::{Clock, Rate};

/// First port of the PM register block.
pub const PM_BASE: u16 = 0xB000;
/// PM1a event block (status word, enable word).
pub const PM1A_EVT: u16 = PM_BASE;
/// PM1a control block (one word).
pub const PM1A_CNT: u16 = PM_BASE + 4;
/// PM timer (one dword).
pub const PM_TMR: u16 = PM_BASE + 8;
/// Last port of the block.
const PM_LAST: u16 = PM_BASE + 11;
/// The IRQ the SCI is wired to (ISA IRQ 9, as the FADT says).
pub const SCI_IRQ: u8 = 9;
/// The SLP_TYP value our DSDT's `\_S5` names: soft off.
pub const SLP_TYP_S5: u16 = 5;

/// The PM timer's clock: 3.579545 MHz (the NTSC colour burst).
pub const PM_TIMER_RATE: Rate = Rate {
    num: 3_579_545,
    den: 1,
};

const TMR_STS: u16 = 1 << 0;
const BM_STS: u16 = 1 << 4;
const GBL_STS: u16 = 1 << 5;
const PWRBTN_STS: u16 = 1 << 8;
const SLPBTN_STS: u16 = 1 << 9;
const RTC_STS: u16 = 1 << 10;
const WAK_STS: u16 = 1 << 15;
/// Status bits of the PM1 status register (nothing on this board sets
/// those but TMR_STS; they clear on a write of 1 all the same).
const STS_BITS: u16 = TMR_STS | BM_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS | WAK_STS;
/// Enable bits that read back as written: TMR_EN, GBL_EN, PWRBTN_EN,
/// SLPBTN_EN, RTC_EN (an OS checks that its write stuck).
const EN_BITS: u16 = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;
const SCI_EN: u16 = 1 << 0;
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 7 << SLP_TYP_SHIFT;
const SLP_EN: u16 = 1 << 13;
/// Control bits that read back as written (SCI_EN, BM_RLD, SLP_TYP).
const CNT_KEEP: u16 = SCI_EN | (1 << 1) | SLP_TYP_MASK;

/// The PM registers. Plain data.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Pm {
    clock: Clock,
    /// PM1a_STS bits other than TMR_STS.
    status: u16,
    /// PM1a_EN.
    enable: u16,
    /// PM1a_CNT as last written (SCI_EN forced on).
    control: u16,
    /// Bit 23 epoch of the timer when TMR_STS was last cleared: TMR_STS is
    /// set while the current epoch differs.
    timer_epoch: u64,
    /// The guest asked for soft off (S5).
    power_off: bool,
}

impl Pm {
    /// The registers at power-on.
    pub fn new(clock: Clock) -> Pm {
        Pm {
            clock,
            status: 0,
            enable: 0,
            control: SCI_EN,
            timer_epoch: 0,
            power_off: false,
        }
    }

    /// Back to the power-on state (the power-off request stays: it ends
    /// the run).
    pub fn reset(&mut self) {
        let off = self.power_off;
        *self = Pm::new(self.clock);
        self.power_off = off;
    }

    /// Whether `port` is one of the block's.
    pub fn claims(port: u16) -> bool {
        (PM_BASE..=PM_LAST).contains(&port)
    }

    /// The PM timer's count at cycle `now` (all 32 bits; the register
    /// shows the low 24).
    fn ticks(&self, now: u64) -> u64 {
        self.clock.ticks(now, PM_TIMER_RATE)
    }

    fn status_at(&self, now: u64) -> u16 {
        let carry = (self.ticks(now) >> 23) != self.timer_epoch;
        self.status | if carry { TMR_STS } else { 0 }
    }

    /// Whether the SCI line is asserted at cycle `now`.
    pub fn sci(&self, now: u64) -> bool {
        self.status_at(now) & self.enable != 0
    }

    /// Whether the guest asked for power-off (S5).
    pub fn power_off_requested(&self) -> bool {
        self.power_off
    }

    /// A read of `size` bytes at `port` (inside the block).
    pub fn read(&self, port: u16, size: u8, now: u64) -> u32 {
        let mut v = 0u32;
        for i in 0..size.min(4) as u16 {
            v |= (self.read_byte(port.wrapping_add(i), now) as u32) << (8 * i);
        }
        v
    }

    fn read_byte(&self, port: u16, now: u64) -> u8 {
        let word = |w: u16, hi: bool| if hi { (w >> 8) as u8 } else { w as u8 };
        match port.wrapping_sub(PM_BASE) {
            o @ (0 | 1) => word(self.status_at(now), o == 1),
            o @ (2 | 3) => word(self.enable, o == 3),
            o @ (4 | 5) => word(self.control & CNT_KEEP, o == 5),
            o @ 8..=11 => {
                let t = (self.ticks(now) & 0x00FF_FFFF) as u32;
                (t >> (8 * (o - 8))) as u8
            }
            _ => 0xFF,
        }
    }

    /// A write of `size` bytes at `port` (inside the block).
    pub fn write(&mut self, port: u16, size: u8, value: u32, now: u64) {
        let off = port.wrapping_sub(PM_BASE);
        // Word registers written as a whole word or byte by byte.
        let (reg, v, mask) = match (off, size) {
            (0 | 2 | 4, 2 | 4) => (off, value as u16, 0xFFFF),
            (0 | 2 | 4, _) => (off, value as u8 as u16, 0x00FF),
            (1 | 3 | 5, _) => (off - 1, (value as u8 as u16) << 8, 0xFF00),
            _ => return, // the timer is read-only
        };
        match reg {
            0 => {
                let clear = v & mask & STS_BITS;
                if clear & TMR_STS != 0 {
                    self.timer_epoch = self.ticks(now) >> 23;
                }
                self.status &= !clear;
            }
            2 => self.enable = (self.enable & !mask) | (v & mask & EN_BITS),
            _ => {
                let new = (self.control & !mask) | (v & mask) | SCI_EN;
                self.control = new & CNT_KEEP;
                if new & SLP_EN != 0 && mask & SLP_EN != 0 {
                    let typ = (new & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
                    if typ == SLP_TYP_S5 {
                        log::info!("ACPI: PM1a_CNT SLP_EN with SLP_TYP={typ} (S5): power off");
                        self.power_off = true;
                    } else {
                        log::warn!(
                            "ACPI: PM1a_CNT SLP_EN with SLP_TYP={typ}: not a sleep state this board offers (only S5 = {SLP_TYP_S5}); ignored"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm() -> Pm {
        Pm::new(Clock::new(200_000_000))
    }

    #[test]
    fn timer_counts_at_3_579545_mhz_and_wraps_at_24_bits() {
        let p = pm();
        assert_eq!(p.read(PM_TMR, 4, 0), 0);
        // One second of 200 MHz cycles.
        assert_eq!(p.read(PM_TMR, 4, 200_000_000), 3_579_545);
        // 2^24 ticks later the register wraps.
        let wrap = Clock::new(200_000_000).cycle_of_tick(1 << 24, PM_TIMER_RATE);
        assert_eq!(p.read(PM_TMR, 4, wrap), 0);
        assert_eq!(p.read(PM_TMR + 2, 1, 200_000_000), (3_579_545 >> 16) as u32);
    }

    #[test]
    fn tmr_sts_sets_on_bit_23_change_and_clears_on_write_one() {
        let mut p = pm();
        let half = Clock::new(200_000_000).cycle_of_tick(1 << 23, PM_TIMER_RATE);
        assert_eq!(p.read(PM1A_EVT, 2, half - 1) & 1, 0);
        assert_eq!(p.read(PM1A_EVT, 2, half) & 1, 1);
        assert!(!p.sci(half), "TMR_EN clear: no SCI");
        p.write(PM1A_EVT + 2, 2, 1, half);
        assert!(p.sci(half));
        p.write(PM1A_EVT, 2, 0x0000, half);
        assert_eq!(p.read(PM1A_EVT, 2, half) & 1, 1, "writing 0 keeps it");
        p.write(PM1A_EVT, 2, 0x0001, half);
        assert_eq!(p.read(PM1A_EVT, 2, half) & 1, 0);
        assert!(!p.sci(half));
    }

    #[test]
    fn sci_en_always_reads_set_and_slp_en_reads_zero() {
        let mut p = pm();
        assert_eq!(p.read(PM1A_CNT, 2, 0), 1);
        p.write(PM1A_CNT, 2, 0, 0);
        assert_eq!(p.read(PM1A_CNT, 2, 0), 1);
        p.write(PM1A_CNT, 2, 3 << 10, 0);
        assert_eq!(p.read(PM1A_CNT, 2, 0), 1 | 3 << 10);
        assert!(!p.power_off_requested());
    }

    #[test]
    fn s5_with_slp_en_powers_off_other_types_do_not() {
        let mut p = pm();
        p.write(PM1A_CNT, 2, (5 << 10) | 1, 0);
        assert!(!p.power_off_requested(), "SLP_TYP alone");
        p.write(PM1A_CNT, 2, (1 << 10) | SLP_EN as u32, 0);
        assert!(!p.power_off_requested(), "S1 is not offered");
        // Byte writes: the high byte carries SLP_TYP and SLP_EN.
        p.write(PM1A_CNT + 1, 1, ((5 << 10 | SLP_EN) >> 8) as u32, 0);
        assert!(p.power_off_requested());
        p.reset();
        assert!(p.power_off_requested(), "a reset does not undo power-off");
    }

    #[test]
    fn timer_ignores_writes_and_outside_reads_float() {
        let mut p = pm();
        p.write(PM_TMR, 4, 0x1234, 0);
        assert_eq!(p.read(PM_TMR, 4, 0), 0);
        assert_eq!(p.read(PM_BASE + 6, 1, 0), 0xFF);
    }
}
