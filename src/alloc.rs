//! The extension's allocator: mimalloc for small blocks, the system's for large ones.
//!
//! A small step allocates and frees many small buffers (tensor headers, tape nodes,
//! shapes, the gradients of a tiny model); mimalloc's thread-local free lists make those
//! cheap (W2: 2 µs of 22 per step). Large arrays stay with glibc: mimalloc places big
//! blocks at addresses that agree in their low bits, so the four arrays an optimiser
//! streams through (parameter, gradient, two moments) fall into the same cache sets,
//! and a 10M-element Adam step took 18 ms instead of 6 on one thread. The line is at 1 MiB
//! because the 1–2 MiB weight gradients of an MLP suffer the same: with the line at 8 MiB
//! a W1 step took 3.6 ms instead of 2.5.
//!
//! glibc by default hands freed memory at the top of its heap back to the system once
//! more than a threshold is free, and that threshold follows the largest block freed:
//! a training step that frees its activations at the end trims the heap, and the next
//! step faults every page back in (zeroed by the kernel), a quarter of a transformer
//! block's step. [`keep_freed_memory`] stops the trimming, as PyTorch's caching
//! allocator keeps its blocks: a process holds on to its largest step's memory.
//!
//! Transparent huge pages are opt-in on many machines (`madvise` in
//! /sys/kernel/mm/transparent_hugepage/enabled), so a 16 MiB matrix sits on 4096 small
//! pages. gemm walks its operands and its result a few rows at a time, 8 KiB apart at
//! n = 2048, and every microkernel call then misses the TLB on a dozen pages: a 2048³
//! product took 8–12 % more CPU time than on 2 MiB pages (120–129 against 107–113 ms on
//! one thread; BENCHMARKS.md, "W5b, session 7"). [`advise_huge_pages`] asks for huge pages
//! in every block from [`HUGE`] up, before the block is first touched. Before it, whether
//! a matrix got huge pages depended on numpy having advised the heap stretch it reused.
use std::alloc::{GlobalAlloc, Layout, System};

/// Tell glibc to keep freed memory for reuse instead of returning it to the system after
/// every step (see the module docs); blocks from 32 MiB up are still mapped and unmapped
/// one by one. Does nothing on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only sets the allocator's parameters; it is called at import,
        // and glibc serialises it against concurrent allocation.
        unsafe {
            // a fixed mmap threshold also turns off glibc's threshold tracking, which
            // would otherwise raise the trim threshold back and forth with block sizes
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}

/// Blocks of at least this many bytes go to the system allocator.
const LARGE: usize = 1 << 20;

/// Blocks of at least this many bytes ask for transparent huge pages: one holds at least
/// one whole 2 MiB page wherever it starts.
const HUGE: usize = 4 << 20;

/// Ask the kernel to back the whole 2 MiB pages inside `[p, p + len)` with transparent
/// huge pages (`madvise(MADV_HUGEPAGE)`). Only advice: pages already touched stay small
/// until the kernel's background collapse, and a failure (no THP in the kernel) is ignored.
fn advise_huge_pages(p: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
        }
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        const PAGE: usize = 2 << 20;
        let start = (p as usize).next_multiple_of(PAGE);
        let end = (p as usize + len) / PAGE * PAGE;
        if !p.is_null() && end > start {
            // SAFETY: the range lies inside a block this allocator just handed out, and
            // the advice changes how its pages are backed, never their contents.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, len);
}

/// `System.alloc`/`alloc_zeroed`'s block, advised to huge pages when it is large enough.
fn large_block(p: *mut u8, size: usize) -> *mut u8 {
    if size >= HUGE {
        advise_huge_pages(p, size);
    }
    p
}

pub struct SplitAlloc;

// SAFETY: every block is freed (and reallocated) by the allocator that made it, chosen
// by its size, which `dealloc` and `realloc` receive unchanged from the caller.
unsafe impl GlobalAlloc for SplitAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() >= LARGE { large_block(System.alloc(l), l.size()) } else { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() >= LARGE { large_block(System.alloc_zeroed(l), l.size()) } else { mimalloc::MiMalloc.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if l.size() >= LARGE { System.dealloc(p, l) } else { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        match (l.size() >= LARGE, new >= LARGE) {
            (true, true) => large_block(System.realloc(p, l, new), new),
            (false, false) => mimalloc::MiMalloc.realloc(p, l, new),
            _ => {
                // crossing the line: move the block to the other allocator
                let nl = Layout::from_size_align_unchecked(new, l.align());
                let q = self.alloc(nl);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
                    self.dealloc(p, l);
                }
                q
            }
        }
    }
}
