//! Per-suite side files: undefined-flag masks (`metadata.json` of the 8088/286
//! suites, `80386.csv` of the 386 suite) and the revocation list.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::Error;

/// Undefined-flag masks per opcode (and ModR/M `reg` for group opcodes).
///
/// Masks are stored as AND-masks over the 16-bit FLAGS: a 0 bit is a flag the
/// instruction leaves undefined.
#[derive(Clone, Debug, Default)]
pub struct FlagMasks {
    masks: HashMap<(String, Option<u8>), u16>,
}

impl FlagMasks {
    /// Number of (opcode, reg) entries with a mask.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether no masks are known.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Record the AND-mask for `op` (upper-case hex, e.g. `F6`, `0FBA`) and
    /// an optional group extension.
    pub fn insert(&mut self, op: &str, reg: Option<u8>, keep: u16) {
        let k = (op.to_ascii_uppercase(), reg);
        let cur = self.masks.get(&k).copied().unwrap_or(0xFFFF);
        self.masks.insert(k, cur & keep);
    }

    /// Add `other`'s masks (a flag undefined in either stays undefined).
    pub fn merge(&mut self, other: &FlagMasks) {
        for ((op, reg), keep) in &other.masks {
            self.insert(op, *reg, *keep);
        }
    }

    /// The AND-mask for the opcode named by a test file stem such as `00`,
    /// `F6.6`, `6601`, `676601` or `0FBA.4` (size-override prefixes are
    /// stripped). 0xFFFF when nothing is known.
    pub fn for_stem(&self, stem: &str) -> u16 {
        let (op, reg) = split_stem(stem);
        if let Some(m) = self.masks.get(&(op.clone(), reg)) {
            return *m;
        }
        self.masks.get(&(op, None)).copied().unwrap_or(0xFFFF)
    }

    /// Read the `opcodes` table of a `metadata.json` (286 suite layout:
    /// `"F6": {"reg": {"6": {"flags-mask": 65535, ...}}}` or
    /// `"27": {"flags-mask": 63487}`).
    pub fn from_metadata_json(path: &Path, text: &str) -> Result<FlagMasks, Error> {
        let bad = |msg: String| Error::Metadata {
            path: path.to_path_buf(),
            msg,
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let ops = v
            .get("opcodes")
            .and_then(|o| o.as_object())
            .ok_or_else(|| bad("no \"opcodes\" object".into()))?;
        let mut m = FlagMasks::default();
        for (op, entry) in ops {
            if let Some(mask) = entry.get("flags-mask") {
                m.insert(
                    op,
                    None,
                    json_mask(mask).ok_or_else(|| bad(format!("{op}: bad flags-mask {mask}")))?,
                );
            }
            if let Some(regs) = entry.get("reg").and_then(|r| r.as_object()) {
                for (r, sub) in regs {
                    let reg: u8 = r
                        .parse()
                        .map_err(|_| bad(format!("{op}: bad reg key {r:?}")))?;
                    if reg > 7 {
                        return Err(bad(format!("{op}: reg {reg} out of range")));
                    }
                    if let Some(mask) = sub.get("flags-mask") {
                        let k = json_mask(mask)
                            .ok_or_else(|| bad(format!("{op}.{r}: bad flags-mask {mask}")))?;
                        m.insert(op, Some(reg), k);
                    }
                }
            }
        }
        Ok(m)
    }

    /// Read the `op`, `ex` and `f_umask` columns of the 386 suite's
    /// `80386.csv`. `f_umask` is hexadecimal; a value with at most eight bits
    /// set is taken as the set of undefined flags (the six status flags fit
    /// in that), a value with more as an AND-mask like `metadata.json`'s.
    pub fn from_80386_csv(path: &Path, text: &str) -> Result<FlagMasks, Error> {
        let bad = |msg: String| Error::Metadata {
            path: path.to_path_buf(),
            msg,
        };
        let mut rows = text.lines().filter(|l| !l.trim().is_empty());
        let header = rows.next().ok_or_else(|| bad("empty file".into()))?;
        let header = header.trim_start_matches('\u{feff}');
        let cols: Vec<String> = csv_fields(header)
            .into_iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let col = |name: &str| cols.iter().position(|c| c == name);
        let op_c = col("op").ok_or_else(|| bad("no 'op' column".into()))?;
        let mask_c = col("f_umask").ok_or_else(|| bad("no 'f_umask' column".into()))?;
        let ex_c = col("ex");
        let mut m = FlagMasks::default();
        for (line_no, line) in rows.enumerate() {
            let f = csv_fields(line);
            let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
            let op = get(op_c);
            let raw = get(mask_c);
            if op.is_empty() || raw.is_empty() {
                continue;
            }
            let hex = raw.trim_start_matches("0x").trim_start_matches("0X");
            let hex = hex.trim_end_matches(['h', 'H']);
            let v = u32::from_str_radix(hex, 16).map_err(|_| {
                bad(format!(
                    "line {}: f_umask {raw:?} is not hexadecimal",
                    line_no + 2
                ))
            })?;
            let v = (v & 0xFFFF) as u16;
            let keep = if v.count_ones() <= 8 { !v } else { v };
            let reg = match ex_c.map(get) {
                Some(e) if !e.is_empty() => {
                    Some(e.parse::<u8>().ok().filter(|r| *r < 8).ok_or_else(|| {
                        bad(format!("line {}: ex {e:?} is not 0..7", line_no + 2))
                    })?)
                }
                _ => None,
            };
            m.insert(op, reg, keep);
        }
        Ok(m)
    }
}

fn json_mask(v: &serde_json::Value) -> Option<u16> {
    if let Some(n) = v.as_u64() {
        return u16::try_from(n).ok();
    }
    let s = v.as_str()?;
    let s = s.trim_start_matches("0x");
    u16::from_str_radix(s, 16).ok()
}

/// Split a test-file stem into (opcode hex, group extension): `F6.6` →
/// (`F6`, 6), `676601` → (`01`, None), `0FBA.4` → (`0FBA`, 4).
pub fn split_stem(stem: &str) -> (String, Option<u8>) {
    let (op, reg) = match stem.split_once('.') {
        Some((o, r)) => (o, r.parse::<u8>().ok()),
        None => (stem, None),
    };
    let mut op = op.to_ascii_uppercase();
    while op.len() > 2 && (op.starts_with("66") || op.starts_with("67")) {
        op.drain(..2);
    }
    (op, reg)
}

/// Split one CSV line into fields (double quotes group, `""` escapes a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Hashes of tests the suite's authors revoked (`revocation_list.txt`: one
/// hex SHA-1 per line, `#` comments).
#[derive(Clone, Debug, Default)]
pub struct Revocations {
    hashes: HashSet<String>,
}

impl Revocations {
    /// Parse the list.
    pub fn parse(text: &str) -> Revocations {
        let hashes = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.to_ascii_lowercase())
            .collect();
        Revocations { hashes }
    }

    /// Whether the test with this lower-case hex hash is revoked.
    pub fn contains(&self, hash_hex: &str) -> bool {
        !hash_hex.is_empty() && self.hashes.contains(hash_hex)
    }

    /// Number of revoked hashes.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(split_stem("F6.6"), ("F6".into(), Some(6)));
        assert_eq!(split_stem("676601"), ("01".into(), None));
        assert_eq!(split_stem("66"), ("66".into(), None));
        assert_eq!(split_stem("0fba.4"), ("0FBA".into(), Some(4)));
    }

    #[test]
    fn metadata_json() {
        let j = r#"{"opcodes": {"27": {"flags": "o.......", "flags-mask": 63487},
            "F6": {"reg": {"4": {"flags-mask": 65323}, "0": {"status": "normal"}}}}}"#;
        let m = FlagMasks::from_metadata_json(Path::new("m.json"), j).unwrap();
        assert_eq!(m.for_stem("27"), 63487);
        assert_eq!(m.for_stem("F6.4"), 65323);
        assert_eq!(m.for_stem("F6.0"), 0xFFFF);
        assert_eq!(m.for_stem("00"), 0xFFFF);
        assert!(FlagMasks::from_metadata_json(Path::new("m.json"), "{").is_err());
        assert!(FlagMasks::from_metadata_json(Path::new("m.json"), "{}").is_err());
    }

    #[test]
    fn csv() {
        let c = "\u{feff}op,ex,mnemonic,f_umask,desc\n27,,DAA,0800h,\"Decimal adjust, AL\"\nF6,4,MUL,08D4,x\n08,,OR,FFEF,y\n";
        let m = FlagMasks::from_80386_csv(Path::new("80386.csv"), c).unwrap();
        assert_eq!(m.for_stem("27"), !0x0800);
        assert_eq!(m.for_stem("66F6.4"), !0x08D4);
        assert_eq!(m.for_stem("6708"), 0xFFEF);
        assert!(FlagMasks::from_80386_csv(Path::new("x"), "op,ex\n").is_err());
        assert!(FlagMasks::from_80386_csv(Path::new("x"), "op,f_umask\n00,zz\n").is_err());
    }

    #[test]
    fn revocations() {
        let r = Revocations::parse("# comment\n\n8ABBBC61a5866292b0bc816660d7b334bea7962a\n");
        assert_eq!(r.len(), 1);
        assert!(r.contains("8abbbc61a5866292b0bc816660d7b334bea7962a"));
        assert!(!r.contains(""));
    }
}
