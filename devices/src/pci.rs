//! PCI configuration space through mechanism #1 (ports 0xCF8/0xCFC), with
//! the functions of a QEMU-`pc`-like board: an i440FX host bridge, a PIIX3
//! ISA bridge with PIRQ routing, the PIIX3 IDE function in legacy mode and,
//! when the VGA has one, a Bochs/QEMU standard VGA with its linear
//! framebuffer BAR.
//!
//! Every function has 256 bytes of configuration space and a write mask:
//! a bit the mask leaves clear is read-only. BARs are sized the usual way
//! (write all ones, read back the size mask with the type bits), which
//! falls out of the write mask too.
//!
//! Function 01.3 is the PIIX4's power-management function (8086:7113), as
//! on QEMU's `pc` board: firmware that finds it (SeaBIOS, the Bochs BIOS)
//! places the ACPI PM registers with PMBA (0x40) and PMREGMISC (0x80),
//! and enables APM-control SMIs with DEVACTB (0x58) bit 25. The host
//! bridge's SMRAM register (0x72) decides where 0xA0000–0xBFFFF goes (the
//! machine applies it to memory, see [`Pci::smram_control`]).
//!
//! Port 0xCF9 (a byte inside the address register's dword) is the PIIX3
//! reset control register: writing bit 2 with bit 1 set asks for a hard
//! reset, which is how SeaBIOS and Linux reboot a PC.

use std::ops::RangeInclusive;

/// The configuration address register.
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// The configuration data window (0xCFC–0xCFF).
pub const CONFIG_DATA: u16 = 0xCFC;
/// The PIIX3 reset control register.
pub const RESET_CONTROL: u16 = 0xCF9;

/// Device numbers on bus 0.
const DEV_HOST: u8 = 0;
const DEV_PIIX: u8 = 1;
const DEV_VGA: u8 = 2;
/// The PIIX4 PM function's number on the PIIX device.
const FN_PM: u8 = 3;

/// i440FX SMRAM control register.
pub const REG_SMRAM: usize = 0x72;
/// PIIX4 PM: PMBA, the PM I/O base (bits 15:6; bit 0 reads 1: I/O space).
pub const REG_PMBA: usize = 0x40;
/// PIIX4 PM: DEVACTB, device activity B (bit 25 APMC_EN).
pub const REG_DEVACTB: usize = 0x58;
/// PIIX4 PM: PMREGMISC (bit 0: the PM I/O space is decoded).
pub const REG_PMREGMISC: usize = 0x80;
/// PIIX4 PM: SMBBA, the SMBus I/O base (stored; no SMBus controller).
pub const REG_SMBBA: usize = 0x90;
/// DEVACTB bit 25: a write to the APM control port (0xB2) raises SMI#.
const APMC_EN: u32 = 1 << 25;

/// Registers of the standard header.
const REG_COMMAND: usize = 0x04;
const REG_BAR0: usize = 0x10;
const REG_INTERRUPT_LINE: usize = 0x3C;
/// PIIX3 PIRQ route control registers (PIRQA–PIRQD).
pub const REG_PIRQ_ROUTE: usize = 0x60;

/// One PCI function's configuration space.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Function {
    device: u8,
    function: u8,
    #[serde(with = "crate::snapshot::big_array")]
    config: [u8; 256],
    #[serde(with = "crate::snapshot::big_array")]
    wmask: [u8; 256],
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02x}.{} {:04x}:{:04x}",
            self.device,
            self.function,
            self.word(0),
            self.word(2)
        )
    }
}

impl Function {
    /// A function with `vendor:device`, revision, class code (base, sub,
    /// prog-if as one 24-bit value) and header type.
    fn new(dev: u8, func: u8, id: (u16, u16), rev: u8, class: u32, header: u8) -> Function {
        let mut f = Function {
            device: dev,
            function: func,
            config: [0; 256],
            wmask: [0; 256],
        };
        f.set_word(0x00, id.0);
        f.set_word(0x02, id.1);
        f.config[0x08] = rev;
        f.config[0x09] = class as u8;
        f.config[0x0A] = (class >> 8) as u8;
        f.config[0x0B] = (class >> 16) as u8;
        f.config[0x0E] = header;
        // Command: I/O, memory, bus master, SERR#; status: none writable.
        f.wmask[REG_COMMAND] = 0x07;
        f.wmask[REG_COMMAND + 1] = 0x01;
        // Latency timer, interrupt line: plain storage for the firmware.
        f.wmask[0x0D] = 0xFF;
        f.wmask[REG_INTERRUPT_LINE] = 0xFF;
        // Medium DEVSEL timing, as Intel's parts report.
        f.config[0x06] = 0x00;
        f.config[0x07] = 0x02;
        f
    }

    fn word(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.config[off], self.config[off + 1]])
    }

    fn set_word(&mut self, off: usize, v: u16) {
        self.config[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn dword(&self, off: usize) -> u32 {
        u32::from_le_bytes([
            self.config[off],
            self.config[off + 1],
            self.config[off + 2],
            self.config[off + 3],
        ])
    }

    /// A memory BAR of `size` bytes (a power of two), prefetchable or not.
    fn memory_bar(&mut self, index: usize, size: u32, prefetchable: bool) {
        let off = REG_BAR0 + 4 * index;
        let mask = !(size - 1);
        self.config[off] = if prefetchable { 0x08 } else { 0x00 };
        self.wmask[off..off + 4].copy_from_slice(&mask.to_le_bytes());
    }

    /// Device-specific registers `[from, to]` are plain read/write storage.
    fn writable(&mut self, from: usize, to: usize) {
        for m in &mut self.wmask[from..=to] {
            *m = 0xFF;
        }
    }

    fn write(&mut self, off: usize, v: u8) {
        let m = self.wmask[off];
        self.config[off] = (self.config[off] & !m) | (v & m);
    }
}

/// The PCI bus with its configuration space.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Pci {
    address: u32,
    functions: Vec<Function>,
    reset_control: u8,
    reset_requested: bool,
}

/// Default base of the VGA's linear framebuffer (BAR0), as QEMU's SeaBIOS
/// commonly places it.
pub const DEFAULT_LFB_BASE: u32 = 0xE000_0000;

impl Pci {
    /// The board's PCI functions. `vga_lfb_size`: the size of the VGA's
    /// linear framebuffer BAR, if the VGA has one (a power of two).
    pub fn new(vga_lfb_size: Option<u32>) -> Pci {
        let mut functions = Vec::new();

        // 00.0 i440FX PMC host bridge.
        let mut host = Function::new(DEV_HOST, 0, (0x8086, 0x1237), 0x02, 0x06_00_00, 0x00);
        // PAM (0x59–0x5F), DRAM row boundaries (0x60–0x67), SMRAM (0x72):
        // stored so firmware reads back what it wrote. The machine applies
        // PAM's write enables to the ROM's pages (see `Pci::pam`).
        host.writable(0x50, 0x7F);
        // SMRAM: C_BASE_SEG reads 010b; the writes go through
        // `smram_write` (D_LCK locks the others).
        host.config[REG_SMRAM] = crate::pci::smram_bits::C_BASE_SEG;
        functions.push(host);

        // 01.0 PIIX3 PCI-to-ISA bridge; multi-function (header type bit 7).
        let mut isa = Function::new(DEV_PIIX, 0, (0x8086, 0x7000), 0x00, 0x06_01_00, 0x80);
        isa.writable(0x40, 0xFF);
        // PIRQA–D routing: disabled (bit 7) until the firmware routes them.
        for r in 0..4 {
            isa.config[REG_PIRQ_ROUTE + r] = 0x80;
        }
        isa.config[REG_COMMAND] = 0x07;
        functions.push(isa);

        // 01.1 PIIX3 IDE: mass storage, IDE, prog-if 80h (bus-master capable
        // register layout, both channels in legacy/compatibility mode, fixed).
        let mut ide = Function::new(DEV_PIIX, 1, (0x8086, 0x7010), 0x00, 0x01_01_80, 0x00);
        // IDETIM primary/secondary (0x40–0x43): decode enabled (bit 15),
        // so drivers that check it (Linux ata_piix) see both channels on.
        ide.writable(0x40, 0x4F);
        ide.set_word(0x40, 0x8000);
        ide.set_word(0x42, 0x8000);
        // BAR4 (bus-master DMA) is not implemented: it stays zero and
        // read-only, which drivers take as "no DMA, use PIO".
        ide.config[REG_COMMAND] = 0x01;
        functions.push(ide);

        // 01.3 PIIX4 power management: bridge, other (068000h), revision 3.
        // Power-on state as the datasheet's: PMBA 0 with its I/O bit, the
        // PM space not decoded, APMC SMIs off. No interrupt pin: the SCI
        // is wired to IRQ 9 (interrupt line 9 says so; firmware may
        // rewrite it).
        let mut pm = Function::new(DEV_PIIX, FN_PM, (0x8086, 0x7113), 0x03, 0x06_80_00, 0x00);
        pm.writable(0x40, 0xFF);
        // PMBA: 64 bytes of I/O, bits 15:6.
        pm.wmask[REG_PMBA..REG_PMBA + 4].copy_from_slice(&[0xC0, 0xFF, 0, 0]);
        pm.config[REG_PMBA] = 0x01;
        // SMBBA: 16 bytes of I/O, bits 15:4.
        pm.wmask[REG_SMBBA..REG_SMBBA + 4].copy_from_slice(&[0xF0, 0xFF, 0, 0]);
        pm.config[REG_SMBBA] = 0x01;
        pm.config[REG_INTERRUPT_LINE] = crate::acpi::SCI_IRQ;
        functions.push(pm);

        if let Some(size) = vga_lfb_size {
            // 02.0 Bochs/QEMU standard VGA: display, VGA-compatible.
            let mut vga = Function::new(DEV_VGA, 0, (0x1234, 0x1111), 0x02, 0x03_00_00, 0x00);
            vga.memory_bar(0, size.next_power_of_two(), true);
            vga.config[REG_BAR0..REG_BAR0 + 4]
                .copy_from_slice(&(DEFAULT_LFB_BASE | 0x08).to_le_bytes());
            vga.config[REG_COMMAND] = 0x03;
            // Subsystem IDs QEMU uses (1af4:1100).
            vga.set_word(0x2C, 0x1AF4);
            vga.set_word(0x2E, 0x1100);
            functions.push(vga);
        }
        Pci {
            address: 0,
            functions,
            reset_control: 0,
            reset_requested: false,
        }
    }

    /// Board reset: configuration back to power-on values.
    pub fn reset(&mut self) {
        let lfb = self
            .find(DEV_VGA, 0)
            .map(|i| (!self.functions[i].wmask_dword(REG_BAR0)).wrapping_add(1));
        *self = Pci::new(lfb);
    }

    fn find(&self, dev: u8, func: u8) -> Option<usize> {
        self.functions
            .iter()
            .position(|f| f.device == dev && f.function == func)
    }

    /// The function the address register selects, if it exists.
    fn selected(&self) -> Option<usize> {
        let a = self.address;
        if a & 0x8000_0000 == 0 || (a >> 16) & 0xFF != 0 {
            return None;
        }
        self.find(((a >> 11) & 0x1F) as u8, ((a >> 8) & 7) as u8)
    }

    /// The configuration mechanism's ports (0xCF9, reset control, among them).
    pub const PORTS: &[RangeInclusive<u16>] = &[CONFIG_ADDRESS..=CONFIG_DATA + 3];

    /// Port read; `None` if the port is not ours.
    pub fn io_read(&mut self, port: u16, size: u8) -> Option<u32> {
        match port {
            CONFIG_ADDRESS if size == 4 => Some(self.address),
            RESET_CONTROL if size == 1 => Some(self.reset_control as u32),
            CONFIG_ADDRESS..=0xCFB => Some(ones(size)),
            CONFIG_DATA..=0xCFF => {
                let Some(i) = self.selected() else {
                    return Some(ones(size));
                };
                let base = (self.address & 0xFC) as usize + (port - CONFIG_DATA) as usize;
                let f = &self.functions[i];
                let mut v = 0u32;
                for k in 0..size.min(4) as usize {
                    // An access running past the dword wraps inside it.
                    let off = (base & !3) | ((base + k) & 3);
                    v |= (f.config[off] as u32) << (8 * k);
                }
                Some(v)
            }
            _ => None,
        }
    }

    /// Port write; `false` if the port is not ours.
    pub fn io_write(&mut self, port: u16, size: u8, v: u32) -> bool {
        match port {
            // Only a dword access latches the address (byte accesses to
            // 0xCF8–0xCFB go elsewhere on a real chipset).
            CONFIG_ADDRESS if size == 4 => self.address = v & 0x80FF_FFFC,
            RESET_CONTROL if size == 1 => {
                let v = v as u8;
                if v & 0x04 != 0 && v & 0x02 != 0 {
                    log::info!("PCI reset control (0xCF9): hard reset requested");
                    self.reset_requested = true;
                }
                self.reset_control = v & 0x0A;
            }
            CONFIG_ADDRESS..=0xCFB => {}
            CONFIG_DATA..=0xCFF => {
                let Some(i) = self.selected() else {
                    return true;
                };
                let base = (self.address & 0xFC) as usize + (port - CONFIG_DATA) as usize;
                let f = &mut self.functions[i];
                let host = f.device == DEV_HOST && f.function == 0;
                for k in 0..size.min(4) as usize {
                    let off = (base & !3) | ((base + k) & 3);
                    let b = (v >> (8 * k)) as u8;
                    if host && off == REG_SMRAM {
                        f.config[off] = smram_write(f.config[off], b);
                    } else {
                        f.write(off, b);
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// Whether the guest asked for a reset through 0xCF9 since the last call.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_requested)
    }

    /// The i440FX's Programmable Attribute Map registers (host bridge
    /// 0x59–0x5F): per region of 0xC0000–0xFFFFF, bit 0 of a nibble = reads
    /// from RAM (RE), bit 1 = writes to RAM (WE). 0x59's high nibble covers
    /// 0xF0000–0xFFFFF; 0x5A–0x5F cover 16 KiB each from 0xC0000 (low
    /// nibble first).
    pub fn pam(&self) -> [u8; 7] {
        let mut pam = [0u8; 7];
        if let Some(i) = self.find(DEV_HOST, 0) {
            pam.copy_from_slice(&self.functions[i].config[0x59..0x60]);
        }
        pam
    }

    /// The host bridge's SMRAM control register (0x72), for the memory map.
    pub fn smram_control(&self) -> u8 {
        self.find(DEV_HOST, 0).map_or(smram_bits::C_BASE_SEG, |i| {
            self.functions[i].config[REG_SMRAM]
        })
    }

    /// Where the PIIX4 PM function decodes its 64-byte register block, if
    /// PMREGMISC enables it.
    pub fn pm_base(&self) -> Option<u16> {
        let f = &self.functions[self.find(DEV_PIIX, FN_PM)?];
        (f.config[REG_PMREGMISC] & 1 != 0).then(|| (f.dword(REG_PMBA) & 0xFFC0) as u16)
    }

    /// Whether a write to the APM control port raises SMI# (DEVACTB's
    /// APMC_EN).
    pub fn apmc_smi_enabled(&self) -> bool {
        self.find(DEV_PIIX, FN_PM)
            .is_some_and(|i| self.functions[i].dword(REG_DEVACTB) & APMC_EN != 0)
    }

    /// The IRQ the PM function's SCI goes to: its interrupt line when that
    /// names an ISA IRQ, else IRQ 9.
    pub fn sci_irq(&self) -> u8 {
        self.find(DEV_PIIX, FN_PM)
            .map(|i| self.functions[i].config[REG_INTERRUPT_LINE])
            .filter(|&l| (1..16).contains(&l) && l != 2)
            .unwrap_or(crate::acpi::SCI_IRQ)
    }

    /// Program the PM function the way our BIOS's POST does (and SeaBIOS
    /// and the Bochs BIOS do, at the same address): PMBA = `base`, the PM
    /// I/O space on.
    pub fn enable_pm(&mut self, base: u16) {
        if let Some(i) = self.find(DEV_PIIX, FN_PM) {
            let f = &mut self.functions[i];
            f.config[REG_PMBA] = (base as u8 & 0xC0) | 1;
            f.config[REG_PMBA + 1] = (base >> 8) as u8;
            f.config[REG_PMREGMISC] |= 1;
        }
    }

    /// The ISA IRQ PIRQ line `pirq` (0–3 for A–D) is routed to, if routed.
    pub fn pirq_route(&self, pirq: usize) -> Option<u8> {
        let i = self.find(DEV_PIIX, 0)?;
        let r = self.functions[i].config[REG_PIRQ_ROUTE + (pirq & 3)];
        (r & 0x80 == 0 && r & 0x0F >= 3).then_some(r & 0x0F)
    }

    /// Where the guest put the VGA's linear framebuffer (BAR0), if the
    /// board has one and memory decoding is on.
    pub fn vga_lfb_base(&self) -> Option<u32> {
        let f = &self.functions[self.find(DEV_VGA, 0)?];
        (f.config[REG_COMMAND] & 0x02 != 0).then(|| f.dword(REG_BAR0) & !0xF)
    }
}

impl Function {
    fn wmask_dword(&self, off: usize) -> u32 {
        u32::from_le_bytes([
            self.wmask[off],
            self.wmask[off + 1],
            self.wmask[off + 2],
            self.wmask[off + 3],
        ])
    }
}

/// i440FX SMRAM register bits (the memory map, `ringside_mmu::smram`,
/// reads the same bits when the machine applies the register).
pub mod smram_bits {
    /// D_OPEN: SMRAM visible outside SMM.
    pub const D_OPEN: u8 = 1 << 6;
    /// D_CLS: SMM data accesses go to the VGA window.
    pub const D_CLS: u8 = 1 << 5;
    /// D_LCK: lock until reset.
    pub const D_LCK: u8 = 1 << 4;
    /// G_SMRAME: SMRAM enabled.
    pub const G_SMRAME: u8 = 1 << 3;
    /// C_BASE_SEG: 010b, SMRAM at 0xA0000 (read-only).
    pub const C_BASE_SEG: u8 = 0b010;
}

/// A write of `v` to the SMRAM register holding `old` (i440FX datasheet,
/// SMRAM 72h): C_BASE_SEG is fixed at 010b; D_LCK, once set, clears
/// D_OPEN and makes everything but D_CLS read-only until reset.
fn smram_write(old: u8, v: u8) -> u8 {
    use smram_bits::*;
    let mut new = if old & D_LCK != 0 {
        (old & !D_CLS) | (v & D_CLS)
    } else {
        v & (D_OPEN | D_CLS | D_LCK | G_SMRAME)
    };
    if new & D_LCK != 0 {
        new &= !D_OPEN;
    }
    new | C_BASE_SEG
}

fn ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_read(p: &mut Pci, dev: u32, func: u32, reg: u32) -> u32 {
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0000 | dev << 11 | func << 8 | reg);
        p.io_read(CONFIG_DATA, 4).unwrap()
    }

    fn cfg_write(p: &mut Pci, dev: u32, func: u32, reg: u32, v: u32) {
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0000 | dev << 11 | func << 8 | reg);
        p.io_write(CONFIG_DATA, 4, v);
    }

    #[test]
    fn vendor_device_class_of_each_function() {
        let mut p = Pci::new(Some(16 << 20));
        assert_eq!(cfg_read(&mut p, 0, 0, 0), 0x1237_8086);
        assert_eq!(cfg_read(&mut p, 0, 0, 8) >> 8, 0x06_00_00);
        assert_eq!(cfg_read(&mut p, 1, 0, 0), 0x7000_8086);
        assert_eq!(cfg_read(&mut p, 1, 0, 8) >> 8, 0x06_01_00);
        assert_eq!(
            (cfg_read(&mut p, 1, 0, 0xC) >> 16) & 0xFF,
            0x80,
            "multi-function"
        );
        assert_eq!(cfg_read(&mut p, 1, 1, 0), 0x7010_8086);
        assert_eq!(cfg_read(&mut p, 1, 1, 8) >> 8, 0x01_01_80);
        assert_eq!(cfg_read(&mut p, 2, 0, 0), 0x1111_1234);
        assert_eq!(cfg_read(&mut p, 2, 0, 8) >> 8, 0x03_00_00);
        assert_eq!(cfg_read(&mut p, 3, 0, 0), 0xFFFF_FFFF, "empty slot");
        assert_eq!(cfg_read(&mut p, 1, 2, 0), 0xFFFF_FFFF, "absent function");
        // Disabled address register: no cycle.
        p.io_write(CONFIG_ADDRESS, 4, 0);
        assert_eq!(p.io_read(CONFIG_DATA, 4), Some(0xFFFF_FFFF));
        // Byte and word reads inside the dword.
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0000);
        assert_eq!(p.io_read(CONFIG_DATA + 2, 2), Some(0x1237));
        assert_eq!(p.io_read(CONFIG_DATA + 1, 1), Some(0x80));
        assert_eq!(p.io_read(CONFIG_ADDRESS, 4), Some(0x8000_0000));
    }

    #[test]
    fn bar_sizing_and_read_only_ids() {
        let mut p = Pci::new(Some(16 << 20));
        cfg_write(&mut p, 2, 0, 0x10, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut p, 2, 0, 0x10), 0xFF00_0008);
        cfg_write(&mut p, 2, 0, 0x10, 0xF100_0000);
        assert_eq!(p.vga_lfb_base(), Some(0xF100_0000));
        cfg_write(&mut p, 2, 0, 0x04, 0);
        assert_eq!(p.vga_lfb_base(), None, "memory decode off");
        cfg_write(&mut p, 0, 0, 0, 0);
        assert_eq!(cfg_read(&mut p, 0, 0, 0), 0x1237_8086);
        // IDE BAR4 is not implemented: it reads zero even after sizing.
        cfg_write(&mut p, 1, 1, 0x20, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut p, 1, 1, 0x20), 0);
        assert_eq!(cfg_read(&mut p, 1, 1, 0x40), 0x8000_8000);
    }

    #[test]
    fn pirq_routing_registers() {
        let mut p = Pci::new(None);
        assert_eq!(cfg_read(&mut p, 1, 0, 0x60), 0x8080_8080);
        assert_eq!(p.pirq_route(0), None);
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0860);
        p.io_write(CONFIG_DATA + 1, 1, 11);
        p.io_write(CONFIG_DATA + 2, 1, 10);
        assert_eq!(p.pirq_route(1), Some(11));
        assert_eq!(p.pirq_route(2), Some(10));
        assert_eq!(p.pirq_route(0), None);
        assert_eq!(cfg_read(&mut p, 1, 0, 0x60), 0x800A_0B80);
        p.reset();
        assert_eq!(p.pirq_route(1), None);
    }

    #[test]
    fn piix4_pm_function_bars_and_smi_enable() {
        let mut p = Pci::new(None);
        assert_eq!(cfg_read(&mut p, 1, 3, 0), 0x7113_8086);
        assert_eq!(cfg_read(&mut p, 1, 3, 8) >> 8, 0x06_80_00);
        assert_eq!(cfg_read(&mut p, 1, 3, 0x40), 1, "PMBA: I/O bit only");
        assert_eq!(p.pm_base(), None, "PMREGMISC clear: not decoded");
        cfg_write(&mut p, 1, 3, 0x40, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut p, 1, 3, 0x40), 0xFFC1, "64 bytes of I/O");
        cfg_write(&mut p, 1, 3, 0x40, 0xB001);
        cfg_write(&mut p, 1, 3, 0x80, 1);
        assert_eq!(p.pm_base(), Some(0xB000));
        assert!(!p.apmc_smi_enabled());
        cfg_write(&mut p, 1, 3, 0x58, 1 << 25);
        assert!(p.apmc_smi_enabled());
        assert_eq!(p.sci_irq(), 9);
        p.reset();
        assert!(!p.apmc_smi_enabled());
        assert_eq!(p.pm_base(), None);
        p.enable_pm(0xB000);
        assert_eq!(p.pm_base(), Some(0xB000));
    }

    #[test]
    fn smram_register_bits_and_lock() {
        use smram_bits::*;
        let mut p = Pci::new(None);
        let smram = |p: &mut Pci| (cfg_read(p, 0, 0, 0x70) >> 16) as u8;
        assert_eq!(smram(&mut p), C_BASE_SEG);
        cfg_write(&mut p, 0, 0, 0x70, 0xFF << 16);
        assert_eq!(
            smram(&mut p),
            D_CLS | G_SMRAME | D_LCK | C_BASE_SEG,
            "D_LCK clears D_OPEN"
        );
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0070);
        p.io_write(CONFIG_DATA + 2, 1, (D_OPEN | C_BASE_SEG) as u32);
        assert_eq!(
            p.smram_control(),
            G_SMRAME | D_LCK | C_BASE_SEG,
            "locked: only D_CLS changes"
        );
        p.reset();
        p.io_write(CONFIG_ADDRESS, 4, 0x8000_0070);
        p.io_write(CONFIG_DATA + 2, 1, 0x4A);
        assert_eq!(p.smram_control(), D_OPEN | G_SMRAME | C_BASE_SEG);
    }

    #[test]
    fn reset_control_register() {
        let mut p = Pci::new(None);
        p.io_write(RESET_CONTROL, 1, 0x02);
        assert!(!p.take_reset_request());
        p.io_write(RESET_CONTROL, 1, 0x06);
        assert!(p.take_reset_request());
        assert_eq!(p.io_read(RESET_CONTROL, 1), Some(0x02));
    }
}
