//! Our own guest programs, assembled at build time by `build.rs` with
//! iced-x86's `code_asm` (no external assembler, nothing downloaded).
//!
//! Each is a 64 KiB PC system ROM: the reset vector at F000:FFF0 jumps into
//! it, it talks to the host only through the debug console (port 0xE9), POST
//! codes (port 0x80) and QEMU's `isa-debug-exit` device (port 0xF4), so the
//! same image runs under
//! `qemu-system-i386 -bios FILE -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=4`.

#![warn(missing_docs)]

mod meta {
    include!(concat!(env!("OUT_DIR"), "/meta.rs"));
}

pub use meta::{CALL_RET_ITERATIONS, INT_LOOP_ITERATIONS, MEM_LOOP_PASSES, REP_MOVS_PASSES};

/// Size of every ROM built here.
pub const ROM_SIZE: usize = 0x1_0000;

/// The built-in demo guest: a checked tour of real mode (arithmetic, string
/// instructions, a software interrupt through its own IVT entry, a #DE
/// caught by its own handler, self-modifying code, the stack). It prints
/// what it does on port 0xE9 and writes 0 to port 0xF4 when every check
/// held, or the number of the failed check otherwise.
pub static DEMO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo.bin"));

/// The first line the demo prints.
pub const DEMO_BANNER: &str =
    "Ringside demo guest: our own 64 KiB ROM, entered at the reset vector F000:FFF0";
/// The demo's last console line when all checks pass.
pub const DEMO_SUCCESS: &str = "All checks passed. Writing 0 to the exit port F4h.";

/// The boot demo (`ringside demo`): a 64 KiB raw disk image whose boot
/// sector any PC BIOS loads at 0000:7C00 (ours by default). It loads the
/// rest of itself with INT 13h AH=42h, enters protected mode, goes to
/// ring 3, prints through an INT 80h system call, takes a #GP on a ring-3
/// CLI (the handler prints the error code and CS:EIP, and skips it), and
/// exits through port 0xF4 with 0 (or the number of a failed check). Its
/// text goes to the VGA screen and to port 0xE9 ([`DEMO_DISK_EXPECTED`]).
/// Runs on QEMU too: `qemu-system-i386 -drive file=FILE,format=raw
/// -debugcon stdio -device isa-debug-exit,iobase=0xf4,iosize=4`.
pub static DEMO_DISK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo_disk.img"));

pub use meta::DEMO_DISK_EXPECTED;

/// The protected-mode test guest: enters protected mode, goes to ring 3
/// and back through an interrupt gate, a trap gate and a call gate (with a
/// parameter copied between stacks), takes #GP and #NP on purpose (IOPL,
/// the I/O bitmap, privileged instructions, DPL checks, gate DPL, a
/// not-present segment), switches tasks through a TSS and back with IRET/NT,
/// and runs virtual-8086 code whose sensitive instructions trap to its ring-0
/// monitor. Each event is printed on port 0xE9 (see [`PMTEST_EXPECTED`]); it
/// exits through port 0xF4 with 0 at the end.
pub static PMTEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pmtest.bin"));

pub use meta::PMTEST_EXPECTED;

/// The timer guest: checks the 8042 self-test, programs the 8259A pair
/// and the 8254 (mode 2, 100 Hz), counts ten IRQ0s while halting, reads
/// the RTC date and time, then takes two 2 Hz RTC periodic interrupts
/// through the cascade (IRQ8) and prints the seconds register. Writes 0 to
/// the exit port at the end, or the number of a failed check.
pub static TIMER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/timer.bin"));

/// The disk guest: IDENTIFY DEVICE, WRITE SECTORS (REP OUTSW), FLUSH
/// CACHE, READ SECTORS with 32-bit PIO (REP INSD) and a read past the end,
/// on the primary master through the ATA registers, polling. Prints what
/// it finds on port 0xE9 and exits with 0, or the number of a failed check.
/// The disk must have more than 5 sectors and fewer than 0xFFFFFF.
pub static IDETEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/idetest.bin"));

/// A benchmark guest program.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Short name (`int-loop`, `mem-loop`, `rep-movs`, `call-ret`).
    pub name: &'static str,
    /// What the loop exercises.
    pub description: &'static str,
    /// The ROM image.
    pub rom: &'static [u8],
    /// What the program prints on the debug console when it ran correctly
    /// (a checksum computed independently by the build script).
    pub expected_output: &'static str,
    /// Guest bytes moved by string instructions, for a bytes/s figure.
    pub bytes_moved: u64,
}

/// The benchmark workloads: each loops a fixed count (about 100 million
/// guest instructions, except REP MOVS, which moves 96 MiB in few
/// instructions), prints a checksum and writes 0 to port 0xF4.
pub static WORKLOADS: [Workload; 4] = [
    Workload {
        name: "int-loop",
        description: "32-bit register arithmetic, 6 instructions per iteration",
        rom: include_bytes!(concat!(env!("OUT_DIR"), "/bench_int.bin")),
        expected_output: meta::BENCH_INT_EXPECTED,
        bytes_moved: 0,
    },
    Workload {
        name: "mem-loop",
        description: "read-modify-write over a 64 KiB buffer, 6 instructions per dword",
        rom: include_bytes!(concat!(env!("OUT_DIR"), "/bench_mem.bin")),
        expected_output: meta::BENCH_MEM_EXPECTED,
        bytes_moved: 0,
    },
    Workload {
        name: "rep-movs",
        description: "REP MOVSD copies of a 32 KiB block",
        rom: include_bytes!(concat!(env!("OUT_DIR"), "/bench_movs.bin")),
        expected_output: meta::BENCH_MOVS_EXPECTED,
        bytes_moved: REP_MOVS_PASSES as u64 * 0x8000,
    },
    Workload {
        name: "call-ret",
        description: "two nested near CALL/RET pairs per iteration, 8 instructions",
        rom: include_bytes!(concat!(env!("OUT_DIR"), "/bench_call.bin")),
        expected_output: meta::BENCH_CALL_EXPECTED,
        bytes_moved: 0,
    },
];

/// The workload called `name`.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// A 64 KiB ROM holding `code` at F000:0000 and a reset vector that jumps
/// there: for tests that hand-assemble a few instructions. The rest of the
/// image is 0xFF, as in an erased flash part.
///
/// # Panics
/// If `code` does not fit below the reset vector (a bug in the caller).
pub fn rom_with_code(code: &[u8]) -> Vec<u8> {
    assert!(code.len() <= 0xFFF0, "code overlaps the reset vector");
    let mut rom = vec![0xFF; ROM_SIZE];
    rom[..code.len()].copy_from_slice(code);
    // JMP FAR F000:0000
    rom[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    rom
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_reset_vector(rom: &[u8]) {
        assert_eq!(rom.len(), ROM_SIZE);
        assert_eq!(rom[0xFFF0], 0xEA, "far jump at the reset vector");
        assert_eq!(&rom[0xFFF3..0xFFF5], &[0x00, 0xF0], "into segment F000");
    }

    #[test]
    fn every_rom_is_64k_with_a_reset_vector() {
        assert_reset_vector(DEMO);
        for w in &WORKLOADS {
            assert_reset_vector(w.rom);
            assert!(
                w.expected_output.starts_with(w.name),
                "{}",
                w.expected_output
            );
        }
        assert_reset_vector(&rom_with_code(&[0xF4]));
    }

    #[test]
    fn demo_text_is_in_the_rom() {
        let find = |s: &str| DEMO.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(find(DEMO_BANNER));
        assert!(find(DEMO_SUCCESS));
    }

    #[test]
    fn demo_disk_is_a_bootable_image() {
        assert_eq!(DEMO_DISK.len() % 512, 0);
        assert_eq!(&DEMO_DISK[510..512], &[0x55, 0xAA]);
        assert!(DEMO_DISK_EXPECTED.ends_with("Writing 0 to the exit port F4h.\n"));
    }

    #[test]
    fn workloads_by_name() {
        assert_eq!(workload("rep-movs").map(|w| w.name), Some("rep-movs"));
        assert!(workload("nope").is_none());
    }
}

/// The built-in lessons (`ringside lesson`): guests that demonstrate rings,
/// privileged instructions and the Robin & Irvine holes step by step,
/// printing on port 0xE9 and pausing with a ring-0 HLT (IF = 0) between
/// steps. Built by `build/lessons.rs`.
pub mod lessons {
    include!(concat!(env!("OUT_DIR"), "/lessons.rs"));

    /// The lesson called `name`.
    pub fn find(name: &str) -> Option<&'static Lesson> {
        LESSONS.iter().find(|l| l.name == name)
    }
}
