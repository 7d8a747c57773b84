//! The debugger's expression language: conditions of breakpoints
//! (`b 7c00 if al == 55 && byte[410] & 1`), addresses (`cs:eip`,
//! `f000:fff0`, `esi+4`).
//!
//! Numbers are hexadecimal by default, as addresses are in every x86
//! listing (`7c00`, `0x7c00` and `7c00h` are the same); `0n10` is decimal
//! ten. Register names win over hex words (no register name is made of hex
//! digits only, so nothing is ambiguous). Memory is read at linear
//! addresses with `byte[..]`, `word[..]`, `dword[..]`. Comparisons and `!`,
//! `&&`, `||` give 0 or 1; arithmetic wraps at 32 bits.

use std::fmt;

/// A register an expression can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// A 32-bit GPR by encoding number (EAX=0 … EDI=7).
    R32(u8),
    /// A 16-bit GPR (AX … DI).
    R16(u8),
    /// The low byte of EAX/ECX/EDX/EBX (AL … BL).
    R8Lo(u8),
    /// The high byte of AX/CX/DX/BX (AH … BH).
    R8Hi(u8),
    /// A segment selector (ES=0 … GS=5).
    Seg(u8),
    /// EIP.
    Eip,
    /// IP (low 16 bits of EIP).
    Ip,
    /// EFLAGS.
    Eflags,
    /// CR0, CR2, CR3, CR4.
    Cr(u8),
    /// DR0–DR7.
    Dr(u8),
    /// Current privilege level.
    Cpl,
}

impl Reg {
    /// The register called `name` (lower case), if any.
    pub fn from_name(name: &str) -> Option<Reg> {
        const R32: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
        const R16: [&str; 8] = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
        const R8L: [&str; 4] = ["al", "cl", "dl", "bl"];
        const R8H: [&str; 4] = ["ah", "ch", "dh", "bh"];
        const SEG: [&str; 6] = ["es", "cs", "ss", "ds", "fs", "gs"];
        let pos = |t: &[&str]| t.iter().position(|&n| n == name).map(|i| i as u8);
        if let Some(i) = pos(&R32) {
            return Some(Reg::R32(i));
        }
        if let Some(i) = pos(&R16) {
            return Some(Reg::R16(i));
        }
        if let Some(i) = pos(&R8L) {
            return Some(Reg::R8Lo(i));
        }
        if let Some(i) = pos(&R8H) {
            return Some(Reg::R8Hi(i));
        }
        if let Some(i) = pos(&SEG) {
            return Some(Reg::Seg(i));
        }
        Some(match name {
            "eip" => Reg::Eip,
            "ip" => Reg::Ip,
            "eflags" | "flags" => Reg::Eflags,
            "cr0" => Reg::Cr(0),
            "cr2" => Reg::Cr(2),
            "cr3" => Reg::Cr(3),
            "cr4" => Reg::Cr(4),
            "cpl" => Reg::Cpl,
            _ => {
                let n = name.strip_prefix("dr")?;
                let d: u8 = n.parse().ok()?;
                if d > 7 || n.len() != 1 {
                    return None;
                }
                Reg::Dr(d)
            }
        })
    }
}

/// What an expression reads from the machine.
pub trait Context {
    /// A register's value.
    fn reg(&self, r: Reg) -> u32;
    /// `size` (1, 2 or 4) bytes at a linear address, `None` when unmapped.
    fn mem(&mut self, linear: u32, size: u8) -> Option<u32>;
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Num(u32),
    /// A register.
    Reg(Reg),
    /// Memory of 1, 2 or 4 bytes at a linear address.
    Mem(u8, Box<Expr>),
    /// A unary operator: `-`, `~`, `!`.
    Unary(char, Box<Expr>),
    /// A binary operator.
    Binary(Op, Box<Expr>, Box<Expr>),
}

/// Binary operators, loosest binding first in [`Op::LEVELS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitOr,
    BitXor,
    BitAnd,
    Shl,
    Shr,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Op {
    /// Operators by precedence level, loosest first, with their spelling.
    const LEVELS: &'static [&'static [(&'static str, Op)]] = &[
        &[("||", Op::Or)],
        &[("&&", Op::And)],
        &[
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ],
        &[("|", Op::BitOr)],
        &[("^", Op::BitXor)],
        &[("&", Op::BitAnd)],
        &[("<<", Op::Shl), (">>", Op::Shr)],
        &[("+", Op::Add), ("-", Op::Sub)],
        &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
    ];
}

/// A problem with an expression: what and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError(pub String);

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExprError {}

/// Parse a whole expression.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        text,
    };
    let e = p.level(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected text"));
    }
    Ok(e)
}

/// Parse a number the way expressions do (hex by default, `0x`, `h`
/// suffix, `0n` decimal).
pub fn parse_number(t: &str) -> Option<u32> {
    let t = t.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(d) = lower.strip_prefix("0n") {
        return d.parse().ok();
    }
    let h = lower
        .strip_prefix("0x")
        .or_else(|| lower.strip_suffix('h'))
        .unwrap_or(&lower);
    if h.is_empty() || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> ExprError {
        let rest = &self.text[self.i.min(self.text.len())..];
        if rest.is_empty() {
            ExprError(format!("{what} at the end of `{}`", self.text))
        } else {
            ExprError(format!("{what} at `{rest}` in `{}`", self.text))
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn level(&mut self, n: usize) -> Result<Expr, ExprError> {
        if n == Op::LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.level(n + 1)?;
        'outer: loop {
            self.ws();
            for &(tok, op) in Op::LEVELS[n] {
                // `|` must not eat the first half of `||`, nor `&` of `&&`,
                // nor `<` of `<<`.
                let longer = Op::LEVELS
                    .iter()
                    .flat_map(|l| l.iter())
                    .any(|&(t, _)| t.len() > tok.len() && t.starts_with(tok) && self.peek(t));
                if !longer && self.eat(tok) {
                    let rhs = self.level(n + 1)?;
                    lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    fn peek(&self, tok: &str) -> bool {
        self.s[self.i..].starts_with(tok.as_bytes())
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.ws();
        for op in ['-', '~', '!'] {
            if self.peek(&op.to_string()) && !self.peek("!=") {
                self.i += 1;
                let e = self.unary()?;
                return Ok(Expr::Unary(op, Box::new(e)));
            }
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        self.ws();
        if self.eat("(") {
            let e = self.level(0)?;
            if !self.eat(")") {
                return Err(self.err("expected `)`"));
            }
            return Ok(e);
        }
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a number, register or `(`"));
        }
        let word = self.text[start..self.i].to_ascii_lowercase();
        let size = match word.as_str() {
            "byte" => Some(1),
            "word" => Some(2),
            "dword" => Some(4),
            _ => None,
        };
        if let Some(size) = size {
            if !self.eat("[") {
                return Err(self.err("expected `[` after the memory size"));
            }
            let e = self.level(0)?;
            if !self.eat("]") {
                return Err(self.err("expected `]`"));
            }
            return Ok(Expr::Mem(size, Box::new(e)));
        }
        if let Some(r) = Reg::from_name(&word) {
            return Ok(Expr::Reg(r));
        }
        match parse_number(&word) {
            Some(n) => Ok(Expr::Num(n)),
            None => {
                self.i = start;
                Err(self.err("not a register or a number (hex by default; 0n for decimal)"))
            }
        }
    }
}

impl Expr {
    /// Evaluate against a machine.
    pub fn eval(&self, cx: &mut dyn Context) -> Result<u32, ExprError> {
        Ok(match self {
            Expr::Num(n) => *n,
            Expr::Reg(r) => cx.reg(*r),
            Expr::Mem(size, a) => {
                let lin = a.eval(cx)?;
                cx.mem(lin, *size)
                    .ok_or_else(|| ExprError(format!("linear address {lin:08X} is not mapped")))?
            }
            Expr::Unary(op, e) => {
                let v = e.eval(cx)?;
                match op {
                    '-' => v.wrapping_neg(),
                    '~' => !v,
                    _ => (v == 0) as u32,
                }
            }
            Expr::Binary(op, a, b) => {
                let x = a.eval(cx)?;
                // && and || do not look at the right side when the left
                // decides (so `eax && byte[eax]` is safe).
                match op {
                    Op::And if x == 0 => return Ok(0),
                    Op::Or if x != 0 => return Ok(1),
                    _ => {}
                }
                let y = b.eval(cx)?;
                match op {
                    Op::Or | Op::And => (y != 0) as u32,
                    Op::Eq => (x == y) as u32,
                    Op::Ne => (x != y) as u32,
                    Op::Lt => (x < y) as u32,
                    Op::Le => (x <= y) as u32,
                    Op::Gt => (x > y) as u32,
                    Op::Ge => (x >= y) as u32,
                    Op::BitOr => x | y,
                    Op::BitXor => x ^ y,
                    Op::BitAnd => x & y,
                    Op::Shl => x.checked_shl(y).unwrap_or(0),
                    Op::Shr => x.checked_shr(y).unwrap_or(0),
                    Op::Add => x.wrapping_add(y),
                    Op::Sub => x.wrapping_sub(y),
                    Op::Mul => x.wrapping_mul(y),
                    Op::Div | Op::Rem if y == 0 => {
                        return Err(ExprError("division by zero".into()))
                    }
                    Op::Div => x / y,
                    Op::Rem => x % y,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        regs: [u32; 8],
        cs: u16,
        mem: Vec<u8>,
    }

    impl Context for Fake {
        fn reg(&self, r: Reg) -> u32 {
            match r {
                Reg::R32(i) => self.regs[i as usize],
                Reg::R16(i) => self.regs[i as usize] & 0xFFFF,
                Reg::R8Lo(i) => self.regs[i as usize] & 0xFF,
                Reg::R8Hi(i) => (self.regs[i as usize] >> 8) & 0xFF,
                Reg::Seg(1) => self.cs as u32,
                _ => 0,
            }
        }
        fn mem(&mut self, linear: u32, size: u8) -> Option<u32> {
            let mut v = 0;
            for i in 0..size as usize {
                v |= (*self.mem.get(linear as usize + i)? as u32) << (8 * i);
            }
            Some(v)
        }
    }

    fn eval(s: &str) -> Result<u32, ExprError> {
        let mut f = Fake {
            regs: [0x1234_5678, 2, 0, 0xAB, 0x7000, 0, 0, 0],
            cs: 0xF000,
            mem: (0..=255).collect(),
        };
        parse(s)?.eval(&mut f)
    }

    #[test]
    fn numbers_are_hex_by_default() {
        assert_eq!(eval("10"), Ok(0x10));
        assert_eq!(eval("0x10"), Ok(0x10));
        assert_eq!(eval("10h"), Ok(0x10));
        assert_eq!(eval("0n10"), Ok(10));
        assert_eq!(eval("f000"), Ok(0xF000));
        assert_eq!(parse_number("FFFF0"), Some(0xFFFF0));
        assert_eq!(parse_number("12g"), None);
        assert_eq!(parse_number("100000000"), None);
    }

    #[test]
    fn registers_and_partial_registers() {
        assert_eq!(eval("eax"), Ok(0x1234_5678));
        assert_eq!(eval("ax"), Ok(0x5678));
        assert_eq!(eval("al"), Ok(0x78));
        assert_eq!(eval("ah"), Ok(0x56));
        assert_eq!(eval("bl"), Ok(0xAB));
        assert_eq!(eval("CS"), Ok(0xF000));
        assert_eq!(Reg::from_name("dr7"), Some(Reg::Dr(7)));
        assert_eq!(Reg::from_name("dr8"), None);
        assert_eq!(Reg::from_name("cr1"), None);
    }

    #[test]
    fn precedence_and_operators() {
        assert_eq!(eval("1 + 2 * 3"), Ok(7));
        assert_eq!(eval("(1 + 2) * 3"), Ok(9));
        assert_eq!(eval("ecx << 4 | 1"), Ok(0x21));
        assert_eq!(eval("al == 78 && ah != 0"), Ok(1));
        assert_eq!(eval("al == 77 || bl > aa"), Ok(1));
        assert_eq!(eval("al == 77 || bl < aa"), Ok(0));
        assert_eq!(eval("!0"), Ok(1));
        assert_eq!(eval("-1"), Ok(0xFFFF_FFFF));
        assert_eq!(eval("~0 >> 1c"), Ok(0xF));
        assert_eq!(eval("7 % 4 + 9 / 3"), Ok(6));
        assert_eq!(eval("esp >= 7000 & 1"), Ok(1));
        assert_eq!(eval("1 <= 1"), Ok(1));
    }

    #[test]
    fn memory_reads_and_short_circuit() {
        assert_eq!(eval("byte[10]"), Ok(0x10));
        assert_eq!(eval("word[10]"), Ok(0x1110));
        assert_eq!(eval("dword[ecx]"), Ok(0x0504_0302));
        assert!(eval("byte[1000]").is_err());
        // The right side of && is not read when the left is false.
        assert_eq!(eval("0 && byte[1000]"), Ok(0));
    }

    #[test]
    fn errors_say_where() {
        let e = parse("eax ==").unwrap_err();
        assert!(e.0.contains("end of"), "{e}");
        let e = parse("eax + zz").unwrap_err();
        assert!(e.0.contains("`zz`"), "{e}");
        assert!(parse("(1").is_err());
        assert!(parse("byte 10").is_err());
        assert!(parse("1 2").is_err());
        assert_eq!(eval("1 / 0").unwrap_err().0, "division by zero");
    }
}
