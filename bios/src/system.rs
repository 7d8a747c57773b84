//! INT 15h: system services (memory map, A20, block move, waits, APM).

use ringside_cpu::{gpr, SegReg};

use crate::call::Call;
use crate::layout::{BIOS_SEG, CONFIG_TABLE_OFFSET, EBDA_SEG, ROM_BASE, ROM_SIZE};
use crate::Bios;

const SMAP: u32 = 0x534D_4150;
const E_UNSUPPORTED: u8 = 0x86;

/// One E820 entry: base, length, type (1 RAM, 2 reserved, 3 ACPI reclaimable).
pub(crate) type E820 = (u64, u64, u32);

impl Bios {
    /// The memory map INT 15h AX=E820h reports, from the CMOS sizes the
    /// POST read. Fills `out`, returns how many entries.
    pub(crate) fn e820(&self, out: &mut [E820; 7]) -> usize {
        let ebda = (EBDA_SEG as u64) << 4;
        let mut n = 0;
        let mut add = |e: E820| {
            out[n] = e;
            n += 1;
        };
        add((0, ebda, 1));
        add((ebda, 0xA0000 - ebda, 2));
        add((ROM_BASE as u64, ROM_SIZE as u64, 2));
        match self.acpi_base {
            Some(base) => {
                let base = base as u64;
                add((0x10_0000, base - 0x10_0000, 1));
                add((base, crate::acpi::TABLES_SIZE, 3));
            }
            None if self.ram_below_4g > 0 => add((0x10_0000, self.ram_below_4g, 1)),
            None => {}
        }
        // The ROM's alias below 4 GiB.
        add((0x1_0000_0000 - ROM_SIZE as u64, ROM_SIZE as u64, 2));
        if self.ram_above_4g > 0 {
            add((0x1_0000_0000, self.ram_above_4g, 1));
        }
        n
    }
}

/// INT 15h. Returns true to have the stub wait and call again (AH=86h).
pub(crate) fn int15(bios: &mut Bios, c: &mut Call) -> bool {
    let ah = c.ah();
    let al = c.al();
    match ah {
        0x24 => match al {
            0x00 | 0x01 => {
                let v = c.inb(0x92);
                c.outb(0x92, if al == 1 { v | 0x02 } else { v & !0x03 });
                c.ok();
            }
            0x02 => {
                let on = c.pc.a20_enabled();
                c.set_al(on as u8);
                c.ok();
            }
            0x03 => {
                c.set_r16(gpr::EBX, 0x0003); // 8042 and port 92h
                c.ok();
            }
            _ => c.fail(E_UNSUPPORTED),
        },
        0x4F => c.set_cf(true),        // keyboard intercept: keep the key
        0x53 => c.fail(E_UNSUPPORTED), // no APM BIOS
        0x86 => {
            // Wait CX:DX microseconds: the stub halts until the deadline.
            let now = c.cpu.cycles;
            let until = *bios.wait_until.get_or_insert_with(|| {
                let us = (c.cpu.regs[gpr::ECX] as u64 & 0xFFFF) << 16
                    | (c.cpu.regs[gpr::EDX] as u64 & 0xFFFF);
                let hz = c.pc.clock().cpu_hz();
                now + us.saturating_mul(hz) / 1_000_000
            });
            if now < until {
                return true;
            }
            bios.wait_until = None;
            c.ok();
        }
        0x87 => {
            // Block move: CX words between the 24-bit bases of the GDT's
            // descriptors 2 (source) and 3 (destination) at ES:SI.
            let gdt = c.lin(SegReg::Es, c.r16(gpr::ESI));
            let base = |c: &mut Call, d: u32| {
                c.rd16(d + 2) as u32 | (c.rd8(d + 4) as u32) << 16 | (c.rd8(d + 7) as u32) << 24
            };
            let src = base(c, gdt + 0x10);
            let dst = base(c, gdt + 0x18);
            let bytes = (c.r16(gpr::ECX) as u32).min(0x8000) * 2;
            for i in 0..bytes {
                let v = c.rd8(src.wrapping_add(i));
                c.wr8(dst.wrapping_add(i), v);
            }
            c.ok();
        }
        0x88 => {
            let kib = (bios.ram_below_4g / 1024).min(0xFC00) as u16;
            c.set_ax(kib);
            c.set_cf(false);
        }
        0x90 | 0x91 => c.ok(),
        0xC0 => {
            c.set_seg(SegReg::Es, BIOS_SEG);
            c.set_r16(gpr::EBX, CONFIG_TABLE_OFFSET);
            c.ok();
        }
        0xC1 => {
            c.set_seg(SegReg::Es, EBDA_SEG);
            c.set_cf(false);
        }
        0xE8 if al == 0x01 => {
            // E801: KiB between 1 and 16 MiB, 64 KiB blocks above 16 MiB.
            let below16 = (bios.ram_below_4g / 1024).min(15 * 1024) as u16;
            let above16 = (bios.ram_below_4g.saturating_sub(15 << 20) >> 16).min(0xFFFF) as u16;
            c.set_ax(below16);
            c.set_r16(gpr::ECX, below16);
            c.set_r16(gpr::EBX, above16);
            c.set_r16(gpr::EDX, above16);
            c.set_cf(false);
        }
        0xE8 if al == 0x20 && c.r32(gpr::EDX) == SMAP => {
            let mut map = [(0, 0, 0); 7];
            let n = bios.e820(&mut map);
            let i = c.r32(gpr::EBX) as usize;
            if i >= n || c.r32(gpr::ECX) < 20 {
                c.fail(E_UNSUPPORTED);
                return false;
            }
            let (b, l, t) = map[i];
            let at = c.lin(SegReg::Es, c.r16(gpr::EDI));
            c.wr32(at, b as u32);
            c.wr32(at + 4, (b >> 32) as u32);
            c.wr32(at + 8, l as u32);
            c.wr32(at + 12, (l >> 32) as u32);
            c.wr32(at + 16, t);
            c.set_eax(SMAP);
            c.set_r32(gpr::ECX, 20);
            c.set_r32(gpr::EBX, if i + 1 < n { i as u32 + 1 } else { 0 });
            c.set_cf(false);
        }
        _ => {
            log::debug!("INT 15h AX={ah:02X}{al:02X}: not supported");
            c.fail(E_UNSUPPORTED);
        }
    }
    false
}
