//! `ringside`: the command-line frontend.
//!
//! Exit statuses: a guest write of `v` to port 0xF4 ends the process with
//! `(v << 1) | 1` (QEMU's isa-debug-exit), `--max-instructions` with 124, a
//! CPU halted for good with 3, a problem with the host's input (missing or
//! wrongly sized file, unwritable path) with 2 after one line
//! `ringside: error: FILE: problem`. `ringside demo` maps the demo's success
//! to 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand};
use ringside_machine::{
    console_from_arg, Console, Machine, MachineConfig, RunLimits, RunOutcome, DEFAULT_MEMORY_MIB,
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
    /// Run a system ROM (BIOS image) with RAM and the debug ports.
    Run(RunArgs),
    /// Run the built-in demo guest and say what it did.
    Demo(DemoArgs),
    /// Run the benchmark guests and report guest MIPS.
    Bench(BenchArgs),
    /// Run a conformance suite.
    #[command(subcommand)]
    Conformance(ConformanceCommand),
}

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
    /// Stop after this many instructions (exit status 124).
    #[arg(long, value_name = "N")]
    max_instructions: Option<u64>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The ROM image: 64, 128 or 256 KiB, mapped at the top of the first MiB
    /// and below 4 GiB.
    #[arg(long, value_name = "FILE")]
    bios: PathBuf,
    /// A POST-code port besides 0x80 (hex, e.g. 84 or 0x190).
    #[arg(long, value_name = "HEX", value_parser = parse_port)]
    post_port: Option<u16>,
    #[command(flatten)]
    disks: DiskArgs,
    #[command(flatten)]
    guest: GuestOptions,
}

/// Disk images on the IDE controller.
#[derive(Args, Debug, Default)]
struct DiskArgs {
    /// Raw hard-disk image on the primary master (IDE 0:0). Its size must
    /// be a multiple of 512 bytes; guest writes go to the file.
    #[arg(long, value_name = "FILE")]
    hda: Option<PathBuf>,
    /// Raw hard-disk image on the primary slave (IDE 0:1).
    #[arg(long, value_name = "FILE")]
    hdb: Option<PathBuf>,
    /// ISO image in an ATAPI CD-ROM drive on the secondary master (IDE
    /// 1:0), read-only.
    #[arg(long, value_name = "ISO")]
    cdrom: Option<PathBuf>,
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
    for (path, channel, slot, kind, mode) in [
        (&d.hda, 0, 0, DeviceKind::Disk, mode),
        (&d.hdb, 0, 1, DeviceKind::Disk, mode),
        (&d.cdrom, 1, 0, DeviceKind::CdRom, DiskMode::CdRom),
    ] {
        if let Some(path) = path {
            let disk = Disk::open(path, mode)?;
            m.pc.ide.attach(channel, slot, kind, disk);
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
struct DemoArgs {
    #[command(flatten)]
    guest: GuestOptions,
    /// Write the demo's ROM image to FILE instead of running it (to run it
    /// elsewhere, e.g. `qemu-system-i386 -bios FILE -debugcon stdio -device
    /// isa-debug-exit,iobase=0xf4,iosize=4`).
    #[arg(long, value_name = "FILE")]
    save_rom: Option<PathBuf>,
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Demo(args) => cmd_demo(args),
        Command::Bench(args) => cmd_bench(args),
        Command::Conformance(ConformanceCommand::Singlestep(args)) => cmd_singlestep(args),
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
    Ok(MachineConfig {
        memory_mib: guest.memory,
        console: console_from_arg(&guest.debugcon)?,
        extra_post_port,
    })
}

/// Print the end-of-run lines every run prints to stderr.
fn print_summary(m: &Machine, what_happened: &str) {
    eprintln!("ringside: {what_happened}");
    for line in m.summary_lines() {
        eprintln!("{line}");
    }
}

fn cmd_run(args: RunArgs) -> Result<u8> {
    let rom = ringside_machine::load_rom(&args.bios)?;
    let config = machine_config(&args.guest, args.post_port)?;
    let mut m = Machine::new(rom, config)?;
    attach_disks(&mut m, &args.disks)?;
    let outcome = m.run(RunLimits {
        max_instructions: args.guest.max_instructions,
    });
    print_summary(&m, &outcome.describe());
    // Make the guest's disk writes durable before we go.
    m.pc.ide.flush()?;
    Ok(outcome.exit_status() as u8)
}

fn cmd_demo(args: DemoArgs) -> Result<u8> {
    if let Some(path) = &args.save_rom {
        write_file(path, ringside_roms::DEMO)?;
        eprintln!(
            "ringside: wrote the demo ROM ({} bytes) to {}",
            ringside_roms::DEMO.len(),
            path.display()
        );
        return Ok(0);
    }
    let config = machine_config(&args.guest, None)?;
    let mut m = Machine::new(ringside_roms::DEMO.to_vec(), config)?;
    let outcome = m.run(RunLimits {
        max_instructions: args.guest.max_instructions,
    });
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
        let outcome = m.run(RunLimits {
            max_instructions: args.max_instructions,
        });
        let s = m.stats();
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
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
