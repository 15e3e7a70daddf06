//! Giving freed heap back to the operating system after bulk work.
//!
//! A restore decodes a million changelog records and signals; librdkafka's fetch buffers
//! and the decoders' scratch memory are freed afterwards, but glibc keeps freed pages in
//! its per-thread arenas, and nothing in a steady stream of small allocations would ever
//! return them. At a million identities that was about 120 MB (≈ 120 bytes per identity)
//! of resident memory holding nothing, which is what a container's memory limit counts.
//! So the service asks the allocator to release free pages once a bulk step is done: a
//! restore, the signals follower catching up, a revocation that dropped states.
//!
//! Only glibc has `malloc_trim`; elsewhere (musl, macOS) this does nothing.

use std::time::{Duration, Instant};

/// What one release did.
#[derive(Debug, Clone, Copy)]
pub struct Released {
    /// Whether the allocator gave any memory back.
    pub any: bool,
    pub took: Duration,
}

/// Returns the allocator's free pages to the OS. Takes milliseconds at a million
/// identities (the allocator walks its free lists while holding each arena's lock), so
/// call it after bulk work, not per event.
pub fn release_free_memory(why: &'static str) -> Released {
    let started = Instant::now();
    let any = trim();
    let released = Released {
        any,
        took: started.elapsed(),
    };
    tracing::info!(why, released = any, took = ?released.took, "free heap returned to the OS");
    released
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: `malloc_trim` takes no pointers and only walks the allocator's own free
    // lists under its locks; any thread may call it at any time. The argument is the
    // slack to keep at the top of the main heap: none.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process in bytes (`VmRSS` in `/proc/self/status`, in
    /// KiB whatever the page size).
    fn resident_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        kib * 1024
    }

    #[test]
    fn freed_small_blocks_go_back_to_the_os() {
        const BLOCK: usize = 4096;
        const TOTAL: usize = 256 << 20;
        // A thread of its own, so the blocks come from one arena; the last block stays
        // allocated so the allocator's own top-of-heap trimming cannot return the rest.
        let pinned = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..TOTAL / BLOCK).map(|_| vec![1u8; BLOCK]).collect();
            let pinned = blocks.pop();
            drop(blocks);
            pinned
        })
        .join()
        .expect("allocating thread");
        let before = resident_bytes();
        let released = release_free_memory("test");
        let after = resident_bytes();
        assert!(released.any, "nothing released");
        // Other tests allocate meanwhile; half of what was freed is a safe floor.
        assert!(
            before.saturating_sub(after) >= TOTAL / 2,
            "resident {before} -> {after} bytes after freeing {TOTAL}"
        );
        drop(pinned);
    }
}
