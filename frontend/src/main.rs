//! `ringside`: the command-line frontend.
//!
//! Exit statuses: a guest write of `v` to port 0xF4 ends the process with
//! `(v << 1) | 1` (QEMU's isa-debug-exit), an ACPI power-off (S5 written to
//! PM1a_CNT, as Linux's `poweroff` does) with 0, `--max-instructions` with
//! 124, a CPU halted for good with 3, a triple fault under `--no-reboot`
//! with 4, a problem with the host's input (missing or
//! wrongly sized file, unwritable path) with 2 after one line
//! `ringside: error: FILE: problem`. `ringside demo` maps the demo's success
//! to 0.

mod config;
mod explain;
mod gdb;
#[cfg(feature = "window")]
mod keymap;
mod lesson;
mod overlay;
mod repl;
mod screenshot;
mod session;
#[cfg(feature = "window")]
mod window;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand};
use ringside_machine::{
    console_from_arg, serial_from_arg, Console, DateTime, Machine, MachineConfig, Pace, RunLimits,
    RunOutcome, DEFAULT_MEMORY_MIB,
};

/// Print a line on stdout; a closed pipe (`ringside bench | head -1`) is
/// not worth a panic, so write errors are ignored.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Status for problems with the host's input.
const EXIT_HOST_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "ringside",
    version,
    about = "Ringside: an x86 PC emulator for teaching, debugging and ISA conformance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot a PC: our BIOS (or `--bios FILE`) with the disks, CD and
    /// diskette given, in a window or headless.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Run the built-in demo guest and say what it did.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Run the benchmark guests and report guest MIPS.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Run a conformance suite.
    #[command(subcommand, after_help = CONFORMANCE_EXAMPLES)]
    Conformance(ConformanceCommand),
    /// Explain an instruction in Popek and Goldberg's terms (privileged,
    /// sensitive, innocuous), or print the whole table with --table.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(explain::ExplainArgs),
    /// Run a built-in lesson (`ringside lesson list` names them).
    #[command(after_help = LESSON_EXAMPLES)]
    Lesson(lesson::LessonArgs),
}

const RUN_EXAMPLES: &str = "Examples:
  ringside run --disk linux-i686.img                      boot a disk in the window
  ringside run --disk linux-i686.img --headless --serial stdio
                                                          the same, COM1 in the terminal
  ringside run --cdrom grub-cd.iso --boot cdrom           boot a CD (El Torito, no emulation)
  ringside run --floppy dos.img --boot floppy             boot a diskette
  ringside run --bios /usr/share/seabios/bios.bin --vga-bios /usr/share/seabios/vgabios-stdvga.bin --disk d.img
                                                          third-party firmware
  ringside run --disk d.img --debug                       debugger REPL at the reset vector
  ringside run --disk d.img --gdb 1234                    gdb: target remote :1234
  ringside run --disk d.img --trap-log stderr --stats     every ring change and trap, counted
  ringside run --config examples/vm.toml --print-config   a machine spec file, merged
  ringside run --bios rom.bin --debugcon stdio            a bare ROM, QEMU's debug ports

Host keys in the window: Ctrl+Alt+P pause, Ctrl+Alt+G release the keyboard,
Ctrl+Alt+S screenshot, Ctrl+Alt+O overlay panel, Ctrl+Alt+Q quit.";

const DEMO_EXAMPLES: &str = "Examples:
  ringside demo                                 our BIOS boots the demo disk in the window
  ringside demo --headless --screenshot d.png   headless, with the final screen as a PNG
  ringside demo --overlay --trap-log stderr     with the overlay panel and the trap log
  ringside demo --bios /usr/share/seabios/bios.bin
                                                the demo disk on SeaBIOS";

const BENCH_EXAMPLES: &str = "Examples:
  ringside bench                 every workload, guest MIPS each
  ringside bench int-loop        one workload
  ringside bench --debugger      the same with the debugger attached";

const CONFORMANCE_EXAMPLES: &str = "Examples:
  ringside conformance singlestep $RINGSIDE_CONFORMANCE_DIR/singlestep-286
  ringside conformance singlestep DIR --only F6.6 --show-failures 10";

const EXPLAIN_EXAMPLES: &str = "Examples:
  ringside explain popf       what POPF does at CPL 3 and why a VMM never sees it
  ringside explain --table    the whole classification, as Markdown";

const LESSON_EXAMPLES: &str = "Examples:
  ringside lesson list                           the lessons
  ringside lesson rings --trap-log stderr        a lesson, pausing at each step
  ringside lesson holes --no-pause --stats       straight through, with statistics
  ringside lesson paging --headless              in the terminal instead of the window";

/// Options every guest run shares.
#[derive(Args, Debug)]
struct GuestOptions {
    /// RAM in MiB.
    #[arg(long, value_name = "MiB", default_value_t = DEFAULT_MEMORY_MIB,
          value_parser = clap::value_parser!(u32).range(1..=3584))]
    memory: u32,
    /// Where port 0xE9 output goes: `stdio`, `null`, or a file path.
    #[arg(long, value_name = "stdio|null|PATH", default_value = "stdio")]
    debugcon: String,
    /// Where our BIOS's own log goes (its POST banner, the drives found,
    /// why a boot failed): `stderr`, `null`, or a file path. Never port
    /// 0xE9, which is the guest's alone.
    #[arg(long, value_name = "stderr|null|PATH", default_value = "stderr")]
    bios_log: String,
    /// Stop after this many instructions (exit status 124).
    #[arg(long, value_name = "N")]
    max_instructions: Option<u64>,
    /// COM1 (0x3F8, IRQ4): `stdio`, `null`, or `file:PATH` (output only).
    #[arg(long, value_name = "stdio|null|file:PATH", default_value = "null")]
    serial: String,
    /// CPU model. Ringside has one: `pentium2`, a P6 core whose CPUID says
    /// GenuineIntel family 6 model 5 (Pentium II) with fpu, pse, tsc, msr,
    /// pae, cx8, sep, mtrr, pge, cmov and fxsr.
    #[arg(long, value_name = "MODEL", default_value = "pentium2", value_parser = parse_cpu)]
    cpu: String,
    /// Nominal CPU frequency: how many virtual cycles make a second for the
    /// timers (PIT, RTC, UART).
    #[arg(long, value_name = "MHz", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    cpu_mhz: u64,
    /// The RTC's start time: `host` (the host's UTC time), or a fixed
    /// `YYYY-MM-DDTHH:MM:SS` (default 2000-01-01T00:00:00, so runs repeat
    /// exactly).
    #[arg(long, value_name = "host|YYYY-MM-DDTHH:MM:SS", default_value = "2000-01-01T00:00:00",
          value_parser = parse_rtc)]
    rtc: RtcStart,
    /// `realtime` slows the guest to wall-clock speed (for interactive
    /// use); `off` runs as fast as possible.
    #[arg(long, value_name = "off|realtime", default_value = "off", value_parser = parse_pace)]
    pace: Pace,
    /// On a triple fault, end the run (exit status 4, with the faulting
    /// CS:EIP and the last exception) instead of resetting the guest, like
    /// QEMU's -no-reboot; a reset the guest asks for (8042 0xFE, port 0x92,
    /// port 0xCF9, e.g. Linux's `reboot`) ends it with exit status 5.
    #[arg(long)]
    no_reboot: bool,
    #[command(flatten)]
    frontend: session::FrontendArgs,
}

/// Where the RTC starts.
#[derive(Clone, Copy, Debug)]
enum RtcStart {
    Host,
    Fixed(DateTime),
}

/// The CPU models Ringside has.
pub const CPU_MODELS: &[&str] = &["pentium2"];

fn parse_cpu(s: &str) -> Result<String, String> {
    if CPU_MODELS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a CPU model Ringside has ({})",
            CPU_MODELS.join(", ")
        ))
    }
}

fn parse_pace(s: &str) -> Result<Pace, String> {
    match s {
        "off" => Ok(Pace::Off),
        "realtime" => Ok(Pace::Realtime),
        _ => Err(format!("`{s}` is not a pacing mode (off or realtime)")),
    }
}

/// `host` or `YYYY-MM-DDTHH:MM:SS` (a space may replace the `T`).
fn parse_rtc(s: &str) -> Result<RtcStart, String> {
    if s == "host" {
        return Ok(RtcStart::Host);
    }
    let bad = || format!("`{s}` is not `host` or a date and time YYYY-MM-DDTHH:MM:SS");
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u16, String> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let d = DateTime {
        year: num(0..4)?,
        month: num(5..7)? as u8,
        day: num(8..10)? as u8,
        hour: num(11..13)? as u8,
        minute: num(14..16)? as u8,
        second: num(17..19)? as u8,
    };
    let days_in_month = match d.month {
        4 | 6 | 9 | 11 => 30,
        2 if d.year.is_multiple_of(4)
            && (!d.year.is_multiple_of(100) || d.year.is_multiple_of(400)) =>
        {
            29
        }
        2 => 28,
        _ => 31,
    };
    if !(1..=12).contains(&d.month)
        || d.day < 1
        || d.day > days_in_month
        || d.hour > 23
        || d.minute > 59
        || d.second > 59
    {
        return Err(bad());
    }
    Ok(RtcStart::Fixed(d))
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The ROM image: 64, 128 or 256 KiB, mapped at the top of the first MiB
    /// and below 4 GiB. Without it, our own BIOS (built into ringside)
    /// runs: POST, then boot from the disks in `--boot` order.
    #[arg(long, value_name = "FILE")]
    bios: Option<PathBuf>,
    #[command(flatten)]
    vga: VgaBiosArg,
    /// Boot order for our BIOS: up to three of `disk`, `cdrom`, `floppy`,
    /// comma-separated (default `disk,cdrom,floppy`).
    #[arg(long, value_name = "ORDER", value_parser = parse_boot_order)]
    boot: Option<BootOrder>,
    /// A POST-code port besides 0x80 (hex, e.g. 84 or 0x190).
    #[arg(long, value_name = "HEX", value_parser = parse_port)]
    post_port: Option<u16>,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    guest: GuestOptions,
    #[command(flatten)]
    debug: DebugArgs,
    #[command(flatten)]
    trap: lesson::TrapLogArgs,
}

/// A VGA BIOS (option ROM) for the card's ROM socket.
#[derive(Args, Debug, Default, Clone)]
struct VgaBiosArg {
    /// A VGA BIOS image (an option ROM starting with 55h AAh, at most 128
    /// KiB) at C000:0000, read-only as a card's ROM. Our BIOS runs it when
    /// it scans for option ROMs, and INT 10h is then the VGA BIOS's;
    /// SeaBIOS and the Bochs BIOS find it as they do on QEMU and Bochs.
    /// Without it our BIOS's own video services serve INT 10h.
    #[arg(long, value_name = "FILE")]
    vga_bios: Option<PathBuf>,
}

impl VgaBiosArg {
    /// The image, read and checked (errors name the file).
    fn load(&self) -> Result<Option<Vec<u8>>> {
        Ok(match &self.vga_bios {
            Some(path) => Some(ringside_machine::load_option_rom(path)?),
            None => None,
        })
    }
}

/// The debugger: a REPL, a script of its commands, or a gdb stub.
#[derive(Args, Debug, Default)]
struct DebugArgs {
    /// Start in the debugger REPL, stopped at the reset vector F000:FFF0
    /// before the first instruction (`help` lists its commands).
    #[arg(long)]
    debug: bool,
    /// Run the debugger commands in FILE (one per line, `#` comments),
    /// printing each and its output, instead of an interactive REPL.
    #[arg(long, value_name = "FILE")]
    debug_script: Option<PathBuf>,
    /// Serve gdb's remote protocol on 127.0.0.1:PORT (`target remote
    /// :PORT`), or on ADDR:PORT; the machine holds before its first
    /// instruction until gdb continues it.
    #[arg(long, value_name = "[ADDR:]PORT")]
    gdb: Option<gdb::GdbAddress>,
    /// Let `--gdb` listen on an address other than loopback (anyone who
    /// can reach it controls the guest).
    #[arg(long)]
    gdb_allow_remote: bool,
}

impl DebugArgs {
    fn active(&self) -> bool {
        self.debug || self.debug_script.is_some() || self.gdb.is_some()
    }
}

/// Debug the machine as `args` says; the exit status is the guest's when
/// its run ended under the debugger, else 0.
/// The interactive REPL shows the guest's screen in a window when one can
/// be opened (not with `--headless`); scripts and gdb stay headless.
fn debug_machine(
    m: &mut Machine,
    args: &DebugArgs,
    max_instructions: Option<u64>,
    frontend: &session::FrontendArgs,
) -> Result<u8> {
    let mut dbg = ringside_machine::debugger::Debugger::new();
    dbg.max_instructions = max_instructions;
    // Snapshots for reverse stepping (`rs`, gdb's reverse-stepi).
    dbg.set_reverse(true);
    let status = match (&args.debug_script, args.gdb) {
        (_, Some(at)) => gdb::serve(m, &mut dbg, at, args.gdb_allow_remote, max_instructions)?,
        (Some(path), None) => repl::run_script(m, &mut dbg, path)?,
        (None, None) => repl_maybe_windowed(m, &mut dbg, frontend)?,
    };
    dbg.disarm(m);
    Ok(status)
}

/// The REPL, with the guest's screen in a window beside it when possible.
fn repl_maybe_windowed(
    m: &mut Machine,
    dbg: &mut ringside_machine::debugger::Debugger,
    frontend: &session::FrontendArgs,
) -> Result<u8> {
    #[cfg(feature = "window")]
    if let Some(w) = window::Window::open_unless_headless(
        frontend.headless,
        frontend.scale,
        None,
        false,
        "the debugger runs without one",
    ) {
        return window::run_debugger(w, m, frontend, dbg);
    }
    #[cfg(not(feature = "window"))]
    let _ = frontend;
    repl::run_interactive(m, dbg)
}

/// A boot order (first choice first).
#[derive(Clone, Debug)]
struct BootOrder(Vec<ringside_machine::BootDevice>);

/// `disk,cdrom,floppy` (any up to three of them, `hd`/`cd` accepted).
fn parse_boot_order(s: &str) -> Result<BootOrder, String> {
    use ringside_machine::BootDevice;
    let mut order = Vec::new();
    for part in s.split(',') {
        let d = match part.trim() {
            "disk" | "hd" | "c" => BootDevice::HardDisk,
            "cdrom" | "cd" | "d" => BootDevice::Cdrom,
            "floppy" | "fd" | "a" => BootDevice::Floppy,
            other => {
                return Err(format!(
                    "`{other}` is not a boot device (disk, cdrom or floppy)"
                ))
            }
        };
        if !order.contains(&d) {
            order.push(d);
        }
    }
    if order.len() > 3 {
        return Err("at most three boot devices".into());
    }
    Ok(BootOrder(order))
}

/// Disk images on the IDE controller.
#[derive(Args, Debug, Default)]
struct DiskArgs {
    /// Raw hard-disk image, repeatable: the first goes to the primary
    /// master, the next to the primary slave, a third to the secondary
    /// slave (the CD-ROM is the secondary master). Same as `--hda`/`--hdb`.
    #[arg(long, value_name = "FILE")]
    disk: Vec<PathBuf>,
    /// Raw hard-disk image on the primary master (IDE 0:0). Its size must
    /// be a multiple of 512 bytes; guest writes go to the file.
    #[arg(long, value_name = "FILE")]
    hda: Option<PathBuf>,
    /// Raw hard-disk image on the primary slave (IDE 0:1).
    #[arg(long, value_name = "FILE")]
    hdb: Option<PathBuf>,
    /// ISO image in an ATAPI CD-ROM drive on the secondary master (IDE
    /// 1:0), read-only; `empty` for a drive with its tray empty (a file
    /// named `empty` is `./empty`).
    #[arg(long, value_name = "ISO|empty")]
    cdrom: Option<PathBuf>,
    /// Raw diskette image in drive A: on the floppy controller (0x3F0,
    /// IRQ 6, DMA 2); its size picks the format: 360K, 720K, 1.2M, 1.44M
    /// or 2.88M. A file we may not write is a write-protected diskette.
    #[arg(long, visible_alias = "fda", value_name = "FILE")]
    floppy: Option<PathBuf>,
    /// Keep guest writes to the hard disks in memory: the image files are
    /// never modified.
    #[arg(long)]
    snapshot: bool,
}

/// Open the images named on the command line and put them on the IDE
/// channels (each error names its file).
fn attach_disks(m: &mut Machine, d: &DiskArgs) -> Result<()> {
    use ringside_machine::disk::{Disk, DiskMode};
    use ringside_machine::ide::DeviceKind;
    let mode = if d.snapshot {
        DiskMode::Snapshot
    } else {
        DiskMode::ReadWrite
    };
    // `--disk` images fill the hard-disk positions `--hda`/`--hdb` leave free.
    let mut free = [(0, 0), (0, 1), (1, 1)].into_iter().filter(|&(c, sl)| {
        !matches!(
            (c, sl, &d.hda, &d.hdb),
            (0, 0, Some(_), _) | (0, 1, _, Some(_))
        )
    });
    let mut extra = Vec::new();
    for path in &d.disk {
        let Some((channel, slot)) = free.next() else {
            bail!(
                "{}: too many hard disks (three at most besides the CD-ROM)",
                path.display()
            );
        };
        extra.push((Some(path.clone()), channel, slot));
    }
    let fixed = [
        (d.hda.clone(), 0, 0, DeviceKind::Disk, mode),
        (d.hdb.clone(), 0, 1, DeviceKind::Disk, mode),
        (d.cdrom.clone(), 1, 0, DeviceKind::CdRom, DiskMode::CdRom),
    ];
    let extra = extra
        .into_iter()
        .map(|(p, c, sl)| (p, c, sl, DeviceKind::Disk, mode));
    for (path, channel, slot, kind, mode) in fixed.into_iter().chain(extra) {
        if let Some(path) = path {
            let disk = if matches!(kind, DeviceKind::CdRom) && path.as_os_str() == "empty" {
                Disk::empty_tray()
            } else {
                Disk::open(&path, mode)?
            };
            m.pc.ide.attach(channel, slot, kind, disk);
        }
    }
    if let Some(path) = &d.floppy {
        let disk = Disk::open(path, mode)?;
        // A file we may not write (opened for reading only) is a diskette
        // with its write-protect tab set; `--snapshot` keeps writes in
        // memory instead.
        let write_protected = mode == DiskMode::ReadWrite && !disk.writes_through();
        m.pc.attach_floppy(0, disk, write_protected)?;
    }
    Ok(())
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    guest: GuestOptions,
    /// Boot the demo's disk with this system ROM (SeaBIOS, the Bochs BIOS)
    /// instead of our BIOS.
    #[arg(long, value_name = "FILE", conflicts_with = "rom_demo")]
    bios: Option<PathBuf>,
    #[command(flatten)]
    vga: VgaBiosArg,
    /// Run the older real-mode demo instead: a 64 KiB ROM of ours entered at
    /// the reset vector, with no BIOS (arithmetic, strings, INT, #DE,
    /// self-modifying code, the stack).
    #[arg(long)]
    rom_demo: bool,
    /// Write the real-mode demo's ROM image to FILE instead of running it
    /// (to run it elsewhere, e.g. `qemu-system-i386 -bios FILE -debugcon
    /// stdio -device isa-debug-exit,iobase=0xf4,iosize=4`).
    #[arg(long, value_name = "FILE")]
    save_rom: Option<PathBuf>,
    /// Write the boot demo's disk image to FILE instead of running it (to
    /// boot it elsewhere, e.g. `qemu-system-i386 -drive
    /// file=FILE,format=raw -debugcon stdio -device
    /// isa-debug-exit,iobase=0xf4,iosize=4`).
    #[arg(long, value_name = "FILE")]
    save_disk: Option<PathBuf>,
    /// Boot order written to CMOS (as for `run`).
    #[arg(long, value_name = "ORDER", value_parser = parse_boot_order)]
    boot: Option<BootOrder>,
    /// A POST-code port besides 0x80 (hex).
    #[arg(long, value_name = "HEX", value_parser = parse_port)]
    post_port: Option<u16>,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    debug: DebugArgs,
    #[command(flatten)]
    trap: lesson::TrapLogArgs,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Workloads to run (default: all): int-loop, mem-loop, rep-movs, call-ret.
    #[arg(value_name = "WORKLOAD")]
    workloads: Vec<String>,
    /// Stop each workload after N instructions (its checksum is then not
    /// checked).
    #[arg(long, value_name = "N")]
    max_instructions: Option<u64>,
    /// Run each workload under the debugger (attached, nothing armed:
    /// `c`), to measure what attaching it costs.
    #[arg(long)]
    debugger: bool,
    /// With --debugger: also record the snapshots reverse stepping needs.
    #[arg(long, requires = "debugger")]
    reverse: bool,
}

#[derive(Subcommand, Debug)]
enum ConformanceCommand {
    /// Run SingleStepTests (MOO files, 80286/80386 suites) found in DIR.
    /// Exit status 0 when every test passed, 1 when any failed.
    Singlestep(SinglestepArgs),
}

#[derive(Args, Debug)]
struct SinglestepArgs {
    /// Directory holding the `.MOO`/`.MOO.gz` files (and `metadata.json` or
    /// `80386.csv`, `revocation_list.txt` when the suite has them).
    dir: PathBuf,
    /// Only these files, by stem (e.g. `F6.6` for `F6.6.MOO.gz`).
    #[arg(long, value_name = "STEM")]
    only: Vec<String>,
    /// Run at most N tests per file.
    #[arg(long, value_name = "N")]
    max_tests: Option<usize>,
    /// Failures shown in full per file (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 3)]
    show_failures: usize,
    /// A line for every file, not only those with failures or skips.
    #[arg(long)]
    verbose: bool,
}

/// Parse a port number written in hex: `84`, `0x84`, `84h`.
fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .or_else(|| t.strip_suffix('h'))
        .or_else(|| t.strip_suffix('H'))
        .unwrap_or(t);
    u16::from_str_radix(digits, 16)
        .map_err(|_| format!("`{s}` is not a port number in hex (0 to FFFF)"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = config::parse_cli();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Demo(args) => cmd_demo(args),
        Command::Bench(args) => cmd_bench(args),
        Command::Conformance(ConformanceCommand::Singlestep(args)) => cmd_singlestep(args),
        Command::Explain(args) => explain::cmd_explain(args),
        Command::Lesson(args) => lesson::cmd_lesson(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the error's own message already names the file.
            eprintln!("ringside: error: {e}");
            ExitCode::from(EXIT_HOST_ERROR)
        }
    }
}

fn machine_config(guest: &GuestOptions, extra_post_port: Option<u16>) -> Result<MachineConfig> {
    let rtc_start = match guest.rtc {
        RtcStart::Fixed(d) => d,
        RtcStart::Host => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            DateTime::from_unix(secs)
        }
    };
    Ok(MachineConfig {
        memory_mib: guest.memory,
        console: console_from_arg(&guest.debugcon)?,
        bios_log: ringside_machine::BiosLog::from_arg(&guest.bios_log)?,
        extra_post_port,
        cpu_hz: guest.cpu_mhz * 1_000_000,
        rtc_start,
        com1: serial_from_arg(&guest.serial)?,
        pace: guest.pace,
        no_reboot: guest.no_reboot,
        ..MachineConfig::default()
    })
}

/// Puts an interactive terminal into character-at-a-time mode without echo
/// while the serial port is on stdio, and restores it on drop. Signals
/// (Ctrl-C) keep working. Nothing happens when stdin is not a terminal.
struct RawTerminal {
    saved: Option<String>,
}

impl RawTerminal {
    fn new(serial: &str) -> RawTerminal {
        use std::io::IsTerminal;
        use std::process::{Command, Stdio};
        if serial != "stdio" || !std::io::stdin().is_terminal() {
            return RawTerminal { saved: None };
        }
        let saved = Command::new("stty")
            .arg("-g")
            .stdin(Stdio::inherit())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if saved.is_some() {
            let _ = Command::new("stty")
                .args(["-icanon", "-echo", "min", "1"])
                .stdin(Stdio::inherit())
                .status();
        }
        RawTerminal { saved }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = std::process::Command::new("stty")
                .arg(saved)
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    }
}

/// Print the end-of-run lines every run prints to stderr.
fn print_summary(m: &Machine, what_happened: &str) {
    eprintln!("ringside: {what_happened}");
    for line in m.summary_lines() {
        eprintln!("{line}");
    }
}

fn cmd_run(mut args: RunArgs) -> Result<u8> {
    if config::prepare_run(&mut args)? {
        return Ok(0);
    }
    let rom = match &args.bios {
        Some(path) => ringside_machine::load_rom(path)?,
        None => ringside_machine::bios::rom(),
    };
    let mut config = machine_config(&args.guest, args.post_port)?;
    if let Some(order) = &args.boot {
        config.boot_order = order.0.clone();
    }
    config.vga_rom = args.vga.load()?;
    let mut m = Machine::new(rom, config)?;
    attach_disks(&mut m, &args.disks)?;
    if args.debug.active() {
        let status = debug_machine(
            &mut m,
            &args.debug,
            args.guest.max_instructions,
            &args.guest.frontend,
        )?;
        m.pc.ide.flush()?;
        return Ok(status);
    }
    let _terminal = RawTerminal::new(&args.guest.serial);
    let g = &args.guest;
    let traps = args.trap.attach(&mut m)?;
    let ended = session::run(&mut m, &g.frontend, g.max_instructions, traps.overlay())?;
    traps.finish(&mut m);
    let Some(outcome) = ended.outcome() else {
        print_summary(&m, "quit from the window");
        m.pc.ide.flush()?;
        return Ok(0);
    };
    print_summary(&m, &outcome.describe());
    // Make the guest's disk writes durable before we go.
    m.pc.ide.flush()?;
    Ok(outcome.exit_status() as u8)
}

fn cmd_demo(mut args: DemoArgs) -> Result<u8> {
    if config::prepare_demo(&mut args)? {
        return Ok(0);
    }
    if let Some(path) = &args.save_rom {
        write_file(path, ringside_roms::DEMO)?;
        eprintln!(
            "ringside: wrote the demo ROM ({} bytes) to {}",
            ringside_roms::DEMO.len(),
            path.display()
        );
        return Ok(0);
    }
    if let Some(path) = &args.save_disk {
        write_file(path, ringside_roms::DEMO_DISK)?;
        eprintln!(
            "ringside: wrote the boot demo's disk image ({} bytes) to {}",
            ringside_roms::DEMO_DISK.len(),
            path.display()
        );
        return Ok(0);
    }
    let mut config = machine_config(&args.guest, args.post_port)?;
    if let Some(order) = &args.boot {
        config.boot_order = order.0.clone();
    }
    config.vga_rom = args.vga.load()?;
    let mut m = if args.rom_demo {
        Machine::new(ringside_roms::DEMO.to_vec(), config)?
    } else {
        // The BIOS (ours unless --bios) boots the demo's disk, attached as
        // the primary master (a `--hda` of the user's takes its place).
        let rom = match &args.bios {
            Some(path) => ringside_machine::load_rom(path)?,
            None => ringside_machine::bios::rom(),
        };
        let mut m = Machine::new(rom, config)?;
        attach_demo_disk(&mut m)?;
        m
    };
    attach_disks(&mut m, &args.disks)?;
    if args.debug.active() {
        return debug_machine(
            &mut m,
            &args.debug,
            args.guest.max_instructions,
            &args.guest.frontend,
        );
    }
    let _terminal = RawTerminal::new(&args.guest.serial);
    let g = &args.guest;
    let traps = args.trap.attach(&mut m)?;
    let ended = session::run(&mut m, &g.frontend, g.max_instructions, traps.overlay())?;
    traps.finish(&mut m);
    let Some(outcome) = ended.outcome() else {
        print_summary(&m, "quit from the window");
        m.pc.ide.flush()?;
        return Ok(0);
    };
    m.pc.ide.flush()?;
    let s = m.stats();
    let status = match outcome {
        RunOutcome::Exit(0) => {
            out!(
                "demo: the guest passed all its checks and wrote 0 to the exit port: {} instructions in {:.1} ms ({:.0} MIPS)",
                s.instructions,
                s.host_time.as_secs_f64() * 1e3,
                s.mips()
            );
            0
        }
        RunOutcome::Exit(n) => {
            out!("demo: the guest's check {n} failed (see its console output above)");
            outcome.exit_status() as u8
        }
        _ => outcome.exit_status() as u8,
    };
    let what = match outcome {
        RunOutcome::Exit(0) => {
            "guest wrote 0x0 to the exit port 0xF4: demo passed (exit status 0)".to_string()
        }
        _ => outcome.describe(),
    };
    print_summary(&m, &what);
    Ok(status)
}

/// The boot demo's disk as the primary master: the image is written to a
/// temporary file, opened copy-on-write and unlinked at once (the open
/// file stays readable), so nothing is left behind.
fn attach_demo_disk(m: &mut Machine) -> Result<()> {
    use ringside_machine::disk::{Disk, DiskMode};
    use ringside_machine::ide::DeviceKind;
    let path = std::env::temp_dir().join(format!("ringside-demo-{}.img", std::process::id()));
    write_file(&path, ringside_roms::DEMO_DISK)?;
    let disk = Disk::open(&path, DiskMode::Snapshot);
    let _ = std::fs::remove_file(&path);
    m.pc.ide.attach(0, 0, DeviceKind::Disk, disk?);
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| anyhow!("{}: cannot write: {e}", path.display()))
}

fn cmd_bench(args: BenchArgs) -> Result<u8> {
    let mut selected = Vec::new();
    if args.workloads.is_empty() {
        selected.extend(ringside_roms::WORKLOADS.iter());
    }
    for name in &args.workloads {
        match ringside_roms::workload(name) {
            Some(w) => selected.push(w),
            None => {
                let names: Vec<_> = ringside_roms::WORKLOADS.iter().map(|w| w.name).collect();
                bail!("{name}: no such workload (have: {})", names.join(", "));
            }
        }
    }
    out!(
        "{:<10} {:>13} {:>9} {:>9} {:>10}  result",
        "workload",
        "instructions",
        "seconds",
        "MIPS",
        "ns/instr"
    );
    let mut failed = 0;
    let wall = Instant::now();
    for w in selected {
        let config = MachineConfig {
            console: Console::Capture(Vec::new()),
            ..MachineConfig::default()
        };
        let mut m = Machine::new(w.rom.to_vec(), config)?;
        let started = Instant::now();
        let outcome = if args.debugger {
            use ringside_machine::debugger::{Debugger, Resume, StopCause};
            let mut d = Debugger::new();
            d.max_instructions = args.max_instructions;
            d.set_reverse(args.reverse);
            match d.resume(&mut m, Resume::Continue) {
                StopCause::Guest(o) => o,
                StopCause::Limit => RunOutcome::MaxInstructions,
                other => bail!("{}: the debugger stopped: {other:?}", w.name),
            }
        } else {
            m.run(RunLimits {
                max_instructions: args.max_instructions,
            })
        };
        let mut s = m.stats();
        // Timed here: the debugger's runs do not add to the machine's own
        // run time.
        s.host_time = started.elapsed();
        let output =
            String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned();
        let result = match outcome {
            RunOutcome::Exit(0) if output == w.expected_output => "checksum ok".to_string(),
            RunOutcome::MaxInstructions => "stopped at --max-instructions".to_string(),
            _ => {
                failed += 1;
                format!(
                    "FAILED: {}; console: {:?}",
                    outcome.describe(),
                    output.trim_end()
                )
            }
        };
        let extra = if w.bytes_moved > 0 && outcome == RunOutcome::Exit(0) {
            format!(
                " ({:.0} MB/s guest copy)",
                w.bytes_moved as f64 / s.host_time.as_secs_f64() / 1e6
            )
        } else {
            String::new()
        };
        out!(
            "{:<10} {:>13} {:>9.3} {:>9.1} {:>10.2}  {result}{extra}",
            w.name,
            s.instructions,
            s.host_time.as_secs_f64(),
            s.mips(),
            s.ns_per_instruction()
        );
    }
    eprintln!("ringside: bench took {:.1} s", wall.elapsed().as_secs_f64());
    Ok(if failed > 0 { 1 } else { 0 })
}

fn cmd_singlestep(args: SinglestepArgs) -> Result<u8> {
    use ringside_conformance::singlestep::{run_dir, RunOptions};
    let opts = RunOptions {
        only: args.only,
        max_tests_per_file: args.max_tests,
        max_failures_shown: args.show_failures,
        verbose: args.verbose,
        ..RunOptions::default()
    };
    let stdout = std::io::stdout();
    let summary = run_dir(&args.dir, &opts, &mut stdout.lock())?;
    Ok(if summary.failed > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_in_hex() {
        assert_eq!(parse_port("80"), Ok(0x80));
        assert_eq!(parse_port("0x190"), Ok(0x190));
        assert_eq!(parse_port("84h"), Ok(0x84));
        assert!(parse_port("xyz").is_err());
        assert!(parse_port("10000").is_err());
    }

    #[test]
    fn rtc_and_pace_parse() {
        assert!(matches!(parse_rtc("host"), Ok(RtcStart::Host)));
        match parse_rtc("2024-02-29T23:59:58") {
            Ok(RtcStart::Fixed(d)) => {
                assert_eq!((d.year, d.month, d.day, d.second), (2024, 2, 29, 58))
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_rtc("2023-02-29T00:00:00").is_err());
        assert!(parse_rtc("2024-13-01T00:00:00").is_err());
        assert!(parse_rtc("yesterday").is_err());
        assert!(parse_rtc("2024-01-01T00:00:+1").is_err());
        assert_eq!(parse_pace("realtime"), Ok(Pace::Realtime));
        assert!(parse_pace("fast").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
