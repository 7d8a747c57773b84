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
//! The registers are the PIIX4's (function 01.3): the block is decoded at
//! the function's PMBA once PMREGMISC enables it (see `crate::pci`).
//! [`PM_BASE`] is where our BIOS puts it (and SeaBIOS and the Bochs BIOS
//! put it too); the FADT tells the OS.
//!
//! | offset | size | register                                       |
//! |--------|------|------------------------------------------------|
//! | 0      | 2    | PM1a_STS: bit 0 TMR_STS, bit 8 PWRBTN_STS, bit 15 WAK_STS (write 1 to clear) |
//! | 2      | 2    | PM1a_EN: bit 0 TMR_EN, 5 GBL_EN, 8 PWRBTN_EN, 9 SLPBTN_EN, 10 RTC_EN |
//! | 4      | 2    | PM1a_CNT: bit 0 SCI_EN, bits 10–12 SLP_TYP, bit 13 SLP_EN |
//! | 8      | 4    | PM_TMR: 24-bit count of a 3.579545 MHz clock   |
//! | 0xC    | 2    | GPE0_STS (nothing on this board raises a GPE)  |
//! | 0xE    | 2    | GPE0_EN (reads back as written)                |
//! | 0x10–0x37 | – | the PIIX4's processor, global and device controls: read 0, writes ignored |
//!
//! SCI_EN is clear at power-on (legacy mode), as on a PIIX4. Firmware
//! whose FADT has no SMI command port (ours) sets it during POST: ACPI
//! says such a platform is always in ACPI mode. Firmware with an SMI
//! command port (the Bochs BIOS: port 0xB2, ACPI_ENABLE 0xF1) sets it from
//! its SMM handler when the OS writes ACPI_ENABLE there.
//!
//! Soft off: SLP_TYP 0 (the PIIX4's "soft off" encoding, which the Bochs
//! BIOS's and QEMU's DSDTs name in `\_S5`) or [`SLP_TYP_S5`] (what our DSDT
//! names) with SLP_EN set.
//!
//! The SCI (IRQ [`SCI_IRQ`] unless the PM function's interrupt line says
//! otherwise) is a level interrupt: asserted while a status bit and its
//! enable bit are both set. (A PIIX4 would route PM events to SMI# while
//! SCI_EN is clear; this board has no SMI path for them, so the SCI does
//! not look at SCI_EN.) The timer's carry (TMR_STS, set each time bit 23
//! of the count changes) is computed when read; it raises the SCI only
//! when the guest next touches a PM register, not at the exact cycle (no
//! OS we boot enables TMR_EN).

use crate::clock::{Clock, Rate};

/// First port of the PM register block where our BIOS puts it.
pub const PM_BASE: u16 = 0xB000;
/// Size of the block (the PIIX4's PMBA decodes 64 bytes).
pub const PM_BLOCK_SIZE: u16 = 64;
/// PM1a event block (status word, enable word).
pub const PM1A_EVT: u16 = PM_BASE;
/// PM1a control block (one word).
pub const PM1A_CNT: u16 = PM_BASE + 4;
/// PM timer (one dword).
pub const PM_TMR: u16 = PM_BASE + 8;
/// The IRQ the SCI is wired to (ISA IRQ 9, as the FADT says).
pub const SCI_IRQ: u8 = 9;
/// The SLP_TYP value our DSDT's `\_S5` names: soft off.
pub const SLP_TYP_S5: u16 = 5;
/// The PIIX4's own soft-off SLP_TYP (SUS_TYP 000b).
pub const SLP_TYP_PIIX4_OFF: u16 = 0;

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
    /// Where the block is decoded (PMBA with PMREGMISC on), if anywhere.
    base: Option<u16>,
    /// GPE0_EN.
    gpe_enable: u16,
    /// PM1a_STS bits other than TMR_STS.
    status: u16,
    /// PM1a_EN.
    enable: u16,
    /// PM1a_CNT as last written.
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
            base: None,
            gpe_enable: 0,
            status: 0,
            enable: 0,
            control: 0,
            timer_epoch: 0,
            power_off: false,
        }
    }

    /// Back to the power-on state (the power-off request stays: it ends
    /// the run; the block is not decoded until the PM function's PMBA is
    /// applied again).
    pub fn reset(&mut self) {
        let off = self.power_off;
        *self = Pm::new(self.clock);
        self.power_off = off;
    }

    /// Decode the block at `base` (or nowhere), as the PM function's PMBA
    /// and PMREGMISC say.
    pub fn set_base(&mut self, base: Option<u16>) {
        self.base = base;
    }

    /// Where the block is decoded.
    pub fn base(&self) -> Option<u16> {
        self.base
    }

    /// The ports the block occupies (none until PMBA is applied; a block
    /// at the top of the port space wraps, as the decoder's compare does).
    pub fn ports(&self) -> Vec<std::ops::RangeInclusive<u16>> {
        let Some(b) = self.base else {
            return Vec::new();
        };
        let last = b.wrapping_add(PM_BLOCK_SIZE - 1);
        if last >= b {
            vec![b..=last]
        } else {
            vec![b..=u16::MAX, 0..=last]
        }
    }

    /// Whether `port` is one of the block's.
    pub fn claims(&self, port: u16) -> bool {
        self.base
            .is_some_and(|b| port.wrapping_sub(b) < PM_BLOCK_SIZE)
    }

    /// Whether the OS has the board in ACPI mode (PM1a_CNT.SCI_EN).
    pub fn sci_enabled(&self) -> bool {
        self.control & SCI_EN != 0
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
        match port.wrapping_sub(self.base.unwrap_or(PM_BASE)) {
            o @ (0 | 1) => word(self.status_at(now), o == 1),
            o @ (2 | 3) => word(self.enable, o == 3),
            o @ (4 | 5) => word(self.control & CNT_KEEP, o == 5),
            o @ 8..=11 => {
                let t = (self.ticks(now) & 0x00FF_FFFF) as u32;
                (t >> (8 * (o - 8))) as u8
            }
            0xC | 0xD => 0,
            o @ (0xE | 0xF) => word(self.gpe_enable, o == 0xF),
            0x10..=0x37 => 0,
            _ => 0xFF,
        }
    }

    /// A write of `size` bytes at `port` (inside the block).
    pub fn write(&mut self, port: u16, size: u8, value: u32, now: u64) {
        let off = port.wrapping_sub(self.base.unwrap_or(PM_BASE));
        // Word registers written as a whole word or byte by byte.
        let (reg, v, mask) = match (off, size) {
            (0 | 2 | 4 | 0xC | 0xE, 2 | 4) => (off, value as u16, 0xFFFF),
            (0 | 2 | 4 | 0xC | 0xE, _) => (off, value as u8 as u16, 0x00FF),
            (1 | 3 | 5 | 0xD | 0xF, _) => (off - 1, (value as u8 as u16) << 8, 0xFF00),
            // The timer is read-only; the rest is not modelled.
            _ => return,
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
            // GPE0_STS: nothing sets a bit, so clearing has nothing to do.
            0xC => {}
            0xE => self.gpe_enable = (self.gpe_enable & !mask) | (v & mask),
            _ => {
                let new = (self.control & !mask) | (v & mask);
                self.control = new & CNT_KEEP;
                if new & SLP_EN != 0 && mask & SLP_EN != 0 {
                    let typ = (new & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
                    if typ == SLP_TYP_S5 || typ == SLP_TYP_PIIX4_OFF {
                        log::info!(
                            "ACPI: PM1a_CNT SLP_EN with SLP_TYP={typ} (soft off): power off"
                        );
                        self.power_off = true;
                    } else {
                        log::warn!(
                            "ACPI: PM1a_CNT SLP_EN with SLP_TYP={typ}: not a sleep state this board offers (only soft off, {SLP_TYP_PIIX4_OFF} or {SLP_TYP_S5}); ignored"
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
        let mut p = Pm::new(Clock::new(200_000_000));
        p.set_base(Some(PM_BASE));
        p
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
    fn sci_en_is_clear_at_power_on_and_writable_slp_en_reads_zero() {
        let mut p = pm();
        assert_eq!(p.read(PM1A_CNT, 2, 0), 0, "legacy mode at power-on");
        p.write(PM1A_CNT, 2, 1, 0);
        assert_eq!(p.read(PM1A_CNT, 2, 0), 1);
        assert!(p.sci_enabled());
        p.write(PM1A_CNT, 2, 3 << 10, 0);
        assert_eq!(p.read(PM1A_CNT, 2, 0), 3 << 10, "SCI_EN written back to 0");
        assert!(!p.sci_enabled());
        assert!(!p.power_off_requested());
    }

    #[test]
    fn block_follows_pmba_and_is_off_until_enabled() {
        let mut p = Pm::new(Clock::new(200_000_000));
        assert!(!p.claims(PM_BASE), "PMREGMISC clear: not decoded");
        p.set_base(Some(0x600));
        assert!(p.claims(0x600) && p.claims(0x63F) && !p.claims(0x640));
        assert!(!p.claims(PM_BASE));
        p.write(0x604, 2, 1, 0);
        assert_eq!(p.read(0x604, 2, 0), 1);
        // GPE0 enable reads back; the status never sets; the PIIX4's
        // other registers read 0.
        p.write(0x60E, 2, 0x0104, 0);
        assert_eq!(p.read(0x60C, 4, 0), 0x0104 << 16);
        assert_eq!(p.read(0x628, 4, 0), 0);
        p.reset();
        assert_eq!(p.base(), None);
    }

    #[test]
    fn piix4_soft_off_type_zero_powers_off() {
        let mut p = pm();
        p.write(PM1A_CNT, 2, SLP_EN as u32 | 1, 0);
        assert!(p.power_off_requested());
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
