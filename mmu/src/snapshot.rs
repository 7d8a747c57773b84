//! Physical memory in a snapshot: RAM and the page map (ROM and MMIO
//! marks), and the A20 gate. The code-page marks belong to the decode
//! cache, which a snapshot does not keep: a restore drops both.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::phys::PhysMem;

/// RAM and the memory map's state. `R` holds the RAM bytes: [`Bytes`]
/// (owned) or [`RamRef`] (borrowed, to save and restore without copying
/// all of RAM an extra time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemState<R = Bytes> {
    /// Every RAM byte (serialized as one byte string).
    pub ram: R,
    /// Per page: ROM and MMIO marks (code marks cleared).
    pub page_flags: Bytes,
    /// The A20 mask.
    pub a20_mask: u32,
    /// SMRAM control register as applied, SMM flag, SMRAM visible.
    pub smram: (u8, bool, bool),
    /// Video memory up to its last non-zero byte (the rest is zero: a
    /// 16 MiB adapter showing a text mode costs nothing).
    pub vram: R,
    /// Where the linear frame buffer is mapped.
    pub lfb_base: Option<u32>,
    /// The video memory offset the 0xA0000 window shows.
    pub vram_window: Option<u32>,
}

/// A byte vector that serializes as bytes, not as a sequence of numbers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Bytes, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = a.next_element()? {
                    v.push(b);
                }
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// RAM borrowed from the memory (saving) or from the snapshot's bytes
/// (restoring); serialized exactly as [`Bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRef<'a>(pub &'a [u8]);

impl Serialize for RamRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RamRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RamRef<'a>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RamRef<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a borrowed byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<RamRef<'de>, E> {
                Ok(RamRef(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for RamRef<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0
    }
}

impl PhysMem {
    /// This memory's state for a snapshot, RAM borrowed.
    pub fn save_state(&self) -> MemState<RamRef<'_>> {
        MemState {
            ram: RamRef(&self.ram),
            page_flags: Bytes(
                self.page_flags
                    .iter()
                    .map(|f| f & !crate::phys::F_CODE)
                    .collect(),
            ),
            a20_mask: self.a20_mask,
            smram: (self.smram.control, self.smram.smm, self.smram.visible),
            vram: RamRef(
                &self.vram[..self.vram.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)],
            ),
            lfb_base: self.lfb_base,
            vram_window: self.vram_window,
        }
    }

    /// Take `s` as this memory's state. The sizes must match this machine's
    /// (a snapshot of another memory size is refused). Code-page marks are
    /// cleared: the caller drops its decode cache too.
    pub fn restore_state<R: AsRef<[u8]>>(&mut self, s: &MemState<R>) -> Result<(), String> {
        let ram = s.ram.as_ref();
        if ram.len() != self.ram.len() || s.page_flags.0.len() != self.page_flags.len() {
            return Err(format!(
                "the snapshot has {} bytes of RAM, this machine {}",
                ram.len(),
                self.ram.len()
            ));
        }
        let vram = s.vram.as_ref();
        if vram.len() > self.vram.len() {
            return Err(format!(
                "the snapshot has {} bytes of video memory, this machine {}",
                vram.len(),
                self.vram.len()
            ));
        }
        self.ram.copy_from_slice(ram);
        self.page_flags.copy_from_slice(&s.page_flags.0);
        self.a20_mask = s.a20_mask;
        // The page map above already routes the window as this said.
        (self.smram.control, self.smram.smm, self.smram.visible) = s.smram;
        self.vram[..vram.len()].copy_from_slice(vram);
        self.vram[vram.len()..].fill(0);
        self.lfb_base = s.lfb_base;
        self.vram_window = s.vram_window;
        self.clear_code_pages();
        Ok(())
    }
}
