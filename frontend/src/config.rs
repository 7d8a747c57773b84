//! The machine spec file (`--config vm.toml`), like the VM specification
//! file a hypervisor keeps: memory, CPU, firmware, disks, boot order,
//! serial and debug console, display, RTC, pacing, debugger. Every command
//! line option of `ringside run` has a key here ([`CLI_KEYS`]); an option
//! given on the command line wins over the file.
//!
//! Relative paths in the file are relative to the file's own directory.
//! Unknown keys and bad values are errors that name the file, the line and
//! the key: `vm.toml:7: [machine] pace: `fast` is not a pacing mode`.
//!
//! `--print-config` prints the effective machine in the same format, so its
//! output is itself a spec file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

use crate::{BootOrder, Cli, DebugArgs, DiskArgs, GuestOptions, RtcStart};

/// Each `ringside run` option (clap id) and its spec-file key (checked
/// against the CLI by a test).
#[cfg(test)]
pub const CLI_KEYS: &[(&str, &str)] = &[
    ("bios", "machine.bios"),
    ("vga_bios", "machine.vga_bios"),
    ("boot", "machine.boot"),
    ("post_port", "machine.post_port"),
    ("memory", "machine.memory"),
    ("cpu", "machine.cpu"),
    ("cpu_mhz", "machine.cpu_mhz"),
    ("rtc", "machine.rtc"),
    ("pace", "machine.pace"),
    ("no_reboot", "machine.no_reboot"),
    ("max_instructions", "machine.max_instructions"),
    ("disk", "disks.disk"),
    ("hda", "disks.hda"),
    ("hdb", "disks.hdb"),
    ("cdrom", "disks.cdrom"),
    ("floppy", "disks.floppy"),
    ("snapshot", "disks.snapshot"),
    ("serial", "console.serial"),
    ("debugcon", "console.debugcon"),
    ("bios_log", "console.bios_log"),
    ("headless", "display.headless"),
    ("scale", "display.scale"),
    ("screenshot", "display.screenshot"),
    ("screenshot_every", "display.screenshot_every"),
    ("debug", "debug.repl"),
    ("debug_script", "debug.script"),
    ("gdb", "debug.gdb"),
];

/// Options that choose what to do with a spec, not what the machine is.
#[cfg(test)]
pub const NOT_MACHINE_OPTIONS: &[&str] = &[
    "config",
    "print_config",
    "help",
    // What to observe of a run (the trap log, statistics), not the machine.
    "trap_log",
    "trap_log_format",
    "trap_log_events",
    "trap_log_cpl",
    "stats",
    // The overlay panel shows what the run does; it is not the machine.
    "overlay",
    // Exposing the gdb stub beyond loopback is a host security choice made
    // on the command line each time, never carried in a spec file.
    "gdb_allow_remote",
];

/// The file, section by section; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    #[serde(default)]
    pub machine: MachineSection,
    #[serde(default)]
    pub disks: DisksSection,
    #[serde(default)]
    pub console: ConsoleSection,
    #[serde(default)]
    pub display: DisplaySection,
    #[serde(default)]
    pub debug: DebugSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// RAM in MiB.
    #[serde(default, deserialize_with = "memory")]
    pub memory: Option<u32>,
    /// CPU model (`pentium2`, the only one).
    #[serde(default, deserialize_with = "cpu_model")]
    pub cpu: Option<String>,
    #[serde(default, deserialize_with = "cpu_mhz")]
    pub cpu_mhz: Option<u64>,
    /// `builtin` (our BIOS) or a ROM file.
    pub bios: Option<String>,
    /// A VGA BIOS (option ROM) file at C000:0000.
    pub vga_bios: Option<PathBuf>,
    #[serde(default, deserialize_with = "boot")]
    pub boot: Option<BootOrder>,
    #[serde(default, deserialize_with = "port")]
    pub post_port: Option<u16>,
    #[serde(default, deserialize_with = "rtc")]
    pub rtc: Option<RtcStart>,
    #[serde(default, deserialize_with = "pace")]
    pub pace: Option<ringside_machine::Pace>,
    pub no_reboot: Option<bool>,
    pub max_instructions: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisksSection {
    pub disk: Option<Vec<PathBuf>>,
    pub hda: Option<PathBuf>,
    pub hdb: Option<PathBuf>,
    pub cdrom: Option<PathBuf>,
    /// A diskette image in drive A: (360K, 720K, 1.2M, 1.44M or 2.88M).
    pub floppy: Option<PathBuf>,
    /// Copy-on-write: guest writes stay in memory.
    pub snapshot: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    #[serde(default, deserialize_with = "serial")]
    pub serial: Option<String>,
    #[serde(default, deserialize_with = "debugcon")]
    pub debugcon: Option<String>,
    /// Our BIOS's log: `stderr`, `null` or a path.
    #[serde(default, deserialize_with = "bios_log")]
    pub bios_log: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplaySection {
    pub headless: Option<bool>,
    #[serde(default, deserialize_with = "scale")]
    pub scale: Option<u32>,
    pub screenshot: Option<PathBuf>,
    #[serde(default, deserialize_with = "screenshot_every")]
    pub screenshot_every: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugSection {
    pub repl: Option<bool>,
    pub script: Option<PathBuf>,
    #[serde(default, deserialize_with = "gdb_address")]
    pub gdb: Option<crate::gdb::GdbAddress>,
}

/// `gdb = 1234` or `gdb = "ADDR:PORT"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortOrAddress {
    Port(i64),
    Address(String),
}

fn gdb_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::gdb::GdbAddress>, D::Error> {
    checked(d, |v: PortOrAddress| match v {
        PortOrAddress::Port(p) => match u16::try_from(p) {
            Ok(p) => p.to_string().parse(),
            Err(_) => Err(format!("{p} is not a port (0–65535)")),
        },
        PortOrAddress::Address(a) => a.parse(),
    })
}

fn checked<'de, D, T, U>(
    d: D,
    check: impl FnOnce(T) -> Result<U, String>,
) -> Result<Option<U>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v = T::deserialize(d)?;
    check(v).map(Some).map_err(D::Error::custom)
}

fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    checked(d, |v: u32| {
        if (1..=3584).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} MiB is not between 1 and 3584"))
        }
    })
}

fn cpu_model<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |s: String| crate::parse_cpu(&s))
}

fn cpu_mhz<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    checked(d, |v: u64| {
        if (1..=100_000).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} MHz is not between 1 and 100000"))
        }
    })
}

fn scale<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    checked(d, |v: u32| {
        if (1..=8).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is not a scale between 1 and 8"))
        }
    })
}

fn screenshot_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    checked(d, |v: u64| {
        if v > 0 {
            Ok(v)
        } else {
            Err("must be at least 1 cycle".to_string())
        }
    })
}

fn boot<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BootOrder>, D::Error> {
    checked(d, |v: Vec<String>| crate::parse_boot_order(&v.join(",")))
}

/// A port: an integer (`0x84` in TOML) or a hex string as on the command line.
fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(i64),
        Text(String),
    }
    checked(d, |p: Port| match p {
        Port::Number(n) => u16::try_from(n).map_err(|_| format!("{n} is not a port (0 to 0xFFFF)")),
        Port::Text(s) => crate::parse_port(&s),
    })
}

fn rtc<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RtcStart>, D::Error> {
    checked(d, |s: String| crate::parse_rtc(&s))
}

fn pace<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ringside_machine::Pace>, D::Error> {
    checked(d, |s: String| crate::parse_pace(&s))
}

fn serial<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |s: String| {
        if s.is_empty() || s == "file:" {
            Err("expected `stdio`, `null` or `file:PATH`".to_string())
        } else {
            Ok(s)
        }
    })
}

fn debugcon<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |s: String| {
        if s.is_empty() {
            Err("expected `stdio`, `null` or a file path".to_string())
        } else {
            Ok(s)
        }
    })
}

fn bios_log<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |s: String| {
        if s.is_empty() {
            Err("expected `stderr`, `null` or a file path".to_string())
        } else {
            Ok(s)
        }
    })
}

/// Parse a spec file's text; `name` is how errors name the file.
pub fn parse(name: &str, text: &str) -> Result<Spec> {
    toml::from_str::<Spec>(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (None, None),
        };
        let msg = e.message().trim().replace('\n', " ");
        match (line, key) {
            (Some(l), Some(k)) => anyhow!("{name}:{l}: {k}: {msg}"),
            (Some(l), None) => anyhow!("{name}:{l}: {msg}"),
            _ => anyhow!("{name}: {msg}"),
        }
    })
}

/// The line number (1-based) of byte `at` and the key on that line with
/// the table it belongs to (`[machine] memory`).
fn locate(text: &str, at: usize) -> (Option<usize>, Option<String>) {
    let at = at.min(text.len());
    let line_no = text[..at].matches('\n').count() + 1;
    let mut table = None;
    let mut key = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i + 1 > line_no {
            break;
        }
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            table = Some(name.to_string());
            if i + 1 == line_no {
                key = None;
            }
        } else if i + 1 == line_no {
            key = t
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
                .filter(|k| !k.is_empty() && !k.starts_with('#'));
        }
    }
    let what = match (table, key) {
        (Some(t), Some(k)) => Some(format!("[{t}] {k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(format!("[{t}]")),
        (None, None) => None,
    };
    (Some(line_no), what)
}

/// Read and parse a spec file; paths in it become relative to its folder.
pub fn load(path: &Path) -> Result<Spec> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{name}: cannot read machine spec: {e}"))?;
    let mut spec = parse(&name, &text)?;
    let base = path.parent().unwrap_or(Path::new(""));
    spec.rebase(base);
    Ok(spec)
}

impl Spec {
    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        let d = &mut self.disks;
        d.disk.iter_mut().flatten().for_each(fix);
        d.hda.iter_mut().for_each(fix);
        d.hdb.iter_mut().for_each(fix);
        d.floppy.iter_mut().for_each(fix);
        // `empty` is a drive with no disc, not a file next to the spec.
        d.cdrom
            .iter_mut()
            .filter(|p| p.as_os_str() != "empty")
            .for_each(fix);
        self.display.screenshot.iter_mut().for_each(fix);
        self.debug.script.iter_mut().for_each(fix);
        self.machine.vga_bios.iter_mut().for_each(fix);
        if let Some(b) = &mut self.machine.bios {
            if b != "builtin" {
                let mut p = PathBuf::from(&*b);
                fix(&mut p);
                *b = p.display().to_string();
            }
        }
        let fix_str = |s: &mut String, prefix: &str| {
            if let Some(rest) = s.strip_prefix(prefix) {
                if !matches!(rest, "stdio" | "null" | "none") {
                    let mut p = PathBuf::from(rest);
                    fix(&mut p);
                    *s = format!("{prefix}{}", p.display());
                }
            }
        };
        if let Some(s) = &mut self.console.serial {
            if s.starts_with("file:") {
                fix_str(s, "file:");
            } else {
                fix_str(s, "");
            }
        }
        if let Some(s) = &mut self.console.debugcon {
            fix_str(s, "");
        }
        if let Some(s) = &mut self.console.bios_log {
            if s != "stderr" {
                fix_str(s, "");
            }
        }
    }
}

static MATCHES: OnceLock<ArgMatches> = OnceLock::new();

/// Parse the command line (exiting on errors, as clap does) and remember
/// which options were given, so a spec file fills only the others.
pub fn parse_cli() -> Cli {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((_, sub)) = matches.subcommand() {
        let _ = MATCHES.set(sub.clone());
    }
    cli
}

/// Whether option `id` was given on the command line.
fn explicit(id: &str) -> bool {
    MATCHES
        .get()
        .and_then(|m| m.try_get_raw(id).ok().flatten().map(|_| m.value_source(id)))
        .flatten()
        == Some(ValueSource::CommandLine)
}

/// What a spec fills in: the machine's parts of `run` or `demo`.
pub struct Targets<'a> {
    pub bios: Option<&'a mut Option<PathBuf>>,
    pub vga_bios: &'a mut Option<PathBuf>,
    pub boot: &'a mut Option<BootOrder>,
    pub post_port: &'a mut Option<u16>,
    pub disks: &'a mut DiskArgs,
    pub guest: &'a mut GuestOptions,
    pub debug: &'a mut DebugArgs,
}

fn set<T>(target: &mut T, value: Option<T>, id: &str, explicit: &dyn Fn(&str) -> bool) {
    if let Some(v) = value {
        if !explicit(id) {
            *target = v;
        }
    }
}

fn set_opt<T>(target: &mut Option<T>, value: Option<T>, id: &str, explicit: &dyn Fn(&str) -> bool) {
    if value.is_some() && !explicit(id) {
        *target = value;
    }
}

/// Copy the spec's values into the options `explicit` says were not given.
pub fn fill(spec: Spec, t: Targets<'_>, explicit: &dyn Fn(&str) -> bool) {
    let m = spec.machine;
    if let Some(bios) = t.bios {
        if let Some(b) = m.bios {
            if !explicit("bios") {
                *bios = (b != "builtin").then(|| PathBuf::from(b));
            }
        }
    }
    set_opt(t.vga_bios, m.vga_bios, "vga_bios", explicit);
    set_opt(t.boot, m.boot, "boot", explicit);
    set_opt(t.post_port, m.post_port, "post_port", explicit);
    let g = &mut *t.guest;
    set(&mut g.memory, m.memory, "memory", explicit);
    set(&mut g.cpu, m.cpu, "cpu", explicit);
    set(&mut g.cpu_mhz, m.cpu_mhz, "cpu_mhz", explicit);
    set(&mut g.rtc, m.rtc, "rtc", explicit);
    set(&mut g.pace, m.pace, "pace", explicit);
    set(&mut g.no_reboot, m.no_reboot, "no_reboot", explicit);
    set_opt(
        &mut g.max_instructions,
        m.max_instructions,
        "max_instructions",
        explicit,
    );
    let c = spec.console;
    set(&mut g.serial, c.serial, "serial", explicit);
    set(&mut g.debugcon, c.debugcon, "debugcon", explicit);
    set(&mut g.bios_log, c.bios_log, "bios_log", explicit);
    let d = spec.display;
    let f = &mut g.frontend;
    set(&mut f.headless, d.headless, "headless", explicit);
    set(&mut f.scale, d.scale, "scale", explicit);
    set_opt(&mut f.screenshot, d.screenshot, "screenshot", explicit);
    set_opt(
        &mut f.screenshot_every,
        d.screenshot_every,
        "screenshot_every",
        explicit,
    );
    let k = spec.disks;
    set(&mut t.disks.disk, k.disk, "disk", explicit);
    set_opt(&mut t.disks.hda, k.hda, "hda", explicit);
    set_opt(&mut t.disks.hdb, k.hdb, "hdb", explicit);
    set_opt(&mut t.disks.cdrom, k.cdrom, "cdrom", explicit);
    set_opt(&mut t.disks.floppy, k.floppy, "floppy", explicit);
    set(&mut t.disks.snapshot, k.snapshot, "snapshot", explicit);
    let b = spec.debug;
    set(&mut t.debug.debug, b.repl, "debug", explicit);
    set_opt(
        &mut t.debug.debug_script,
        b.script,
        "debug_script",
        explicit,
    );
    set_opt(&mut t.debug.gdb, b.gdb, "gdb", explicit);
}

/// `ringside run`: fill the options from `--config`; with
/// `--print-config`, print the effective machine and return true (the
/// command is then done).
pub fn prepare_run(a: &mut crate::RunArgs) -> Result<bool> {
    let t = Targets {
        bios: Some(&mut a.bios),
        vga_bios: &mut a.vga.vga_bios,
        boot: &mut a.boot,
        post_port: &mut a.post_port,
        disks: &mut a.disks,
        guest: &mut a.guest,
        debug: &mut a.debug,
    };
    finish(t)
}

/// `ringside demo`: as [`prepare_run`] (`bios` names the firmware that
/// boots the demo's disk).
pub fn prepare_demo(a: &mut crate::DemoArgs) -> Result<bool> {
    let t = Targets {
        bios: Some(&mut a.bios),
        vga_bios: &mut a.vga.vga_bios,
        boot: &mut a.boot,
        post_port: &mut a.post_port,
        disks: &mut a.disks,
        guest: &mut a.guest,
        debug: &mut a.debug,
    };
    finish(t)
}

fn finish(mut t: Targets<'_>) -> Result<bool> {
    if let Some(path) = t.guest.frontend.config.clone() {
        let spec = load(&path)?;
        fill(
            spec,
            Targets {
                bios: t.bios.as_deref_mut(),
                vga_bios: &mut *t.vga_bios,
                boot: &mut *t.boot,
                post_port: &mut *t.post_port,
                disks: &mut *t.disks,
                guest: &mut *t.guest,
                debug: &mut *t.debug,
            },
            &explicit,
        );
    }
    if t.guest.frontend.print_config {
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(print(&t).as_bytes());
        return Ok(true);
    }
    Ok(false)
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(&p.display().to_string())
}

/// The effective machine as a spec file (`--print-config`).
pub fn print(t: &Targets<'_>) -> String {
    use std::fmt::Write as _;
    let g = &*t.guest;
    let mut s = String::from("# ringside machine spec (effective configuration)\n\n[machine]\n");
    let _ = writeln!(s, "memory = {}  # MiB", g.memory);
    let _ = writeln!(s, "cpu = \"{}\"", g.cpu);
    let _ = writeln!(s, "cpu_mhz = {}", g.cpu_mhz);
    match &t.bios {
        Some(Some(p)) => {
            let _ = writeln!(s, "bios = {}", qp(p));
        }
        Some(None) => s.push_str("bios = \"builtin\"\n"),
        None => s.push_str("# bios: the demo ROM (ringside demo)\n"),
    }
    match &*t.vga_bios {
        Some(p) => {
            let _ = writeln!(s, "vga_bios = {}", qp(p));
        }
        None => s.push_str("# vga_bios = \"FILE\"  (none: our BIOS's own INT 10h)\n"),
    }
    let (boot, comment) = match t.boot.as_ref() {
        Some(b) => (b.0.clone(), ""),
        None => (
            ringside_machine::CmosConfig::default().boot_order,
            "# (default) ",
        ),
    };
    let names: Vec<String> = boot
        .iter()
        .map(|d| {
            q(match d {
                ringside_machine::BootDevice::HardDisk => "disk",
                ringside_machine::BootDevice::Cdrom => "cdrom",
                ringside_machine::BootDevice::Floppy => "floppy",
            })
        })
        .collect();
    let _ = writeln!(s, "{comment}boot = [{}]", names.join(", "));
    match *t.post_port {
        Some(p) => {
            let _ = writeln!(s, "post_port = 0x{p:x}");
        }
        None => s.push_str("# post_port = 0x84  (only port 0x80)\n"),
    }
    let rtc = match g.rtc {
        RtcStart::Host => "host".to_string(),
        RtcStart::Fixed(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            d.year, d.month, d.day, d.hour, d.minute, d.second
        ),
    };
    let _ = writeln!(s, "rtc = {}", q(&rtc));
    let pace = match g.pace {
        ringside_machine::Pace::Off => "off",
        ringside_machine::Pace::Realtime => "realtime",
    };
    let _ = writeln!(s, "pace = {}", q(pace));
    let _ = writeln!(s, "no_reboot = {}", g.no_reboot);
    match g.max_instructions {
        Some(n) => {
            let _ = writeln!(s, "max_instructions = {n}");
        }
        None => s.push_str("# max_instructions = N  (no limit)\n"),
    }
    s.push_str("\n[disks]\n");
    let d = &*t.disks;
    let list: Vec<String> = d.disk.iter().map(|p| qp(p)).collect();
    let _ = writeln!(s, "disk = [{}]", list.join(", "));
    for (key, v) in [
        ("hda", &d.hda),
        ("hdb", &d.hdb),
        ("cdrom", &d.cdrom),
        ("floppy", &d.floppy),
    ] {
        match v {
            Some(p) => {
                let _ = writeln!(s, "{key} = {}", qp(p));
            }
            None => {
                let _ = writeln!(s, "# {key} = \"FILE\"");
            }
        }
    }
    let _ = writeln!(s, "snapshot = {}", d.snapshot);
    s.push_str("\n[console]\n");
    let _ = writeln!(s, "serial = {}", q(&g.serial));
    let _ = writeln!(s, "debugcon = {}", q(&g.debugcon));
    let _ = writeln!(s, "bios_log = {}", q(&g.bios_log));
    s.push_str("\n[display]\n");
    let f = &g.frontend;
    let _ = writeln!(s, "headless = {}", f.headless);
    let _ = writeln!(s, "scale = {}", f.scale);
    match &f.screenshot {
        Some(p) => {
            let _ = writeln!(s, "screenshot = {}", qp(p));
        }
        None => s.push_str("# screenshot = \"FILE.png\"\n"),
    }
    match f.screenshot_every {
        Some(n) => {
            let _ = writeln!(s, "screenshot_every = {n}");
        }
        None => s.push_str("# screenshot_every = CYCLES\n"),
    }
    s.push_str("\n[debug]\n");
    let b = &*t.debug;
    let _ = writeln!(s, "repl = {}", b.debug);
    match &b.debug_script {
        Some(p) => {
            let _ = writeln!(s, "script = {}", qp(p));
        }
        None => s.push_str("# script = \"FILE\"\n"),
    }
    match b.gdb {
        Some(p) => {
            let _ = writeln!(s, "gdb = \"{p}\"");
        }
        None => s.push_str("# gdb = PORT or \"ADDR:PORT\"\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("vm.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn the_example_spec_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/vm.toml");
        let spec = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.machine.memory, Some(64));
        assert_eq!(spec.machine.cpu_mhz, Some(100));
        assert_eq!(spec.machine.pace, Some(ringside_machine::Pace::Realtime));
        assert_eq!(spec.display.scale, Some(2));
        // Relative paths are relative to the spec file.
        let hda = spec.disks.hda.unwrap();
        assert!(hda.ends_with("examples/disk.img"), "{}", hda.display());
        assert!(
            hda.starts_with(env!("CARGO_MANIFEST_DIR")),
            "{}",
            hda.display()
        );
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let e = err("[machine]\nmemory = 64\nmemroy = 32\n");
        assert!(
            e.starts_with("vm.toml:3: [machine] memroy: unknown field `memroy`"),
            "{e}"
        );
        let e = err("[machine]\n\n[disply]\nscale = 2\n");
        assert!(e.starts_with("vm.toml:3: "), "{e}");
        assert!(e.contains("disply"), "{e}");
        let e = err("memory = 64\n");
        assert!(e.starts_with("vm.toml:1: memory: unknown field"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let cases = [
            (
                "[machine]\nmemory = \"lots\"\n",
                "vm.toml:2: [machine] memory: ",
            ),
            (
                "[machine]\nmemory = 0\n",
                "vm.toml:2: [machine] memory: 0 MiB",
            ),
            (
                "[machine]\nmemory = 4000\n",
                "vm.toml:2: [machine] memory: 4000 MiB",
            ),
            (
                "[machine]\ncpu_mhz = 0\n",
                "vm.toml:2: [machine] cpu_mhz: 0 MHz",
            ),
            (
                "[machine]\ncpu = \"486\"\n",
                "vm.toml:2: [machine] cpu: `486` is not a CPU model Ringside has (pentium2)",
            ),
            (
                "[machine]\npace = \"fast\"\n",
                "vm.toml:2: [machine] pace: `fast` is not a pacing mode",
            ),
            (
                "[machine]\nrtc = \"yesterday\"\n",
                "vm.toml:2: [machine] rtc: `yesterday`",
            ),
            (
                "[machine]\nboot = [\"tape\"]\n",
                "vm.toml:2: [machine] boot: `tape` is not a boot device",
            ),
            (
                "[machine]\npost_port = 70000\n",
                "vm.toml:2: [machine] post_port: 70000 is not a port",
            ),
            (
                "[machine]\npost_port = \"xyz\"\n",
                "vm.toml:2: [machine] post_port: `xyz`",
            ),
            (
                "[machine]\nno_reboot = 1\n",
                "vm.toml:2: [machine] no_reboot: ",
            ),
            (
                "[machine]\nmax_instructions = -1\n",
                "vm.toml:2: [machine] max_instructions: ",
            ),
            ("[disks]\ndisk = \"a.img\"\n", "vm.toml:2: [disks] disk: "),
            ("[disks]\nfloppy = 3\n", "vm.toml:2: [disks] floppy: "),
            (
                "[disks]\nfda = \"a.img\"\n",
                "vm.toml:2: [disks] fda: unknown field",
            ),
            (
                "[disks]\nsnapshot = \"yes\"\n",
                "vm.toml:2: [disks] snapshot: ",
            ),
            (
                "[console]\nserial = \"\"\n",
                "vm.toml:2: [console] serial: expected",
            ),
            (
                "[console]\ndebugcon = \"\"\n",
                "vm.toml:2: [console] debugcon: expected",
            ),
            (
                "[console]\nbios_log = \"\"\n",
                "vm.toml:2: [console] bios_log: expected",
            ),
            (
                "[display]\nscale = 0\n",
                "vm.toml:2: [display] scale: 0 is not a scale",
            ),
            (
                "[display]\nscreenshot_every = 0\n",
                "vm.toml:2: [display] screenshot_every: must be",
            ),
            (
                "[display]\nheadless = \"no\"\n",
                "vm.toml:2: [display] headless: ",
            ),
            ("[debug]\ngdb = 70000\n", "vm.toml:2: [debug] gdb: "),
            ("[debug]\nrepl = 3\n", "vm.toml:2: [debug] repl: "),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}…");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("[machine]\nmemory = 64\ncpu_mhz = \n");
        assert!(e.starts_with("vm.toml:3:"), "{e}");
        let e = err("[machine]\nmemory = 64\nmemory = 32\n");
        assert!(e.starts_with("vm.toml:3:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = load(Path::new("/nonexistent/vm.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/vm.toml: cannot read machine spec"),
            "{e}"
        );
    }

    fn run_args(argv: &[&str]) -> (crate::RunArgs, ArgMatches) {
        let mut full = vec!["ringside", "run"];
        full.extend_from_slice(argv);
        let matches = Cli::command().try_get_matches_from(full).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let sub = matches.subcommand().unwrap().1.clone();
        match cli.command {
            crate::Command::Run(a) => (a, sub),
            _ => unreachable!(),
        }
    }

    fn targets(a: &mut crate::RunArgs) -> Targets<'_> {
        Targets {
            bios: Some(&mut a.bios),
            vga_bios: &mut a.vga.vga_bios,
            boot: &mut a.boot,
            post_port: &mut a.post_port,
            disks: &mut a.disks,
            guest: &mut a.guest,
            debug: &mut a.debug,
        }
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let spec = parse(
            "vm.toml",
            "[machine]\nmemory = 64\ncpu_mhz = 50\npace = \"realtime\"\n[console]\nserial = \"stdio\"\n[display]\nscale = 3\n",
        )
        .unwrap();
        let (mut a, sub) = run_args(&["--memory", "32", "--scale", "1"]);
        let explicit = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
        fill(spec, targets(&mut a), &explicit);
        assert_eq!(a.guest.memory, 32);
        assert_eq!(a.guest.frontend.scale, 1);
        assert_eq!(a.guest.cpu_mhz, 50);
        assert_eq!(a.guest.pace, ringside_machine::Pace::Realtime);
        assert_eq!(a.guest.serial, "stdio");
    }

    #[test]
    fn printed_config_reads_back_as_the_same_machine() {
        let (mut a, _) = run_args(&[
            "--memory",
            "48",
            "--cpu-mhz",
            "33",
            "--boot",
            "cdrom,disk",
            "--post-port",
            "84",
            "--rtc",
            "2024-02-29T12:34:56",
            "--pace",
            "realtime",
            "--no-reboot",
            "--max-instructions",
            "1000",
            "--hda",
            "a b.img",
            "--disk",
            "c.img",
            "--cdrom",
            "x.iso",
            "--fda",
            "boot.img",
            "--snapshot",
            "--serial",
            "file:s.txt",
            "--debugcon",
            "null",
            "--bios-log",
            "boot.log",
            "--headless",
            "--scale",
            "3",
            "--screenshot",
            "shot.png",
            "--screenshot-every",
            "5000",
            "--gdb",
            "1234",
            "--bios",
            "rom.bin",
            "--vga-bios",
            "vga.bin",
        ]);
        let printed = print(&targets(&mut a));
        let spec = parse("printed", &printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        let (mut b, _) = run_args(&[]);
        fill(spec, targets(&mut b), &|_| false);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "\n{printed}");
        // Defaults print and read back too.
        let (mut a, _) = run_args(&[]);
        let printed = print(&targets(&mut a));
        let spec = parse("printed", &printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        let (mut b, _) = run_args(&["--memory", "5"]);
        fill(spec, targets(&mut b), &|_| false);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "\n{printed}");
    }

    #[test]
    fn every_run_option_has_a_spec_key() {
        let cmd = Cli::command();
        let run = cmd.find_subcommand("run").unwrap();
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if NOT_MACHINE_OPTIONS.contains(&id) {
                continue;
            }
            assert!(
                CLI_KEYS.iter().any(|(o, _)| *o == id),
                "`ringside run --{}` has no machine spec key: add it to frontend/src/config.rs",
                arg.get_long().unwrap_or(id)
            );
        }
        // And every key listed is one the printed spec has.
        let (mut a, _) = run_args(&[]);
        let printed = print(&targets(&mut a));
        for (_, key) in CLI_KEYS {
            let (section, name) = key.split_once('.').unwrap();
            let at = printed.find(&format!("[{section}]")).unwrap();
            let rest = &printed[at..];
            assert!(
                rest.contains(&format!("\n{name} = "))
                    || rest.contains(&format!("\n# {name} = "))
                    || rest.contains(&format!(" {name} = ")),
                "{key} missing from --print-config"
            );
        }
    }
}
