//! The debugger's command language, shared by the REPL, `--debug-script`
//! and gdb's `monitor` command. Names follow Bochs' debugger where it has
//! one (`s`, `n`, `c`, `b`, `bl`, `bd`, `be`, `r`, `sreg`, `creg`, `u`, `x`,
//! `xp`, `info gdt` …); the rest is ours.
//!
//! Addresses and expressions are hexadecimal by default (see
//! [`super::expr`]); counts (`s 10`, `u 20`, `x /8w`, `log 50`) are decimal.
//! An address is `SEG:OFF` (CS selector and offset, as real-mode listings
//! and `r` show them; both parts may be expressions like `cs:eip`) or a
//! linear address; `p ADDR` is physical where a command accepts it.

use std::fmt::Write as _;
use std::path::Path;

use ringside_cpu::{HostExec, HostWatch};

use super::expr::{self, parse_number, Expr};
use super::view::{self, Location, MachineContext};
use super::{Catch, Debugger, PointKind, Resume, StopCause, SNAPSHOTS_KEPT, SNAPSHOT_EVERY};
use crate::Machine;

/// Commands: name, usage, what it does (for `help` and completion).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("s", "s [N]", "step N instructions (default 1), into calls and interrupts"),
    ("rs", "rs [N]", "reverse step: back N instructions (default 1), from the nearest earlier snapshot re-run to there"),
    ("rc", "rc", "reverse continue: back to the previous breakpoint, watchpoint or catchpoint stop (a watchpoint: before the access it saw, the same one after a watchpoint stop), or to the start of the recording"),
    ("rec", "rec on | rec off", "record snapshots for reverse stepping (on in the REPL; each copies all of RAM)"),
    ("n", "n", "step over: a CALL, INT n or REP string instruction runs to the next instruction"),
    ("c", "c", "continue until a breakpoint, watchpoint or catchpoint (Ctrl-C interrupts)"),
    ("finish", "finish", "run until the current function returns (RET/RETF/IRET above this stack frame)"),
    ("until", "until ADDR", "run to ADDR (a temporary breakpoint)"),
    ("b", "b ADDR [if COND]", "breakpoint at SEG:OFF (matches CS selector and EIP) or at a linear address"),
    ("vb", "vb SEG:OFF [if COND]", "breakpoint at CS selector:offset"),
    ("lb", "lb LINEAR [if COND]", "breakpoint at a linear address (CS.base + EIP)"),
    ("pb", "pb PHYS [if COND]", "breakpoint at a physical address"),
    ("tb", "tb ADDR [if COND]", "temporary breakpoint: deleted when it stops the machine"),
    ("watch", "watch r|w|rw [p] ADDR [LEN]", "watchpoint on LEN bytes (hex, default 1) at a linear (or p physical) address"),
    ("catch", "catch vector N | ring [N] | mode | task | port P[-Q]", "stop on an exception/interrupt vector, a ring change (to CPL N), a mode switch, a task switch, a port access"),
    ("bl", "bl", "list breakpoints, watchpoints and catchpoints"),
    ("bd", "bd N", "disable point N"),
    ("be", "be N", "enable point N"),
    ("del", "del N | del all", "delete point N (or all)"),
    ("r", "r", "registers: general, EIP, decoded EFLAGS, mode and CPL, segments with hidden descriptor caches, CR0-4, DR0-7"),
    ("sreg", "sreg", "segment registers with their hidden descriptor caches, GDTR, IDTR, LDTR, TR"),
    ("creg", "creg", "control registers CR0-CR4 decoded, debug registers DR0-DR7"),
    ("fpu", "fpu", "x87 registers, control, status and tag words"),
    ("u", "u [ADDR] [N] | u /N", "disassemble N instructions (default 10) at ADDR (default CS:EIP)"),
    ("x", "x [/NU] ADDR", "examine memory: N (decimal) units U = b, w or d (1, 2, 4 bytes) at a linear or SEG:OFF address"),
    ("xp", "xp [/NU] PHYS", "examine physical memory"),
    ("info", "info gdt|idt|ldt|tss|ivt|pic|pit|tlb|mode|break", "descriptor tables, interrupt vectors, devices, mode, points"),
    ("page", "page LINEAR", "walk the page tables for a linear address, each level with its flags"),
    ("tlb", "tlb", "TLB statistics and entries"),
    ("trace", "trace on FILE | trace off", "write every executed instruction to FILE (runs instruction by instruction)"),
    ("log", "log [N] | log on | log off", "the last N (default 20) CPU events: exceptions, interrupts, ring/mode/task changes (recording costs speed: off by default)"),
    ("screenshot", "screenshot FILE.png", "save the VGA display as a PNG"),
    ("screen", "screen", "the text on the VGA display (in a text mode), row by row"),
    ("?", "? EXPR", "evaluate an expression (hex numbers, registers, byte/word/dword[linear])"),
    ("help", "help [COMMAND]", "list commands, or explain one"),
    ("quit", "quit", "leave the debugger (q also works)"),
];

/// What a command produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Text to print (ends with a newline when not empty).
    pub text: String,
    /// The user asked to leave.
    pub quit: bool,
    /// The command was wrong (the text is one line saying why).
    pub error: bool,
    /// The machine ran and stopped for this reason.
    pub stop: Option<StopCause>,
}

impl Reply {
    fn ok(text: String) -> Reply {
        Reply {
            text,
            ..Reply::default()
        }
    }

    fn err(text: impl Into<String>) -> Reply {
        let mut t: String = text.into();
        t.push('\n');
        Reply {
            text: t,
            error: true,
            ..Reply::default()
        }
    }
}

/// Split `text` at the first `:` that is not inside brackets.
fn split_colon(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ':' if depth == 0 => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

fn eval(m: &mut Machine, text: &str) -> Result<u32, String> {
    let e: Expr = expr::parse(text).map_err(|e| e.0)?;
    e.eval(&mut MachineContext(m)).map_err(|e| e.0)
}

/// Parse an address: `SEG:OFF`, a linear address, or with `physical_ok`
/// `p ADDR`.
pub fn parse_location(m: &mut Machine, text: &str) -> Result<Location, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("p ").or_else(|| t.strip_prefix("P ")) {
        return Ok(Location::Physical(eval(m, rest)?));
    }
    if let Some((s, o)) = split_colon(t) {
        let sel = eval(m, s)?;
        if sel > 0xFFFF {
            return Err(format!("`{s}` is not a 16-bit selector"));
        }
        return Ok(Location::Segmented(sel as u16, eval(m, o)?));
    }
    Ok(Location::Linear(eval(m, t)?))
}

/// Parse a decimal count.
fn count(text: &str, what: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("`{text}` is not a {what} (a decimal number)"))
}

impl Debugger {
    /// Run one command line against the machine.
    pub fn execute(&mut self, m: &mut Machine, line: &str) -> Reply {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Reply::default();
        }
        let (cmd, args) = match line.find(char::is_whitespace) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => (line, ""),
        };
        match self.command(m, cmd, args) {
            Ok(r) => r,
            Err(e) => Reply::err(format!("{cmd}: {e}")),
        }
    }

    fn command(&mut self, m: &mut Machine, cmd: &str, args: &str) -> Result<Reply, String> {
        let words: Vec<&str> = args.split_whitespace().collect();
        let no_args = |r: Reply| {
            if words.is_empty() {
                Ok(r)
            } else {
                Err(format!("takes no arguments (got `{args}`)"))
            }
        };
        Ok(match cmd {
            "s" | "step" | "si" | "stepi" => {
                let n = match words.as_slice() {
                    [] => 1,
                    [n] => count(n, "step count")?,
                    _ => return Err("usage: s [N]".into()),
                };
                self.run(m, Resume::Step(n))
            }
            "rs" | "reverse-stepi" => {
                let n = match words.as_slice() {
                    [] => 1,
                    [n] => count(n, "step count")?,
                    _ => return Err("usage: rs [N]".into()),
                };
                let cause = self.reverse_step(m, n)?;
                let mut text = format!("{}\n", view::describe_stop(m, &cause));
                text.push_str(&view::next_instruction(m));
                Reply {
                    text,
                    stop: Some(cause),
                    ..Reply::default()
                }
            }
            "rc" | "reverse-continue" => {
                no_args(Reply::default())?;
                let cause = self.reverse_continue(m)?;
                let mut text = format!("{}\n", view::describe_stop(m, &cause));
                text.push_str(&view::next_instruction(m));
                Reply {
                    text,
                    stop: Some(cause),
                    ..Reply::default()
                }
            }
            "rec" => match words.as_slice() {
                ["on"] => {
                    self.set_reverse(true);
                    Reply::ok(format!(
                        "recording snapshots for reverse stepping (every {SNAPSHOT_EVERY} instructions, the last {SNAPSHOTS_KEPT} kept)\n"
                    ))
                }
                ["off"] => {
                    self.set_reverse(false);
                    Reply::ok("reverse stepping off, snapshots dropped\n".into())
                }
                _ => return Err("usage: rec on | rec off".into()),
            },
            "n" | "next" => no_args(Reply::default()).map(|_| self.run(m, Resume::Next))?,
            "c" | "cont" | "continue" => {
                no_args(Reply::default()).map(|_| self.run(m, Resume::Continue))?
            }
            "finish" => no_args(Reply::default()).map(|_| self.run(m, Resume::Finish))?,
            "until" => {
                let at = self.exec_location(m, args)?;
                self.run(m, Resume::Until(at))
            }
            "b" | "break" | "vb" | "lb" | "pb" | "tb" | "tbreak" => {
                if args.is_empty() {
                    return Err("needs an address (SEG:OFF or linear; see help b)".into());
                }
                let (addr, cond) = match args.find(" if ") {
                    Some(i) => (&args[..i], Some(&args[i + 4..])),
                    None => (args, None),
                };
                let at = match cmd {
                    "pb" => HostExec::Physical(eval(m, addr)?),
                    "lb" => HostExec::Linear(eval(m, addr)?),
                    "vb" if split_colon(addr).is_none() => return Err("vb needs SEG:OFF".into()),
                    _ => self.exec_location(m, addr)?,
                };
                let temporary = matches!(cmd, "tb" | "tbreak");
                let id = self
                    .add_breakpoint(at, cond, temporary)
                    .map_err(|e| format!("condition: {e}"))?;
                let p = self.points().iter().find(|p| p.id == id).cloned();
                Reply::ok(format!(
                    "{}\n",
                    p.map(|p| view::describe_point(&p)).unwrap_or_default()
                ))
            }
            "watch" => {
                let mut w = words.as_slice();
                let (read, write) = match w.first().copied() {
                    Some("r" | "read") => (true, false),
                    Some("w" | "write") => (false, true),
                    Some("rw" | "a" | "access") => (true, true),
                    _ => return Err("usage: watch r|w|rw [p] ADDR [LEN]".into()),
                };
                w = &w[1..];
                let physical = w.first() == Some(&"p");
                if physical {
                    w = &w[1..];
                }
                let (addr, len) = match w {
                    [a] => (*a, 1),
                    [a, l] => (
                        *a,
                        parse_number(l).filter(|&n| n > 0).ok_or_else(|| {
                            format!("`{l}` is not a length in bytes (hex, at least 1)")
                        })?,
                    ),
                    _ => return Err("usage: watch r|w|rw [p] ADDR [LEN]".into()),
                };
                let start = if physical {
                    eval(m, addr)?
                } else {
                    match parse_location(m, addr)? {
                        Location::Segmented(s, o) => view::segment_base(m, s).wrapping_add(o),
                        Location::Linear(l) | Location::Physical(l) => l,
                    }
                };
                let id = self.add(PointKind::Watch(HostWatch {
                    start,
                    len,
                    physical,
                    read,
                    write,
                }));
                self.describe(id)
            }
            "catch" => {
                let c = match words.as_slice() {
                    ["vector" | "int" | "exception", v] => Catch::Vector(
                        parse_number(v)
                            .filter(|&v| v <= 0xFF)
                            .ok_or_else(|| format!("`{v}` is not a vector (hex 0-FF)"))?
                            as u8,
                    ),
                    ["ring"] => Catch::AnyRing,
                    ["ring", n] => match *n {
                        "0" | "1" | "2" | "3" => Catch::Cpl(n.parse().unwrap_or(0)),
                        _ => return Err(format!("`{n}` is not a ring (0-3)")),
                    },
                    ["mode"] => Catch::Mode,
                    ["task"] => Catch::Task,
                    ["port", p] => {
                        let (lo, hi) = match p.split_once('-') {
                            Some((a, b)) => (a, b),
                            None => (*p, *p),
                        };
                        let port = |t: &str| {
                            parse_number(t)
                                .filter(|&v| v <= 0xFFFF)
                                .map(|v| v as u16)
                                .ok_or_else(|| format!("`{t}` is not a port (hex 0-FFFF)"))
                        };
                        let (lo, hi) = (port(lo)?, port(hi)?);
                        if lo > hi {
                            return Err(format!("empty port range {lo:X}-{hi:X}"));
                        }
                        Catch::Port(lo, hi)
                    }
                    _ => {
                        return Err(
                            "usage: catch vector N | ring [N] | mode | task | port P[-Q]".into(),
                        )
                    }
                };
                let id = self.add(PointKind::Catch(c));
                self.describe(id)
            }
            "bl" | "info break" => no_args(Reply::ok(self.list()))?,
            "bd" | "be" => {
                let id = point_id(&words)?;
                if !self.set_enabled(id, cmd == "be") {
                    return Err(format!("no point {id}"));
                }
                self.describe(id)
            }
            "del" | "d" | "delete" => {
                if words == ["all"] {
                    let ids: Vec<u32> = self.points().iter().map(|p| p.id).collect();
                    for id in &ids {
                        self.delete(*id);
                    }
                    Reply::ok(format!("deleted {} point(s)\n", ids.len()))
                } else {
                    let id = point_id(&words)?;
                    if !self.delete(id) {
                        return Err(format!("no point {id}"));
                    }
                    Reply::ok(format!("deleted point {id}\n"))
                }
            }
            "r" | "regs" | "registers" => no_args(Reply::ok(view::registers(m)))?,
            "sreg" => no_args(Reply::ok(view::segment_registers(m)))?,
            "creg" | "dreg" => no_args(Reply::ok(view::control_registers(m)))?,
            "fpu" => no_args(Reply::ok(view::fpu(m)))?,
            "u" | "disasm" => {
                let cs = m.cpu.segs[ringside_cpu::SegReg::Cs as usize].selector;
                let (at, n) = match words.as_slice() {
                    [] => (Location::Segmented(cs, m.cpu.eip), 10),
                    [n] if n.starts_with('/') => (
                        Location::Segmented(cs, m.cpu.eip),
                        count(&n[1..], "instruction count")?,
                    ),
                    [a] => (parse_location(m, a)?, 10),
                    ["p", a] => (Location::Physical(eval(m, a)?), 10),
                    [a, n] => (parse_location(m, a)?, count(n, "instruction count")?),
                    ["p", a, n] => (
                        Location::Physical(eval(m, a)?),
                        count(n, "instruction count")?,
                    ),
                    _ => return Err("usage: u [ADDR] [N]".into()),
                };
                Reply::ok(view::disassemble(m, at, n.min(10_000) as usize))
            }
            "x" | "xp" => {
                let (fmt, rest) = match words.first() {
                    Some(f) if f.starts_with('/') => (&f[1..], &words[1..]),
                    _ => ("", &words[..]),
                };
                let digits: String = fmt.chars().take_while(|c| c.is_ascii_digit()).collect();
                let unit_text = &fmt[digits.len()..];
                let n = if digits.is_empty() {
                    1
                } else {
                    count(&digits, "unit count")?
                };
                let unit = match unit_text {
                    "" | "d" => 4,
                    "b" => 1,
                    "w" | "h" => 2,
                    _ => return Err(format!("`/{fmt}`: the unit is b, w or d (1, 2 or 4 bytes)")),
                };
                if rest.len() != 1 {
                    return Err(format!("usage: {cmd} [/NU] ADDR"));
                }
                let at = if cmd == "xp" {
                    Location::Physical(eval(m, rest[0])?)
                } else {
                    parse_location(m, rest[0])?
                };
                Reply::ok(view::dump(m, at, n.min(65536) as usize, unit))
            }
            "info" => {
                let text = match words.as_slice() {
                    ["gdt"] => view::descriptor_table(m, false),
                    ["ldt"] => view::descriptor_table(m, true),
                    ["idt"] => view::idt(m),
                    ["ivt"] => view::ivt(m),
                    ["tss"] => view::tss(m),
                    ["pic"] => view::pic(m),
                    ["pit"] => view::pit(m),
                    ["tlb"] => view::tlb(m),
                    ["mode"] => view::mode(m),
                    ["break" | "breakpoints" | "b"] => self.list(),
                    ["registers" | "r"] => view::registers(m),
                    _ => {
                        return Err("usage: info gdt|idt|ldt|tss|ivt|pic|pit|tlb|mode|break".into())
                    }
                };
                Reply::ok(text)
            }
            "page" => {
                if args.is_empty() {
                    return Err("usage: page LINEAR".into());
                }
                let lin = match parse_location(m, args)? {
                    Location::Segmented(s, o) => view::segment_base(m, s).wrapping_add(o),
                    Location::Linear(l) => l,
                    Location::Physical(_) => return Err("needs a linear address".into()),
                };
                Reply::ok(view::page(m, lin))
            }
            "tlb" => no_args(Reply::ok(view::tlb(m)))?,
            "trace" => match words.as_slice() {
                ["on", file] => {
                    self.set_trace(Some(Path::new(file)))
                        .map_err(|e| format!("{file}: cannot create: {e}"))?;
                    Reply::ok(format!("tracing every instruction to {file}\n"))
                }
                ["off"] => {
                    let was = self.trace_path().map(|p| p.display().to_string());
                    self.set_trace(None)
                        .map_err(|e| format!("trace file: {e}"))?;
                    match was {
                        Some(p) => Reply::ok(format!("trace written to {p}\n")),
                        None => Reply::ok("tracing was off\n".into()),
                    }
                }
                _ => return Err("usage: trace on FILE | trace off".into()),
            },
            "log" => match words.as_slice() {
                ["on"] => {
                    self.set_logging(true);
                    Reply::ok(
                        "recording CPU events (the CPU runs slower while it records)\n".into(),
                    )
                }
                ["off"] => {
                    self.set_logging(false);
                    Reply::ok("event recording off\n".into())
                }
                [] | [_] => {
                    let n = match words.first() {
                        Some(n) => count(n, "event count")? as usize,
                        None => 20,
                    };
                    let mut s = String::new();
                    if !self.logging() {
                        s.push_str("event recording is off (`log on` starts it)\n");
                    }
                    for (at, e) in self.log(n) {
                        let _ = writeln!(s, "[{at:>10}] {}", view::describe_event(&e));
                    }
                    Reply::ok(s)
                }
                _ => return Err("usage: log [N] | log on | log off".into()),
            },
            "screenshot" => match words.as_slice() {
                [file] => {
                    let frame = m.frame();
                    let png = crate::png::encode(frame.width, frame.height, &frame.rgba)
                        .map_err(|e| format!("{file}: cannot encode: {e}"))?;
                    std::fs::write(file, png).map_err(|e| format!("{file}: cannot write: {e}"))?;
                    Reply::ok(format!(
                        "wrote {}x{} screenshot to {file}\n",
                        frame.width, frame.height
                    ))
                }
                _ => return Err("usage: screenshot FILE.png".into()),
            },
            "screen" => no_args(match m.pc.vga.text() {
                Some(text) => Reply::ok(text),
                None => Reply::ok("the VGA is in a graphics mode: no text to show\n".into()),
            })?,
            "?" | "print" | "p" => {
                if args.is_empty() {
                    return Err("usage: ? EXPR".into());
                }
                let v = eval(m, args)?;
                Reply::ok(format!("{v:08X} ({v})\n"))
            }
            "help" | "h" => Reply::ok(help(words.first().copied())?),
            "q" | "quit" | "exit" => Reply {
                quit: true,
                ..Reply::default()
            },
            _ => return Err("unknown command (`help` lists them)".into()),
        })
    }

    fn describe(&self, id: u32) -> Reply {
        let p = self.points().iter().find(|p| p.id == id);
        Reply::ok(format!(
            "{}\n",
            p.map(view::describe_point).unwrap_or_default()
        ))
    }

    fn list(&self) -> String {
        if self.points().is_empty() {
            return "no breakpoints, watchpoints or catchpoints\n".into();
        }
        let mut s = String::new();
        for p in self.points() {
            let _ = writeln!(s, "{}", view::describe_point(p));
        }
        s
    }

    /// A breakpoint location: `SEG:OFF` is segmented; a plain address is
    /// linear.
    fn exec_location(&self, m: &mut Machine, text: &str) -> Result<HostExec, String> {
        Ok(match parse_location(m, text)? {
            Location::Segmented(s, o) => HostExec::Segmented(s, o),
            Location::Linear(l) => HostExec::Linear(l),
            Location::Physical(p) => HostExec::Physical(p),
        })
    }

    /// Resume and describe where the machine stopped.
    fn run(&mut self, m: &mut Machine, how: Resume) -> Reply {
        let cause = self.resume(m, how);
        let mut text = format!("{}\n", view::describe_stop(m, &cause));
        if !matches!(cause, StopCause::Guest(_)) {
            text.push_str(&view::next_instruction(m));
        }
        Reply {
            text,
            stop: Some(cause),
            ..Reply::default()
        }
    }
}

fn point_id(words: &[&str]) -> Result<u32, String> {
    match words {
        [n] => n
            .parse()
            .map_err(|_| format!("`{n}` is not a point number (see bl)")),
        _ => Err("needs one point number (see bl)".into()),
    }
}

fn help(cmd: Option<&str>) -> Result<String, String> {
    match cmd {
        None => {
            let mut s = String::from(
                "Numbers in addresses and expressions are hex (0n10 is decimal); counts are decimal.\n\
                 An address is SEG:OFF or linear (p ADDR: physical where allowed).\n",
            );
            for (_, usage, what) in COMMANDS {
                let _ = writeln!(s, "  {usage:<34} {what}");
            }
            Ok(s)
        }
        Some(c) => COMMANDS
            .iter()
            .find(|(n, _, _)| *n == c)
            .map(|(_, usage, what)| format!("{usage}\n  {what}\n"))
            .ok_or_else(|| format!("no command `{c}`")),
    }
}
