//! Reader for the MOO container of the SingleStepTests suites.
//!
//! Format: dbalsom/moo, `doc/moo_format_v1.md` (MOO 1.0/1.1). A file is a
//! `MOO ` header chunk followed by chunks of the form `tag: [u8; 4]`,
//! `len: u32 LE`, `payload: [u8; len]`. Chunks nest (`TEST` holds `NAME`,
//! `BYTS`, `INIT`, `FINA`, ...; `INIT`/`FINA` hold `REGS`/`RG32`, `RAM `, ...).
//! Unknown chunks are skipped by their length, as the specification asks.
//!
//! Every length read from the file is checked against the bytes that are
//! actually there, so a truncated or corrupt file yields a [`ParseError`]
//! naming the byte offset and the problem; the parser never panics and never
//! allocates more than the input size.

use std::io::Read;

/// Names of the registers of the 16-bit `REGS` layout, in bitmask order.
pub const REG16_NAMES: [&str; 14] = [
    "ax", "bx", "cx", "dx", "cs", "ss", "ds", "es", "sp", "bp", "si", "di", "ip", "flags",
];

/// Names of the registers of the 32-bit `RG32` layout, in bitmask order.
pub const REG32_NAMES: [&str; 20] = [
    "cr0", "cr3", "eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "cs", "ds", "es", "fs",
    "gs", "ss", "eip", "eflags", "dr6", "dr7",
];

/// Which register file a `REGS`/`RG32` (or `RMSK`/`RM32`) chunk describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegLayout {
    /// `REGS`: ax bx cx dx cs ss ds es sp bp si di ip flags, 16 bits each.
    Regs16,
    /// `RG32`: cr0 cr3 eax ebx ecx edx esi edi ebp esp cs ds es fs gs ss eip
    /// eflags dr6 dr7, 32 bits each.
    Regs32,
}

impl RegLayout {
    /// Register names in bitmask order.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            RegLayout::Regs16 => &REG16_NAMES,
            RegLayout::Regs32 => &REG32_NAMES,
        }
    }

    /// Index of register `name` in this layout.
    pub fn index_of(self, name: &str) -> Option<usize> {
        self.names().iter().position(|n| *n == name)
    }
}

/// A register set: which registers are present and their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registers {
    /// Register layout.
    pub layout: RegLayout,
    /// Bit `i` set: register `i` (in [`RegLayout::names`] order) is present.
    pub present: u32,
    /// Values, indexed like the names; absent registers hold 0.
    pub values: [u32; 20],
}

impl Registers {
    /// The value of register `i`, if present.
    pub fn get(&self, i: usize) -> Option<u32> {
        if i < 32 && self.present & (1 << i) != 0 {
            self.values.get(i).copied()
        } else {
            None
        }
    }

    /// The value of the register called `name`, if present.
    pub fn get_named(&self, name: &str) -> Option<u32> {
        self.get(self.layout.index_of(name)?)
    }
}

/// The `EA32` chunk: how the 386 computed the instruction's effective address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectiveAddress {
    /// Segment register (0 CS, 1 SS, 2 DS, 3 ES, 4 FS, 5 GS).
    pub segment: u8,
    /// Segment selector.
    pub selector: u16,
    /// Segment base.
    pub base: u32,
    /// Segment limit.
    pub limit: u32,
    /// Offset within the segment.
    pub offset: u32,
    /// Linear address.
    pub linear: u32,
    /// Physical address.
    pub physical: u32,
}

/// An `INIT` or `FINA` CPU state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// `REGS` or `RG32`. In `INIT` all registers are present; in `FINA` only
    /// the ones the instruction changed.
    pub regs: Option<Registers>,
    /// `RMSK` or `RM32`: AND-masks for register bits this test leaves undefined.
    pub reg_masks: Option<Registers>,
    /// `RAM `: (physical address, byte) pairs.
    pub ram: Vec<(u32, u8)>,
    /// `QUEU`: prefetch queue contents.
    pub queue: Vec<u8>,
    /// `EA32`: effective-address information (386 files).
    pub ea: Option<EffectiveAddress>,
}

/// The `EXCP` chunk: the test raised an exception or interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Vector number.
    pub number: u8,
    /// Physical address of the FLAGS image pushed on the stack.
    pub flag_address: u32,
}

/// One test: an instruction (followed by HLT), its initial and final state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// Index of the test in its file.
    pub index: u32,
    /// Human-readable disassembly from the generator.
    pub name: String,
    /// Instruction bytes, including the terminating HLT (0xF4).
    pub bytes: Vec<u8>,
    /// Initial state.
    pub initial: CpuState,
    /// Final state (registers and bytes that changed).
    pub final_state: CpuState,
    /// Number of bus cycles recorded in `CYCL` (the cycles themselves are not kept).
    pub cycle_count: u32,
    /// Exception raised, if any.
    pub exception: Option<Exception>,
    /// SHA-1 identifying the test (the revocation lists use it).
    pub hash: Option<[u8; 20]>,
}

impl TestCase {
    /// The hash as lower-case hex, or an empty string if the test has none.
    pub fn hash_hex(&self) -> String {
        match &self.hash {
            Some(h) => h.iter().map(|b| format!("{b:02x}")).collect(),
            None => String::new(),
        }
    }
}

/// The `MOO ` header chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Major format version.
    pub major: u8,
    /// Minor format version.
    pub minor: u8,
    /// Number of tests the file declares.
    pub test_count: u32,
    /// CPU id, e.g. `C286`, `386E`.
    pub cpu_id: [u8; 4],
}

impl FileHeader {
    /// The CPU id as text without its space padding.
    pub fn cpu_name(&self) -> String {
        String::from_utf8_lossy(&self.cpu_id).trim_end().to_string()
    }
}

/// The `META` chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Major version of the test collection.
    pub major: u8,
    /// Minor version of the test collection.
    pub minor: u8,
    /// CPU model enumeration.
    pub cpu_type: u8,
    /// Opcode tested by the file (0xFFFFFFFF: several).
    pub opcode: u32,
    /// Mnemonic, space padding removed.
    pub mnemonic: String,
    /// Number of tests.
    pub test_count: u32,
    /// Generator seed.
    pub seed: u64,
    /// CPU mode; 0 is real mode.
    pub cpu_mode: u8,
}

/// A parsed MOO file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MooFile {
    /// Header.
    pub header: FileHeader,
    /// Metadata, if the file has a `META` chunk.
    pub meta: Option<FileMeta>,
    /// File-wide register masks (`RMSK`/`RM32` at the top level).
    pub reg_masks: Option<Registers>,
    /// The tests, in file order.
    pub tests: Vec<TestCase>,
}

/// Why a MOO byte string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {msg}")]
pub struct ParseError {
    /// Offset (in the uncompressed data) where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub msg: String,
}

fn err<T>(offset: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        offset,
        msg: msg.into(),
    })
}

/// A bounds-checked little-endian reader over one chunk payload.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]` in the file, for error messages.
    base: usize,
    /// What is being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: usize, what: &'static str) -> Self {
        Reader {
            data,
            pos: 0,
            base,
            what,
        }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => err(
                self.offset(),
                format!(
                    "{} chunk truncated: needs {} more bytes, has {}",
                    self.what,
                    n,
                    self.data.len() - self.pos
                ),
            ),
        }
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        let lo = self.u32()? as u64;
        let hi = self.u32()? as u64;
        Ok(lo | hi << 32)
    }
}

/// One chunk: its tag, payload and the absolute offset of the payload.
struct Chunk<'a> {
    tag: [u8; 4],
    payload: &'a [u8],
    offset: usize,
}

fn tag_str(tag: &[u8; 4]) -> String {
    tag.iter()
        .map(|&b| {
            if (0x20..0x7F).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Split `data` (at absolute offset `base`) into chunks.
fn chunks(data: &[u8], base: usize) -> Result<Vec<Chunk<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data.len() - pos < 8 {
            return err(
                base + pos,
                format!(
                    "truncated chunk header ({} bytes left, need 8)",
                    data.len() - pos
                ),
            );
        }
        let tag = [data[pos], data[pos + 1], data[pos + 2], data[pos + 3]];
        let len = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]])
            as usize;
        let start = pos + 8;
        if len > data.len() - start {
            return err(
                base + pos,
                format!(
                    "chunk '{}' declares {} bytes but only {} remain",
                    tag_str(&tag),
                    len,
                    data.len() - start
                ),
            );
        }
        out.push(Chunk {
            tag,
            payload: &data[start..start + len],
            offset: base + start,
        });
        pos = start + len;
    }
    Ok(out)
}

/// Decompress `raw` if it is gzip data (magic 1F 8B); otherwise return it as is.
pub fn maybe_gunzip(raw: Vec<u8>) -> Result<Vec<u8>, ParseError> {
    if raw.len() >= 2 && raw[0] == 0x1F && raw[1] == 0x8B {
        let mut out = Vec::with_capacity(raw.len() * 3);
        let mut d = flate2::read::GzDecoder::new(&raw[..]);
        if let Err(e) = d.read_to_end(&mut out) {
            return err(out.len(), format!("gzip stream: {e}"));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an uncompressed MOO file.
pub fn parse(data: &[u8]) -> Result<MooFile, ParseError> {
    if data.len() < 8 || &data[0..4] != b"MOO " {
        return err(0, "not a MOO file (no 'MOO ' header chunk)");
    }
    let top = chunks(data, 0)?;
    let hdr = &top[0];
    let mut r = Reader::new(hdr.payload, hdr.offset, "MOO ");
    let major = r.u8()?;
    let minor = r.u8()?;
    r.take(2)?;
    let test_count = r.u32()?;
    let id = r.take(4)?;
    let header = FileHeader {
        major,
        minor,
        test_count,
        cpu_id: [id[0], id[1], id[2], id[3]],
    };
    if major > 1 {
        return err(hdr.offset, format!("unsupported MOO major version {major}"));
    }

    let mut file = MooFile {
        header,
        meta: None,
        reg_masks: None,
        tests: Vec::new(),
    };
    for c in &top[1..] {
        match &c.tag {
            b"META" => file.meta = Some(parse_meta(c)?),
            b"RMSK" | b"RM32" => file.reg_masks = Some(parse_regs(c)?),
            b"TEST" => {
                let t = parse_test(c)?;
                file.tests.push(t);
            }
            b"MOO " => return err(c.offset - 8, "second 'MOO ' header chunk"),
            _ => {} // unknown: skipped by length
        }
    }
    if file.tests.len() as u64 != header.test_count as u64 {
        return err(
            data.len(),
            format!(
                "header declares {} tests but the file holds {} (truncated or corrupt)",
                header.test_count,
                file.tests.len()
            ),
        );
    }
    Ok(file)
}

fn parse_meta(c: &Chunk<'_>) -> Result<FileMeta, ParseError> {
    let mut r = Reader::new(c.payload, c.offset, "META");
    let major = r.u8()?;
    let minor = r.u8()?;
    let cpu_type = r.u8()?;
    let opcode = r.u32()?;
    let mn = r.take(8)?;
    let mnemonic = String::from_utf8_lossy(mn).trim_end().to_string();
    let test_count = r.u32()?;
    let seed = r.u64()?;
    let cpu_mode = r.u8()?;
    Ok(FileMeta {
        major,
        minor,
        cpu_type,
        opcode,
        mnemonic,
        test_count,
        seed,
        cpu_mode,
    })
}

fn parse_regs(c: &Chunk<'_>) -> Result<Registers, ParseError> {
    let (layout, what) = match &c.tag {
        b"REGS" => (RegLayout::Regs16, "REGS"),
        b"RMSK" => (RegLayout::Regs16, "RMSK"),
        b"RG32" => (RegLayout::Regs32, "RG32"),
        _ => (RegLayout::Regs32, "RM32"),
    };
    let mut r = Reader::new(c.payload, c.offset, what);
    let n = layout.names().len();
    let present = match layout {
        RegLayout::Regs16 => r.u16()? as u32,
        RegLayout::Regs32 => r.u32()?,
    };
    if present >> n != 0 {
        return err(
            c.offset,
            format!("{what} bitmask {present:#x} names registers beyond the {n} defined"),
        );
    }
    let mut values = [0u32; 20];
    for (i, v) in values.iter_mut().enumerate().take(n) {
        if present & (1 << i) != 0 {
            *v = match layout {
                RegLayout::Regs16 => r.u16()? as u32,
                RegLayout::Regs32 => r.u32()?,
            };
        }
    }
    Ok(Registers {
        layout,
        present,
        values,
    })
}

fn parse_state(c: &Chunk<'_>, what: &'static str) -> Result<CpuState, ParseError> {
    let mut st = CpuState::default();
    for s in chunks(c.payload, c.offset)? {
        match &s.tag {
            b"REGS" | b"RG32" => {
                if st.regs.is_some() {
                    return err(s.offset - 8, format!("{what} holds two register chunks"));
                }
                st.regs = Some(parse_regs(&s)?);
            }
            b"RMSK" | b"RM32" => st.reg_masks = Some(parse_regs(&s)?),
            b"RAM " => {
                let mut r = Reader::new(s.payload, s.offset, "RAM ");
                let count = r.u32()? as usize;
                if count > (s.payload.len() - 4) / 5 {
                    return err(
                        s.offset,
                        format!(
                            "RAM chunk declares {count} entries but has room for {}",
                            (s.payload.len() - 4) / 5
                        ),
                    );
                }
                st.ram.reserve(count);
                for _ in 0..count {
                    let addr = r.u32()?;
                    let b = r.u8()?;
                    st.ram.push((addr, b));
                }
            }
            b"QUEU" => {
                let mut r = Reader::new(s.payload, s.offset, "QUEU");
                let n = r.u32()? as usize;
                st.queue = r.take(n)?.to_vec();
            }
            b"EA32" => {
                let mut r = Reader::new(s.payload, s.offset, "EA32");
                st.ea = Some(EffectiveAddress {
                    segment: r.u8()?,
                    selector: r.u16()?,
                    base: r.u32()?,
                    limit: r.u32()?,
                    offset: r.u32()?,
                    linear: r.u32()?,
                    physical: r.u32()?,
                });
            }
            _ => {}
        }
    }
    Ok(st)
}

fn parse_test(c: &Chunk<'_>) -> Result<TestCase, ParseError> {
    let mut r = Reader::new(c.payload, c.offset, "TEST");
    let index = r.u32()?;
    let mut name = String::new();
    let mut bytes = None;
    let mut initial = None;
    let mut final_state = None;
    let mut cycle_count = 0;
    let mut exception = None;
    let mut hash = None;
    for s in chunks(&c.payload[4..], c.offset + 4)? {
        match &s.tag {
            b"NAME" => {
                let mut r = Reader::new(s.payload, s.offset, "NAME");
                let n = r.u32()? as usize;
                name = String::from_utf8_lossy(r.take(n)?).into_owned();
            }
            b"BYTS" => {
                let mut r = Reader::new(s.payload, s.offset, "BYTS");
                let n = r.u32()? as usize;
                bytes = Some(r.take(n)?.to_vec());
            }
            b"INIT" => initial = Some(parse_state(&s, "INIT")?),
            b"FINA" => final_state = Some(parse_state(&s, "FINA")?),
            b"CYCL" => {
                let mut r = Reader::new(s.payload, s.offset, "CYCL");
                let n = r.u32()?;
                if n as u64 * 15 > (s.payload.len() - 4) as u64 {
                    return err(
                        s.offset,
                        format!(
                            "CYCL chunk declares {n} cycles but holds {} bytes",
                            s.payload.len()
                        ),
                    );
                }
                cycle_count = n;
            }
            b"EXCP" => {
                let mut r = Reader::new(s.payload, s.offset, "EXCP");
                exception = Some(Exception {
                    number: r.u8()?,
                    flag_address: r.u32()?,
                });
            }
            b"HASH" => {
                let mut r = Reader::new(s.payload, s.offset, "HASH");
                let h = r.take(20)?;
                let mut a = [0u8; 20];
                a.copy_from_slice(h);
                hash = Some(a);
            }
            _ => {} // GMET, IDX and future chunks
        }
    }
    let Some(bytes) = bytes else {
        return err(c.offset, format!("test {index} has no BYTS chunk"));
    };
    let Some(initial) = initial else {
        return err(c.offset, format!("test {index} has no INIT chunk"));
    };
    let Some(final_state) = final_state else {
        return err(c.offset, format!("test {index} has no FINA chunk"));
    };
    match &initial.regs {
        None => return err(c.offset, format!("test {index}: INIT has no registers")),
        Some(regs) => {
            // INIT holds every register (16-bit layout) or at least the
            // general registers, segments, EIP and EFLAGS (32-bit layout).
            let need = match regs.layout {
                RegLayout::Regs16 => 0x3FFF,
                RegLayout::Regs32 => 0x3_FFFC,
            };
            if regs.present & need != need {
                return err(
                    c.offset,
                    format!(
                        "test {index}: INIT registers incomplete (mask {:#x})",
                        regs.present
                    ),
                );
            }
        }
    }
    if let (Some(i), Some(f)) = (&initial.regs, &final_state.regs) {
        if i.layout != f.layout {
            return err(
                c.offset,
                format!("test {index}: INIT and FINA use different register layouts"),
            );
        }
    }
    Ok(TestCase {
        index,
        name,
        bytes,
        initial,
        final_state,
        cycle_count,
        exception,
        hash,
    })
}
