//! Patch 0008: the legacy CUDA pool's bookkeeping, compiled for the host with `malloc` standing
//! in for the device, and driven from Rust: upstream's best-fit rules, and many threads sharing
//! one pool (the documented GGML_CUDA_FORCE_LEGACY_POOL=1 workaround) without ever handing one
//! buffer to two holders.

use std::collections::HashSet;
use std::sync::Mutex;

use pool_host::{LegacyBook, LegacyBuffer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Upstream's size for a new buffer: 5 % more than asked, rounded up to 256 bytes.
fn look_ahead(size: usize) -> usize {
    let size = (1.05 * size as f64) as usize;
    256 * size.div_ceil(256)
}

#[test]
fn cached_buffers_are_reused_best_fit_as_upstream() {
    let book = LegacyBook::new();
    let a = book.alloc(1000);
    assert!(a.fresh);
    assert_eq!(a.size, look_ahead(1000));
    let b = book.alloc(10_000);
    let c = book.alloc(5_000);
    assert_eq!(book.pool_size(), a.size + b.size + c.size);
    // SAFETY: each buffer came from this book and is freed once.
    unsafe {
        assert!(book.free(a));
        assert!(book.free(b));
        assert!(book.free(c));
    }
    assert_eq!(book.cached_bytes(), book.pool_size());

    // 4,000 bytes: the smallest cached buffer that holds it is c (5,376), not b (10,496).
    let d = book.alloc(4_000);
    assert!(!d.fresh);
    assert_eq!((d.ptr, d.size), (c.ptr, c.size));
    // An exact fit is taken as it is.
    let e = book.alloc(a.size);
    assert_eq!((e.ptr, e.fresh), (a.ptr, false));
    // Nothing cached holds 20,000 bytes: a new buffer, the pool grows.
    let before = book.pool_size();
    let f = book.alloc(20_000);
    assert!(f.fresh);
    assert_eq!(book.pool_size(), before + f.size);
    // SAFETY: as above.
    unsafe {
        for buffer in [d, e, f] {
            assert!(book.free(buffer));
        }
    }
    let cached = book.cached_bytes();
    assert_eq!(book.drain(), cached);
    assert_eq!((book.pool_size(), book.cached_bytes()), (0, 0));
}

#[test]
fn a_full_cache_gives_buffers_back() {
    let book = LegacyBook::new();
    let buffers: Vec<LegacyBuffer> = (0..257).map(|i| book.alloc(256 * (i + 1))).collect();
    let total: usize = buffers.iter().map(|b| b.size).sum();
    assert_eq!(book.pool_size(), total);
    let mut kept = 0;
    for buffer in buffers.iter().copied() {
        // SAFETY: each buffer came from this book and is freed once.
        if unsafe { book.free(buffer) } {
            kept += 1;
        }
    }
    assert_eq!(
        kept, 256,
        "256 slots; the 257th buffer went back to the device"
    );
    let last = buffers.last().unwrap().size;
    assert_eq!(book.pool_size(), total - last);
    assert_eq!(book.cached_bytes(), total - last);
    book.drain();
    assert_eq!(book.pool_size(), 0);
}

#[test]
fn threads_sharing_one_book_never_hold_the_same_buffer() {
    const THREADS: usize = 8;
    const OPS: usize = 20_000;
    let book = LegacyBook::new();
    let held: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (book, held) = (&book, &held);
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(0x1E6A_C700 + t as u64);
                let mut mine: Vec<(LegacyBuffer, u8)> = Vec::new();
                for op in 0..OPS {
                    if mine.is_empty() || (mine.len() < 6 && rng.random_bool(0.5)) {
                        let size = 64 * rng.random_range(1..=64usize);
                        let buffer = book.alloc(size);
                        assert!(buffer.size >= size);
                        assert!(
                            held.lock().unwrap().insert(buffer.ptr as usize),
                            "thread {t} op {op}: buffer {:p} is already held",
                            buffer.ptr
                        );
                        let pattern = (t * 31 + op) as u8;
                        // SAFETY: the buffer is this thread's alone (checked above) and holds
                        // buffer.size bytes.
                        unsafe { std::ptr::write_bytes(buffer.ptr, pattern, buffer.size) };
                        mine.push((buffer, pattern));
                    } else {
                        let (buffer, pattern) = mine.swap_remove(rng.random_range(0..mine.len()));
                        // SAFETY: as above; nobody else wrote it while this thread held it.
                        let bytes = unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.size) };
                        assert!(
                            bytes.iter().all(|&b| b == pattern),
                            "thread {t} op {op}: another holder wrote into {:p}",
                            buffer.ptr
                        );
                        assert!(held.lock().unwrap().remove(&(buffer.ptr as usize)));
                        // SAFETY: from this book, freed once.
                        unsafe { book.free(buffer) };
                    }
                }
                for (buffer, _) in mine {
                    held.lock().unwrap().remove(&(buffer.ptr as usize));
                    // SAFETY: from this book, freed once.
                    unsafe { book.free(buffer) };
                }
            });
        }
    });
    assert!(held.lock().unwrap().is_empty());
    assert_eq!(
        book.cached_bytes(),
        book.pool_size(),
        "everything came back"
    );
    book.drain();
    assert_eq!((book.pool_size(), book.cached_bytes()), (0, 0));
}
