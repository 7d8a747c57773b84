//! A described line ([`Line`]) as the trap log writes it: aligned
//! projector text, a narrow panel's line, or one JSON object.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::text::Line;

/// Output form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned plain words, one event a line.
    #[default]
    Text,
    /// One JSON object a line.
    Jsonl,
}

/// A projector line: cycle, CS:EIP, ring, instruction, words.
pub fn format_text(l: &Line) -> String {
    let ring = if l.mode == "real" {
        "real  ".to_string()
    } else if l.mode == "v86" && l.kind != "ring" {
        "v86   ".to_string()
    } else {
        format!("ring {}", l.cpl)
    };
    format!(
        "{:>10}  {:04X}:{:08X}  {ring}  {:<22}  {}",
        l.cycle,
        l.cs,
        l.eip,
        l.instruction.as_deref().unwrap_or("-"),
        l.text
    )
}

/// A JSON Lines record: the common fields, the event's own, then the text,
/// in that order (written through `serde_json`).
pub fn format_jsonl(l: &Line) -> String {
    // Serializing owned strings and numbers into a String cannot fail.
    serde_json::to_string(&Record(l)).unwrap_or_default()
}

/// A [`Line`] as one JSON object, fields in a fixed order.
struct Record<'a>(&'a Line);

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("cycle", &l.cycle)?;
        m.serialize_entry("instructions", &l.instructions)?;
        m.serialize_entry("kind", l.kind)?;
        m.serialize_entry("cs", &format!("0x{:04X}", l.cs))?;
        m.serialize_entry("eip", &format!("0x{:08X}", l.eip))?;
        m.serialize_entry("linear", &format!("0x{:08X}", l.linear))?;
        m.serialize_entry("phys", &l.phys.map(|p| format!("0x{p:08X}")))?;
        m.serialize_entry("cpl", &l.cpl)?;
        m.serialize_entry("mode", l.mode)?;
        m.serialize_entry("iopl", &l.iopl)?;
        m.serialize_entry("instruction", &l.instruction)?;
        for (k, v) in &l.fields {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("text", &l.text)?;
        m.end()
    }
}

/// A line for a narrow panel: cycle, ring, instruction and the words,
/// without CS:EIP and the projector's column padding.
pub fn format_short(l: &Line) -> String {
    let ring = if l.mode == "real" {
        "real".to_string()
    } else if l.mode == "v86" && l.kind != "ring" {
        "v86".to_string()
    } else {
        format!("ring {}", l.cpl)
    };
    match &l.instruction {
        Some(i) => format!("{:>7} {ring:<6} {i}: {}", l.cycle, l.text),
        None => format!("{:>7} {ring:<6} {}", l.cycle, l.text),
    }
}
