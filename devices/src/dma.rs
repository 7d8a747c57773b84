//! The AT's ISA DMA: two 8237A controllers and the page registers.
//!
//! Controller 1 (ports 0x00–0x0F) moves bytes on channels 0–3; controller
//! 2 (0xC0–0xDF, registers on even addresses) has channels 4–7, channel 4
//! being the cascade from controller 1. The page registers (0x81–0x8F)
//! give each channel bits 16–23 of its address: the 8237 itself counts
//! only 16 bits, so a transfer wraps inside its 64 KiB page, as on a PC.
//!
//! The board has no memory of its own: a device that wants a transfer
//! (the floppy controller on channel 2) is served by [`Dma::transfer`]
//! with the guest's memory, which the machine hands in between
//! instruction slices (see [`crate::Pc::run_dma`]).

use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// Guest physical memory as a DMA controller reaches it.
pub trait DmaMemory {
    /// The byte at physical address `addr` (open bus: 0xFF).
    fn dma_read(&mut self, addr: u32) -> u8;
    /// Store a byte at physical address `addr` (ROM and holes drop it).
    fn dma_write(&mut self, addr: u32, v: u8);
}

impl DmaMemory for ringside_cpu::PhysMem {
    fn dma_read(&mut self, addr: u32) -> u8 {
        self.read_u8(addr).unwrap_or(0xFF)
    }
    fn dma_write(&mut self, addr: u32, v: u8) {
        // A store into cached code is reported like the CPU's own.
        self.write_u8(addr, v);
    }
}

/// Mode register: transfer type (bits 2–3).
const MODE_TYPE: u8 = 0x0C;
const TYPE_WRITE: u8 = 0x04; // device → memory
const TYPE_READ: u8 = 0x08; // memory → device
const MODE_AUTOINIT: u8 = 0x10;
const MODE_DECREMENT: u8 = 0x20;
/// Command register: controller disable.
const CMD_DISABLE: u8 = 0x04;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Channel {
    base_address: u16,
    base_count: u16,
    address: u16,
    count: u16,
    mode: u8,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Controller {
    channels: [Channel; 4],
    /// The byte pointer flip-flop: false = low byte next.
    high_byte: bool,
    /// Mask bits 0–3 (set: channel disabled).
    mask: u8,
    /// Terminal count reached (bits 0–3), cleared by reading the status.
    tc: u8,
    /// Software requests (bits 0–3).
    request: u8,
    command: u8,
    temp: u8,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            channels: [Channel::default(); 4],
            high_byte: false,
            mask: 0x0F,
            tc: 0,
            request: 0,
            command: 0,
            temp: 0,
        }
    }
}

impl Controller {
    fn read(&mut self, reg: u8) -> u8 {
        match reg {
            0..=7 => {
                let ch = &self.channels[(reg >> 1) as usize];
                let v = if reg & 1 == 0 { ch.address } else { ch.count };
                let b = if self.high_byte { v >> 8 } else { v };
                self.high_byte = !self.high_byte;
                b as u8
            }
            8 => {
                let v = self.tc | self.request << 4;
                self.tc = 0;
                v
            }
            0xD => self.temp,
            0xF => 0xF0 | self.mask,
            _ => 0xFF,
        }
    }

    fn write(&mut self, reg: u8, v: u8) {
        match reg {
            0..=7 => {
                let ch = &mut self.channels[(reg >> 1) as usize];
                let (base, cur) = if reg & 1 == 0 {
                    (&mut ch.base_address, &mut ch.address)
                } else {
                    (&mut ch.base_count, &mut ch.count)
                };
                *base = if self.high_byte {
                    (*base & 0x00FF) | (v as u16) << 8
                } else {
                    (*base & 0xFF00) | v as u16
                };
                *cur = *base;
                self.high_byte = !self.high_byte;
            }
            8 => self.command = v,
            9 => {
                let bit = 1 << (v & 3);
                if v & 4 != 0 {
                    self.request |= bit;
                } else {
                    self.request &= !bit;
                }
            }
            0xA => {
                let bit = 1 << (v & 3);
                if v & 4 != 0 {
                    self.mask |= bit;
                } else {
                    self.mask &= !bit;
                }
            }
            0xB => self.channels[(v & 3) as usize].mode = v & !3,
            0xC => self.high_byte = false,
            0xD => *self = Controller::default(),
            0xE => self.mask = 0,
            0xF => self.mask = v & 0x0F,
            _ => {}
        }
    }
}

/// Both 8237As and the page registers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Dma {
    controllers: [Controller; 2],
    /// Ports 0x80–0x8F (0x80 itself is the POST port, not kept here).
    pages: [u8; 16],
}

/// The page register port of each channel 0–7.
const PAGE_PORT: [u16; 8] = [0x87, 0x83, 0x81, 0x82, 0x8F, 0x8B, 0x89, 0x8A];

impl Dma {
    /// Power-on state: every channel masked.
    pub fn new() -> Dma {
        Dma::default()
    }

    /// The RESET line: as a master clear of both controllers.
    pub fn reset(&mut self) {
        self.controllers = Default::default();
    }

    /// The DMA controllers' and page registers' ports.
    pub const PORTS: &[RangeInclusive<u16>] = &[0x00..=0x0F, 0xC0..=0xDF, 0x81..=0x8F];

    fn decode(port: u16) -> Option<(usize, u8)> {
        match port {
            0x00..=0x0F => Some((0, port as u8)),
            0xC0..=0xDF => Some((1, ((port - 0xC0) >> 1) as u8)),
            _ => None,
        }
    }

    /// A byte read from one of our ports.
    pub fn read(&mut self, port: u16) -> u8 {
        match Dma::decode(port) {
            Some((c, reg)) => self.controllers[c].read(reg),
            None => self.pages[(port & 0xF) as usize],
        }
    }

    /// A byte written to one of our ports.
    pub fn write(&mut self, port: u16, v: u8) {
        match Dma::decode(port) {
            Some((c, reg)) => self.controllers[c].write(reg, v),
            None => self.pages[(port & 0xF) as usize] = v,
        }
    }

    /// Whether channel `ch` (0–3) would serve a request now: unmasked on
    /// an enabled controller.
    pub fn channel_ready(&self, ch: usize) -> bool {
        let c = &self.controllers[0];
        ch < 4 && c.mask & (1 << ch) == 0 && c.command & CMD_DISABLE == 0
    }

    /// The physical address channel `ch` (0–3) will use next.
    pub fn address(&self, ch: usize) -> u32 {
        let page = self.pages[(PAGE_PORT[ch & 3] & 0xF) as usize] as u32;
        page << 16 | self.controllers[0].channels[ch & 3].address as u32
    }

    /// Bytes channel `ch` (0–3) will still move before terminal count.
    pub fn remaining(&self, ch: usize) -> u32 {
        self.controllers[0].channels[ch & 3].count as u32 + 1
    }

    /// Serve a device's request on channel `ch` (0–3, 8-bit) for up to
    /// `data.len()` bytes: a *write* transfer stores `data` into memory, a
    /// *read* transfer fills `data` from memory, a *verify* moves nothing
    /// but counts. Stops early at terminal count (which masks the channel
    /// unless it auto-initializes). Returns the bytes moved and whether
    /// terminal count was reached. A masked channel moves nothing.
    pub fn transfer(
        &mut self,
        ch: usize,
        mem: &mut dyn DmaMemory,
        data: &mut [u8],
    ) -> (usize, bool) {
        if !self.channel_ready(ch) {
            return (0, false);
        }
        let page = (self.pages[(PAGE_PORT[ch] & 0xF) as usize] as u32) << 16;
        let c = &mut self.controllers[0];
        let chan = &mut c.channels[ch];
        let kind = chan.mode & MODE_TYPE;
        let mut moved = 0;
        let mut tc = false;
        for b in data.iter_mut() {
            let addr = page | chan.address as u32;
            match kind {
                TYPE_WRITE => mem.dma_write(addr, *b),
                TYPE_READ => *b = mem.dma_read(addr),
                _ => {}
            }
            moved += 1;
            chan.address = if chan.mode & MODE_DECREMENT != 0 {
                chan.address.wrapping_sub(1)
            } else {
                chan.address.wrapping_add(1)
            };
            let (count, wrapped) = chan.count.overflowing_sub(1);
            chan.count = count;
            if wrapped {
                tc = true;
                break;
            }
        }
        if tc {
            c.tc |= 1 << ch;
            c.request &= !(1 << ch);
            if chan.mode & MODE_AUTOINIT != 0 {
                chan.address = chan.base_address;
                chan.count = chan.base_count;
            } else {
                c.mask |= 1 << ch;
            }
        }
        (moved, tc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat 1 MiB of memory.
    pub(crate) struct Flat(pub Vec<u8>);
    impl DmaMemory for Flat {
        fn dma_read(&mut self, addr: u32) -> u8 {
            self.0.get(addr as usize).copied().unwrap_or(0xFF)
        }
        fn dma_write(&mut self, addr: u32, v: u8) {
            if let Some(b) = self.0.get_mut(addr as usize) {
                *b = v;
            }
        }
    }

    fn program(d: &mut Dma, addr: u32, count: u16, mode: u8) {
        d.write(0x0A, 0x06);
        d.write(0x0C, 0);
        d.write(0x04, addr as u8);
        d.write(0x04, (addr >> 8) as u8);
        d.write(0x0C, 0);
        d.write(0x05, count as u8);
        d.write(0x05, (count >> 8) as u8);
        d.write(0x0B, mode);
        d.write(0x81, (addr >> 16) as u8);
        d.write(0x0A, 0x02);
    }

    #[test]
    fn channel_2_writes_memory_until_terminal_count() {
        let mut d = Dma::new();
        let mut mem = Flat(vec![0; 0x20000]);
        assert!(!d.channel_ready(2), "masked at power-on");
        program(&mut d, 0x1_2340, 9, 0x46);
        assert!(d.channel_ready(2));
        assert_eq!(d.address(2), 0x1_2340);
        assert_eq!(d.remaining(2), 10);
        let mut data = [0xA5u8; 16];
        assert_eq!(d.transfer(2, &mut mem, &mut data), (10, true));
        assert!(mem.0[0x1_2340..0x1_234A].iter().all(|&b| b == 0xA5));
        assert_eq!(mem.0[0x1_234A], 0);
        assert!(!d.channel_ready(2), "TC masks the channel");
        assert_eq!(d.read(0x08) & 0x04, 0x04, "TC in the status");
        assert_eq!(d.read(0x08) & 0x04, 0, "status read clears it");
        // Current address and count read back through the flip-flop.
        d.write(0x0C, 0);
        assert_eq!((d.read(0x04), d.read(0x04)), (0x4A, 0x23));
        assert_eq!((d.read(0x05), d.read(0x05)), (0xFF, 0xFF));
    }

    #[test]
    fn read_transfers_fill_the_buffer_and_wrap_in_the_page() {
        let mut d = Dma::new();
        let mut mem = Flat(vec![0; 0x20000]);
        mem.0[0x1_FFFF] = 7;
        mem.0[0x1_0000] = 8;
        program(&mut d, 0x1_FFFF, 1, 0x4A);
        let mut data = [0u8; 2];
        assert_eq!(d.transfer(2, &mut mem, &mut data), (2, true));
        assert_eq!(data, [7, 8], "the 8237 wraps at 64 KiB, the page stays");
    }

    #[test]
    fn autoinit_reloads_and_master_clear_masks() {
        let mut d = Dma::new();
        let mut mem = Flat(vec![0; 0x1000]);
        program(&mut d, 0x100, 3, 0x56);
        let mut data = [1u8; 8];
        assert_eq!(d.transfer(2, &mut mem, &mut data), (4, true));
        assert!(d.channel_ready(2), "auto-initialize keeps it unmasked");
        assert_eq!(d.address(2), 0x100);
        d.write(0x0D, 0);
        assert!(!d.channel_ready(2));
        assert_eq!(d.transfer(2, &mut mem, &mut data), (0, false));
        // Second controller: registers on even ports; mask read-back.
        d.write(0xD4, 0x00);
        assert_eq!(d.read(0xDE) & 0x0F, 0x0E, "channel 4 unmasked");
    }
}
