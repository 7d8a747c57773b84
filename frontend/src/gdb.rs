//! The gdb remote stub (`--gdb [ADDR:]PORT`): gdb's `target remote` on
//! 127.0.0.1:PORT by default, driving the same debugger core as the REPL.
//! Whoever reaches the port controls the guest and reads its memory, so an
//! address other than loopback needs `--gdb-allow-remote` as well, and
//! prints a warning.
//!
//! GDB thinks in flat addresses. We report the PC as CS.base + EIP (the
//! linear address), so `x/3i $pc`, `break *0x7c00` and the disassembly all
//! agree in real and V86 mode too; a PC written by gdb is turned back into
//! EIP = PC − CS.base. Breakpoints gdb sets are linear; `monitor b SEG:OFF`
//! sets a segmented one, and every REPL command is a `monitor` command
//! (`monitor info gdt`, `monitor page 0xc0000000`, `monitor log`).
//! Memory reads and writes use linear addresses through the page tables.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use anyhow::{anyhow, Result};
use gdbstub::common::Signal;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadSingleStep,
};
use gdbstub::target::ext::breakpoints::{Breakpoints, HwWatchpoint, SwBreakpoint, WatchKind};
use gdbstub::target::ext::monitor_cmd::{outputln, ConsoleOutput, MonitorCmd};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::{Target, TargetResult};
use gdbstub_arch::x86::reg::X86CoreRegs;
use gdbstub_arch::x86::X86_SSE;
use ringside_machine::debugger::{
    gpr, view, Debugger, HostExec, HostWatch, Resume, SegReg, StopCause,
};
use ringside_machine::{Machine, RunOutcome};

/// Where the gdb stub listens: `PORT` and `:PORT` mean 127.0.0.1:PORT;
/// `ADDR:PORT` (`[v6]:PORT` for IPv6, `localhost:PORT`) names the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GdbAddress(pub SocketAddr);

impl std::str::FromStr for GdbAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<GdbAddress, String> {
        let t = s.trim();
        let bad =
            || format!("`{s}` is not PORT or ADDR:PORT (e.g. 1234, 127.0.0.1:1234, [::1]:1234)");
        let loopback = |p: &str| -> Result<GdbAddress, String> {
            let port = p.parse::<u16>().map_err(|_| bad())?;
            Ok(GdbAddress(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )))
        };
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return loopback(t);
        }
        if let Some(p) = t.strip_prefix(':').or_else(|| t.strip_prefix("localhost:")) {
            return loopback(p);
        }
        t.parse::<SocketAddr>().map(GdbAddress).map_err(|_| bad())
    }
}

impl std::fmt::Display for GdbAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl GdbAddress {
    /// Whether only this host can connect.
    pub fn is_loopback(&self) -> bool {
        self.0.ip().is_loopback()
    }
}

/// What gdb asked the machine to do next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Continue,
    Step,
    /// `reverse-stepi`: back one step through the debugger's snapshots.
    ReverseStep,
    /// `reverse-continue`: back to the previous stop (or the start of the
    /// recording).
    ReverseCont,
}

/// The machine as gdb's target.
struct GdbTarget<'a> {
    m: &'a mut Machine,
    dbg: &'a mut Debugger,
    action: Action,
    /// Set when the guest's run ended.
    ended: Option<RunOutcome>,
}

impl Target for GdbTarget<'_> {
    type Arch = X86_SSE;
    type Error = String;

    fn base_ops(&mut self) -> gdbstub::target::ext::base::BaseOps<'_, Self::Arch, Self::Error> {
        gdbstub::target::ext::base::BaseOps::SingleThread(self)
    }

    fn support_breakpoints(
        &mut self,
    ) -> Option<gdbstub::target::ext::breakpoints::BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(
        &mut self,
    ) -> Option<gdbstub::target::ext::monitor_cmd::MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }
}

/// The target description for the CPU's current code size. gdb reads it
/// once, when it connects, and disassembles (`x/i`, the stop line) in the
/// architecture it names: `i8086` (16-bit code: real mode, V86 mode, a
/// 16-bit protected-mode segment) or `i386:intel`. Without a `core`
/// feature gdb uses its own i386 register layout, the one
/// [`X86CoreRegs`] sends. After a switch of code size the user tells gdb
/// (`set architecture i386` / `i8086`): gdb has no way to be told.
pub fn target_description(code32: bool) -> String {
    format!(
        r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>{}</architecture><osabi>none</osabi><feature name="org.gnu.gdb.i386.sse"></feature></target>"#,
        if code32 { "i386:intel" } else { "i8086" }
    )
}

impl TargetDescriptionXmlOverride for GdbTarget<'_> {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        if annex != b"target.xml" {
            return Err(gdbstub::target::TargetError::NonFatal);
        }
        let xml = target_description(self.m.cpu.code32());
        let bytes = xml.as_bytes();
        let start = (offset.min(bytes.len() as u64)) as usize;
        let n = length.min(buf.len()).min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }
}

impl SingleThreadBase for GdbTarget<'_> {
    fn read_registers(&mut self, regs: &mut X86CoreRegs) -> TargetResult<(), Self> {
        let c = &self.m.cpu;
        regs.eax = c.regs[gpr::EAX];
        regs.ecx = c.regs[gpr::ECX];
        regs.edx = c.regs[gpr::EDX];
        regs.ebx = c.regs[gpr::EBX];
        regs.esp = c.regs[gpr::ESP];
        regs.ebp = c.regs[gpr::EBP];
        regs.esi = c.regs[gpr::ESI];
        regs.edi = c.regs[gpr::EDI];
        // The flat PC: what gdb's breakpoints and disassembly use.
        regs.eip = view::current_linear(self.m);
        regs.eflags = c.eflags();
        let sel = |s: SegReg| c.segs[s as usize].selector as u32;
        regs.segments.cs = sel(SegReg::Cs);
        regs.segments.ss = sel(SegReg::Ss);
        regs.segments.ds = sel(SegReg::Ds);
        regs.segments.es = sel(SegReg::Es);
        regs.segments.fs = sel(SegReg::Fs);
        regs.segments.gs = sel(SegReg::Gs);
        let v = c.fpu.view();
        for (i, st) in v.st.iter().enumerate() {
            regs.st[i] = st.value.to_bytes();
        }
        regs.fpu.fctrl = v.cw as u32;
        regs.fpu.fstat = v.sw as u32;
        regs.fpu.ftag = v.tw as u32;
        regs.fpu.fiseg = v.fcs as u32;
        regs.fpu.fioff = v.fip;
        regs.fpu.foseg = v.fds as u32;
        regs.fpu.fooff = v.fdp;
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86CoreRegs) -> TargetResult<(), Self> {
        let c = &mut self.m.cpu;
        c.regs[gpr::EAX] = regs.eax;
        c.regs[gpr::ECX] = regs.ecx;
        c.regs[gpr::EDX] = regs.edx;
        c.regs[gpr::EBX] = regs.ebx;
        c.regs[gpr::ESP] = regs.esp;
        c.regs[gpr::EBP] = regs.ebp;
        c.regs[gpr::ESI] = regs.esi;
        c.regs[gpr::EDI] = regs.edi;
        // gdb sends back the flat PC it was given.
        c.eip = regs.eip.wrapping_sub(c.segs[SegReg::Cs as usize].base);
        if c.eflags() != regs.eflags {
            c.set_eflags(regs.eflags);
        }
        // Segment registers are not reloaded from gdb: a load needs the
        // descriptor checks; use the guest or `monitor` for that.
        Ok(())
    }

    fn read_addrs(&mut self, start: u32, data: &mut [u8]) -> TargetResult<usize, Self> {
        for (i, b) in data.iter_mut().enumerate() {
            match view::read_linear_u8(self.m, start.wrapping_add(i as u32)) {
                Some(v) => *b = v,
                None if i == 0 => return Err(gdbstub::target::TargetError::NonFatal),
                None => return Ok(i),
            }
        }
        Ok(data.len())
    }

    fn write_addrs(&mut self, start: u32, data: &[u8]) -> TargetResult<(), Self> {
        for (i, &b) in data.iter().enumerate() {
            let lin = start.wrapping_add(i as u32);
            let p = self
                .m
                .cpu
                .debug_translate(lin)
                .ok_or(gdbstub::target::TargetError::NonFatal)?;
            if !self.m.cpu.mem.write_u8(p, b) {
                return Err(gdbstub::target::TargetError::NonFatal);
            }
        }
        // Code may have changed under the decode cache.
        self.m.cpu.flush_decode_cache();
        Ok(())
    }

    fn support_resume(
        &mut self,
    ) -> Option<gdbstub::target::ext::base::singlethread::SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for GdbTarget<'_> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.action = Action::Continue;
        Ok(())
    }

    fn support_single_step(
        &mut self,
    ) -> Option<gdbstub::target::ext::base::singlethread::SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_step(
        &mut self,
    ) -> Option<gdbstub::target::ext::base::reverse_exec::ReverseStepOps<'_, (), Self>> {
        Some(self)
    }

    fn support_reverse_cont(
        &mut self,
    ) -> Option<gdbstub::target::ext::base::reverse_exec::ReverseContOps<'_, (), Self>> {
        Some(self)
    }
}

impl gdbstub::target::ext::base::reverse_exec::ReverseCont<()> for GdbTarget<'_> {
    fn reverse_cont(&mut self) -> Result<(), Self::Error> {
        self.action = Action::ReverseCont;
        Ok(())
    }
}

impl gdbstub::target::ext::base::reverse_exec::ReverseStep<()> for GdbTarget<'_> {
    fn reverse_step(&mut self, _tid: ()) -> Result<(), Self::Error> {
        self.action = Action::ReverseStep;
        Ok(())
    }
}

impl SingleThreadSingleStep for GdbTarget<'_> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.action = Action::Step;
        Ok(())
    }
}

impl Breakpoints for GdbTarget<'_> {
    fn support_sw_breakpoint(
        &mut self,
    ) -> Option<gdbstub::target::ext::breakpoints::SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(
        &mut self,
    ) -> Option<gdbstub::target::ext::breakpoints::HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for GdbTarget<'_> {
    fn add_sw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        // Host breakpoints: guest memory is never patched with INT3.
        Ok(self
            .dbg
            .add_breakpoint(HostExec::Linear(addr), None, false)
            .is_ok())
    }

    fn remove_sw_breakpoint(&mut self, addr: u32, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.dbg.delete_breakpoints_at(HostExec::Linear(addr)) > 0)
    }
}

fn watch_of(addr: u32, len: u32, kind: WatchKind) -> HostWatch {
    let (read, write) = match kind {
        WatchKind::Write => (false, true),
        WatchKind::Read => (true, false),
        WatchKind::ReadWrite => (true, true),
    };
    HostWatch {
        start: addr,
        len: len.max(1),
        physical: false,
        read,
        write,
    }
}

impl HwWatchpoint for GdbTarget<'_> {
    fn add_hw_watchpoint(
        &mut self,
        addr: u32,
        len: u32,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        self.dbg
            .add(ringside_machine::debugger::PointKind::Watch(watch_of(
                addr, len, kind,
            )));
        Ok(true)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u32,
        len: u32,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.dbg.delete_watch(watch_of(addr, len, kind)) > 0)
    }
}

impl MonitorCmd for GdbTarget<'_> {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let Ok(cmd) = std::str::from_utf8(cmd) else {
            outputln!(out, "monitor: the command is not UTF-8");
            return Ok(());
        };
        // Running commands would leave gdb's idea of the state stale.
        let word = cmd.split_whitespace().next().unwrap_or("");
        if matches!(
            word,
            "s" | "n" | "c" | "finish" | "until" | "step" | "next" | "continue"
        ) {
            outputln!(
                out,
                "monitor: use gdb's own stepi/continue to run the guest"
            );
            return Ok(());
        }
        let reply = self.dbg.execute(self.m, cmd);
        for line in reply.text.lines() {
            outputln!(out, "{}", line);
        }
        Ok(())
    }
}

/// gdb's "No more reverse-execution history.": the start of the recording.
fn history_start() -> SingleThreadStopReason<u32> {
    SingleThreadStopReason::ReplayLog {
        tid: None,
        pos: gdbstub::target::ext::base::reverse_exec::ReplayLogPosition::Begin,
    }
}

/// A debugger stop as gdb's stop reason (the run's end and an interrupt
/// are the event loop's to handle).
fn stop_reason(cause: StopCause) -> SingleThreadStopReason<u32> {
    match cause {
        StopCause::Stepped | StopCause::Returned | StopCause::Reached => {
            SingleThreadStopReason::DoneStep
        }
        StopCause::Breakpoint { .. } | StopCause::ConditionError { .. } => {
            SingleThreadStopReason::SwBreak(())
        }
        StopCause::Watchpoint { linear, write, .. } => SingleThreadStopReason::Watch {
            tid: (),
            kind: if write {
                WatchKind::Write
            } else {
                WatchKind::Read
            },
            addr: linear,
        },
        StopCause::HistoryStart => history_start(),
        StopCause::Interrupted => SingleThreadStopReason::Signal(Signal::SIGINT),
        StopCause::Event { .. }
        | StopCause::Port { .. }
        | StopCause::Limit
        | StopCause::Guest(_) => SingleThreadStopReason::Signal(Signal::SIGTRAP),
    }
}

/// gdbstub's blocking event loop, for a target borrowing the machine for `'a`.
struct EventLoop<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> run_blocking::BlockingEventLoop for EventLoop<'a> {
    type Target = GdbTarget<'a>;
    type Connection = TcpStream;
    type StopReason = SingleThreadStopReason<u32>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut GdbTarget<'a>,
        conn: &mut TcpStream,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<String, std::io::Error>,
    > {
        let how = match target.action {
            Action::Continue => Resume::Continue,
            Action::Step => Resume::Step(1),
            Action::ReverseStep => {
                let reason = match target.dbg.reverse_step(target.m, 1) {
                    Ok(_) => SingleThreadStopReason::DoneStep,
                    Err(e) => {
                        // Nothing earlier to go back to: gdb says "No more
                        // reverse-execution history."
                        eprintln!("ringside: reverse-stepi: {e}");
                        history_start()
                    }
                };
                return Ok(run_blocking::Event::TargetStopped(reason));
            }
            Action::ReverseCont => {
                let reason = match target.dbg.reverse_continue(target.m) {
                    Ok(cause) => stop_reason(cause),
                    Err(e) => {
                        eprintln!("ringside: reverse-continue: {e}");
                        history_start()
                    }
                };
                return Ok(run_blocking::Event::TargetStopped(reason));
            }
        };
        let mut poll = || conn.peek().map(|b| b.is_some()).unwrap_or(true);
        let cause = target.dbg.resume_polled(target.m, how, &mut poll);
        let reason = match cause {
            StopCause::Interrupted => {
                let byte = ConnectionExt::read(conn)
                    .map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
            StopCause::Guest(o) => {
                target.ended = Some(o);
                SingleThreadStopReason::Exited(o.exit_status() as u8)
            }
            other => stop_reason(other),
        };
        Ok(run_blocking::Event::TargetStopped(reason))
    }

    fn on_interrupt(
        _target: &mut GdbTarget<'a>,
    ) -> Result<Option<SingleThreadStopReason<u32>>, String> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Wait for gdb on 127.0.0.1:`port`, hold the machine before its first
/// instruction until gdb resumes it, and serve until gdb detaches (the guest
/// then runs on without the debugger) or the guest's run ends. Returns the
/// guest's exit status.
pub fn serve(
    m: &mut Machine,
    dbg: &mut Debugger,
    at: GdbAddress,
    allow_remote: bool,
    max_instructions: Option<u64>,
) -> Result<u8> {
    if !at.is_loopback() {
        if !allow_remote {
            return Err(anyhow!(
                "--gdb {at}: not a loopback address (whoever reaches it controls the guest and reads its memory); add --gdb-allow-remote to listen there anyway"
            ));
        }
        eprintln!(
            "ringside: warning: the gdb stub listens on {at}, not loopback: anyone who can reach it controls the guest and reads its memory"
        );
    }
    let listener =
        TcpListener::bind(at.0).map_err(|e| anyhow!("{at}: cannot listen for gdb: {e}"))?;
    let bound = listener.local_addr().unwrap_or(at.0);
    eprintln!(
        "ringside: waiting for gdb on {bound} (target remote {}:{})",
        if bound.ip().is_loopback() {
            String::new()
        } else {
            bound.ip().to_string()
        },
        bound.port()
    );
    let (stream, peer) = listener
        .accept()
        .map_err(|e| anyhow!("{bound}: accepting gdb's connection: {e}"))?;
    eprintln!("ringside: gdb connected from {peer}");
    let mut conn = stream;
    let _ = Connection::on_session_start(&mut conn);
    let mut target = GdbTarget {
        m,
        dbg,
        action: Action::Continue,
        ended: None,
    };
    let stub = GdbStub::new(conn);
    let reason = stub
        .run_blocking::<EventLoop<'_>>(&mut target)
        .map_err(|e| anyhow!("gdb connection: {e}"))?;
    let ended = target.ended;
    dbg.disarm(m);
    if let Some(o) = ended {
        return Ok(o.exit_status() as u8);
    }
    match reason {
        DisconnectReason::Kill => {
            eprintln!("ringside: gdb killed the guest");
            Ok(0)
        }
        _ => {
            eprintln!("ringside: gdb detached; the guest runs on");
            let outcome = m.run(ringside_machine::RunLimits { max_instructions });
            eprintln!("ringside: {}", outcome.describe());
            Ok(outcome.exit_status() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_addresses_default_to_loopback() {
        let a = |s: &str| s.parse::<GdbAddress>().map(|a| a.0.to_string());
        assert_eq!(a("1234").as_deref(), Ok("127.0.0.1:1234"));
        assert_eq!(a(":1234").as_deref(), Ok("127.0.0.1:1234"));
        assert_eq!(a("localhost:9").as_deref(), Ok("127.0.0.1:9"));
        assert_eq!(a("0.0.0.0:1234").as_deref(), Ok("0.0.0.0:1234"));
        assert_eq!(a("[::1]:1234").as_deref(), Ok("[::1]:1234"));
        assert!("1234".parse::<GdbAddress>().unwrap().is_loopback());
        assert!("[::1]:1".parse::<GdbAddress>().unwrap().is_loopback());
        assert!(!"10.0.0.1:1".parse::<GdbAddress>().unwrap().is_loopback());
        for bad in ["", "70000", "host", "1.2.3.4", "1.2.3.4:x", ":", "a:b:c"] {
            let e = bad.parse::<GdbAddress>().unwrap_err();
            assert!(e.contains("is not PORT or ADDR:PORT"), "{bad}: {e}");
        }
    }
}
