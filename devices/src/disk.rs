//! Disk image back-ends: raw images on the host, with an optional
//! copy-on-write overlay kept in memory.
//!
//! A [`Disk`] is a flat array of bytes the IDE controller reads and writes
//! in sectors. Writes go straight to the host file with positioned writes
//! (`pwrite`), so a crash can lose at most the data the guest has not yet
//! flushed and never truncates or reorders the image. When the image is
//! opened read-only (a CD-ROM, a file without write permission, or
//! `--snapshot`), writes land in an in-memory overlay of 512-byte sectors and
//! the base file is never modified.
//!
//! Every open image holds an advisory lock (`flock` through
//! [`std::fs::File::try_lock`]): exclusive when we write to it, shared when
//! we only read, so two emulators cannot corrupt one image and a snapshot
//! run can share a base with other readers.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes in an ATA sector (the unit of the overlay too).
pub const SECTOR_SIZE: usize = 512;
/// Bytes in a CD-ROM (mode 1) block.
pub const CD_BLOCK_SIZE: usize = 2048;

/// How an image is opened.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskMode {
    /// Guest writes go to the file. If the file is not writable by us, the
    /// image falls back to [`DiskMode::Snapshot`] with a warning.
    ReadWrite,
    /// Guest writes go to an in-memory overlay; the file is only read.
    Snapshot,
    /// A CD-ROM image: read-only media; the size must be a multiple of
    /// 2048 bytes.
    CdRom,
}

/// A host-side problem with a disk image. Its message names the file.
#[derive(Debug)]
pub enum DiskError {
    /// The file could not be opened or inspected.
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The size is not a whole number of sectors (or CD blocks), or zero.
    BadSize {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The unit it must be a multiple of.
        unit: usize,
    },
    /// A floppy image whose size is none of the formats a drive takes.
    FloppySize {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// Another process holds a lock on the image.
    Locked {
        /// The image.
        path: PathBuf,
    },
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskError::Open { path, source } => {
                write!(f, "{}: cannot open disk image: {source}", path.display())
            }
            DiskError::BadSize { path, size, unit } => write!(
                f,
                "{}: disk image is {size} bytes; it must be a non-zero multiple of {unit} bytes",
                path.display()
            ),
            DiskError::FloppySize { path, size } => write!(
                f,
                "{}: floppy image is {size} bytes; it must be 368640 (360K), 737280 (720K), \
                 1228800 (1.2M), 1474560 (1.44M) or 2949120 (2.88M) bytes",
                path.display()
            ),
            DiskError::Locked { path } => write!(
                f,
                "{}: disk image is locked by another process (is another emulator using it?)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DiskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DiskError::Open { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One disk image as the guest sees it. A snapshot keeps the overlay
/// (the guest's writes when not writing through) but not the host's file,
/// which [`crate::Pc::restore`] hands over from the live disk.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Disk {
    #[serde(skip)]
    path: PathBuf,
    #[serde(skip)]
    file: Option<File>,
    len: u64,
    /// Whether writes go to `file` (false: to `overlay`, or refused for CDs).
    write_through: bool,
    /// Read-only media (CD-ROM): the guest cannot write at all.
    media_read_only: bool,
    /// Sectors written by the guest when not writing through.
    #[serde(with = "crate::snapshot::overlay")]
    overlay: HashMap<u64, Box<[u8; SECTOR_SIZE]>>,
    /// Whether `file` has writes not yet synced.
    dirty: bool,
    /// A CD-ROM drive with its tray empty: no file, no medium.
    #[serde(default)]
    empty_tray: bool,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("write_through", &self.write_through)
            .field("overlay_sectors", &self.overlay.len())
            .finish()
    }
}

impl Disk {
    /// The image file (absent only in a snapshot not yet restored onto a
    /// live disk).
    fn host_file(&self) -> std::io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no image file (a snapshot's disk)"))
    }

    /// Take over `live`'s host side (file and path): after a snapshot of
    /// this disk was restored in its place.
    pub(crate) fn adopt_host(&mut self, live: &mut Disk) {
        std::mem::swap(&mut self.path, &mut live.path);
        std::mem::swap(&mut self.file, &mut live.file);
    }

    /// Open `path` as a raw image in `mode`, checking its size and taking
    /// the advisory lock.
    pub fn open(path: &Path, mode: DiskMode) -> Result<Disk, DiskError> {
        let open_err = |source| DiskError::Open {
            path: path.to_path_buf(),
            source,
        };
        let (file, write_through) = match mode {
            DiskMode::ReadWrite => match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => (f, true),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    log::warn!(
                        "{}: image is not writable; guest writes go to a temporary overlay",
                        path.display()
                    );
                    (File::open(path).map_err(open_err)?, false)
                }
                Err(e) => return Err(open_err(e)),
            },
            DiskMode::Snapshot | DiskMode::CdRom => (File::open(path).map_err(open_err)?, false),
        };
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(open_err(io::Error::other("not a regular file")));
        }
        let unit = if mode == DiskMode::CdRom {
            CD_BLOCK_SIZE
        } else {
            SECTOR_SIZE
        };
        let len = meta.len();
        if len == 0 || !len.is_multiple_of(unit as u64) {
            return Err(DiskError::BadSize {
                path: path.to_path_buf(),
                size: len,
                unit,
            });
        }
        let locked = if write_through {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DiskError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(open_err(e)),
        }
        Ok(Disk {
            path: path.to_path_buf(),
            file: Some(file),
            len,
            write_through,
            media_read_only: mode == DiskMode::CdRom,
            overlay: HashMap::new(),
            dirty: false,
            empty_tray: false,
        })
    }

    /// A CD-ROM drive with no disc in it (QEMU's `-drive media=cdrom`
    /// without a file, Bochs's `status=ejected`): the drive is there, and
    /// every media access reports NOT READY, MEDIUM NOT PRESENT.
    pub fn empty_tray() -> Disk {
        Disk {
            path: PathBuf::from("(empty tray)"),
            file: None,
            len: 0,
            write_through: false,
            media_read_only: true,
            overlay: HashMap::new(),
            dirty: false,
            empty_tray: true,
        }
    }

    /// Whether there is a medium to read (false only for an empty tray).
    pub fn has_medium(&self) -> bool {
        !self.empty_tray
    }

    /// The image's file name, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the image is empty (never true for an opened image).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.len / SECTOR_SIZE as u64
    }

    /// Whether the guest may not write at all (CD-ROM media).
    pub fn is_read_only_media(&self) -> bool {
        self.media_read_only
    }

    /// Whether guest writes reach the host file.
    pub fn writes_through(&self) -> bool {
        self.write_through
    }

    /// Read `buf.len()` bytes at byte offset `offset`. The range must lie
    /// inside the image (callers check the guest's LBA first).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::other("read beyond the end of the image"))?;
        self.host_file()?.read_exact_at(buf, offset)?;
        if !self.overlay.is_empty() {
            // Patch in the sectors the guest wrote to the overlay.
            let first = offset / SECTOR_SIZE as u64;
            let last = (end - 1) / SECTOR_SIZE as u64;
            for s in first..=last {
                if let Some(data) = self.overlay.get(&s) {
                    let s_start = s * SECTOR_SIZE as u64;
                    let from = offset.max(s_start);
                    let to = end.min(s_start + SECTOR_SIZE as u64);
                    buf[(from - offset) as usize..(to - offset) as usize]
                        .copy_from_slice(&data[(from - s_start) as usize..(to - s_start) as usize]);
                }
            }
        }
        Ok(())
    }

    /// Read whole sectors starting at `lba` into `buf` (a multiple of 512
    /// bytes long).
    pub fn read_sectors(&self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        let offset = lba
            .checked_mul(SECTOR_SIZE as u64)
            .ok_or_else(|| io::Error::other("LBA out of range"))?;
        self.read_at(offset, buf)
    }

    /// Write whole sectors starting at `lba` from `buf` (a multiple of 512
    /// bytes long). Nothing is written unless the whole range is inside the
    /// image.
    pub fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        if self.media_read_only {
            return Err(io::Error::other("read-only media"));
        }
        if !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err(io::Error::other("partial sector write"));
        }
        let offset = lba
            .checked_mul(SECTOR_SIZE as u64)
            .filter(|o| {
                o.checked_add(buf.len() as u64)
                    .is_some_and(|e| e <= self.len)
            })
            .ok_or_else(|| io::Error::other("write beyond the end of the image"))?;
        if self.write_through {
            self.host_file()?.write_all_at(buf, offset)?;
            self.dirty = true;
        } else {
            for (i, chunk) in buf.chunks_exact(SECTOR_SIZE).enumerate() {
                let mut data = Box::new([0u8; SECTOR_SIZE]);
                data.copy_from_slice(chunk);
                self.overlay.insert(lba + i as u64, data);
            }
        }
        Ok(())
    }

    /// Make written data durable on the host (guest FLUSH CACHE, exit).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.host_file()?.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Sectors held in the copy-on-write overlay.
    pub fn overlay_sectors(&self) -> usize {
        self.overlay.len()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::warn!(
                "{}: flushing the disk image failed: {e}",
                self.path.display()
            );
        }
    }
}

/// Test helpers: unique temporary files, removed on drop.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A temporary file that is removed when dropped.
    pub struct TempFile(pub PathBuf);

    impl TempFile {
        /// A new file holding `bytes`.
        pub fn with_contents(tag: &str, bytes: &[u8]) -> TempFile {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "ringside-test-{}-{tag}-{n}.img",
                std::process::id()
            ));
            std::fs::write(&p, bytes).expect("write temp file");
            TempFile(p)
        }

        /// The file's path.
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::TempFile;
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 512) as u8).collect()
    }

    /// FNV-1a: enough to notice any change of the base image.
    fn hash(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
    }

    #[test]
    fn read_write_through() {
        let f = TempFile::with_contents("rw", &pattern(8 * 512));
        let mut d = Disk::open(f.path(), DiskMode::ReadWrite).unwrap();
        assert_eq!(d.sectors(), 8);
        let mut buf = [0u8; 1024];
        d.read_sectors(2, &mut buf).unwrap();
        assert_eq!(&buf[..], &pattern(8 * 512)[1024..2048]);
        d.write_sectors(7, &[0xAB; 512]).unwrap();
        d.flush().unwrap();
        drop(d);
        let on_disk = std::fs::read(f.path()).unwrap();
        assert_eq!(on_disk.len(), 8 * 512, "never truncated");
        assert!(on_disk[7 * 512..].iter().all(|&b| b == 0xAB));
        assert_eq!(&on_disk[..7 * 512], &pattern(8 * 512)[..7 * 512]);
    }

    #[test]
    fn out_of_range_write_writes_nothing() {
        let f = TempFile::with_contents("oor", &pattern(4 * 512));
        let mut d = Disk::open(f.path(), DiskMode::ReadWrite).unwrap();
        assert!(d.write_sectors(3, &[1; 1024]).is_err());
        assert!(d.write_sectors(u64::MAX / 2, &[1; 512]).is_err());
        let mut buf = [0u8; 512];
        assert!(d.read_sectors(4, &mut buf).is_err());
        drop(d);
        assert_eq!(std::fs::read(f.path()).unwrap(), pattern(4 * 512));
    }

    #[test]
    fn snapshot_never_modifies_the_base() {
        let base = pattern(16 * 512);
        let f = TempFile::with_contents("cow", &base);
        let before = hash(&std::fs::read(f.path()).unwrap());
        let mut d = Disk::open(f.path(), DiskMode::Snapshot).unwrap();
        d.write_sectors(3, &[0x5A; 1024]).unwrap();
        d.flush().unwrap();
        // The guest sees its writes, including reads straddling the overlay.
        let mut buf = vec![0u8; 3 * 512];
        d.read_sectors(2, &mut buf).unwrap();
        assert_eq!(&buf[..512], &base[1024..1536]);
        assert!(buf[512..].iter().all(|&b| b == 0x5A));
        let mut odd = [0u8; 10];
        d.read_at(3 * 512 - 5, &mut odd).unwrap();
        assert_eq!(&odd[..5], &base[3 * 512 - 5..3 * 512]);
        assert_eq!(&odd[5..], &[0x5A; 5]);
        assert_eq!(d.overlay_sectors(), 2);
        drop(d);
        assert_eq!(hash(&std::fs::read(f.path()).unwrap()), before);
    }

    #[test]
    fn bad_size_and_missing_file_are_errors_naming_the_file() {
        let f = TempFile::with_contents("odd", &[0u8; 1000]);
        let e = Disk::open(f.path(), DiskMode::ReadWrite).unwrap_err();
        assert!(matches!(e, DiskError::BadSize { size: 1000, .. }));
        assert!(e.to_string().contains(&*f.path().to_string_lossy()));
        let empty = TempFile::with_contents("empty", &[]);
        assert!(Disk::open(empty.path(), DiskMode::Snapshot).is_err());
        let cd = TempFile::with_contents("cd", &[0u8; 512 * 3]);
        assert!(matches!(
            Disk::open(cd.path(), DiskMode::CdRom),
            Err(DiskError::BadSize { unit: 2048, .. })
        ));
        let missing = std::env::temp_dir().join("ringside-definitely-missing.img");
        let e = Disk::open(&missing, DiskMode::ReadWrite).unwrap_err();
        assert!(matches!(e, DiskError::Open { .. }));
        assert!(e.to_string().contains("ringside-definitely-missing.img"));
    }

    #[test]
    fn a_locked_image_is_refused() {
        let f = TempFile::with_contents("lock", &pattern(2 * 512));
        let d = Disk::open(f.path(), DiskMode::ReadWrite).unwrap();
        // flock locks belong to the open file description, so a second open
        // in this process conflicts just like another process would.
        let e = Disk::open(f.path(), DiskMode::ReadWrite).unwrap_err();
        assert!(matches!(e, DiskError::Locked { .. }), "{e}");
        assert!(matches!(
            Disk::open(f.path(), DiskMode::Snapshot),
            Err(DiskError::Locked { .. })
        ));
        drop(d);
        let a = Disk::open(f.path(), DiskMode::Snapshot).unwrap();
        let b = Disk::open(f.path(), DiskMode::Snapshot).unwrap();
        assert!(
            Disk::open(f.path(), DiskMode::ReadWrite).is_err(),
            "readers block a writer"
        );
        drop((a, b));
    }

    #[test]
    fn cdrom_media_refuses_writes() {
        let f = TempFile::with_contents("iso", &pattern(2 * 2048));
        let mut d = Disk::open(f.path(), DiskMode::CdRom).unwrap();
        assert!(d.is_read_only_media());
        assert!(d.write_sectors(0, &[0; 512]).is_err());
    }
}
