//! Writes a tiny static i686 Linux program that single-steps itself
//! (issue 21): it catches SIGTRAP, sets EFLAGS.TF, runs a few instructions
//! including two `int $0x80` system calls and `rep movsb` with ECX = 3,
//! clears TF, and prints how many traps it got and how many of them had
//! EIP on the REP MOVSB:
//!
//! ```text
//! stepper: traps=11 at_rep=3
//! ```
//!
//! which is what the SDM's rules give (Vol. 3B §17.3.1.4): one trap per
//! traced instruction, none for the `int $0x80`s (their gate clears TF; the
//! kernel runs untraced and its IRET restores TF), three for the REP's
//! iterations plus the one after `mov ecx, 3` (all with EIP on the REP but
//! the last). Its exit status is the trap count. No C toolchain is needed:
//! the ELF is assembled here with iced-x86.
//!
//! `cargo run --release -p ringside-cpu --example linux_stepper -- OUT`;
//! scripts/linux-single-step-check.sh runs it in the Linux guest.

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;

const BASE: u32 = 0x0804_8000;
const HEADERS: u32 = 52 + 32;

/// Addresses of the labels, in order: handler, restorer, act, count,
/// at_rep, src, dst, msg, rep. Absolute operands (32-bit mode has no
/// label-relative data addressing), so the code is assembled twice: once
/// to learn them, once with them; every such operand is a 4-byte field
/// either way, so nothing moves.
type Addrs = [u32; 9];

fn assemble(v: &Addrs) -> Result<(Vec<u8>, Addrs), IcedError> {
    let [h_handler, h_restorer, h_act, h_count, h_at_rep, h_src, h_dst, h_msg, h_rep] = *v;
    let mut a = CodeAssembler::new(32)?;
    let mut handler = a.create_label();
    let mut restorer = a.create_label();
    let mut act = a.create_label();
    let mut count = a.create_label();
    let mut at_rep = a.create_label();
    let mut src = a.create_label();
    let mut dst = a.create_label();
    let mut msg = a.create_label();
    let mut rep = a.create_label();
    // sigaction(SIGTRAP, &act, NULL) (the old i386 call, number 67).
    a.mov(eax, 67)?;
    a.mov(ebx, 5)?;
    a.mov(ecx, h_act)?;
    a.xor(edx, edx)?;
    a.int(0x80)?;
    a.mov(esi, h_src)?;
    a.mov(edi, h_dst)?;
    a.cld()?;
    // TF on: traps from the instruction after the POPFD.
    a.pushfd()?;
    a.or(dword_ptr(esp), 0x100)?;
    a.popfd()?;
    a.nop()?; // 1
    a.mov(eax, 20)?; // 2 (getpid)
    a.int(0x80)?; // none
    a.nop()?; // 3
    a.mov(ecx, 3)?; // 4, at the REP
    a.set_label(&mut rep)?;
    a.rep().movsb()?; // 5, 6 at the REP; 7
    a.mov(eax, 20)?; // 8
    a.int(0x80)?; // none
    a.pushfd()?; // 9
    a.and(dword_ptr(esp), !0x100)?; // 10
    a.popfd()?; // 11 (TF was set as it began)
                // "stepper: traps=NN at_rep=N\n"
    a.mov(eax, dword_ptr(h_count))?;
    a.mov(ebx, 10)?;
    a.xor(edx, edx)?;
    a.div(ebx)?;
    a.add(al, b'0' as i32)?;
    a.add(dl, b'0' as i32)?;
    a.mov(edi, h_msg)?;
    a.mov(byte_ptr(edi + 15), al)?;
    a.mov(byte_ptr(edi + 16), dl)?;
    a.mov(eax, dword_ptr(h_at_rep))?;
    a.add(al, b'0' as i32)?;
    a.mov(byte_ptr(edi + 25), al)?;
    a.mov(eax, 4)?; // write(1, msg, 27)
    a.mov(ebx, 1)?;
    a.mov(ecx, edi)?;
    a.mov(edx, 27)?;
    a.int(0x80)?;
    a.mov(eax, 1)?; // exit(count)
    a.mov(ebx, dword_ptr(h_count))?;
    a.int(0x80)?;
    // The SIGTRAP handler (old-style frame: return address, signal number,
    // struct sigcontext with EIP at offset 56).
    a.set_label(&mut handler)?;
    a.inc(dword_ptr(h_count))?;
    a.mov(eax, dword_ptr(esp + 8 + 56))?;
    a.mov(ecx, h_rep)?;
    a.cmp(eax, ecx)?;
    let mut not_rep = a.create_label();
    a.jne(not_rep)?;
    a.inc(dword_ptr(h_at_rep))?;
    a.set_label(&mut not_rep)?;
    a.ret()?;
    // sigreturn (119) with the signal number popped, as the vDSO's does.
    a.set_label(&mut restorer)?;
    a.pop(eax)?;
    a.mov(eax, 119)?;
    a.int(0x80)?;
    // struct old_sigaction: handler, mask, flags (SA_RESTORER), restorer.
    a.set_label(&mut act)?;
    a.dd(&[h_handler, 0, 0x0400_0000, h_restorer])?;
    a.set_label(&mut count)?;
    a.dd(&[0])?;
    a.set_label(&mut at_rep)?;
    a.dd(&[0])?;
    a.set_label(&mut src)?;
    a.db(b"abc\0")?;
    a.set_label(&mut dst)?;
    a.db(&[0; 4])?;
    a.set_label(&mut msg)?;
    a.db(b"stepper: traps=NN at_rep=N\n\0")?;
    let org = BASE + HEADERS;
    let r = a.assemble_options(
        org as u64,
        BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
    )?;
    let mut got = [0; 9];
    for (g, l) in got.iter_mut().zip([
        &handler, &restorer, &act, &count, &at_rep, &src, &dst, &msg, &rep,
    ]) {
        *g = r.label_ip(l)? as u32;
    }
    Ok((r.inner.code_buffer, got))
}

fn program() -> Result<(Vec<u8>, u32), IcedError> {
    let (_, addrs) = assemble(&[BASE + 0x1000; 9])?;
    let (code, check) = assemble(&addrs)?;
    assert_eq!(addrs, check, "the second pass moved a label");
    Ok((code, BASE + HEADERS))
}

fn elf(code: &[u8], entry: u32) -> Vec<u8> {
    let size = HEADERS + code.len() as u32;
    let mut f = Vec::new();
    // ELF header: 32-bit, little-endian, executable, i386.
    f.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&3u16.to_le_bytes()); // EM_386
    f.extend_from_slice(&1u32.to_le_bytes()); // version
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&52u32.to_le_bytes()); // phoff
    f.extend_from_slice(&0u32.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&52u16.to_le_bytes()); // ehsize
    f.extend_from_slice(&32u16.to_le_bytes()); // phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
                                  // One PT_LOAD, read/write/execute, the whole file at BASE.
    for v in [1, 0, BASE, BASE, size, size, 7, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(code);
    f
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: linux_stepper OUT");
    let (code, entry) = program().expect("assemble");
    std::fs::write(&out, elf(&code, entry)).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}
