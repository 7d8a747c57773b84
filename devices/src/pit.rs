//! The Intel 8254 programmable interval timer (ports 0x40–0x43) and the
//! PC's System Control Port B (0x61), which gates channel 2, enables the
//! speaker and shows channel 2's output and the DRAM refresh toggle.
//!
//! Counters are not stepped tick by tick: each channel remembers when its
//! count was loaded (in ticks of the 1.193182 MHz input, derived from the
//! virtual clock) and computes its count and OUT level from the ticks
//! elapsed since. Mode descriptions follow the 82C54 data sheet (order
//! 231244), "Mode Definitions"; read-back and latch commands its "Read-Back
//! Command" and "Counter Latch Command" sections.

use crate::clock::{Clock, PIT_RATE};
use std::ops::RangeInclusive;

/// Channel 0 data port (system timer, IRQ0).
pub const CHANNEL0: u16 = 0x40;
/// Channel 2 data port (speaker).
pub const CHANNEL2: u16 = 0x42;
/// Mode/command register.
pub const CONTROL: u16 = 0x43;
/// System Control Port B.
pub const PORT_B: u16 = 0x61;

/// Port B bit 4 toggles once per DRAM refresh request: channel 1's period
/// as every BIOS programs it (mode 2, count 18: 15.08 µs).
const REFRESH_TICKS: u64 = 18;

/// One counter.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Channel {
    /// Mode 0–5 (6 and 7 alias 2 and 3).
    mode: u8,
    /// Read/write access: 1 LSB, 2 MSB, 3 LSB then MSB.
    access: u8,
    bcd: bool,
    /// The count register as written (0 means the maximum).
    reload: u16,
    /// The first byte of a two-byte count write, when waiting for the second.
    write_lsb: Option<u8>,
    /// Next read returns the MSB (two-byte access, live or latched).
    read_msb: bool,
    /// Latched count (counter latch / read-back).
    latch: Option<u16>,
    /// Latched status byte (read-back).
    status_latch: Option<u8>,
    /// Counting has started (a count was loaded, and the gate allowed it
    /// for the gate-triggered modes).
    running: bool,
    /// A count was written since the last control word.
    armed: bool,
    /// Tick at which the counting element holds `reload` (one tick after
    /// the write or the gate trigger).
    start: u64,
    /// Not counting (gate low, or mode 0 mid-write): the count where it froze.
    frozen: Option<u32>,
    /// The GATE input.
    gate: bool,
    /// OUT level while not running.
    idle_out: bool,
}

impl Channel {
    fn new(gate: bool) -> Channel {
        Channel {
            mode: 0,
            access: 3,
            bcd: false,
            reload: 0,
            write_lsb: None,
            read_msb: false,
            latch: None,
            status_latch: None,
            running: false,
            armed: false,
            start: 0,
            frozen: None,
            gate,
            // High until a mode-0 control word: programming the usual
            // mode 2 or 3 then makes no spurious IRQ0 edge.
            idle_out: true,
        }
    }

    /// The modulus of the counter: 65536 in binary, 10000 in BCD.
    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            65_536
        }
    }

    /// The initial count N as a number (0 encodes the modulus).
    fn n(&self) -> u32 {
        let raw = if self.bcd {
            from_bcd16(self.reload)
        } else {
            self.reload as u32
        };
        if raw == 0 {
            self.modulus()
        } else {
            raw
        }
    }

    /// Ticks elapsed since counting started (0 before the load tick).
    fn elapsed(&self, t: u64) -> u64 {
        t.saturating_sub(self.start)
    }

    /// The counting element's value at tick `t`, as a number.
    fn count(&self, t: u64) -> u32 {
        if !self.running {
            return self.frozen.unwrap_or(self.n()) % self.modulus();
        }
        let n = self.n() as u64;
        let m = self.modulus() as u64;
        let e = self.elapsed(t);
        let c = match self.effective_mode() {
            // Rate generator: N, N-1, … 1, N …
            2 => n - e % n,
            // Square wave: counts down by two through each half.
            3 => {
                let phase = e % n;
                let high = n.div_ceil(2);
                let c = if phase < high {
                    n - 2 * phase
                } else {
                    n - 2 * (phase - high)
                };
                c & !1
            }
            // Modes 0, 1, 4, 5 count on through zero and wrap.
            _ => (n + m - e % m) % m,
        };
        (c % m) as u32
    }

    /// The OUT pin at tick `t`.
    fn out(&self, t: u64) -> bool {
        if !self.running {
            return self.idle_out;
        }
        let n = self.n() as u64;
        let e = self.elapsed(t);
        match self.effective_mode() {
            // Low until terminal count, then high.
            0 | 1 => e >= n,
            // Low for the one tick in which the count is 1.
            2 => e % n != n - 1,
            // High for the first half (the larger for odd N).
            3 => e % n < n.div_ceil(2),
            // A one-tick low strobe at terminal count.
            _ => e != n,
        }
    }

    fn effective_mode(&self) -> u8 {
        if self.mode >= 6 {
            self.mode - 4
        } else {
            self.mode
        }
    }

    /// The first tick after `t` at which OUT rises, if it ever does.
    fn next_rising_edge(&self, t: u64) -> Option<u64> {
        if !self.running {
            return None;
        }
        let n = self.n() as u64;
        let e = self.elapsed(t);
        let at = match self.effective_mode() {
            0 | 1 => (e < n).then_some(n)?,
            // Modes 2 and 3 rise when the count reloads.
            2 | 3 => (e / n + 1) * n,
            _ => (e <= n).then_some(n + 1)?,
        };
        Some(self.start + at)
    }

    /// The status byte of the read-back command.
    fn status(&self, t: u64) -> u8 {
        let mut s = (self.access << 4) | (self.mode << 1) | self.bcd as u8;
        if self.out(t) {
            s |= 0x80;
        }
        // Null count: written but not yet loaded into the counting element.
        if !self.armed || self.running && t < self.start {
            s |= 0x40;
        }
        s
    }

    fn control(&mut self, access: u8, mode: u8, bcd: bool) {
        self.access = access;
        self.mode = mode;
        self.bcd = bcd;
        self.write_lsb = None;
        self.read_msb = false;
        self.latch = None;
        self.running = false;
        self.armed = false;
        self.frozen = None;
        // Mode 0 drives OUT low on the control word; the others high.
        self.idle_out = mode != 0;
    }

    /// A complete count was written at tick `t`.
    fn load(&mut self, value: u16, t: u64) {
        self.reload = value;
        self.armed = true;
        self.frozen = None;
        match self.effective_mode() {
            // Hardware-triggered modes wait for a gate edge; a new count
            // while running takes effect at the next trigger (or, in mode
            // 2/3, the next reload — simplified here to "now").
            1 | 5 => {}
            2 | 3 if self.running => {}
            _ => {
                if self.gate {
                    self.running = true;
                    self.start = t + 1;
                } else {
                    self.frozen = Some(self.n());
                }
            }
        }
    }

    fn set_gate(&mut self, level: bool, t: u64) {
        if level == self.gate {
            return;
        }
        self.gate = level;
        match self.effective_mode() {
            // Gate low pauses the count; high resumes it.
            0 | 4 => {
                if !self.armed {
                    return;
                }
                if level {
                    if let Some(c) = self.frozen.take() {
                        // Resume: pretend the load happened so that the
                        // count continues from `c`.
                        let done = (self.n() + self.modulus() - c) % self.modulus();
                        self.start = (t + 1).saturating_sub(done as u64);
                        self.running = true;
                    }
                } else if self.running {
                    self.frozen = Some(self.count(t));
                    self.idle_out = self.out(t);
                    self.running = false;
                }
            }
            // Rising edge (re)triggers; in 2/3 a low gate stops counting
            // with OUT high.
            _ => {
                if level {
                    if self.armed {
                        self.running = true;
                        self.start = t + 1;
                    }
                } else if matches!(self.effective_mode(), 2 | 3) {
                    self.frozen = Some(self.count(t));
                    self.running = false;
                    self.idle_out = true;
                }
            }
        }
    }
}

/// Decode a BCD count (four digits); invalid digits count as their binary
/// value, which the chip would do too.
fn from_bcd16(v: u16) -> u32 {
    let d = |s: u32| ((v as u32) >> s) & 0xF;
    d(12) * 1000 + d(8) * 100 + d(4) * 10 + d(0)
}

fn to_bcd16(v: u32) -> u16 {
    let v = v % 10_000;
    ((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10)) as u16
}

/// The 8254 with its three channels and Port B.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Pit {
    clock: Clock,
    channels: [Channel; 3],
    /// Port B bits 0–3 as written (gate 2, speaker data, parity/IOCHK enables).
    port_b: u8,
    /// Rising edges of channel 0 seen up to this tick.
    serviced: u64,
}

impl Pit {
    /// A PIT on `clock`, all counters idle. Channel 0 and 1 gates are tied
    /// high on a PC; channel 2's comes from port 0x61 bit 0.
    pub fn new(clock: Clock) -> Pit {
        Pit {
            clock,
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port_b: 0,
            serviced: 0,
        }
    }

    /// Power-on state again.
    pub fn reset(&mut self) {
        *self = Pit::new(self.clock);
    }

    fn tick(&self, now: u64) -> u64 {
        self.clock.ticks(now, PIT_RATE)
    }

    /// The ports the 8254 and Port B decode.
    pub const PORTS: &[RangeInclusive<u16>] = &[0x40..=0x43, PORT_B..=PORT_B];

    /// A byte read at cycle `now`.
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        let t = self.tick(now);
        match port {
            0x40..=0x42 => self.read_channel((port - 0x40) as usize, t),
            PORT_B => {
                let refresh = (t / REFRESH_TICKS) & 1 != 0;
                let out2 = self.channels[2].out(t);
                (self.port_b & 0x0F) | (refresh as u8) << 4 | (out2 as u8) << 5
            }
            // The control register is write-only.
            _ => 0xFF,
        }
    }

    fn read_channel(&mut self, i: usize, t: u64) -> u8 {
        let ch = &mut self.channels[i];
        if let Some(s) = ch.status_latch.take() {
            return s;
        }
        let value = match ch.latch {
            Some(v) => v,
            None => {
                let c = ch.count(t);
                if ch.bcd {
                    to_bcd16(c)
                } else {
                    c as u16
                }
            }
        };
        match ch.access {
            1 => {
                ch.latch = None;
                value as u8
            }
            2 => {
                ch.latch = None;
                (value >> 8) as u8
            }
            _ => {
                if ch.read_msb {
                    ch.read_msb = false;
                    ch.latch = None;
                    (value >> 8) as u8
                } else {
                    ch.read_msb = true;
                    if ch.latch.is_none() {
                        // Keep the MSB consistent with the LSB just read,
                        // as a latch would.
                        ch.latch = Some(value);
                    }
                    value as u8
                }
            }
        }
    }

    /// A byte write at cycle `now`.
    pub fn write(&mut self, port: u16, v: u8, now: u64) {
        let t = self.tick(now);
        match port {
            0x40..=0x42 => self.write_channel((port - 0x40) as usize, v, t),
            CONTROL => self.write_control(v, t),
            PORT_B => {
                self.port_b = v & 0x0F;
                self.channels[2].set_gate(v & 1 != 0, t);
            }
            _ => {}
        }
    }

    fn write_control(&mut self, v: u8, t: u64) {
        let sc = v >> 6;
        if sc == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches
            // status, bits 3–1 select channels 2–0. The first latch of each
            // kind holds until read.
            for i in 0..3 {
                if v & (2 << i) == 0 {
                    continue;
                }
                let ch = &mut self.channels[i];
                if v & 0x10 == 0 && ch.status_latch.is_none() {
                    ch.status_latch = Some(ch.status(t));
                }
                if v & 0x20 == 0 && ch.latch.is_none() {
                    let c = ch.count(t);
                    ch.latch = Some(if ch.bcd { to_bcd16(c) } else { c as u16 });
                    ch.read_msb = false;
                }
            }
            return;
        }
        let ch = &mut self.channels[sc as usize];
        let access = (v >> 4) & 3;
        if access == 0 {
            // Counter latch command.
            if ch.latch.is_none() {
                let c = ch.count(t);
                ch.latch = Some(if ch.bcd { to_bcd16(c) } else { c as u16 });
                ch.read_msb = false;
            }
            return;
        }
        ch.control(access, (v >> 1) & 7, v & 1 != 0);
    }

    fn write_channel(&mut self, i: usize, v: u8, t: u64) {
        let ch = &mut self.channels[i];
        let value = match ch.access {
            1 => v as u16,
            2 => (v as u16) << 8,
            _ => match ch.write_lsb.take() {
                None => {
                    ch.write_lsb = Some(v);
                    // Mode 0: writing the first byte stops the count.
                    if ch.mode == 0 && ch.running {
                        ch.frozen = Some(ch.count(t));
                        ch.running = false;
                        ch.idle_out = false;
                    }
                    return;
                }
                Some(lsb) => (v as u16) << 8 | lsb as u16,
            },
        };
        ch.load(value, t);
        if i == 0 {
            // Edges before now are history for the new count.
            self.serviced = t;
        }
    }

    /// The cycle at which channel 0's OUT next rises (IRQ0), if it will.
    pub fn next_irq0(&self, now: u64) -> Option<u64> {
        let t = self.tick(now).max(self.serviced);
        self.channels[0]
            .next_rising_edge(t)
            .map(|tick| self.clock.cycle_of_tick(tick, PIT_RATE))
    }

    /// Bring channel 0 up to cycle `now`: whether OUT rose since the last
    /// call (the PIC latches one request however many edges there were).
    pub fn take_irq0_edge(&mut self, now: u64) -> bool {
        let t = self.tick(now);
        if t <= self.serviced {
            return false;
        }
        let rose = self.channels[0]
            .next_rising_edge(self.serviced)
            .is_some_and(|edge| edge <= t);
        self.serviced = t;
        rose
    }

    /// Channel 0's OUT level at cycle `now`.
    pub fn out0(&self, now: u64) -> bool {
        self.channels[0].out(self.tick(now))
    }

    /// Whether the speaker is sounding: channel 2 gated and speaker data on.
    pub fn speaker_on(&self) -> bool {
        self.port_b & 3 == 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycles_per_tick() -> f64 {
        200e6 / 1_193_181.818
    }

    fn pit() -> Pit {
        Pit::new(Clock::default())
    }

    #[test]
    fn mode2_irq0_period_in_cycles() {
        let mut p = pit();
        p.write(0x43, 0x34, 0); // ch0, lo/hi, mode 2, binary
        p.write(0x40, 0x00, 0);
        p.write(0x40, 0x10, 0); // N = 4096
        let first = p.next_irq0(0).unwrap();
        // Loaded on the tick after the write, then N ticks.
        let expect = p.clock.cycle_of_tick(4097, PIT_RATE);
        assert_eq!(first, expect);
        assert!(!p.take_irq0_edge(first - 1));
        assert!(p.take_irq0_edge(first));
        let second = p.next_irq0(first).unwrap();
        let period = second - first;
        let want = 4096.0 * cycles_per_tick();
        assert!((period as f64 - want).abs() <= 1.0, "{period} vs {want}");
        // Ten periods later: exactly ten edges' worth of deadlines.
        let mut at = second;
        for _ in 0..10 {
            assert!(p.take_irq0_edge(at));
            at = p.next_irq0(at).unwrap();
        }
        let ticks = p.clock.ticks(at, PIT_RATE);
        assert_eq!(ticks, 1 + 12 * 4096);
    }

    #[test]
    fn counter_reads_count_down_and_latch_holds() {
        let mut p = pit();
        p.write(0x43, 0x34, 0);
        p.write(0x40, 0xE8, 0);
        p.write(0x40, 0x03, 0); // N = 1000
        let clock = p.clock;
        let at = |ticks: u64| clock.cycle_of_tick(ticks, PIT_RATE);
        let c100 = at(101);
        let lo = p.read(0x40, c100) as u16;
        let hi = p.read(0x40, c100 + 1000) as u16; // MSB matches the LSB read
        assert_eq!(hi << 8 | lo, 900);
        p.write(0x43, 0x00, at(201)); // latch ch0
        let later = at(700);
        let lo = p.read(0x40, later) as u16;
        let hi = p.read(0x40, later) as u16;
        assert_eq!(hi << 8 | lo, 800, "latched, not live");
        let lo = p.read(0x40, later) as u16;
        let hi = p.read(0x40, later) as u16;
        assert_eq!(hi << 8 | lo, 301, "live again");
    }

    #[test]
    fn mode0_one_shot_and_readback_status() {
        let mut p = pit();
        p.write(0x43, 0x30, 0); // ch0 lo/hi mode 0
        assert!(!p.out0(0), "mode 0: OUT low after the control word");
        p.write(0x40, 100, 0);
        p.write(0x43, 0xE2, 1); // read-back status of ch0
        assert_eq!(p.read(0x40, 1), 0x70, "OUT low, null count, lo/hi mode 0");
        p.write(0x40, 0, 2);
        let edge = p.next_irq0(2).unwrap();
        assert_eq!(p.clock.ticks(edge, PIT_RATE), 101);
        assert!(p.take_irq0_edge(edge));
        assert!(p.out0(edge));
        assert_eq!(p.next_irq0(edge), None, "one shot");
        p.write(0x43, 0xE2, edge);
        assert_eq!(p.read(0x40, edge) & 0xC0, 0x80, "OUT high, count loaded");
    }

    #[test]
    fn bcd_counts() {
        let mut p = pit();
        p.write(0x43, 0x35, 0); // ch0 lo/hi mode 2 BCD
        p.write(0x40, 0x00, 0);
        p.write(0x40, 0x10, 0); // 1000 in BCD
        let c = p.clock.cycle_of_tick(1 + 1, PIT_RATE);
        let lo = p.read(0x40, c);
        let hi = p.read(0x40, c);
        assert_eq!((hi, lo), (0x09, 0x99));
        let edge = p.next_irq0(0).unwrap();
        assert_eq!(p.clock.ticks(edge, PIT_RATE), 1001);
    }

    #[test]
    fn channel2_gated_by_port_b() {
        let mut p = pit();
        p.write(0x43, 0xB0, 0); // ch2 lo/hi mode 0
        p.write(0x42, 50, 0);
        p.write(0x42, 0, 0);
        let late = p.clock.cycle_of_tick(1000, PIT_RATE);
        assert_eq!(p.read(0x61, late) & 0x20, 0, "gate low: not counting");
        p.write(0x61, 0x01, late);
        let t0 = p.clock.ticks(late, PIT_RATE);
        let before = p.clock.cycle_of_tick(t0 + 50, PIT_RATE);
        let after = p.clock.cycle_of_tick(t0 + 51, PIT_RATE);
        assert_eq!(p.read(0x61, before) & 0x21, 0x01);
        assert_eq!(p.read(0x61, after) & 0x20, 0x20, "OUT2 after N+1 ticks");
        assert!(!p.speaker_on());
        p.write(0x61, 0x03, after);
        assert!(p.speaker_on());
    }

    #[test]
    fn refresh_bit_toggles_with_virtual_time() {
        let mut p = pit();
        let clock = p.clock;
        let c = |t: u64| clock.cycle_of_tick(t, PIT_RATE);
        let (a, b, d) = (c(0), c(18), c(36));
        assert_eq!(p.read(0x61, a) & 0x10, 0);
        assert_eq!(p.read(0x61, b) & 0x10, 0x10);
        assert_eq!(p.read(0x61, d) & 0x10, 0);
    }

    #[test]
    fn mode3_square_wave() {
        let mut p = pit();
        p.write(0x43, 0x36, 0); // ch0 mode 3
        p.write(0x40, 10, 0);
        p.write(0x40, 0, 0);
        let clock = p.clock;
        let c = |t: u64| clock.cycle_of_tick(t, PIT_RATE);
        let (h, l) = (c(1 + 4), c(1 + 5));
        assert!(p.out0(h));
        assert!(!p.out0(l));
        assert_eq!(p.clock.ticks(p.next_irq0(0).unwrap(), PIT_RATE), 11);
    }

    #[test]
    fn mode4_strobe_and_lsb_only_access() {
        let mut p = pit();
        p.write(0x43, 0x18, 0); // ch0 LSB only, mode 4
        p.write(0x40, 20, 0);
        let edge = p.next_irq0(0).unwrap();
        assert_eq!(p.clock.ticks(edge, PIT_RATE), 22);
        let strobe = p.clock.cycle_of_tick(21, PIT_RATE);
        assert!(!p.out0(strobe));
        assert!(p.out0(edge));
    }
}
