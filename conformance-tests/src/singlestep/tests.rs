//! Parser and runner tests on tiny hand-built MOO files.

use super::moo::{parse, RegLayout};
use super::*;

fn chunk(tag: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = tag.to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn header(count: u32, cpu: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![1, 1, 0, 0];
    p.extend_from_slice(&count.to_le_bytes());
    p.extend_from_slice(cpu);
    chunk(b"MOO ", &p)
}

fn regs16(mask: u16, vals: &[u16]) -> Vec<u8> {
    let mut p = mask.to_le_bytes().to_vec();
    for v in vals {
        p.extend_from_slice(&v.to_le_bytes());
    }
    chunk(b"REGS", &p)
}

fn ram(entries: &[(u32, u8)]) -> Vec<u8> {
    let mut p = (entries.len() as u32).to_le_bytes().to_vec();
    for (a, b) in entries {
        p.extend_from_slice(&a.to_le_bytes());
        p.push(*b);
    }
    chunk(b"RAM ", &p)
}

fn len_prefixed(tag: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut p = (data.len() as u32).to_le_bytes().to_vec();
    p.extend_from_slice(data);
    chunk(tag, &p)
}

/// A 286 test: `code` at 1000:0100 followed by HLT, with `init16` =
/// ax bx cx dx cs ss ds es sp bp si di ip flags, extra RAM and final state.
struct T {
    idx: u32,
    code: Vec<u8>,
    init16: [u16; 14],
    init_ram: Vec<(u32, u8)>,
    fina_mask: u16,
    fina_vals: Vec<u16>,
    fina_ram: Vec<(u32, u8)>,
    excp: Option<(u8, u32)>,
    hash: [u8; 20],
}

impl T {
    fn new(code: &[u8]) -> T {
        T {
            idx: 0,
            code: code.to_vec(),
            init16: [
                0x1111, 0x2222, 0x0003, 0x4444, 0x1000, 0x2000, 0x3000, 0x4000, 0x0100, 0, 0, 0,
                0x0100, 0x0002,
            ],
            init_ram: Vec::new(),
            fina_mask: 0,
            fina_vals: Vec::new(),
            fina_ram: Vec::new(),
            excp: None,
            hash: [0xAB; 20],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut code = self.code.clone();
        code.push(0xF4);
        let base = ((self.init16[4] as u32) << 4) + self.init16[12] as u32;
        let mut r: Vec<(u32, u8)> = code
            .iter()
            .enumerate()
            .map(|(i, b)| (base + i as u32, *b))
            .collect();
        r.extend_from_slice(&self.init_ram);
        let mut init = regs16(0x3FFF, &self.init16);
        init.extend(ram(&r));
        let mut fina = regs16(self.fina_mask, &self.fina_vals);
        fina.extend(ram(&self.fina_ram));
        let mut p = self.idx.to_le_bytes().to_vec();
        p.extend(chunk(b"GMET", &[0; 10]));
        p.extend(len_prefixed(b"NAME", b"test"));
        p.extend(len_prefixed(b"BYTS", &code));
        p.extend(chunk(b"INIT", &init));
        p.extend(chunk(b"FINA", &fina));
        p.extend(chunk(b"CYCL", &0u32.to_le_bytes()));
        if let Some((n, a)) = self.excp {
            let mut e = vec![n];
            e.extend_from_slice(&a.to_le_bytes());
            p.extend(chunk(b"EXCP", &e));
        }
        p.extend(chunk(b"XTRA", b"unknown chunks are skipped"));
        p.extend(chunk(b"HASH", &self.hash));
        chunk(b"TEST", &p)
    }
}

fn file(tests: &[T]) -> Vec<u8> {
    let mut f = header(tests.len() as u32, b"C286");
    let mut meta = vec![1, 0, 6, 0x00, 0, 0, 0];
    meta.extend_from_slice(b"add     ");
    meta.extend_from_slice(&(tests.len() as u32).to_le_bytes());
    meta.extend_from_slice(&[0; 8]);
    meta.extend_from_slice(&[0, 0, 0, 0]);
    f.extend(chunk(b"META", &meta));
    for t in tests {
        f.extend(t.bytes());
    }
    f
}

/// `add ax, bx` (01 D8): 0x1111 + 0x2222 = 0x3333, flags PF set (0x33 has four ones).
fn add_test() -> T {
    let mut t = T::new(&[0x01, 0xD8]);
    t.fina_mask = (1 << 0) | (1 << 12) | (1 << 13);
    t.fina_vals = vec![0x3333, 0x0103, 0x0006];
    t
}

#[test]
fn parses_hand_built_file() {
    let f = parse(&file(&[add_test()])).unwrap();
    assert_eq!(f.header.cpu_name(), "C286");
    assert_eq!(f.header.test_count, 1);
    assert_eq!(f.meta.as_ref().unwrap().mnemonic, "add");
    let t = &f.tests[0];
    assert_eq!(t.name, "test");
    assert_eq!(t.bytes, vec![0x01, 0xD8, 0xF4]);
    let i = t.initial.regs.as_ref().unwrap();
    assert_eq!(i.layout, RegLayout::Regs16);
    assert_eq!(i.get_named("bx"), Some(0x2222));
    assert_eq!(i.get_named("flags"), Some(2));
    let fr = t.final_state.regs.as_ref().unwrap();
    assert_eq!(fr.get_named("ax"), Some(0x3333));
    assert_eq!(fr.get_named("bx"), None);
    assert_eq!(t.initial.ram.len(), 3);
    assert_eq!(t.initial.ram[0], (0x10100, 0x01));
    assert_eq!(t.hash_hex(), "ab".repeat(20));
    assert!(t.exception.is_none());
}

#[test]
fn parses_32_bit_registers_and_exception() {
    let mut rg = 0x0002_0004u32.to_le_bytes().to_vec(); // eax, eflags
    rg.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    rg.extend_from_slice(&0x0000_0002u32.to_le_bytes());
    let mut full = 0x000F_FFFFu32.to_le_bytes().to_vec();
    for i in 0..20u32 {
        full.extend_from_slice(&(i * 0x100).to_le_bytes());
    }
    let mut p = 7u32.to_le_bytes().to_vec();
    p.extend(len_prefixed(b"BYTS", &[0x90, 0xF4]));
    p.extend(chunk(b"INIT", &[chunk(b"RG32", &full), ram(&[])].concat()));
    p.extend(chunk(b"FINA", &chunk(b"RG32", &rg)));
    p.extend(chunk(b"EXCP", &[13, 0x34, 0x12, 0, 0]));
    let mut f = header(1, b"386E");
    f.extend(chunk(b"TEST", &p));
    let m = parse(&f).unwrap();
    let t = &m.tests[0];
    assert_eq!(t.index, 7);
    let fr = t.final_state.regs.as_ref().unwrap();
    assert_eq!(fr.layout, RegLayout::Regs32);
    assert_eq!(fr.get_named("eax"), Some(0xDEAD_BEEF));
    assert_eq!(fr.get_named("eflags"), Some(2));
    assert_eq!(
        t.initial.regs.as_ref().unwrap().get_named("esp"),
        Some(9 * 0x100)
    );
    let e = t.exception.unwrap();
    assert_eq!((e.number, e.flag_address), (13, 0x1234));
    assert!(t.hash.is_none());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let good = file(&[add_test(), add_test()]);
    assert!(parse(&good).is_ok());
    for n in 0..good.len() {
        let r = parse(&good[..n]);
        assert!(r.is_err(), "prefix of {n} bytes parsed");
    }
}

#[test]
fn corrupt_lengths_and_fields_are_errors() {
    let good = file(&[add_test()]);
    // Flip each byte in turn: the parser must never panic (errors or, for
    // value bytes, a different but valid file are both fine).
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xFF;
        let _ = parse(&b);
    }
    // Specific corruptions that must be reported.
    assert!(parse(b"NOPE").unwrap_err().msg.contains("not a MOO"));
    let mut wrong_count = good.clone();
    wrong_count[12] = 2; // header test count
    assert!(parse(&wrong_count)
        .unwrap_err()
        .msg
        .contains("declares 2 tests"));
    let mut huge = good.clone();
    let test_at = good.windows(4).position(|w| w == b"TEST").unwrap();
    huge[test_at + 4..test_at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse(&huge).unwrap_err().msg.contains("declares"));
    // A RAM chunk that claims more entries than it holds.
    let mut t = add_test();
    t.fina_ram = vec![(1, 1)];
    let mut b = file(&[t]);
    let ram_at = b.windows(4).rposition(|w| w == b"RAM ").unwrap();
    b[ram_at + 8..ram_at + 12].copy_from_slice(&1000u32.to_le_bytes());
    assert!(parse(&b)
        .unwrap_err()
        .msg
        .contains("RAM chunk declares 1000"));
    // A REGS mask naming a register that does not exist.
    let mut t = add_test();
    t.fina_mask = 0x8000;
    t.fina_vals = vec![0];
    assert!(parse(&file(&[t])).unwrap_err().msg.contains("bitmask"));
    // Incomplete INIT registers.
    let mut p = 0u32.to_le_bytes().to_vec();
    p.extend(len_prefixed(b"BYTS", &[0xF4]));
    p.extend(chunk(b"INIT", &regs16(1, &[5])));
    p.extend(chunk(b"FINA", &[]));
    let mut f = header(1, b"C286");
    f.extend(chunk(b"TEST", &p));
    assert!(parse(&f).unwrap_err().msg.contains("incomplete"));
}

#[test]
fn gzip_roundtrip_and_bad_gzip() {
    use std::io::Write as _;
    let raw = file(&[add_test()]);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&raw).unwrap();
    let gz = e.finish().unwrap();
    assert_eq!(moo::maybe_gunzip(gz.clone()).unwrap(), raw);
    assert!(moo::maybe_gunzip(gz[..gz.len() / 2].to_vec()).is_err());
    assert_eq!(moo::maybe_gunzip(raw.clone()).unwrap(), raw);
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-singlestep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn run_dir_reports_errors_naming_the_file() {
    let d = temp_dir("errors");
    assert!(matches!(
        run_dir(&d, &RunOptions::default(), &mut Vec::new()),
        Err(Error::NoTests { .. })
    ));
    std::fs::write(d.join("01.MOO"), &file(&[add_test()])[..40]).unwrap();
    let e = run_dir(&d, &RunOptions::default(), &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("01.MOO") && msg.contains("corrupt"), "{msg}");
    let missing = run_dir(&d.join("nope"), &RunOptions::default(), &mut Vec::new()).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }));
    let opts = RunOptions {
        only: vec!["02".into()],
        ..RunOptions::default()
    };
    assert!(matches!(
        run_dir(&d, &opts, &mut Vec::new()),
        Err(Error::NoTests { .. })
    ));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn revoked_tests_are_skipped_with_reason() {
    let d = temp_dir("revoked");
    std::fs::write(d.join("01.MOO"), file(&[add_test()])).unwrap();
    std::fs::write(
        d.join("revocation_list.txt"),
        format!("# bad\n{}\n", "ab".repeat(20)),
    )
    .unwrap();
    let mut out = Vec::new();
    let s = run_dir(&d, &RunOptions::default(), &mut out).unwrap();
    assert_eq!((s.passed, s.failed, s.skipped), (0, 0, 1));
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("revoked"), "{text}");
    assert_eq!(text.lines().last(), Some("0 passed, 0 failed, 1 skipped"));
    let _ = std::fs::remove_dir_all(&d);
}

/// A test whose expected result is deliberately wrong must fail, with a
/// readable diff. (HLT needs no instruction handler, so this does not depend
/// on how much of the CPU is implemented.)
#[test]
fn wrong_expectation_fails_with_diff() {
    let d = temp_dir("wrong");
    let mut t = T::new(&[]); // just the HLT
    t.fina_mask = (1 << 0) | (1 << 12);
    t.fina_vals = vec![0x9999, 0x0101]; // HLT does not change AX
    t.fina_ram = vec![(0x500, 0x42)];
    t.init_ram = vec![(0x500, 0x41)];
    std::fs::write(d.join("F4.MOO"), file(&[t])).unwrap();
    let mut out = Vec::new();
    let s = run_dir(&d, &RunOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(s.failed, 1, "{text}");
    assert!(text.contains("ax: expected 0x9999 got 0x1111"), "{text}");
    assert!(
        text.contains("mem[0x000500]: expected 0x42 got 0x41"),
        "{text}"
    );
    assert!(text.contains("hlt"), "{text}");
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed, 0 skipped"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn hlt_test_passes_and_harness_recovers_after_halting() {
    let d = temp_dir("hlt");
    let mut a = T::new(&[]);
    a.fina_mask = 1 << 12;
    a.fina_vals = vec![0x0101];
    let mut b = T::new(&[]);
    b.idx = 1;
    b.init16[12] = 0x0200;
    b.fina_mask = 1 << 12;
    b.fina_vals = vec![0x0201];
    std::fs::write(d.join("F4.MOO"), file(&[a, b])).unwrap();
    let mut out = Vec::new();
    let s = run_dir(
        &d,
        &RunOptions {
            verbose: true,
            ..RunOptions::default()
        },
        &mut out,
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((s.passed, s.failed, s.skipped), (2, 0, 0), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn popf_with_iopl_is_a_286_profile_skip() {
    let d = temp_dir("popf");
    let mut t = T::new(&[0x9D]);
    // SS=2000, SP=0100: the popped image 0x3002 has IOPL=3.
    t.init_ram = vec![(0x20100, 0x02), (0x20101, 0x30)];
    std::fs::write(d.join("9D.MOO"), file(&[t])).unwrap();
    let mut out = Vec::new();
    let s = run_dir(&d, &RunOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((s.passed, s.failed, s.skipped), (0, 0, 1), "{text}");
    assert!(text.contains("IOPL/NT"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sample_386ex_file_parses() {
    let Some(dir) = super::data_or_skip("moo-sample-386ex", "sample_386ex_file_parses") else {
        return;
    };
    let p = dir.join("00.MOO.gz");
    let f = load_moo(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.header.cpu_name(), "386E");
    assert_eq!(f.tests.len(), 500);
    let t = &f.tests[0];
    assert_eq!(t.name, "add [ss:bp+60h],bl");
    assert_eq!(t.bytes, vec![0x00, 0x5E, 0x60, 0xF4]);
    assert_eq!(t.hash_hex(), "435e8cf5fde5267986b9cf360c859971f96f062f");
    let i = t.initial.regs.as_ref().unwrap();
    assert_eq!(i.layout, RegLayout::Regs32);
    assert_eq!(i.get_named("eip"), Some(0x72A0));
    assert_eq!(i.get_named("ss"), Some(0xF7EC));
    assert_eq!(
        t.final_state.regs.as_ref().unwrap().get_named("eflags"),
        Some(0xFFFC_0092)
    );
    assert_eq!(t.final_state.ram, vec![(0xF7F21, 179)]);
    assert!(t.initial.ea.is_some());
    assert_eq!(
        f.tests.iter().filter(|t| t.initial.ea.is_some()).count(),
        371
    );
    assert_eq!(f.tests.iter().filter(|t| t.exception.is_some()).count(), 2);
}

/// `mov [0600h], al` with DS=3000: the byte written must be listed in FINA;
/// if the test does not list it, the runner reports a stray write.
#[test]
fn memory_writes_are_checked_both_ways() {
    let d = temp_dir("stray");
    let mut good = T::new(&[0xA2, 0x00, 0x06]);
    good.fina_mask = 1 << 12;
    good.fina_vals = vec![0x0104];
    good.fina_ram = vec![(0x30600, 0x11)];
    let mut bad = T::new(&[0xA2, 0x00, 0x06]);
    bad.idx = 1;
    bad.fina_mask = 1 << 12;
    bad.fina_vals = vec![0x0104];
    std::fs::write(d.join("A2.MOO"), file(&[good, bad])).unwrap();
    let mut out = Vec::new();
    let s = run_dir(&d, &RunOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!((s.passed, s.failed), (1, 1), "{text}");
    assert!(
        text.contains("stray write(s) to bytes the test does not list: 0x030600=0x11"),
        "{text}"
    );
    assert!(text.contains("mov [600h],al"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}
