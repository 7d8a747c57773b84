//! The disk guest: drives the primary IDE channel's master through the ATA
//! registers the way a BIOS does, with PIO and polling (interrupts stay
//! masked at nIEN), and reports on port 0xE9:
//!
//! 1. IDENTIFY DEVICE: prints the model string (byte-swapped back) and the
//!    LBA28 capacity (words 60–61).
//! 2. WRITE SECTORS: LBA 5, one sector of the pattern `i ^ 5Ah` (REP OUTSW),
//!    then FLUSH CACHE.
//! 3. READ SECTORS: LBA 4, two sectors with 32-bit PIO (REP INSD); checks
//!    that the second is the pattern and prints a dword sum of the first
//!    (the host's data, so the host test can predict it).
//! 4. READ SECTORS beyond the end: expects ERR with IDNF and prints the
//!    error register.
//!
//! Exits with 0 when every check held, or the number of the failed one.

use super::*;

/// Buffers in segment 0000.
const IDENTIFY_BUF: i32 = 0x1000;
const WRITE_BUF: i32 = 0x2000;
const READ_BUF: i32 = 0x3000;

/// Wait until BSY clears; leaves the status in AL.
fn wait_not_busy(p: &mut Prog) -> R<()> {
    let a = &mut p.a;
    let mut busy = a.create_label();
    a.mov(dx, 0x1F7)?;
    a.set_label(&mut busy)?;
    a.in_(al, dx)?;
    a.test(al, 0x80)?;
    a.jnz(busy)?;
    Ok(())
}

/// After [`wait_not_busy`]: fail check `n` unless DRQ is set and ERR clear.
fn expect_drq(p: &mut Prog, n: i32) -> R<()> {
    p.a.and(al, 0x09)?;
    p.a.cmp(al, 0x08)?;
    p.ensure_equal(n)
}

/// After [`wait_not_busy`]: fail check `n` unless DRQ and ERR are clear.
fn expect_done(p: &mut Prog, n: i32) -> R<()> {
    p.a.test(al, 0x09)?;
    p.ensure_equal(n)
}

/// Program an LBA28 command for the master: LBA in the low 24 bits.
fn lba28(p: &mut Prog, lba: i32, count: i32, cmd: i32) -> R<()> {
    let a = &mut p.a;
    for (port, v) in [
        (0x1F6, 0xE0),
        (0x1F2, count),
        (0x1F3, lba & 0xFF),
        (0x1F4, (lba >> 8) & 0xFF),
        (0x1F5, (lba >> 16) & 0xFF),
        (0x1F7, cmd),
    ] {
        a.mov(dx, port)?;
        a.mov(al, v)?;
        a.out(dx, al)?;
    }
    Ok(())
}

fn idetest_program() -> R<(Vec<u8>, Data)> {
    let mut data = Data::new();
    let mut p = Prog::new(&mut data)?;
    let s_title = data.str("Ringside disk guest: ATA PIO on the primary master\n");
    let s_model = data.str("IDENTIFY model: ");
    let s_cap = data.str("LBA28 sectors: ");
    let s_write = data.str("wrote LBA 5 (REP OUTSW), flushed\n");
    let s_read = data.str("read LBA 4-5 (REP INSD): LBA 5 matches, LBA 4 sum ");
    let s_oor = data.str("read past the end: error register ");
    let s_done = data.str("disk guest done\n");

    p.prologue()?;
    p.post(0x20)?;
    p.say(s_title)?;
    // nIEN: we poll.
    p.a.mov(dx, 0x3F6)?;
    p.a.mov(al, 0x02)?;
    p.a.out(dx, al)?;

    // 1. IDENTIFY DEVICE.
    p.a.mov(dx, 0x1F6)?;
    p.a.mov(al, 0xA0)?;
    p.a.out(dx, al)?;
    p.a.mov(dx, 0x1F7)?;
    p.a.mov(al, 0xEC)?;
    p.a.out(dx, al)?;
    wait_not_busy(&mut p)?;
    expect_drq(&mut p, 1)?;
    let a = &mut p.a;
    a.mov(di, IDENTIFY_BUF)?;
    a.mov(dx, 0x1F0)?;
    a.mov(cx, 256)?;
    a.rep().insw()?;
    wait_not_busy(&mut p)?;
    expect_done(&mut p, 2)?;
    p.say(s_model)?;
    // Words 27–46: two characters each, the first in the high byte.
    let a = &mut p.a;
    let mut next_pair = a.create_label();
    a.mov(bx, IDENTIFY_BUF + 27 * 2)?;
    a.mov(cx, 20)?;
    a.set_label(&mut next_pair)?;
    a.mov(ax, word_ptr(bx).es())?;
    a.xchg(al, ah)?;
    a.out(0xE9, al)?;
    a.mov(al, ah)?;
    a.out(0xE9, al)?;
    a.add(bx, 2)?;
    a.loop_(next_pair)?;
    a.call(p.newline)?;
    p.say(s_cap)?;
    p.a.mov(eax, dword_ptr(IDENTIFY_BUF + 60 * 2).es())?;
    p.a.call(p.print_dec32)?;
    p.a.call(p.newline)?;
    p.post(0x21)?;

    // 2. Fill the write buffer with i ^ 5Ah and write it to LBA 5.
    let a = &mut p.a;
    let mut fill = a.create_label();
    a.xor(bx, bx)?;
    a.set_label(&mut fill)?;
    a.mov(al, bl)?;
    a.xor(al, 0x5A)?;
    a.mov(byte_ptr(bx + WRITE_BUF).es(), al)?;
    a.inc(bx)?;
    a.cmp(bx, 512)?;
    a.jb(fill)?;
    lba28(&mut p, 5, 1, 0x30)?;
    wait_not_busy(&mut p)?;
    expect_drq(&mut p, 3)?;
    // OUTSW reads DS:SI: point DS at segment 0 for the transfer.
    let a = &mut p.a;
    a.push(ds)?;
    a.push(es)?;
    a.pop(ds)?;
    a.mov(si, WRITE_BUF)?;
    a.mov(dx, 0x1F0)?;
    a.mov(cx, 256)?;
    a.rep().outsw()?;
    a.pop(ds)?;
    wait_not_busy(&mut p)?;
    expect_done(&mut p, 4)?;
    p.a.mov(dx, 0x1F7)?;
    p.a.mov(al, 0xE7)?;
    p.a.out(dx, al)?;
    wait_not_busy(&mut p)?;
    expect_done(&mut p, 5)?;
    p.say(s_write)?;
    p.post(0x22)?;

    // 3. Read LBA 4 and 5 back with 32-bit transfers, one sector per DRQ.
    lba28(&mut p, 4, 2, 0x20)?;
    p.a.mov(di, READ_BUF)?;
    for check in [6, 7] {
        wait_not_busy(&mut p)?;
        expect_drq(&mut p, check)?;
        let a = &mut p.a;
        a.mov(dx, 0x1F0)?;
        a.mov(cx, 128)?;
        a.rep().insd()?;
    }
    wait_not_busy(&mut p)?;
    expect_done(&mut p, 8)?;
    let a = &mut p.a;
    a.push(ds)?;
    a.push(es)?;
    a.pop(ds)?;
    a.mov(si, WRITE_BUF)?;
    a.mov(di, READ_BUF + 512)?;
    a.mov(cx, 512)?;
    a.repe().cmpsb()?;
    a.pop(ds)?;
    p.ensure_equal(9)?;
    // Sum the dwords of LBA 4.
    let a = &mut p.a;
    let mut sum = a.create_label();
    a.xor(eax, eax)?;
    a.mov(bx, READ_BUF)?;
    a.set_label(&mut sum)?;
    a.add(eax, dword_ptr(bx).es())?;
    a.add(bx, 4)?;
    a.cmp(bx, READ_BUF + 512)?;
    a.jb(sum)?;
    a.push(eax)?;
    p.say(s_read)?;
    p.a.pop(eax)?;
    p.a.call(p.print_hex32)?;
    p.a.call(p.newline)?;
    p.post(0x23)?;

    // 4. A read beyond the last sector: ERR, error register IDNF (10h).
    lba28(&mut p, 0xFF_FFFF, 1, 0x20)?;
    wait_not_busy(&mut p)?;
    p.a.and(al, 0x09)?;
    p.a.cmp(al, 0x01)?;
    p.ensure_equal(10)?;
    p.say(s_oor)?;
    let a = &mut p.a;
    a.mov(dx, 0x1F1)?;
    a.in_(al, dx)?;
    a.xor(ah, ah)?;
    a.call(p.print_hex16)?;
    a.call(p.newline)?;
    p.say(s_done)?;
    p.post(0x24)?;
    p.exit(0)?;
    p.routines()?;
    let (code, _) = assemble(&mut p.a, &[])?;
    Ok((code, data))
}

/// The disk guest ROM image.
pub fn idetest_rom() -> R<Vec<u8>> {
    let (code, data) = idetest_program()?;
    rom_image(&code, &data)
}
