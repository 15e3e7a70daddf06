//! Hints to the CPU and the kernel about the event path's memory: cache prefetches, so
//! the event path can start loading the state of the next few events while it processes
//! this one, and huge pages for the identity table, so those loads do not each begin
//! with a page-table walk.
//!
//! Why: with 100k identities the tables do not fit in the cache, and each event met
//! three cache misses one after another (the index word, then the entry's lines, then
//! its seen-set on the heap), each waiting on the one before, about 0.4 µs per event.
//! A driver that knows the events to come ([`crate::engine::Engine::prefetch_ahead`])
//! issues those loads a few events early, one level per event, so they complete while
//! other work runs instead of in sequence.
//!
//! With 4 KiB pages, 100k identities' states span ~17,000 pages, far more than the TLB
//! holds, so each of those misses also walked the page table (slow under
//! virtualisation, and a prefetch that needs a walk stalls like a load). Huge pages
//! (2 MiB) cover the table in ~35 TLB entries. Most kernels only give them to memory a
//! program asks for (`transparent_hugepage=madvise`), hence [`huge_pages`].
//!
//! Both are only hints: a prefetch cannot fault and has no effect visible to the
//! program, so a wrong or stale address only wastes a memory read; advice on pages
//! changes how memory is backed, never its contents. That is what makes the `unsafe`
//! calls below sound for any address, and why the functions here are safe.

/// The cache line size assumed when walking an object line by line (x86-64 and most
/// aarch64 cores).
const LINE: usize = 64;

/// Asks the CPU to load the cache line holding `address` into every cache level.
#[inline(always)]
pub fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 is a hint. It never faults (an unmapped or invalid address is
    // silently ignored), reads nothing into registers and writes nothing, so no address
    // can cause undefined behaviour. SSE, the feature it belongs to, is part of the
    // x86-64 baseline, so the instruction exists on every CPU this target runs on.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    // Elsewhere no stable intrinsic exists yet: the hint is dropped and the event path
    // meets its misses as before.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// [`prefetch`] for every cache line of `bytes` bytes from `start` (at most `max_lines`, so
/// an unusually large object costs a bounded number of hints).
#[inline]
pub fn prefetch_lines(start: *const u8, bytes: usize, max_lines: usize) {
    walk(start, bytes, max_lines, prefetch);
}

/// Calls `hint` with one address in each cache line of the range, first line first.
#[inline(always)]
fn walk(start: *const u8, bytes: usize, max_lines: usize, mut hint: impl FnMut(*const u8)) {
    if bytes == 0 {
        return;
    }
    // Line-aligned walk: an object that starts mid-line still has its last line covered.
    let offset = start as usize & (LINE - 1);
    let span = offset.saturating_add(bytes);
    let mut at = 0;
    let mut left = max_lines;
    while at < span && left > 0 {
        // `wrapping_*` keeps the pointer's provenance; it is never dereferenced.
        hint(start.wrapping_add(at).wrapping_sub(offset.min(at)));
        at += LINE;
        left -= 1;
    }
}

/// [`prefetch_lines`] for one object.
#[inline]
pub fn prefetch_object<T>(value: &T, max_lines: usize) {
    prefetch_lines(
        (value as *const T).cast(),
        std::mem::size_of::<T>(),
        max_lines,
    );
}

/// [`prefetch_lines`] for the elements of a slice.
#[inline]
pub fn prefetch_slice<T>(values: &[T], max_lines: usize) {
    prefetch_lines(
        values.as_ptr().cast(),
        std::mem::size_of_val(values),
        max_lines,
    );
}

/// Size of a transparent huge page on x86-64 and on aarch64 with 4 KiB base pages.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `values` with huge pages. Only
/// whole aligned pages inside the slice are advised (a huge page is all or nothing), so
/// a slice under 4 MiB may get none; a caller that wants them allocates in larger
/// blocks. Call it before the memory is first written: pages already backed wait for
/// the kernel's background collapse instead.
///
/// Where the kernel's `defrag` setting is `madvise` (a common default), a page fault in
/// an advised range may compact memory synchronously: the first write to each 2 MiB of
/// a new chunk can take a millisecond, once per a few thousand new identities.
pub fn huge_pages<T>(values: &[T]) {
    let start = values.as_ptr() as usize;
    if let Some((offset, bytes)) = whole_huge_pages(start, std::mem::size_of_val(values)) {
        advise_huge(values.as_ptr().cast::<u8>().wrapping_add(offset), bytes);
    }
}

/// The whole aligned huge pages inside `bytes` bytes from address `start`, as an offset
/// from `start` and a length, if there is at least one.
fn whole_huge_pages(start: usize, bytes: usize) -> Option<(usize, usize)> {
    let end = start.checked_add(bytes)?;
    let first = start.checked_add(HUGE_PAGE - 1)? & !(HUGE_PAGE - 1);
    let last = end & !(HUGE_PAGE - 1);
    (last > first).then(|| (first - start, last - first))
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(start: *const u8, bytes: usize) {
    // SAFETY: `madvise(MADV_HUGEPAGE)` changes how the kernel backs the range, never
    // what it holds: contents stay as they are whether or not huge pages come. The
    // range lies inside one live allocation the caller borrows, so it is mapped; an
    // error (a kernel without THP, `never` mode) leaves the range as it was, and is
    // ignored because nothing depends on the advice being taken.
    let _ = unsafe { libc::madvise(start.cast_mut().cast(), bytes, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_start: *const u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hints never fault, so any address is allowed, including none at all; and they
    /// change nothing a program can see.
    #[test]
    fn hints_are_harmless_on_any_address() {
        let data = vec![7u8; 1000];
        prefetch_slice(&data, 100);
        prefetch_object(&data, 4);
        prefetch_lines(std::ptr::null(), 4096, 64);
        prefetch_lines(usize::MAX as *const u8, 4096, 64);
        prefetch(0x10 as *const u8);
        assert!(data.iter().all(|&b| b == 7));
    }

    /// The advised range is whole aligned huge pages, all inside the block: never a
    /// byte outside it, and nothing when no whole page fits.
    #[test]
    fn huge_page_range_is_aligned_and_inside_the_block() {
        const H: usize = HUGE_PAGE;
        for (start, bytes) in [
            (0, 5 * H),
            (H, 2 * H),
            (4096, 5 * H),
            (H - 1, H + 1),
            (3 * H + 16, 4 * H - 32),
            (usize::MAX - 3 * H, 3 * H),
        ] {
            if let Some((offset, len)) = whole_huge_pages(start, bytes) {
                let first = start + offset;
                assert_eq!(first % H, 0, "{start} {bytes}");
                assert_eq!(len % H, 0, "{start} {bytes}");
                assert!(len > 0);
                assert!(
                    first >= start && first + len <= start + bytes,
                    "{start} {bytes}"
                );
            }
        }
        assert_eq!(whole_huge_pages(0, 5 * H), Some((0, 5 * H)));
        assert_eq!(whole_huge_pages(4096, 5 * H), Some((H - 4096, 4 * H)));
        assert_eq!(whole_huge_pages(H - 1, H + 1), Some((1, H)));
        // Under two pages and misaligned: none whole.
        assert_eq!(whole_huge_pages(16, 2 * H - 32), None);
        assert_eq!(whole_huge_pages(0, H - 1), None);
        assert_eq!(whole_huge_pages(usize::MAX - 10, 100), None);
    }

    /// Advice changes no contents, on a block with whole huge pages inside and on one
    /// too small to have any.
    #[test]
    fn huge_page_advice_keeps_contents() {
        let mut big = vec![0u64; (5 * HUGE_PAGE) / 8];
        huge_pages(&big);
        for (i, v) in big.iter_mut().enumerate().step_by(4096) {
            *v = i as u64;
        }
        assert!(big
            .iter()
            .enumerate()
            .step_by(4096)
            .all(|(i, &v)| v == i as u64));
        let small = vec![3u8; 100];
        huge_pages(&small);
        assert!(small.iter().all(|&b| b == 3));
    }

    /// The walk names one address in every line an object touches, and stops at
    /// `max_lines`.
    #[test]
    fn walks_every_line_and_respects_the_bound() {
        let lines_of = |start: usize, bytes: usize, max: usize| {
            let mut seen = Vec::new();
            walk(start as *const u8, bytes, max, |a| {
                seen.push(a as usize / LINE)
            });
            seen
        };
        // 64 bytes starting mid-line span two lines; line-aligned, one.
        assert_eq!(lines_of(96, 64, 10), vec![1, 2]);
        assert_eq!(lines_of(128, 64, 10), vec![2]);
        assert_eq!(lines_of(130, 1, 10), vec![2]);
        assert_eq!(lines_of(0, 640, 4), vec![0, 1, 2, 3]);
        assert_eq!(lines_of(64, 0, 4), Vec::<usize>::new());
        // An empty slice (a dangling pointer mid-line) names no line at all.
        assert_eq!(lines_of(65, 0, 4), Vec::<usize>::new());
        // A range ending one byte into a line includes that line.
        assert_eq!(lines_of(60, 5, 10), vec![0, 1]);
    }
}
