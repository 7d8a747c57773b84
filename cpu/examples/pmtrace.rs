use ringside_cpu::{Bus, Cpu, PhysMem, SegReg};
struct B;
impl Bus for B {
    fn io_read(&mut self, _p: u16, _s: u8) -> u32 {
        0xFFFF_FFFF
    }
    fn io_write(&mut self, p: u16, _s: u8, v: u32) {
        if p == 0xE9 {
            print!("{}", v as u8 as char);
        }
        if p == 0xF4 {
            std::process::exit(0)
        }
    }
}
fn main() {
    let rom = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let mut cpu = Cpu::new(PhysMem::pc(16, rom).unwrap());
    let mut tracing = false;
    for _ in 0..20000 {
        let lin = cpu.segs[SegReg::Cs as usize].base.wrapping_add(cpu.eip);
        if lin >= 0xF2000 && lin < 0xF3000 {
            tracing = true;
        }
        if tracing && lin < 0xF3000 && lin >= 0xF2000 {
            println!("  [{:08x}] esi={:08x}", lin, cpu.regs[6]);
        }
        cpu.step(&mut B);
        if cpu.is_halted() {
            break;
        }
    }
}
