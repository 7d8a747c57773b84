//! The Motorola MC146818A real-time clock and its battery-backed RAM, at
//! ports 0x70 (index, bit 7 = NMI disable) and 0x71 (data), IRQ8.
//!
//! Time advances with the machine's virtual clock, never the host's: the
//! start date comes from the configuration. Register behaviour follows the
//! MC146818A data sheet: registers A–D ("Register A"…"Register D"), the
//! update cycle ("Update Cycle": UIP rises 244 µs before the time
//! registers change), periodic rates (Table 5), alarm "don't care" codes
//! (0xC0–0xFF), 12/24-hour and BCD/binary formats (Table 3).
//!
//! The NVRAM layout above 0x0F is the IBM AT one that BIOSes, Bochs and
//! SeaBIOS read: memory sizes, equipment byte, boot order, century,
//! checksum over 0x10–0x2D.

use crate::clock::{Clock, RTC_RATE};
use std::ops::RangeInclusive;

/// Index port (bit 7 masks NMI).
pub const INDEX_PORT: u16 = 0x70;
/// Data port.
pub const DATA_PORT: u16 = 0x71;

const REG_A: usize = 0x0A;
const REG_B: usize = 0x0B;
const REG_C: usize = 0x0C;
const REG_D: usize = 0x0D;

const A_UIP: u8 = 0x80;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;

/// Divider bits (register A, 6–4) for a 32.768 kHz time base, running.
const DV_NORMAL: u8 = 0x20;
/// Ticks of the 32.768 kHz base per second.
const TICKS_PER_SECOND: u64 = 32_768;
/// UIP is set this long before each update (t_BUC in the data sheet).
const UIP_LEAD_NS: u64 = 244_000;

/// A calendar date and time of day (years in full, e.g. 2000).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Year, e.g. 2000.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

impl Default for DateTime {
    /// 2000-01-01 00:00:00: the fixed default start for reproducible runs.
    fn default() -> Self {
        DateTime {
            year: 2000,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }
}

impl DateTime {
    /// The UTC date and time `secs` seconds after 1970-01-01 00:00:00.
    pub fn from_unix(secs: u64) -> DateTime {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        DateTime {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// Day of the week, 1 = Sunday … 7 = Saturday (the RTC's convention).
    pub fn weekday(&self) -> u8 {
        let days = days_from_civil(self.year as i64, self.month as i64, self.day as i64);
        // 1970-01-01 was a Thursday (5 in this numbering).
        ((days + 4).rem_euclid(7) + 1) as u8
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known
/// era-based algorithm: 400-year eras of 146097 days).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// A boot device as the BIOS boot-order nibbles encode it (Bochs/SeaBIOS:
/// CMOS 0x3D low/high nibble and 0x38 high nibble).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDevice {
    /// First floppy drive (code 1).
    Floppy,
    /// First hard disk (code 2).
    HardDisk,
    /// CD-ROM (code 3).
    Cdrom,
}

impl BootDevice {
    fn code(self) -> u8 {
        match self {
            BootDevice::Floppy => 1,
            BootDevice::HardDisk => 2,
            BootDevice::Cdrom => 3,
        }
    }
}

/// What the CMOS is filled from.
#[derive(Clone, Debug)]
pub struct CmosConfig {
    /// RAM size in bytes.
    pub memory_bytes: u64,
    /// Up to three boot devices, first choice first.
    pub boot_order: Vec<BootDevice>,
    /// The RTC's time at power-on.
    pub start: DateTime,
    /// An x87 is present (equipment byte bit 1).
    pub fpu: bool,
}

impl Default for CmosConfig {
    fn default() -> Self {
        CmosConfig {
            memory_bytes: 128 << 20,
            boot_order: vec![BootDevice::HardDisk, BootDevice::Cdrom, BootDevice::Floppy],
            start: DateTime::default(),
            fpu: true,
        }
    }
}

fn to_bcd(v: u8) -> u8 {
    ((v / 10) << 4) | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4).wrapping_mul(10).wrapping_add(v & 0x0F)
}

fn is_leap(year: u16) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The RTC and its 128 bytes of CMOS RAM.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Cmos {
    clock: Clock,
    /// Registers 0x0A–0x7F as stored; 0x00–0x09 live in `time`, except
    /// the alarm registers (1, 3, 5), kept here.
    #[serde(with = "crate::snapshot::big_array")]
    ram: [u8; 128],
    /// The time registers, binary and in 24-hour form; the year is the
    /// two-digit register value plus the configured century.
    time: DateTime,
    weekday: u8,
    index: u8,
    nmi_disabled: bool,
    /// The 32.768 kHz tick of the next once-a-second update.
    next_update: u64,
    /// Periodic-interrupt periods accounted for (tick / period).
    periodic_seen: u64,
    /// The RTC ticks processed so far.
    last_tick: u64,
}

impl Cmos {
    /// A powered-on RTC holding `config`'s start time and NVRAM layout.
    pub fn new(clock: Clock, config: &CmosConfig) -> Cmos {
        let mut c = Cmos {
            clock,
            ram: [0; 128],
            time: config.start,
            weekday: config.start.weekday(),
            index: 0,
            nmi_disabled: false,
            next_update: TICKS_PER_SECOND,
            periodic_seen: 0,
            last_tick: 0,
        };
        // Register A: 32.768 kHz base, 1024 Hz periodic rate; B: 24-hour,
        // BCD (the values PC BIOSes program, and QEMU's power-on state).
        c.ram[REG_A] = DV_NORMAL | 0x06;
        c.ram[REG_B] = B_24H;
        c.ram[REG_D] = 0x80;
        c.fill_nvram(config);
        c
    }

    fn fill_nvram(&mut self, config: &CmosConfig) {
        let r = &mut self.ram;
        // 0x10 floppy types, 0x12 hard disk types: none (the disk
        // controller's owner may fill them); 0x14 equipment: VGA (00),
        // x87 present, no floppies.
        r[0x14] = if config.fpu { 0x02 } else { 0x00 };
        // Base memory in KiB (640), little endian.
        r[0x15] = 0x80;
        r[0x16] = 0x02;
        // Extended memory above 1 MiB, in KiB, capped at 0xFFFF (also the
        // POST-measured copy at 0x30).
        let ext_kib = (config.memory_bytes / 1024)
            .saturating_sub(1024)
            .min(0xFFFF) as u16;
        r[0x17] = ext_kib as u8;
        r[0x18] = (ext_kib >> 8) as u8;
        r[0x30] = ext_kib as u8;
        r[0x31] = (ext_kib >> 8) as u8;
        // Memory above 16 MiB (below 4 GiB) in 64 KiB units, as SeaBIOS
        // and Bochs' BIOS read it.
        let below_4g = config.memory_bytes.min(0xE000_0000);
        let above_16m = (below_4g.saturating_sub(16 << 20) >> 16).min(0xFFFF) as u16;
        r[0x34] = above_16m as u8;
        r[0x35] = (above_16m >> 8) as u8;
        // Memory above 4 GiB in 64 KiB units (0x5B–0x5D).
        let above_4g = (config.memory_bytes.saturating_sub(1 << 32) >> 16).min(0xFF_FFFF);
        r[0x5B] = above_4g as u8;
        r[0x5C] = (above_4g >> 8) as u8;
        r[0x5D] = (above_4g >> 16) as u8;
        // Boot order: 0x3D low nibble first, high nibble second; 0x38
        // high nibble third (bit 0 clear: check floppy boot signatures).
        let code = |i: usize| config.boot_order.get(i).map_or(0, |d| d.code());
        r[0x3D] = code(0) | code(1) << 4;
        r[0x38] = code(2) << 4;
        // Century, BCD.
        r[0x32] = to_bcd((config.start.year / 100 % 100) as u8);
        self.update_checksum();
    }

    /// The standard checksum: the 16-bit sum of 0x10–0x2D at 0x2E (high)
    /// and 0x2F (low).
    fn update_checksum(&mut self) {
        let sum: u16 = self.ram[0x10..=0x2D].iter().map(|&b| b as u16).sum();
        self.ram[0x2E] = (sum >> 8) as u8;
        self.ram[0x2F] = sum as u8;
    }

    /// Power-on again except the battery-backed contents: registers B's
    /// interrupt enables and C's flags clear, as the RESET pin does.
    pub fn reset(&mut self) {
        self.ram[REG_B] &= !(B_PIE | B_AIE | B_UIE | 0x08);
        self.ram[REG_C] = 0;
        self.nmi_disabled = false;
    }

    /// The RTC's index and data ports.
    pub const PORTS: &[RangeInclusive<u16>] = &[INDEX_PORT..=DATA_PORT];

    /// Whether the guest masked NMI (port 0x70 bit 7).
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    fn divider_running(&self) -> bool {
        self.ram[REG_A] & 0x70 == DV_NORMAL
    }

    /// Periodic interrupt period in 32.768 kHz ticks (register A RS3–0).
    fn period(&self) -> Option<u64> {
        match self.ram[REG_A] & 0x0F {
            0 => None,
            // Rates 1 and 2 repeat 8 and 9 (256 and 128 Hz).
            rs @ 1..=2 => Some(1 << (rs + 6)),
            rs => Some(1 << (rs - 1)),
        }
    }

    /// The IRQ8 output (active while IRQF is set).
    pub fn irq(&self) -> bool {
        self.ram[REG_C] & C_IRQF != 0
    }

    fn update_irqf(&mut self) {
        let c = self.ram[REG_C];
        let b = self.ram[REG_B];
        let active = (c & C_PF != 0 && b & B_PIE != 0)
            || (c & C_AF != 0 && b & B_AIE != 0)
            || (c & C_UF != 0 && b & B_UIE != 0);
        if active {
            self.ram[REG_C] |= C_IRQF;
        } else {
            self.ram[REG_C] &= !C_IRQF;
        }
    }

    /// Bring the clock up to cycle `now`: run the update cycles and
    /// periodic ticks that have come due.
    pub fn advance(&mut self, now: u64) {
        let t = self.clock.ticks(now, RTC_RATE);
        if t < self.last_tick {
            return;
        }
        self.last_tick = t;
        if !self.divider_running() {
            return;
        }
        while self.next_update <= t {
            self.next_update += TICKS_PER_SECOND;
            if self.ram[REG_B] & B_SET == 0 {
                self.tick_second();
                self.ram[REG_C] |= C_UF;
                if self.alarm_matches() {
                    self.ram[REG_C] |= C_AF;
                }
            }
        }
        if let Some(p) = self.period() {
            let n = t / p;
            if n > self.periodic_seen {
                self.periodic_seen = n;
                self.ram[REG_C] |= C_PF;
            }
        }
        self.update_irqf();
    }

    /// The cycle of the next event that can raise IRQ8, if interrupts are
    /// enabled (otherwise time is caught up lazily on access).
    pub fn next_event(&self) -> Option<u64> {
        if !self.divider_running() {
            return None;
        }
        let b = self.ram[REG_B];
        let mut next: Option<u64> = None;
        if b & B_PIE != 0 {
            if let Some(p) = self.period() {
                next = Some((self.periodic_seen.max(self.last_tick / p) + 1) * p);
            }
        }
        if b & (B_AIE | B_UIE) != 0 && b & B_SET == 0 {
            next = Some(next.map_or(self.next_update, |n| n.min(self.next_update)));
        }
        next.map(|tick| self.clock.cycle_of_tick(tick, RTC_RATE))
    }

    fn tick_second(&mut self) {
        let t = &mut self.time;
        t.second += 1;
        if t.second < 60 {
            return;
        }
        t.second = 0;
        t.minute += 1;
        if t.minute < 60 {
            return;
        }
        t.minute = 0;
        t.hour += 1;
        if t.hour < 24 {
            return;
        }
        t.hour = 0;
        self.weekday = self.weekday % 7 + 1;
        t.day += 1;
        if t.day <= days_in_month(t.year, t.month) {
            return;
        }
        t.day = 1;
        t.month += 1;
        if t.month <= 12 {
            return;
        }
        t.month = 1;
        // The chip counts years 00–99 only; the century byte is software's.
        t.year = t.year / 100 * 100 + (t.year % 100 + 1) % 100;
    }

    fn alarm_matches(&self) -> bool {
        let want = |reg: usize, field: usize| {
            let a = self.ram[reg];
            a & 0xC0 == 0xC0 || a == self.encode(field)
        };
        want(1, 0) && want(3, 2) && want(5, 4)
    }

    fn binary(&self) -> bool {
        self.ram[REG_B] & B_BINARY != 0
    }

    fn enc(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            to_bcd(v)
        }
    }

    fn dec(&self, v: u8) -> u8 {
        if self.binary() {
            v
        } else {
            from_bcd(v)
        }
    }

    /// A time register (0, 2, 4, 6–9) in the current data mode.
    fn encode(&self, reg: usize) -> u8 {
        let t = &self.time;
        match reg {
            0 => self.enc(t.second),
            2 => self.enc(t.minute),
            4 => {
                if self.ram[REG_B] & B_24H != 0 {
                    self.enc(t.hour)
                } else {
                    let h12 = if t.hour.is_multiple_of(12) {
                        12
                    } else {
                        t.hour % 12
                    };
                    self.enc(h12) | if t.hour >= 12 { 0x80 } else { 0 }
                }
            }
            6 => self.enc(self.weekday),
            7 => self.enc(t.day),
            8 => self.enc(t.month),
            9 => self.enc((t.year % 100) as u8),
            _ => 0,
        }
    }

    /// Store a time register written in the current data mode. Values out
    /// of range are folded into range, so the calendar stays well-formed.
    fn store_time(&mut self, reg: usize, v: u8) {
        match reg {
            0 => self.time.second = self.dec(v) % 60,
            2 => self.time.minute = self.dec(v) % 60,
            4 => {
                let h = if self.ram[REG_B] & B_24H != 0 {
                    self.dec(v) % 24
                } else {
                    let h12 = self.dec(v & 0x7F) % 12;
                    h12 + if v & 0x80 != 0 { 12 } else { 0 }
                };
                self.time.hour = h;
            }
            6 => self.weekday = (self.dec(v).wrapping_sub(1) % 7) + 1,
            7 => self.time.day = self.dec(v).clamp(1, 31),
            8 => self.time.month = self.dec(v).clamp(1, 12),
            9 => {
                self.time.year = self.time.year / 100 * 100 + (self.dec(v) % 100) as u16;
            }
            _ => {}
        }
    }

    /// A byte read at cycle `now`.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        if port == INDEX_PORT {
            // Write-only on the chip; the ISA bus floats.
            return 0xFF;
        }
        self.advance(now);
        let i = self.index as usize;
        match i {
            0 | 2 | 4 | 6..=9 => self.encode(i),
            REG_A => {
                let mut a = self.ram[REG_A] & 0x7F;
                if self.uip(now) {
                    a |= A_UIP;
                }
                a
            }
            REG_C => {
                // Reading C clears every flag and drops IRQ8.
                std::mem::take(&mut self.ram[REG_C])
            }
            // Valid RAM and time: VRT always set.
            REG_D => 0x80,
            _ => self.ram[i],
        }
    }

    fn uip(&self, now: u64) -> bool {
        if !self.divider_running() || self.ram[REG_B] & B_SET != 0 {
            return false;
        }
        let update = self.clock.cycle_of_tick(self.next_update, RTC_RATE);
        now < update && update - now <= self.clock.ns_to_cycles(UIP_LEAD_NS)
    }

    /// A byte write at cycle `now`.
    pub fn write(&mut self, port: u16, v: u8, now: u64) {
        if port == INDEX_PORT {
            self.nmi_disabled = v & 0x80 != 0;
            self.index = v & 0x7F;
            return;
        }
        self.advance(now);
        let i = self.index as usize;
        match i {
            0 | 2 | 4 | 6..=9 => self.store_time(i, v),
            REG_A => {
                let was_running = self.divider_running();
                self.ram[REG_A] = v & 0x7F;
                if self.divider_running() && !was_running {
                    // Leaving divider reset: the first update comes half a
                    // second later.
                    let t = self.clock.ticks(now, RTC_RATE);
                    self.next_update = t + TICKS_PER_SECOND / 2;
                }
                if let Some(p) = self.period() {
                    self.periodic_seen = self.last_tick / p;
                }
            }
            REG_B => {
                let mut b = v;
                if b & B_SET != 0 {
                    // SET aborts updates and clears UIE.
                    b &= !B_UIE;
                }
                self.ram[REG_B] = b;
                self.update_irqf();
            }
            // C and D are read-only.
            REG_C | REG_D => {}
            _ => self.ram[i] = v,
        }
    }

    /// The time registers as binary 24-hour values (for the debugger).
    pub fn time(&self) -> DateTime {
        self.time
    }

    /// Record the diskette drives, as a setup utility would: register 10h
    /// (drive 0 type in the high nibble, drive 1 in the low; 1 = 360K,
    /// 2 = 1.2M, 3 = 720K, 4 = 1.44M, 5 = 2.88M, 0 = none) and the
    /// equipment byte 14h (bit 0: drives installed, bits 7–6: count - 1).
    pub fn set_floppy_types(&mut self, types: [u8; 2]) {
        self.ram[0x10] = (types[0] & 0x0F) << 4 | (types[1] & 0x0F);
        let count = types.iter().filter(|&&t| t != 0).count() as u8;
        let eq = self.ram[0x14] & !0xC1;
        self.ram[0x14] = match count {
            0 => eq,
            n => eq | 0x01 | (n - 1) << 6,
        };
        self.update_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = crate::clock::DEFAULT_CPU_HZ;

    fn cmos() -> Cmos {
        Cmos::new(Clock::default(), &CmosConfig::default())
    }

    fn get(c: &mut Cmos, reg: u8, now: u64) -> u8 {
        c.write(0x70, reg, now);
        c.read(0x71, now)
    }

    fn set(c: &mut Cmos, reg: u8, v: u8, now: u64) {
        c.write(0x70, reg, now);
        c.write(0x71, v, now);
    }

    #[test]
    fn floppy_types_and_equipment_byte() {
        let mut c = cmos();
        c.set_floppy_types([4, 0]);
        assert_eq!(get(&mut c, 0x10, 0), 0x40);
        assert_eq!(get(&mut c, 0x14, 0), 0x03, "x87 + one drive");
        c.set_floppy_types([4, 3]);
        assert_eq!(get(&mut c, 0x14, 0), 0x43, "two drives");
        let sum: u16 = (0x10..=0x2D).map(|r| get(&mut c, r, 0) as u16).sum();
        assert_eq!(
            (get(&mut c, 0x2E, 0), get(&mut c, 0x2F, 0)),
            ((sum >> 8) as u8, sum as u8)
        );
    }

    #[test]
    fn starts_at_the_configured_date_in_bcd() {
        let mut c = cmos();
        assert_eq!(get(&mut c, 9, 0), 0x00);
        assert_eq!(get(&mut c, 8, 0), 0x01);
        assert_eq!(get(&mut c, 7, 0), 0x01);
        assert_eq!(get(&mut c, 6, 0), 7, "2000-01-01 was a Saturday");
        assert_eq!(get(&mut c, 0x32, 0), 0x20);
        assert_eq!(get(&mut c, 0x0D, 0), 0x80);
    }

    #[test]
    fn time_advances_with_virtual_seconds() {
        let mut c = cmos();
        assert_eq!(get(&mut c, 0, SECOND - 1), 0x00);
        assert_eq!(get(&mut c, 0, SECOND), 0x01);
        let t = 3723 * SECOND; // 1 h 2 min 3 s
        assert_eq!(get(&mut c, 4, t), 0x01);
        assert_eq!(get(&mut c, 2, t), 0x02);
        assert_eq!(get(&mut c, 0, t), 0x03);
    }

    #[test]
    fn binary_and_12_hour_modes() {
        let mut c = Cmos::new(
            Clock::default(),
            &CmosConfig {
                start: DateTime {
                    year: 1999,
                    month: 12,
                    day: 31,
                    hour: 23,
                    minute: 59,
                    second: 59,
                },
                ..CmosConfig::default()
            },
        );
        assert_eq!(get(&mut c, 4, 0), 0x23);
        set(&mut c, 0x0B, 0x04, 0); // binary, 12-hour
        assert_eq!(get(&mut c, 4, 0), 0x80 | 11, "11 PM");
        assert_eq!(get(&mut c, 0, 0), 59);
        // Rolls over to 2000-01-01 00:00:00 (year 00, 12 AM).
        assert_eq!(get(&mut c, 4, SECOND), 12);
        assert_eq!(get(&mut c, 9, SECOND), 0);
        assert_eq!(get(&mut c, 8, SECOND), 1);
        // Writing in 12-hour binary: 3 PM.
        set(&mut c, 4, 0x83, SECOND);
        set(&mut c, 0x0B, 0x06, SECOND);
        assert_eq!(get(&mut c, 4, SECOND), 15);
    }

    #[test]
    fn uip_precedes_each_update() {
        let mut c = cmos();
        let lead = Clock::default().ns_to_cycles(UIP_LEAD_NS);
        assert_eq!(get(&mut c, 0x0A, SECOND - lead - 1) & 0x80, 0);
        assert_eq!(get(&mut c, 0x0A, SECOND - lead + 1) & 0x80, 0x80);
        assert_eq!(get(&mut c, 0x0A, SECOND) & 0x80, 0, "update done");
        assert_eq!(get(&mut c, 0x0A, SECOND), 0x26);
    }

    #[test]
    fn periodic_interrupt_and_register_c() {
        let mut c = cmos();
        set(&mut c, 0x0A, 0x2F, 0); // 2 Hz
        assert_eq!(c.next_event(), None, "PIE off: nothing scheduled");
        set(&mut c, 0x0B, 0x42, 0); // PIE
        let at = c.next_event().unwrap();
        assert_eq!(at, SECOND / 2);
        c.advance(at - 1);
        assert!(!c.irq());
        c.advance(at);
        assert!(c.irq());
        assert_eq!(get(&mut c, 0x0C, at), 0xC0, "IRQF|PF");
        assert!(!c.irq());
        assert_eq!(get(&mut c, 0x0C, at), 0x00, "cleared by the read");
    }

    #[test]
    fn alarm_and_update_interrupts() {
        let mut c = cmos();
        set(&mut c, 0x0A, 0x20, 0); // no periodic flag
        set(&mut c, 1, 0x05, 0); // alarm at hh:mm:05, any hour and minute
        set(&mut c, 3, 0xFF, 0);
        set(&mut c, 5, 0xC0, 0);
        set(&mut c, 0x0B, 0x22, 0); // AIE
        assert_eq!(c.next_event(), Some(SECOND));
        c.advance(4 * SECOND);
        assert!(!c.irq());
        c.advance(5 * SECOND);
        assert!(c.irq());
        assert_eq!(get(&mut c, 0x0C, 5 * SECOND), 0xB0, "IRQF|AF|UF");
        set(&mut c, 0x0B, 0x12, 5 * SECOND); // UIE only
        c.advance(6 * SECOND);
        assert_eq!(get(&mut c, 0x0C, 6 * SECOND), 0x90);
    }

    #[test]
    fn set_bit_freezes_the_time() {
        let mut c = cmos();
        set(&mut c, 0x0B, 0x82, 0);
        set(&mut c, 0, 0x30, 0);
        assert_eq!(get(&mut c, 0, 3 * SECOND), 0x30);
        set(&mut c, 0x0B, 0x02, 3 * SECOND);
        assert_eq!(get(&mut c, 0, 4 * SECOND), 0x31);
    }

    #[test]
    fn nvram_layout_and_checksum() {
        let mut c = Cmos::new(
            Clock::default(),
            &CmosConfig {
                memory_bytes: 64 << 20,
                boot_order: vec![BootDevice::Cdrom, BootDevice::HardDisk, BootDevice::Floppy],
                ..CmosConfig::default()
            },
        );
        let w = |c: &mut Cmos, lo: u8| get(c, lo, 0) as u16 | (get(c, lo + 1, 0) as u16) << 8;
        assert_eq!(w(&mut c, 0x15), 640);
        assert_eq!(w(&mut c, 0x17), 63 * 1024);
        assert_eq!(w(&mut c, 0x30), 63 * 1024);
        assert_eq!(w(&mut c, 0x34), (48u32 << 20 >> 16) as u16);
        assert_eq!(get(&mut c, 0x3D, 0), 0x23);
        assert_eq!(get(&mut c, 0x38, 0), 0x10);
        assert_eq!(get(&mut c, 0x14, 0), 0x02);
        let sum: u16 = (0x10..=0x2D).map(|r| get(&mut c, r, 0) as u16).sum();
        assert_eq!(get(&mut c, 0x2E, 0), (sum >> 8) as u8);
        assert_eq!(get(&mut c, 0x2F, 0), sum as u8);
        // NMI mask bit rides on the index port.
        c.write(0x70, 0x8F, 0);
        assert!(c.nmi_disabled());
        assert_eq!(c.read(0x71, 0), 0x00, "index 0x0F, shutdown byte");
    }

    #[test]
    fn unix_time_conversion() {
        let d = DateTime::from_unix(951_782_400); // 2000-02-29 00:00:00
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
        assert_eq!(d.weekday(), 3, "a Tuesday");
        let d = DateTime::from_unix(1_700_000_000);
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            (2023, 11, 14, 22, 13, 20)
        );
    }
}
