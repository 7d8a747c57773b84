//! QEMU's firmware configuration interface (fw_cfg), port form, as QEMU's
//! fw_cfg specification describes it: a 16-bit selector at [`SELECTOR_PORT`]
//! picks an item and rewinds it; each byte read from [`DATA_PORT`] returns
//! the item's next byte (0 past its end). Item 0x0000 is the signature
//! "QEMU", 0x0001 the feature bits (bit 0: this port interface; no DMA),
//! 0x0019 the file directory (a big-endian count, then per file a
//! big-endian size and selector, two reserved bytes and a 56-byte name).
//!
//! The board offers it only for third-party firmware (SeaBIOS takes its
//! ACPI tables from the files `etc/acpi/rsdp`, `etc/acpi/tables` and the
//! `etc/table-loader` script); our own BIOS does not use it, and while it
//! is disabled its ports are unclaimed.

/// The selector register (16-bit write).
pub const SELECTOR_PORT: u16 = 0x510;
/// The data register (byte reads).
pub const DATA_PORT: u16 = 0x511;
/// Item: signature.
pub const KEY_SIGNATURE: u16 = 0x0000;
/// Item: feature bits.
pub const KEY_ID: u16 = 0x0001;
/// Item: number of CPUs (16-bit little-endian).
pub const KEY_NB_CPUS: u16 = 0x0005;
/// Item: maximum number of CPUs (16-bit little-endian).
pub const KEY_MAX_CPUS: u16 = 0x000F;
/// Item: the file directory.
pub const KEY_FILE_DIR: u16 = 0x0019;
/// The first selector given to files.
const FIRST_FILE_KEY: u16 = 0x0020;
/// Bytes of a file name in the directory.
const NAME_BYTES: usize = 56;

/// The fw_cfg device. Plain data.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct FwCfg {
    enabled: bool,
    /// Items by selector.
    items: Vec<(u16, Vec<u8>)>,
    /// Files: name and selector, in directory order.
    files: Vec<(String, u16)>,
    selector: u16,
    offset: usize,
}

impl FwCfg {
    /// A disabled device (no ports claimed).
    pub fn new() -> FwCfg {
        FwCfg::default()
    }

    /// Turn the interface on with its signature, feature bits, one CPU and
    /// an empty file directory.
    pub fn enable(&mut self) {
        self.enabled = true;
        self.set_item(KEY_SIGNATURE, b"QEMU".to_vec());
        self.set_item(KEY_ID, 1u32.to_le_bytes().to_vec());
        self.set_item(KEY_NB_CPUS, 1u16.to_le_bytes().to_vec());
        self.set_item(KEY_MAX_CPUS, 1u16.to_le_bytes().to_vec());
        self.rebuild_directory();
    }

    /// Whether the interface is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn set_item(&mut self, key: u16, data: Vec<u8>) {
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(item) => item.1 = data,
            None => self.items.push((key, data)),
        }
    }

    fn item(&self, key: u16) -> &[u8] {
        self.items
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(&[][..], |(_, d)| d)
    }

    /// Add (or replace) a named file.
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) {
        let name: String = name.chars().take(NAME_BYTES - 1).collect();
        let key = match self.files.iter().find(|(n, _)| *n == name) {
            Some(&(_, k)) => k,
            None => {
                let k = FIRST_FILE_KEY + self.files.len() as u16;
                self.files.push((name, k));
                k
            }
        };
        self.set_item(key, data);
        self.rebuild_directory();
    }

    fn rebuild_directory(&mut self) {
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (name, key) in &self.files {
            let size = self.item(*key).len() as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut n = [0u8; NAME_BYTES];
            n[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&n);
        }
        self.set_item(KEY_FILE_DIR, dir);
    }

    /// Board reset: the selection goes back to the signature.
    pub fn reset(&mut self) {
        self.selector = 0;
        self.offset = 0;
    }

    /// Whether `port` is the device's (only while enabled).
    pub fn claims(&self, port: u16) -> bool {
        self.enabled && Self::PORTS.contains(&port)
    }

    /// The selector and data ports (decoded only while enabled).
    pub const PORTS: std::ops::RangeInclusive<u16> = SELECTOR_PORT..=DATA_PORT;

    /// A port read of `size` bytes: data bytes in sequence.
    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        if port != DATA_PORT {
            return 0;
        }
        let mut v = 0u32;
        for i in 0..size.min(4) as u32 {
            let b = self
                .item(self.selector)
                .get(self.offset)
                .copied()
                .unwrap_or(0);
            self.offset = self.offset.saturating_add(1);
            v |= (b as u32) << (8 * i);
        }
        v
    }

    /// A port write: the selector (data writes are ignored, as on QEMU
    /// since 2.4).
    pub fn write(&mut self, port: u16, _size: u8, v: u32) {
        if port == SELECTOR_PORT {
            self.selector = v as u16;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(f: &mut FwCfg, key: u16, n: usize) -> Vec<u8> {
        f.write(SELECTOR_PORT, 2, key as u32);
        (0..n).map(|_| f.read(DATA_PORT, 1) as u8).collect()
    }

    #[test]
    fn disabled_claims_nothing() {
        let f = FwCfg::new();
        assert!(!f.claims(SELECTOR_PORT) && !f.claims(DATA_PORT));
    }

    #[test]
    fn signature_directory_and_files() {
        let mut f = FwCfg::new();
        f.enable();
        assert!(f.claims(DATA_PORT));
        assert_eq!(read_item(&mut f, KEY_SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut f, KEY_ID, 4), [1, 0, 0, 0]);
        f.add_file("etc/acpi/rsdp", vec![1, 2, 3]);
        f.add_file("etc/table-loader", vec![9; 128]);
        let dir = read_item(&mut f, KEY_FILE_DIR, 4 + 2 * 64);
        assert_eq!(&dir[..4], &[0, 0, 0, 2]);
        assert_eq!(&dir[4..8], &[0, 0, 0, 3], "size, big-endian");
        let key = u16::from_be_bytes([dir[8], dir[9]]);
        assert_eq!(&dir[12..25], b"etc/acpi/rsdp");
        assert_eq!(dir[25], 0);
        assert_eq!(
            read_item(&mut f, key, 5),
            [1, 2, 3, 0, 0],
            "zeros past the end"
        );
        // A new selection rewinds.
        assert_eq!(read_item(&mut f, key, 1), [1]);
    }
}
