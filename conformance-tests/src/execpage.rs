//! One page of host memory to run generated code from: the oracles
//! ([`crate::oracle::HostCpu`], [`crate::x87::HostX87`]) assemble a stub,
//! [`ExecPage::load`] writes it while the page is RW and flips it to RX
//! (never writable and executable at once), and the caller jumps to
//! [`ExecPage::entry`] with the calling convention its stub follows.

use std::io;

/// The page's size.
pub(crate) const PAGE: usize = 4096;

/// An anonymous private mapping, unmapped on drop.
pub(crate) struct ExecPage {
    page: *mut u8,
}

impl ExecPage {
    /// Map the page (read/write, nothing executable yet).
    pub(crate) fn new() -> io::Result<ExecPage> {
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(ExecPage { page: p as *mut u8 })
    }

    /// Put `code` at the start of the page and make the page executable.
    pub(crate) fn load(&mut self, code: &[u8]) -> Result<(), String> {
        if code.len() > PAGE {
            return Err(format!("a {}-byte stub does not fit a page", code.len()));
        }
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: `page` is a live PAGE-byte mapping owned by `self`, now
        // writable, and `code` fits in it (checked above).
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), self.page, code.len()) };
        self.protect(libc::PROT_READ | libc::PROT_EXEC)
    }

    /// The first byte of the loaded code, for the caller to transmute to
    /// its stub's function type.
    pub(crate) fn entry(&self) -> *const u8 {
        self.page
    }

    fn protect(&mut self, prot: libc::c_int) -> Result<(), String> {
        // SAFETY: `page` is the start of a PAGE-byte mapping owned by
        // `self`; changing its protection affects no other memory.
        let r = unsafe { libc::mprotect(self.page as *mut libc::c_void, PAGE, prot) };
        if r != 0 {
            return Err(format!(
                "mprotect of the stub page failed: {}",
                io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

impl Drop for ExecPage {
    fn drop(&mut self) {
        // SAFETY: `page` came from mmap with length PAGE and is unmapped
        // once, here; nothing refers to it after drop.
        unsafe {
            libc::munmap(self.page as *mut libc::c_void, PAGE);
        }
    }
}
