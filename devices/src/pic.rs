//! The two cascaded Intel 8259A programmable interrupt controllers of the
//! PC/AT (master at 0x20/0x21, slave at 0xA0/0xA1 on the master's IR2), plus
//! the PIIX-style edge/level control registers (ELCR, 0x4D0/0x4D1).
//!
//! Section numbers refer to the Intel 8259A data sheet (order 231468):
//! initialization command words ICW1–ICW4 ("Initialization Command Words"),
//! operation command words OCW1–OCW3 ("Operation Command Words"), priority
//! rotation, special mask mode, poll command, and the spurious-IR7 rule
//! ("Interrupt Sequence": if no request is present at the first INTA pulse
//! the 8259A answers with IR7's vector without setting its ISR bit).

mod pc_init;
pub use pc_init::PC_PIC_INIT;
use std::ops::RangeInclusive;

/// Master command/status port.
pub const MASTER_CMD: u16 = 0x20;
/// Master data (mask) port.
pub const MASTER_DATA: u16 = 0x21;
/// Slave command/status port.
pub const SLAVE_CMD: u16 = 0xA0;
/// Slave data (mask) port.
pub const SLAVE_DATA: u16 = 0xA1;
/// ELCR for IRQ0–7.
pub const ELCR_MASTER: u16 = 0x4D0;
/// ELCR for IRQ8–15.
pub const ELCR_SLAVE: u16 = 0x4D1;

/// The master input the slave's INT output drives.
const CASCADE_IRQ: u8 = 2;

/// Where the initialization sequence stands.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    /// Operating: odd-port writes are OCW1.
    Ready,
    /// ICW1 seen; next odd-port write is ICW2.
    Icw2,
    /// Next odd-port write is ICW3 (cascade mode).
    Icw3,
    /// Next odd-port write is ICW4 (ICW1.IC4 was set).
    Icw4,
}

/// One 8259A.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Pic8259 {
    /// Interrupt request register: edge-triggered requests latched.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// Current level of each IR input (for edge detection and level mode).
    lines: u8,
    /// Edge/level control (ELCR); 1 = level-triggered.
    elcr: u8,
    /// Bits of `elcr` that exist on this chip.
    elcr_mask: u8,
    /// ICW1.LTIM: every input level-triggered.
    ltim: bool,
    /// Vector of IR0 (ICW2 with the low three bits clear).
    vector_base: u8,
    init: Init,
    icw4_needed: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    /// OCW3 RR/RIS: reads of the command port return ISR (else IRR).
    read_isr: bool,
    /// OCW3 P: the next command-port read is a poll.
    poll: bool,
    /// The IR level with the lowest priority (7 after ICW1; rotation moves it).
    lowest_priority: u8,
}

impl Pic8259 {
    fn new(elcr_mask: u8) -> Pic8259 {
        Pic8259 {
            irr: 0,
            isr: 0,
            // QEMU and Bochs differ here; the data sheet leaves it undefined.
            // Unmasked as on QEMU, so ROMs behave alike on both.
            imr: 0,
            lines: 0,
            elcr: 0,
            elcr_mask,
            ltim: false,
            vector_base: 0,
            init: Init::Ready,
            icw4_needed: false,
            single: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            special_mask: false,
            read_isr: false,
            poll: false,
            lowest_priority: 7,
        }
    }

    /// Inputs treated as level-triggered.
    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xFF
        } else {
            self.elcr
        }
    }

    /// Requests as the priority resolver sees them: latched edges plus
    /// inputs held high in level mode.
    fn requests(&self) -> u8 {
        let level = self.level_mask();
        (self.irr & !level) | (self.lines & level)
    }

    /// Drive input `ir` to `level`.
    fn set_line(&mut self, ir: u8, level: bool) {
        let bit = 1u8 << ir;
        if level {
            if self.lines & bit == 0 {
                // Rising edge: latched in IRR (edge mode; level mode reads
                // the line directly).
                self.irr |= bit;
            }
            self.lines |= bit;
        } else {
            self.lines &= !bit;
            if self.level_mask() & bit != 0 {
                self.irr &= !bit;
            }
        }
    }

    /// IR levels from highest to lowest priority.
    fn priority_order(&self) -> impl Iterator<Item = u8> {
        let first = (self.lowest_priority + 1) & 7;
        (0..8).map(move |i| (first + i) & 7)
    }

    /// The highest-priority unmasked request, if any.
    fn highest_request(&self) -> Option<u8> {
        let pending = self.requests() & !self.imr;
        self.priority_order().find(|&ir| pending & (1 << ir) != 0)
    }

    /// The highest-priority in-service level that blocks new requests.
    /// Special mask mode: masked levels do not block. Special fully nested
    /// mode (master): the cascade level does not block the slave.
    fn highest_in_service(&self, is_master: bool) -> Option<u8> {
        let mut isr = self.isr;
        if self.special_mask {
            isr &= !self.imr;
        }
        if is_master && self.special_fully_nested {
            isr &= !(1 << CASCADE_IRQ);
        }
        self.priority_order().find(|&ir| isr & (1 << ir) != 0)
    }

    /// The request that would interrupt now: higher priority than anything
    /// in service.
    fn deliverable(&self, is_master: bool) -> Option<u8> {
        let req = self.highest_request()?;
        match self.highest_in_service(is_master) {
            None => Some(req),
            Some(s) => {
                let rank = |ir: u8| (ir.wrapping_sub(self.lowest_priority + 1)) & 7;
                // Same level may re-enter only in special fully nested mode
                // (a second slave request while IR2 is in service).
                if rank(req) < rank(s) {
                    Some(req)
                } else {
                    None
                }
            }
        }
    }

    /// Accept `ir` (INTA or poll): set its ISR bit (unless auto-EOI) and
    /// clear its edge latch.
    fn accept(&mut self, ir: u8) {
        let bit = 1 << ir;
        self.irr &= !bit;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest_priority = ir;
            }
        } else {
            self.isr |= bit;
        }
    }

    fn highest_isr_level(&self) -> Option<u8> {
        self.priority_order().find(|&ir| self.isr & (1 << ir) != 0)
    }

    fn write_command(&mut self, v: u8) {
        if v & 0x10 != 0 {
            // ICW1. The edge-sense latches are reset, IMR cleared, IR7 the
            // lowest priority, special mask mode off, read IRR.
            self.icw4_needed = v & 0x01 != 0;
            self.single = v & 0x02 != 0;
            self.ltim = v & 0x08 != 0;
            self.irr = 0;
            self.isr = 0;
            self.imr = 0;
            self.lowest_priority = 7;
            self.special_mask = false;
            self.special_fully_nested = false;
            self.read_isr = false;
            self.poll = false;
            self.auto_eoi = false;
            self.rotate_on_auto_eoi = false;
            self.init = Init::Icw2;
            return;
        }
        if v & 0x08 == 0 {
            // OCW2: R SL EOI | L2 L1 L0.
            let level = v & 7;
            match v >> 5 {
                0b001 => {
                    if let Some(ir) = self.highest_isr_level() {
                        self.isr &= !(1 << ir);
                    }
                }
                0b011 => self.isr &= !(1 << level),
                0b101 => {
                    if let Some(ir) = self.highest_isr_level() {
                        self.isr &= !(1 << ir);
                        self.lowest_priority = ir;
                    }
                }
                0b100 => self.rotate_on_auto_eoi = true,
                0b000 => self.rotate_on_auto_eoi = false,
                0b111 => {
                    self.isr &= !(1 << level);
                    self.lowest_priority = level;
                }
                0b110 => self.lowest_priority = level,
                _ => {} // 010: no operation
            }
            return;
        }
        // OCW3: ESMM SMM | 0 1 | P RR RIS.
        if v & 0x40 != 0 {
            self.special_mask = v & 0x20 != 0;
        }
        if v & 0x04 != 0 {
            self.poll = true;
        }
        if v & 0x02 != 0 {
            self.read_isr = v & 0x01 != 0;
        }
    }

    fn write_data(&mut self, v: u8) {
        match self.init {
            Init::Ready => self.imr = v,
            Init::Icw2 => {
                // In 8086 mode T7–T3 come from ICW2; the low bits are the level.
                self.vector_base = v & 0xF8;
                self.init = if !self.single {
                    Init::Icw3
                } else if self.icw4_needed {
                    Init::Icw4
                } else {
                    Init::Ready
                };
            }
            Init::Icw3 => {
                // Master: which inputs have slaves; slave: its ID. The PC's
                // wiring is fixed (slave on IR2), so the value is only logged.
                log::debug!("8259 ICW3 {v:#04x}");
                self.init = if self.icw4_needed {
                    Init::Icw4
                } else {
                    Init::Ready
                };
            }
            Init::Icw4 => {
                if v & 0x01 == 0 {
                    log::debug!("8259 ICW4 selects MCS-80/85 mode, which a PC cannot use");
                }
                self.auto_eoi = v & 0x02 != 0;
                self.special_fully_nested = v & 0x10 != 0;
                self.init = Init::Ready;
            }
        }
    }

    fn read_data(&self) -> u8 {
        self.imr
    }
}

/// The PC/AT's pair of 8259As.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct PicPair {
    /// IRQ0–7.
    master: Pic8259,
    /// IRQ8–15, cascaded on the master's IR2.
    slave: Pic8259,
}

impl Default for PicPair {
    fn default() -> Self {
        PicPair::new()
    }
}

impl PicPair {
    /// Both chips in their power-on state (uninitialised, unmasked).
    pub fn new() -> PicPair {
        // ELCR bits that exist: IRQ0–2 and IRQ8/IRQ13 are always edge.
        PicPair {
            master: Pic8259::new(0xF8),
            slave: Pic8259::new(0xDE),
        }
    }

    /// Back to the power-on state; input levels are kept (they belong to
    /// the devices driving them).
    pub fn reset(&mut self) {
        let (ml, sl) = (self.master.lines, self.slave.lines);
        *self = PicPair::new();
        self.master.lines = ml;
        self.slave.lines = sl;
    }

    /// Drive IRQ `irq` (0–15) to `level`. Edge-triggered inputs latch a
    /// request on a rising edge; level-triggered ones request while high.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        if irq < 8 {
            if irq != CASCADE_IRQ {
                self.master.set_line(irq, level);
            }
        } else if irq < 16 {
            self.slave.set_line(irq - 8, level);
        }
        self.update_cascade();
    }

    /// Pulse IRQ `irq` low then high: an edge even if the line was high.
    pub fn pulse_irq(&mut self, irq: u8) {
        self.set_irq(irq, false);
        self.set_irq(irq, true);
    }

    /// The slave's INT output is the master's IR2 input.
    fn update_cascade(&mut self) {
        let int = self.slave.deliverable(false).is_some();
        self.master.set_line(CASCADE_IRQ, int);
    }

    /// The master's INT output: the CPU's INTR line.
    pub fn intr(&self) -> bool {
        self.master.deliverable(true).is_some()
    }

    /// Whether some input could ever interrupt the CPU: an unmasked master
    /// input, or the cascade unmasked with an unmasked slave input.
    pub fn any_unmasked(&self) -> bool {
        let m = !self.master.imr;
        m & !(1 << CASCADE_IRQ) != 0 || (m & (1 << CASCADE_IRQ) != 0 && self.slave.imr != 0xFF)
    }

    /// INTA cycle: the vector of the highest-priority request. Without one
    /// (the request went away before the acknowledge), IR7's vector of the
    /// chip concerned (a spurious interrupt: IRQ7, or IRQ15 after the
    /// master has accepted the cascade) with no ISR bit set.
    pub fn acknowledge(&mut self) -> u8 {
        let Some(ir) = self.master.deliverable(true) else {
            return self.master.vector_base | 7;
        };
        self.master.accept(ir);
        let vector = if ir == CASCADE_IRQ {
            match self.slave.deliverable(false) {
                Some(sir) => {
                    self.slave.accept(sir);
                    self.slave.vector_base | sir
                }
                None => self.slave.vector_base | 7,
            }
        } else {
            self.master.vector_base | ir
        };
        self.update_cascade();
        vector
    }

    /// The ports the PICs and the ELCR decode (the board's port map reads
    /// this list).
    pub const PORTS: &[RangeInclusive<u16>] = &[
        MASTER_CMD..=MASTER_DATA,
        SLAVE_CMD..=SLAVE_DATA,
        ELCR_MASTER..=ELCR_SLAVE,
    ];

    /// A byte read from one of the ports [`PicPair::PORTS`].
    pub fn read(&mut self, port: u16) -> u8 {
        let v = match port {
            MASTER_CMD => self.read_command(true),
            SLAVE_CMD => self.read_command(false),
            MASTER_DATA => self.master.read_data(),
            SLAVE_DATA => self.slave.read_data(),
            ELCR_MASTER => self.master.elcr,
            ELCR_SLAVE => self.slave.elcr,
            _ => 0xFF,
        };
        self.update_cascade();
        v
    }

    /// Command-port read: a pending poll, else IRR or ISR as OCW3 chose.
    fn read_command(&mut self, master: bool) -> u8 {
        let chip = if master {
            &mut self.master
        } else {
            &mut self.slave
        };
        if std::mem::take(&mut chip.poll) {
            // Poll word: I (bit 7) and the level; the read acts as INTA.
            return match chip.deliverable(master) {
                Some(ir) => {
                    chip.accept(ir);
                    0x80 | ir
                }
                None => 0,
            };
        }
        if chip.read_isr {
            chip.isr
        } else {
            chip.requests()
        }
    }

    /// A byte write to one of the ports [`PicPair::PORTS`].
    pub fn write(&mut self, port: u16, v: u8) {
        match port {
            MASTER_CMD => self.master.write_command(v),
            SLAVE_CMD => self.slave.write_command(v),
            MASTER_DATA => self.master.write_data(v),
            SLAVE_DATA => self.slave.write_data(v),
            ELCR_MASTER => self.master.elcr = v & self.master.elcr_mask,
            ELCR_SLAVE => self.slave.elcr = v & self.slave.elcr_mask,
            _ => {}
        }
        self.update_cascade();
    }

    /// In-service registers (master, slave), for debuggers and tests.
    pub fn in_service(&self) -> (u8, u8) {
        (self.master.isr, self.slave.isr)
    }

    /// Interrupt mask registers (master, slave).
    pub fn masks(&self) -> (u8, u8) {
        (self.master.imr, self.slave.imr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The initialization every PC BIOS does: vectors 0x08 and 0x70,
    /// cascade on IR2, 8086 mode; `master_icw4` chooses e.g. auto-EOI.
    fn pc_pics(master_icw4: u8) -> PicPair {
        let mut p = PicPair::new();
        for (i, (port, v)) in PC_PIC_INIT.into_iter().enumerate() {
            // The master's ICW4 is the fourth write.
            p.write(port, if i == 3 { master_icw4 } else { v });
        }
        p
    }

    #[test]
    fn priorities_and_nonspecific_eoi() {
        let mut p = pc_pics(0x01);
        assert!(!p.intr());
        p.set_irq(3, true);
        p.set_irq(1, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x09, "IRQ1 beats IRQ3");
        assert!(!p.intr(), "IRQ3 waits behind IRQ1 in service");
        p.set_irq(0, true);
        assert!(p.intr(), "IRQ0 nests above IRQ1");
        assert_eq!(p.acknowledge(), 0x08);
        p.write(0x20, 0x20); // EOI: clears IRQ0
        assert!(!p.intr());
        p.write(0x20, 0x20); // EOI: clears IRQ1
        assert_eq!(p.acknowledge(), 0x0B);
        p.write(0x20, 0x20);
        assert_eq!(p.in_service(), (0, 0));
    }

    #[test]
    fn masking_holds_requests_back() {
        let mut p = pc_pics(0x01);
        p.write(0x21, 0xFE); // only IRQ0
        p.set_irq(4, true);
        assert!(!p.intr());
        p.write(0x21, 0xEE);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x0C);
        assert_eq!(p.read(0x21), 0xEE);
    }

    #[test]
    fn slave_cascades_through_irq2() {
        let mut p = pc_pics(0x01);
        p.set_irq(8 + 6, true);
        assert!(p.intr());
        assert_eq!(p.acknowledge(), 0x76);
        assert_eq!(p.in_service(), (0x04, 0x40));
        p.write(0xA0, 0x20);
        p.write(0x20, 0x20);
        assert_eq!(p.in_service(), (0, 0));
        p.write(0xA1, 0xFF);
        p.set_irq(8 + 6, false);
        p.set_irq(8 + 6, true);
        assert!(!p.intr(), "slave input masked");
        assert!(p.any_unmasked());
        p.write(0x21, 0xFB);
        assert!(!p.any_unmasked(), "only the cascade open, slave all masked");
    }

    #[test]
    fn spurious_irq7_when_a_level_request_vanishes() {
        let mut p = pc_pics(0x01);
        p.write(0x4D0, 0x20); // IRQ5 level-triggered
        assert_eq!(p.read(0x4D0), 0x20);
        p.set_irq(5, true);
        assert!(p.intr());
        p.set_irq(5, false); // gone before INTA
        assert_eq!(p.acknowledge(), 0x0F);
        assert_eq!(p.in_service(), (0, 0), "spurious IRQ7 sets no ISR bit");
        // And on the slave: IRQ15's vector, with the master's IR2 in service.
        p.write(0x4D1, 0x02); // IRQ9 level
        p.set_irq(9, true);
        assert!(p.intr());
        p.set_irq(9, false);
        // The master still latched the cascade edge.
        assert_eq!(p.acknowledge(), 0x77);
        assert_eq!(p.in_service(), (0x04, 0x00));
    }

    #[test]
    fn level_mode_reasserts_until_the_line_drops() {
        let mut p = pc_pics(0x01);
        p.write(0x4D0, 0x08); // IRQ3 level
        p.set_irq(3, true);
        assert_eq!(p.acknowledge(), 0x0B);
        p.write(0x20, 0x20);
        assert!(p.intr(), "still high: requests again after EOI");
        p.set_irq(3, false);
        assert!(!p.intr());
    }

    #[test]
    fn edge_mode_needs_a_new_edge() {
        let mut p = pc_pics(0x01);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), 0x0C);
        p.write(0x20, 0x64); // specific EOI for IR4
        assert!(!p.intr(), "line still high but no new edge");
        p.pulse_irq(4);
        assert!(p.intr());
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut p = pc_pics(0x03);
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), 0x09);
        assert_eq!(p.in_service().0, 0);
    }

    #[test]
    fn rotation_changes_priorities() {
        let mut p = pc_pics(0x01);
        p.write(0x20, 0xC4); // set priority: IR4 lowest, IR5 highest
        p.set_irq(1, true);
        p.set_irq(6, true);
        assert_eq!(p.acknowledge(), 0x0E, "IR6 outranks IR1 now");
        p.write(0x20, 0xA0); // rotate on non-specific EOI: IR6 lowest
        assert_eq!(p.acknowledge(), 0x09);
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut p = pc_pics(0x01);
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), 0x09);
        p.set_irq(5, true);
        assert!(!p.intr());
        p.write(0x21, 0x02); // mask IR1 (in service)
        p.write(0x20, 0x68); // OCW3: set special mask
        assert!(p.intr(), "IR1's ISR bit no longer blocks");
        assert_eq!(p.acknowledge(), 0x0D);
        p.write(0x20, 0x48); // reset special mask
        assert_eq!(p.in_service().0, 0x22);
    }

    #[test]
    fn poll_and_register_reads() {
        let mut p = pc_pics(0x01);
        p.set_irq(6, true);
        assert_eq!(p.read(0x20), 0x40, "IRR by default");
        p.write(0x20, 0x0B); // read ISR
        assert_eq!(p.read(0x20), 0x00);
        p.write(0x20, 0x0C); // poll
        assert_eq!(p.read(0x20), 0x86);
        assert_eq!(p.read(0x20), 0x40, "poll acknowledged: now in service");
        p.write(0x20, 0x0C);
        assert_eq!(p.read(0x20), 0x00, "nothing pending");
    }
}
