//! Virtual time: the CPU's cycle counter is the one clock of the machine.
//!
//! Every chip that keeps time (the 8254's 1.193182 MHz input, the RTC's
//! 32.768 kHz crystal, the UART's 1.8432 MHz baud clock) derives its own tick
//! count from the cycle count through [`Clock`], with exact integer
//! arithmetic, so no rounding drift builds up and a run is reproducible bit
//! for bit. No device ever reads the host clock.
//!
//! [`Scheduler`] holds one deadline per timed device (a fixed array, so the
//! hot path neither allocates nor searches a heap): the machine runs the CPU
//! up to [`Scheduler::next`] and then lets the board service whatever is due.

/// Default nominal CPU frequency: 200 MHz (a Pentium Pro/II-class part).
pub const DEFAULT_CPU_HZ: u64 = 200_000_000;

/// A rational frequency `num / den` Hz.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Numerator (Hz × `den`).
    pub num: u64,
    /// Denominator.
    pub den: u64,
}

/// The 8254's input clock: 105/88 MHz = 1.193181818… MHz (the NTSC colour
/// burst 14.31818 MHz divided by 12, as on the IBM PC).
pub const PIT_RATE: Rate = Rate {
    num: 105_000_000,
    den: 88,
};
/// The MC146818's time base (32.768 kHz crystal, DV = 010).
pub const RTC_RATE: Rate = Rate {
    num: 32_768,
    den: 1,
};
/// The 16550's reference clock (1.8432 MHz crystal; baud = this / 16 / divisor).
pub const UART_RATE: Rate = Rate {
    num: 1_843_200,
    den: 1,
};

/// Conversions between CPU cycles and device ticks.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    cpu_hz: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(DEFAULT_CPU_HZ)
    }
}

impl Clock {
    /// A clock for a CPU running at `cpu_hz` (at least 1 MHz; smaller
    /// values are raised to it so the device clocks stay slower than the
    /// CPU's and every device tick lands on a distinct cycle).
    pub fn new(cpu_hz: u64) -> Clock {
        Clock {
            cpu_hz: cpu_hz.max(1_000_000),
        }
    }

    /// The nominal CPU frequency in Hz.
    pub fn cpu_hz(&self) -> u64 {
        self.cpu_hz
    }

    /// Whole ticks of a `rate` clock that have elapsed at cycle `cycles`
    /// (both clocks start together at cycle 0).
    #[inline]
    pub fn ticks(&self, cycles: u64, rate: Rate) -> u64 {
        let t = cycles as u128 * rate.num as u128 / (rate.den as u128 * self.cpu_hz as u128);
        t.min(u64::MAX as u128) as u64
    }

    /// The first cycle at which tick `ticks` of a `rate` clock has
    /// happened: the inverse of [`Clock::ticks`] (rounded up).
    #[inline]
    pub fn cycle_of_tick(&self, ticks: u64, rate: Rate) -> u64 {
        let n = ticks as u128 * rate.den as u128 * self.cpu_hz as u128;
        let c = n.div_ceil(rate.num as u128);
        c.min(u64::MAX as u128) as u64
    }

    /// Cycles in `ns` nanoseconds (rounded up).
    #[inline]
    pub fn ns_to_cycles(&self, ns: u64) -> u64 {
        let c = (ns as u128 * self.cpu_hz as u128).div_ceil(1_000_000_000);
        c.min(u64::MAX as u128) as u64
    }

    /// Nanoseconds at cycle `cycles` (rounded down).
    #[inline]
    pub fn cycles_to_ns(&self, cycles: u64) -> u64 {
        let ns = cycles as u128 * 1_000_000_000 / self.cpu_hz as u128;
        ns.min(u64::MAX as u128) as u64
    }
}

/// The devices that schedule timed events.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// 8254 channel 0 output edges (IRQ0).
    Pit = 0,
    /// RTC periodic, alarm and update interrupts (IRQ8).
    Rtc = 1,
    /// COM1 receive timeout / host input polling.
    Com1 = 2,
    /// COM2 receive timeout / host input polling.
    Com2 = 3,
}

const TIMERS: usize = 4;

/// One deadline (an absolute cycle count) per [`Timer`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Scheduler {
    deadlines: [u64; TIMERS],
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            deadlines: [u64::MAX; TIMERS],
        }
    }
}

impl Scheduler {
    /// Set (or with `None`, cancel) `timer`'s deadline.
    #[inline]
    pub fn set(&mut self, timer: Timer, at: Option<u64>) {
        self.deadlines[timer as usize] = at.unwrap_or(u64::MAX);
    }

    /// `timer`'s deadline, if set.
    pub fn get(&self, timer: Timer) -> Option<u64> {
        let d = self.deadlines[timer as usize];
        (d != u64::MAX).then_some(d)
    }

    /// Whether `timer`'s deadline has come at cycle `now`.
    #[inline]
    pub fn due(&self, timer: Timer, now: u64) -> bool {
        self.deadlines[timer as usize] <= now
    }

    /// The earliest deadline of all.
    #[inline]
    pub fn next(&self) -> Option<u64> {
        let d = self.deadlines.iter().copied().min().unwrap_or(u64::MAX);
        (d != u64::MAX).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pit_ticks_round_trip() {
        let c = Clock::default();
        // One second of CPU time is 1_193_181 whole PIT ticks.
        assert_eq!(c.ticks(DEFAULT_CPU_HZ, PIT_RATE), 1_193_181);
        for t in [0u64, 1, 2, 17, 65_536, 1_193_182, 1 << 40] {
            let cyc = c.cycle_of_tick(t, PIT_RATE);
            assert_eq!(c.ticks(cyc, PIT_RATE), t, "tick {t}");
            if cyc > 0 {
                assert_eq!(
                    c.ticks(cyc - 1, PIT_RATE),
                    t - 1,
                    "tick {t} is first at {cyc}"
                );
            }
        }
    }

    #[test]
    fn scheduler_takes_the_minimum() {
        let mut s = Scheduler::default();
        assert_eq!(s.next(), None);
        s.set(Timer::Rtc, Some(500));
        s.set(Timer::Pit, Some(300));
        assert_eq!(s.next(), Some(300));
        assert!(s.due(Timer::Pit, 300));
        assert!(!s.due(Timer::Rtc, 300));
        s.set(Timer::Pit, None);
        assert_eq!(s.next(), Some(500));
        assert_eq!(s.get(Timer::Pit), None);
    }

    #[test]
    fn tiny_frequencies_are_raised() {
        assert_eq!(Clock::new(5).cpu_hz(), 1_000_000);
        assert_eq!(Clock::new(1_000_000).ns_to_cycles(1_500), 2);
    }
}
