//! The National Semiconductor PC16550D UART: COM1 at 0x3F8 (IRQ4) and
//! COM2 at 0x2F8 (IRQ3).
//!
//! Registers follow the PC16550D data sheet: divisor latch (LCR bit 7),
//! IER, IIR/FCR with the interrupt priorities of its Table IV (line status,
//! then received data or character timeout, then THR empty, then modem
//! status), LCR, MCR (OUT2 gates the interrupt onto the ISA bus, as on
//! every PC serial card), LSR, MSR, scratch, 16-byte FIFOs with trigger
//! levels 1/4/8/14, and loopback (MCR bit 4: transmitter fed back to the
//! receiver, modem outputs to modem inputs).
//!
//! Transmission is instantaneous: a byte written to THR goes straight to
//! the back-end and THR is empty again at once. Reception is paced by
//! virtual time only through the character timeout (four character times
//! at the programmed baud rate and frame format).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{self, Receiver, TryRecvError};

use crate::clock::{Clock, UART_RATE};

/// COM1's base port.
pub const COM1_BASE: u16 = 0x3F8;
/// COM2's base port.
pub const COM2_BASE: u16 = 0x2F8;

const FIFO_SIZE: usize = 16;

const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const IER_RLS: u8 = 0x04;
const IER_MS: u8 = 0x08;

const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;

/// Where a UART's bytes go and come from.
pub enum SerialBackend {
    /// Nothing attached: output dropped, no input.
    Null,
    /// The host's standard output; input from standard input, read by a
    /// helper thread so the emulator never blocks on it.
    Stdio(Option<Receiver<u8>>),
    /// A host file (output only), buffered and flushed at the end.
    File(BufWriter<File>),
    /// Kept in memory, for tests and frontends that show it themselves.
    Capture(Vec<u8>),
}

impl std::fmt::Debug for SerialBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerialBackend::Null => f.write_str("Null"),
            SerialBackend::Stdio(_) => f.write_str("Stdio"),
            SerialBackend::File(_) => f.write_str("File"),
            SerialBackend::Capture(v) => write!(f, "Capture({} bytes)", v.len()),
        }
    }
}

impl SerialBackend {
    /// Standard output, with standard input read by a background thread
    /// (the terminal mode is the frontend's business).
    pub fn stdio() -> SerialBackend {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("serial-stdin".into())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                let mut buf = [0u8; 256];
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            for &b in &buf[..n] {
                                if tx.send(b).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        SerialBackend::Stdio(spawned.ok().map(|_| rx))
    }

    /// Create (truncate) `path` for the output.
    pub fn create_file(path: &std::path::Path) -> io::Result<SerialBackend> {
        Ok(SerialBackend::File(BufWriter::new(File::create(path)?)))
    }

    fn has_input(&self) -> bool {
        matches!(self, SerialBackend::Stdio(Some(_)))
    }

    fn write_byte(&mut self, b: u8) -> io::Result<()> {
        match self {
            SerialBackend::Null => Ok(()),
            SerialBackend::Stdio(_) => {
                let mut out = io::stdout().lock();
                out.write_all(&[b])?;
                // Unbuffered feel for an interactive console.
                out.flush()
            }
            SerialBackend::File(w) => w.write_all(&[b]),
            SerialBackend::Capture(v) => {
                v.push(b);
                Ok(())
            }
        }
    }

    fn read_byte(&mut self) -> Option<u8> {
        match self {
            SerialBackend::Stdio(Some(rx)) => match rx.try_recv() {
                Ok(b) => Some(b),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    *self = SerialBackend::Stdio(None);
                    None
                }
            },
            _ => None,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SerialBackend::Stdio(_) => io::stdout().flush(),
            SerialBackend::File(w) => w.flush(),
            _ => Ok(()),
        }
    }
}

fn null_backend() -> SerialBackend {
    SerialBackend::Null
}

/// One 16550A.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Uart {
    clock: Clock,
    /// A host resource: not saved in snapshots (see [`crate::Pc::restore`]).
    #[serde(skip, default = "null_backend")]
    backend: SerialBackend,
    backend_failed: bool,
    divisor: u16,
    ier: u8,
    lcr: u8,
    mcr: u8,
    /// LSR error bits (OE, PE, FE, BI) waiting to be read.
    lsr_errors: u8,
    /// MSR delta bits (0–3) waiting to be read.
    msr_delta: u8,
    /// MSR status bits (4–7) last computed, for the deltas.
    msr_status: u8,
    scr: u8,
    fifo_enabled: bool,
    trigger: usize,
    rx: VecDeque<u8>,
    /// THR-empty interrupt armed (cleared by an IIR read naming it or a
    /// THR write, which re-arms it at once since sending is instantaneous).
    thre_pending: bool,
    /// Character timeout indication.
    timeout_pending: bool,
    /// Cycle of the last receive or read, from which the timeout counts.
    last_rx_activity: u64,
    /// The interrupt condition appeared anew and needs a fresh edge.
    retrigger: bool,
    /// Bytes transmitted (for the run summary).
    tx_bytes: u64,
}

impl Uart {
    /// Exchange host backends (snapshot restore).
    pub(crate) fn swap_backend(&mut self, other: &mut Uart) {
        std::mem::swap(&mut self.backend, &mut other.backend);
    }

    /// A UART in its reset state on `backend`.
    pub fn new(clock: Clock, backend: SerialBackend) -> Uart {
        Uart {
            clock,
            backend,
            backend_failed: false,
            divisor: 12, // 9600 baud, what BIOSes default to
            ier: 0,
            lcr: 0x03,
            mcr: 0,
            lsr_errors: 0,
            msr_delta: 0,
            msr_status: 0,
            scr: 0,
            fifo_enabled: false,
            trigger: 1,
            rx: VecDeque::with_capacity(FIFO_SIZE),
            thre_pending: false,
            timeout_pending: false,
            last_rx_activity: 0,
            retrigger: false,
            tx_bytes: 0,
        }
        .with_msr()
    }

    fn with_msr(mut self) -> Uart {
        self.msr_status = self.modem_inputs();
        self
    }

    /// The MR (master reset) pin: registers to their reset values; the
    /// back-end stays attached.
    pub fn reset(&mut self) {
        let backend = std::mem::replace(&mut self.backend, SerialBackend::Null);
        let tx = self.tx_bytes;
        *self = Uart::new(self.clock, backend);
        self.tx_bytes = tx;
    }

    /// CTS, DSR, RI, DCD (MSR bits 4–7): looped back from MCR in loopback
    /// mode; otherwise a host back-end is always "connected" (CTS, DSR,
    /// DCD).
    fn modem_inputs(&self) -> u8 {
        if self.mcr & MCR_LOOP != 0 {
            let m = self.mcr;
            (m & 0x02) << 3 | (m & 0x01) << 5 | (m & 0x04) << 4 | (m & 0x08) << 4
        } else {
            0xB0
        }
    }

    fn update_msr(&mut self) {
        let new = self.modem_inputs();
        let changed = new ^ self.msr_status;
        // DCTS, DDSR, DDCD on any change; TERI on RI falling.
        let mut d = (changed >> 4) & 0x0B;
        if changed & 0x40 != 0 && new & 0x40 == 0 {
            d |= 0x04;
        }
        if d != 0 {
            self.retrigger = true;
        }
        self.msr_delta |= d;
        self.msr_status = new;
    }

    /// Bits per character including start, parity and stop bits.
    fn frame_bits(&self) -> u64 {
        let data = 5 + (self.lcr & 3) as u64;
        let stop = if self.lcr & 0x04 != 0 { 2 } else { 1 };
        let parity = (self.lcr >> 3) as u64 & 1;
        1 + data + parity + stop
    }

    /// Cycles per character at the programmed baud rate.
    fn char_cycles(&self) -> u64 {
        let ticks = 16 * self.divisor.max(1) as u64 * self.frame_bits();
        self.clock.cycle_of_tick(ticks, UART_RATE)
    }

    /// Receive a byte (from the back-end, loopback or a test).
    fn receive(&mut self, b: u8, now: u64) {
        let cap = if self.fifo_enabled { FIFO_SIZE } else { 1 };
        if self.rx.len() >= cap {
            // Overrun: the byte is lost (non-FIFO: it overwrites RBR).
            self.lsr_errors |= LSR_OE;
            if !self.fifo_enabled {
                if let Some(last) = self.rx.back_mut() {
                    *last = b;
                }
            }
        } else {
            self.rx.push_back(b);
        }
        self.last_rx_activity = now;
        self.retrigger = true;
    }

    /// Queue bytes as if they arrived on the line at cycle `now` (tests,
    /// frontends). Bytes beyond the FIFO's room are an overrun.
    pub fn push_input(&mut self, bytes: &[u8], now: u64) {
        for &b in bytes {
            self.receive(b, now);
        }
    }

    /// Pull what the back-end has, while there is room.
    fn poll_backend(&mut self, now: u64) {
        if !self.backend.has_input() || self.mcr & MCR_LOOP != 0 {
            return;
        }
        let cap = if self.fifo_enabled { FIFO_SIZE } else { 1 };
        while self.rx.len() < cap {
            match self.backend.read_byte() {
                Some(b) => self.receive(b, now),
                None => break,
            }
        }
    }

    fn rda(&self) -> bool {
        if self.fifo_enabled {
            self.rx.len() >= self.trigger
        } else {
            !self.rx.is_empty()
        }
    }

    /// The highest-priority pending interrupt as IIR bits 3–0.
    fn interrupt_id(&self) -> u8 {
        if self.ier & IER_RLS != 0 && self.lsr_errors != 0 {
            0x06
        } else if self.ier & IER_RDA != 0 && self.rda() {
            0x04
        } else if self.ier & IER_RDA != 0 && self.timeout_pending && !self.rx.is_empty() {
            0x0C
        } else if self.ier & IER_THRE != 0 && self.thre_pending {
            0x02
        } else if self.ier & IER_MS != 0 && self.msr_delta != 0 {
            0x00
        } else {
            0x01
        }
    }

    /// The IRQ line: an interrupt pending and OUT2 set.
    pub fn irq(&self) -> bool {
        self.mcr & MCR_OUT2 != 0 && self.interrupt_id() & 1 == 0
    }

    /// Whether a new interrupt condition arose since the last call, so the
    /// edge-triggered PIC must see a fresh edge even if the line stayed high.
    pub fn take_retrigger(&mut self) -> bool {
        std::mem::take(&mut self.retrigger)
    }

    /// The next cycle at which the UART needs service: the character
    /// timeout, or polling the host for input while receive interrupts are
    /// on.
    pub fn next_event(&self, now: u64) -> Option<u64> {
        let mut next = None;
        if self.fifo_enabled && !self.rx.is_empty() && !self.rda() && !self.timeout_pending {
            next = Some(self.last_rx_activity + 4 * self.char_cycles());
        }
        if self.backend.has_input()
            && self.ier & IER_RDA != 0
            && self.mcr & MCR_OUT2 != 0
            && self.rx.len() < FIFO_SIZE
        {
            let poll = now + self.char_cycles();
            next = Some(next.map_or(poll, |n: u64| n.min(poll)));
        }
        next
    }

    /// Timed work at cycle `now`: character timeout, host input.
    pub fn service(&mut self, now: u64) {
        self.poll_backend(now);
        if self.fifo_enabled
            && !self.rx.is_empty()
            && !self.rda()
            && now >= self.last_rx_activity + 4 * self.char_cycles()
            && !self.timeout_pending
        {
            self.timeout_pending = true;
            self.retrigger = true;
        }
    }

    /// A byte read from register `offset` (0–7) at cycle `now`.
    pub fn read(&mut self, offset: u16, now: u64) -> u8 {
        let dlab = self.lcr & 0x80 != 0;
        match offset {
            0 if dlab => self.divisor as u8,
            0 => {
                self.poll_backend(now);
                let b = self.rx.pop_front().unwrap_or(0);
                self.timeout_pending = false;
                self.last_rx_activity = now;
                b
            }
            1 if dlab => (self.divisor >> 8) as u8,
            1 => self.ier,
            2 => {
                let id = self.interrupt_id();
                if id == 0x02 {
                    // Reading IIR naming THRE clears that source.
                    self.thre_pending = false;
                }
                id | if self.fifo_enabled { 0xC0 } else { 0 }
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => {
                self.poll_backend(now);
                let mut lsr = LSR_THRE | LSR_TEMT | std::mem::take(&mut self.lsr_errors);
                if !self.rx.is_empty() {
                    lsr |= LSR_DR;
                }
                lsr
            }
            6 => {
                self.update_msr();
                self.msr_status | std::mem::take(&mut self.msr_delta)
            }
            _ => self.scr,
        }
    }

    /// A byte written to register `offset` (0–7) at cycle `now`.
    pub fn write(&mut self, offset: u16, v: u8, now: u64) {
        let dlab = self.lcr & 0x80 != 0;
        match offset {
            0 if dlab => self.divisor = self.divisor & 0xFF00 | v as u16,
            0 => self.transmit(v, now),
            1 if dlab => self.divisor = self.divisor & 0x00FF | (v as u16) << 8,
            1 => {
                let was = self.ier;
                self.ier = v & 0x0F;
                // Enabling ETBEI with THR empty raises THRE at once.
                if v & IER_THRE != 0 && was & IER_THRE == 0 {
                    self.thre_pending = true;
                }
                self.retrigger = true;
            }
            2 => {
                let enable = v & 0x01 != 0;
                if enable != self.fifo_enabled {
                    // Changing the FIFO mode clears both FIFOs.
                    self.rx.clear();
                }
                self.fifo_enabled = enable;
                if v & 0x02 != 0 {
                    self.rx.clear();
                    self.timeout_pending = false;
                }
                self.trigger = [1, 4, 8, 14][(v >> 6) as usize];
            }
            3 => self.lcr = v,
            4 => {
                self.mcr = v & 0x1F;
                self.update_msr();
                self.retrigger = true;
            }
            // LSR and MSR are read-only (factory test only).
            5 | 6 => {}
            _ => self.scr = v,
        }
    }

    fn transmit(&mut self, b: u8, now: u64) {
        if self.mcr & MCR_LOOP != 0 {
            self.receive(b, now);
        } else {
            self.tx_bytes += 1;
            if !self.backend_failed {
                if let Err(e) = self.backend.write_byte(b) {
                    log::warn!("serial port: {e}; further output is dropped");
                    self.backend_failed = true;
                }
            }
        }
        self.thre_pending = true;
        self.retrigger = true;
    }

    /// Bytes the guest sent (not counting loopback).
    pub fn tx_bytes(&self) -> u64 {
        self.tx_bytes
    }

    /// The captured output, for [`SerialBackend::Capture`].
    pub fn captured(&self) -> Option<&[u8]> {
        match &self.backend {
            SerialBackend::Capture(v) => Some(v),
            _ => None,
        }
    }

    /// Flush the back-end.
    pub fn flush(&mut self) -> io::Result<()> {
        self.backend.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uart() -> Uart {
        Uart::new(Clock::default(), SerialBackend::Capture(Vec::new()))
    }

    #[test]
    fn divisor_latch_and_scratch() {
        let mut u = uart();
        u.write(3, 0x83, 0);
        u.write(0, 0x01, 0);
        u.write(1, 0x00, 0); // 115200 baud
        assert_eq!((u.read(0, 0), u.read(1, 0)), (0x01, 0x00));
        u.write(3, 0x03, 0);
        u.write(7, 0x5A, 0);
        assert_eq!(u.read(7, 0), 0x5A);
        assert_eq!(u.read(1, 0), 0x00, "IER, not DLM");
    }

    #[test]
    fn transmit_goes_to_the_backend() {
        let mut u = uart();
        for b in b"hi" {
            assert_ne!(u.read(5, 0) & LSR_THRE, 0);
            u.write(0, *b, 0);
        }
        assert_eq!(u.captured(), Some(&b"hi"[..]));
        assert_eq!(u.tx_bytes(), 2);
    }

    #[test]
    fn loopback_echoes_data_and_modem_lines() {
        let mut u = uart();
        u.write(4, 0x10 | 0x09, 0); // loop, DTR, OUT2 (RTS off)
        u.write(0, 0x42, 0);
        assert_eq!(u.read(5, 0) & LSR_DR, LSR_DR);
        assert_eq!(u.read(0, 0), 0x42);
        assert_eq!(u.read(5, 0) & LSR_DR, 0);
        assert_eq!(u.captured(), Some(&b""[..]), "nothing on the line");
        let msr = u.read(6, 0);
        assert_eq!(msr & 0xF0, 0xA0, "CTS←RTS, DSR←DTR, DCD←OUT2");
        assert_eq!(msr & 0x0F, 0x01, "CTS dropped: delta CTS");
        u.write(4, 0x10 | 0x04, 0); // only OUT1 → RI
        assert_eq!(u.read(6, 0) & 0xF0, 0x40);
    }

    #[test]
    fn interrupt_priorities_and_clearing() {
        let mut u = uart();
        u.write(4, 0x08, 0); // OUT2
        assert!(!u.irq());
        u.write(1, IER_THRE, 0);
        assert!(u.irq());
        assert_eq!(u.read(2, 0), 0x02, "THRE");
        assert!(!u.irq(), "cleared by reading IIR");
        u.write(1, IER_THRE | IER_RDA | IER_RLS, 0);
        u.push_input(b"x", 0);
        assert_eq!(u.read(2, 0), 0x04, "received data outranks THRE");
        u.push_input(b"y", 0); // overrun (no FIFO)
        assert_eq!(u.read(2, 0), 0x06, "line status first");
        assert_eq!(u.read(5, 0) & LSR_OE, LSR_OE);
        assert_eq!(u.read(0, 0), b'y');
        assert_eq!(u.read(2, 0), 0x01, "none");
        u.write(4, 0x00, 0);
        u.write(0, b'z', 0);
        assert!(!u.irq(), "OUT2 low: no IRQ on the bus");
    }

    #[test]
    fn fifo_trigger_level_and_character_timeout() {
        let mut u = uart();
        u.write(2, 0x47, 0); // FIFO on, clear, trigger 4
        u.write(1, IER_RDA, 0);
        u.write(4, 0x08, 0);
        u.push_input(b"abc", 100);
        assert_eq!(u.read(2, 100), 0xC1, "below the trigger level");
        let at = u.next_event(100).expect("timeout scheduled");
        assert_eq!(at, 100 + 4 * u.char_cycles());
        u.service(at - 1);
        assert!(!u.irq());
        u.service(at);
        assert!(u.irq());
        assert_eq!(u.read(2, at), 0xCC, "character timeout");
        assert_eq!(u.read(0, at), b'a');
        assert!(!u.irq(), "a read clears the timeout");
        u.push_input(b"defg", at);
        assert_eq!(u.read(2, at), 0xC4, "five bytes ≥ trigger 4");
        let mut got = Vec::new();
        while u.read(5, at) & LSR_DR != 0 {
            got.push(u.read(0, at));
        }
        assert_eq!(got, b"bcdefg");
    }
}
