//! One hypercall's view of the machine: the caller's registers (AX from
//! the stub's stack slot), its IRET frame's flags, and guest memory with
//! the VGA window behind the board's MMIO.

use ringside_cpu::{gpr, Bus, Cpu, SegReg};
use ringside_devices::Pc;

const CF: u32 = 1 << 0;
const ZF: u32 = 1 << 6;

/// The CPU and board during one service.
pub(crate) struct Call<'a> {
    pub cpu: &'a mut Cpu,
    pub pc: &'a mut Pc,
    /// Linear address of the caller's AX (pushed by the stub); the IRET
    /// frame's FLAGS are 6 bytes above. `None` for POST services.
    ax_at: Option<u32>,
    /// The firmware's log written during this service ([`Call::log`]):
    /// handed to the machine's BIOS log, never to a guest-visible port.
    pub log: String,
}

impl<'a> Call<'a> {
    pub fn new(cpu: &'a mut Cpu, pc: &'a mut Pc, stub: bool) -> Call<'a> {
        let ax_at = stub.then(|| {
            let ss = cpu.segs[SegReg::Ss as usize].base;
            ss.wrapping_add(cpu.regs[gpr::ESP] & 0xFFFF)
        });
        Call {
            cpu,
            pc,
            ax_at,
            log: String::new(),
        }
    }

    // --- registers

    pub fn ax(&mut self) -> u16 {
        match self.ax_at {
            Some(at) => self.rd16(at),
            None => self.cpu.regs[gpr::EAX] as u16,
        }
    }
    pub fn set_ax(&mut self, v: u16) {
        match self.ax_at {
            Some(at) => self.wr16(at, v),
            None => self.cpu.regs[gpr::EAX] = (self.cpu.regs[gpr::EAX] & 0xFFFF_0000) | v as u32,
        }
    }
    pub fn ah(&mut self) -> u8 {
        (self.ax() >> 8) as u8
    }
    pub fn al(&mut self) -> u8 {
        self.ax() as u8
    }
    pub fn set_ah(&mut self, v: u8) {
        let ax = self.ax();
        self.set_ax((ax & 0x00FF) | (v as u16) << 8);
    }
    pub fn set_al(&mut self, v: u8) {
        let ax = self.ax();
        self.set_ax((ax & 0xFF00) | v as u16);
    }
    pub fn set_eax(&mut self, v: u32) {
        self.cpu.regs[gpr::EAX] = (self.cpu.regs[gpr::EAX] & 0xFFFF) | (v & 0xFFFF_0000);
        self.set_ax(v as u16);
    }
    /// A 32-bit register other than EAX.
    pub fn r32(&self, r: usize) -> u32 {
        self.cpu.regs[r]
    }
    pub fn set_r32(&mut self, r: usize, v: u32) {
        self.cpu.regs[r] = v;
    }
    pub fn r16(&self, r: usize) -> u16 {
        self.cpu.regs[r] as u16
    }
    pub fn set_r16(&mut self, r: usize, v: u16) {
        self.cpu.regs[r] = (self.cpu.regs[r] & 0xFFFF_0000) | v as u32;
    }
    /// The low byte of BX, CX or DX.
    pub fn lo(&self, r: usize) -> u8 {
        self.cpu.regs[r] as u8
    }
    /// The high byte of BX, CX or DX.
    pub fn hi(&self, r: usize) -> u8 {
        (self.cpu.regs[r] >> 8) as u8
    }
    pub fn set_lo(&mut self, r: usize, v: u8) {
        self.cpu.regs[r] = (self.cpu.regs[r] & !0xFF) | v as u32;
    }
    pub fn set_hi(&mut self, r: usize, v: u8) {
        self.cpu.regs[r] = (self.cpu.regs[r] & !0xFF00) | (v as u32) << 8;
    }
    pub fn set_seg(&mut self, s: SegReg, v: u16) {
        self.cpu.load_seg_real(s, v);
    }
    /// Linear address of seg:off in real mode.
    pub fn lin(&self, s: SegReg, off: u16) -> u32 {
        self.cpu.segs[s as usize].base.wrapping_add(off as u32)
    }

    // --- flags

    fn flag(&mut self, bit: u32, on: bool) {
        match self.ax_at {
            Some(at) => {
                let f = self.rd16(at + 6);
                let f = if on {
                    f | bit as u16
                } else {
                    f & !(bit as u16)
                };
                self.wr16(at + 6, f);
            }
            None => self.set_live(bit, on),
        }
    }
    fn set_live(&mut self, bit: u32, on: bool) {
        let f = self.cpu.eflags();
        self.cpu.set_eflags(if on { f | bit } else { f & !bit });
    }
    /// The caller's CF on return (the IRET frame for stub services).
    pub fn set_cf(&mut self, on: bool) {
        self.flag(CF, on);
    }
    /// The caller's ZF on return.
    pub fn set_zf(&mut self, on: bool) {
        self.flag(ZF, on);
    }
    /// Success: AH = 0, CF = 0.
    pub fn ok(&mut self) {
        self.set_ah(0);
        self.set_cf(false);
    }
    /// Failure with status `ah`: CF = 1.
    pub fn fail(&mut self, ah: u8) {
        self.set_ah(ah);
        self.set_cf(true);
    }
    /// The live ZF the stub tests after its OUT: set = "call again".
    pub fn set_live_zf(&mut self, again: bool) {
        self.set_live(ZF, again);
    }

    // --- memory (physical = linear: real mode, no paging)

    pub fn rd8(&mut self, a: u32) -> u8 {
        match self.cpu.mem.read_u8(a) {
            Some(v) => v,
            None => self.pc.mmio_read(a, 1) as u8,
        }
    }
    pub fn wr8(&mut self, a: u32, v: u8) {
        if !self.cpu.mem.write_u8(a, v) {
            self.pc.mmio_write(a, 1, v as u32);
        }
    }
    pub fn rd16(&mut self, a: u32) -> u16 {
        self.rd8(a) as u16 | (self.rd8(a.wrapping_add(1)) as u16) << 8
    }
    pub fn wr16(&mut self, a: u32, v: u16) {
        self.wr8(a, v as u8);
        self.wr8(a.wrapping_add(1), (v >> 8) as u8);
    }
    pub fn rd32(&mut self, a: u32) -> u32 {
        self.rd16(a) as u32 | (self.rd16(a.wrapping_add(2)) as u32) << 16
    }
    pub fn wr32(&mut self, a: u32, v: u32) {
        self.wr16(a, v as u16);
        self.wr16(a.wrapping_add(2), (v >> 16) as u16);
    }
    pub fn write_bytes(&mut self, a: u32, b: &[u8]) {
        for (i, &x) in b.iter().enumerate() {
            self.wr8(a.wrapping_add(i as u32), x);
        }
    }
    pub fn read_bytes(&mut self, a: u32, b: &mut [u8]) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.rd8(a.wrapping_add(i as u32));
        }
    }

    // --- ports (through the board, as the guest's own IN/OUT would go)

    pub fn inb(&mut self, port: u16) -> u8 {
        self.pc.io_read(port, 1) as u8
    }
    pub fn outb(&mut self, port: u16, v: u8) {
        self.pc.io_write(port, 1, v as u32);
    }
    pub fn cmos(&mut self, reg: u8) -> u8 {
        self.outb(0x70, reg);
        self.inb(0x71)
    }
    pub fn set_cmos(&mut self, reg: u8, v: u8) {
        self.outb(0x70, reg);
        self.outb(0x71, v);
    }

    /// A line for the firmware's log. It goes to the machine's BIOS log
    /// (`--bios-log`), not to port 0xE9: the debug console is the guest's
    /// alone, as on QEMU where SeaBIOS logs to a port of its own.
    pub fn log(&mut self, s: &str) {
        self.log.push_str(s);
    }

    /// Text on the screen (teletype, page 0) and in the firmware's log.
    pub fn say(&mut self, s: &str) {
        self.log(s);
        for b in s.bytes() {
            if b == b'\n' {
                crate::video::teletype(self, b'\r', 0x07);
            }
            crate::video::teletype(self, b, 0x07);
        }
    }
}
