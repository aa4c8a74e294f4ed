//! Patch 0009: what a trim gives back. The VMM pool's bookkeeping (patch 0001's ledger and 0009's
//! list of mapped chunks) is driven on the host exactly as the pool drives it: before each
//! allocation the pool maps whole granules until the block's place is covered; a trim releases
//! the chunks above the highest block in use. A trim must never release a byte below that
//! block's end, must release every chunk wholly above it, and the pool must grow again after it.
//!
//! Patch 0014: a trim waits for the pool's streams before it gives memory back. A fake device
//! stands in for the GPU: streams that run queued work in order, each work item using a range of
//! pool memory. The workloads do what ggml does: allocate a temporary, launch work on it, free it
//! on the host at once. No chunk (buffer) may be unmapped (freed) while queued work still uses
//! it. Patch 0015: the registry of pools is not locked while a pool is trimmed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use pool_host::{
    trim_refused_for_graphs, FreeResult, HostVmmPool, Ledger, LegacyBook, Mappings, PoolRegistry,
    TrimOutcome, TrimStatus,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The VMM granularity of current NVIDIA GPUs.
const GRANULE: usize = 2 << 20;

/// The pool's allocation path: map whole granules at the end until the block fits, then place it.
fn pool_alloc(ledger: &mut Ledger, mappings: &mut Mappings, size: usize) -> usize {
    let size = 128 * size.max(1).div_ceil(128);
    let end = ledger.place(size) + size;
    if end > mappings.mapped() {
        let grow = GRANULE * (end - mappings.mapped()).div_ceil(GRANULE);
        mappings.add(grow);
    }
    let offset = ledger.alloc(size);
    assert!(
        offset + size <= mappings.mapped(),
        "a block outside mapped memory"
    );
    offset
}

/// A trim, checked: returns the bytes released.
fn trim_checked(ledger: &Ledger, mappings: &mut Mappings, context: &str) -> usize {
    let used = ledger.used();
    let before = mappings.mapped();
    let released = mappings.release_above(used);
    let after = mappings.mapped();
    assert!(
        after >= used,
        "{context}: released memory below the top block's end"
    );
    let mut expected_offset = before;
    for &(offset, size) in &released {
        assert!(
            offset >= used,
            "{context}: chunk at {offset} holds bytes below {used}"
        );
        assert_eq!(
            offset + size,
            expected_offset,
            "{context}: chunks released out of order"
        );
        expected_offset = offset;
    }
    assert_eq!(
        expected_offset, after,
        "{context}: released chunks are not contiguous"
    );
    // Every chunk wholly above `used` went: what stays ends in a chunk that starts below it.
    let again = mappings.release_above(used);
    assert!(
        again.is_empty(),
        "{context}: a second trim released {again:?}"
    );
    before - after
}

#[test]
fn a_trim_releases_exactly_the_chunks_above_the_top_block() {
    let mut ledger = Ledger::new();
    let mut mappings = Mappings::new();
    // Three chunks of one granule each, the third holding nothing after the frees below.
    let a = pool_alloc(&mut ledger, &mut mappings, GRANULE);
    let b = pool_alloc(&mut ledger, &mut mappings, GRANULE);
    let c = pool_alloc(&mut ledger, &mut mappings, GRANULE / 2);
    assert_eq!(mappings.mapped(), 3 * GRANULE);
    assert_eq!(ledger.free(c, GRANULE / 2), FreeResult::Reclaimed);
    assert_eq!(trim_checked(&ledger, &mut mappings, "c freed"), GRANULE);
    // a freed out of order leaves a hole below b: nothing above b's end to release.
    assert_eq!(ledger.free(a, GRANULE), FreeResult::Deferred);
    assert_eq!(trim_checked(&ledger, &mut mappings, "hole below b"), 0);
    assert_eq!(mappings.mapped(), 2 * GRANULE);
    assert_eq!(ledger.free(b, GRANULE), FreeResult::Reclaimed);
    assert_eq!(trim_checked(&ledger, &mut mappings, "empty"), 2 * GRANULE);
    assert_eq!(mappings.mapped(), 0);
    // The pool grows again, from its base.
    assert_eq!(pool_alloc(&mut ledger, &mut mappings, 4096), 0);
    assert_eq!(mappings.mapped(), GRANULE);
}

#[test]
fn trims_on_random_pools_never_touch_memory_in_use() {
    let mut rng = SmallRng::seed_from_u64(0x7219_0009);
    let mut released_total = 0usize;
    for sequence in 0..2_000 {
        let mut ledger = Ledger::new();
        let mut mappings = Mappings::new();
        let mut live: Vec<(usize, usize)> = Vec::new();
        for step in 0..rng.random_range(4..60) {
            let context = format!("sequence {sequence} step {step}");
            match rng.random_range(0..10) {
                0..=4 => {
                    let size = rng.random_range(1..=3 * GRANULE);
                    let offset = pool_alloc(&mut ledger, &mut mappings, size);
                    live.push((offset, 128 * size.div_ceil(128)));
                }
                5..=8 if !live.is_empty() => {
                    let (offset, size) = live.swap_remove(rng.random_range(0..live.len()));
                    assert!(matches!(
                        ledger.free(offset, size),
                        FreeResult::Reclaimed | FreeResult::Deferred
                    ));
                }
                _ => released_total += trim_checked(&ledger, &mut mappings, &context),
            }
            let top = live.iter().map(|(o, s)| o + s).max().unwrap_or(0);
            assert!(
                mappings.mapped() >= top,
                "{context}: a live block lost its memory"
            );
        }
    }
    assert!(released_total > 0, "the workload must release something");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn without_cuda_a_trim_does_nothing_and_says_so() {
    let report = whisper_steady::cuda::trim();
    assert!(!report.cuda_available);
    assert_eq!((report.pools, report.bytes_released), (0, 0));
}

/// A fake device: streams that run queued work in order. A work item uses the bytes
/// `[start, end)` (pool offsets, or host addresses for the legacy pool) until it completes.
#[derive(Default)]
struct FakeDevice {
    streams: Vec<VecDeque<(usize, usize)>>,
    /// Unmaps or frees of memory that queued work still used.
    violations: Vec<String>,
    /// Fences (stream synchronizations) performed.
    fences: usize,
}

impl FakeDevice {
    fn new(streams: usize) -> FakeDevice {
        FakeDevice {
            streams: vec![VecDeque::new(); streams],
            ..FakeDevice::default()
        }
    }

    fn launch(&mut self, stream: usize, start: usize, len: usize) {
        self.streams[stream].push_back((start, start + len));
    }

    /// The device runs: each stream completes some of its oldest work.
    fn progress(&mut self, rng: &mut SmallRng) {
        for queue in &mut self.streams {
            for _ in 0..rng.random_range(0..=2) {
                queue.pop_front();
            }
        }
    }

    /// cudaStreamSynchronize on every stream: all queued work completes.
    fn synchronize(&mut self) -> bool {
        self.fences += 1;
        self.streams.iter_mut().for_each(VecDeque::clear);
        true
    }

    /// cuMemUnmap or cudaFree of `[start, start + size)`: recorded as a violation when queued
    /// work still uses a byte of it.
    fn release(&mut self, start: usize, size: usize) -> bool {
        let end = start + size;
        let busy = self
            .streams
            .iter()
            .flatten()
            .filter(|&&(s, e)| s < end && start < e)
            .count();
        if busy > 0 {
            self.violations.push(format!(
                "[{start:#x}, {end:#x}) released while {busy} queued work items use it"
            ));
        }
        true
    }
}

impl FakeDevice {
    /// What the workload that drove this device found.
    fn finish(self, released: usize, trims: usize) -> Run {
        Run {
            violations: self.violations,
            released,
            fences: self.fences,
            trims,
        }
    }
}

/// What one workload found.
struct Run {
    violations: Vec<String>,
    released: usize,
    fences: usize,
    trims: usize,
}

/// ggml's pattern on one VMM pool: allocate a temporary, launch work on it on one of the owner's
/// streams, free it on the host at once; some blocks stay live across steps; the device runs at
/// its own pace; trims come in between. `wait` false gives the trim a fence that does not wait
/// (patch 0009's trim).
fn vmm_workload(seed: u64, steps: usize, wait: bool) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let pool = HostVmmPool::new(GRANULE, None);
    let device = RefCell::new(FakeDevice::new(4));
    let mut live: Vec<(usize, usize)> = Vec::new();
    let (mut released, mut trims) = (0, 0);
    for _ in 0..steps {
        match rng.random_range(0..10) {
            0..=5 => {
                let size = rng.random_range(1..=3 * GRANULE);
                let (offset, actual) = pool.alloc(size).expect("a request within the range");
                device
                    .borrow_mut()
                    .launch(rng.random_range(0..4), offset, actual);
                if rng.random_bool(0.3) {
                    live.push((offset, actual));
                } else {
                    assert!(matches!(
                        pool.free(offset, actual),
                        FreeResult::Reclaimed | FreeResult::Deferred
                    ));
                }
            }
            6 if !live.is_empty() => {
                let (offset, size) = live.swap_remove(rng.random_range(0..live.len()));
                pool.free(offset, size);
            }
            7 | 8 => device.borrow_mut().progress(&mut rng),
            _ => {
                let outcome = pool.trim_with(
                    || !wait || device.borrow_mut().synchronize(),
                    |offset, size| device.borrow_mut().release(offset, size),
                );
                trims += 1;
                released += outcome.released;
                assert_ne!(outcome.status, TrimStatus::FenceFailed);
            }
        }
    }
    device.into_inner().finish(released, trims)
}

#[test]
fn a_trim_never_unmaps_memory_that_queued_work_uses() {
    let (mut released, mut fences, mut trims) = (0, 0, 0);
    for seed in 0..300 {
        let run = vmm_workload(0x0014_0000 + seed, 200, true);
        assert!(
            run.violations.is_empty(),
            "seed {seed}: {:?}",
            run.violations
        );
        released += run.released;
        fences += run.fences;
        trims += run.trims;
    }
    assert!(released > 0, "the workloads must give memory back");
    assert!(
        fences < trims,
        "a trim with nothing to give back waits for nothing ({fences} fences, {trims} trims)"
    );
}

#[test]
fn without_the_wait_the_same_workloads_unmap_memory_in_use() {
    // Patch 0009's trim, which unmapped at once: the check above sees what it did.
    let violations: usize = (0..300)
        .map(|seed| {
            vmm_workload(0x0014_0000 + seed, 200, false)
                .violations
                .len()
        })
        .sum();
    assert!(
        violations > 0,
        "a trim that does not wait must be caught unmapping memory that queued work uses"
    );
}

/// The same pattern on the legacy pool's book: buffers (host memory standing in for device
/// memory) go back to the cache when freed, and a trim frees the cached ones.
fn legacy_workload(seed: u64, steps: usize, wait: bool) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let book = LegacyBook::new();
    let device = RefCell::new(FakeDevice::new(2));
    let (mut released, mut trims) = (0, 0);
    for _ in 0..steps {
        match rng.random_range(0..10) {
            0..=5 => {
                let buffer = book.alloc(rng.random_range(1..=1 << 16));
                device.borrow_mut().launch(
                    rng.random_range(0..2),
                    buffer.ptr as usize,
                    buffer.size,
                );
                // SAFETY: the buffer came from this book and is freed once.
                unsafe { book.free(buffer) };
            }
            6..=8 => device.borrow_mut().progress(&mut rng),
            _ => {
                let outcome = book.trim_with(
                    || !wait || device.borrow_mut().synchronize(),
                    |address, size| device.borrow_mut().release(address, size),
                );
                trims += 1;
                released += outcome.released;
            }
        }
    }
    device.into_inner().finish(released, trims)
}

#[test]
fn a_legacy_trim_never_frees_a_buffer_that_queued_work_uses() {
    let mut released = 0;
    for seed in 0..200 {
        let run = legacy_workload(0x0014_1000 + seed, 200, true);
        assert!(
            run.violations.is_empty(),
            "seed {seed}: {:?}",
            run.violations
        );
        assert!(run.fences <= run.trims);
        released += run.released;
    }
    assert!(released > 0);
    let violations: usize = (0..200)
        .map(|seed| {
            legacy_workload(0x0014_1000 + seed, 200, false)
                .violations
                .len()
        })
        .sum();
    assert!(violations > 0, "without the wait the check must fire");
}

#[test]
fn a_trim_racing_a_worker_never_unmaps_memory_that_queued_work_uses() {
    // One thread works as a backend does while another trims: the trim holds the pool's lock
    // across its wait and its unmaps, so no block freed after the wait began is released.
    let pool = HostVmmPool::new(GRANULE, None);
    let device = Arc::new(Mutex::new(FakeDevice::new(2)));
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (pool, device, done) = (Arc::clone(&pool), Arc::clone(&device), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(0x0014_2000);
            let mut live: Vec<(usize, usize)> = Vec::new();
            for _ in 0..20_000 {
                let (offset, size) = pool.alloc(rng.random_range(1..=2 * GRANULE)).unwrap();
                device
                    .lock()
                    .unwrap()
                    .launch(rng.random_range(0..2), offset, size);
                if rng.random_bool(0.2) && live.len() < 4 {
                    live.push((offset, size));
                } else {
                    pool.free(offset, size);
                }
                if rng.random_bool(0.2) && !live.is_empty() {
                    let (offset, size) = live.swap_remove(rng.random_range(0..live.len()));
                    pool.free(offset, size);
                }
                if rng.random_bool(0.5) {
                    device.lock().unwrap().progress(&mut rng);
                }
                if rng.random_bool(0.01) {
                    std::thread::yield_now();
                }
            }
            for (offset, size) in live {
                pool.free(offset, size);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let (mut trims, mut released) = (0, 0);
    while !done.load(Ordering::SeqCst) || trims == 0 {
        let outcome = pool.trim_with(
            || device.lock().unwrap().synchronize(),
            |offset, size| device.lock().unwrap().release(offset, size),
        );
        trims += 1;
        released += outcome.released;
        if trims % 64 == 0 {
            std::thread::yield_now();
        }
    }
    worker.join().expect("the worker");
    let device = device.lock().unwrap();
    assert!(device.violations.is_empty(), "{:?}", device.violations);
    assert!(released > 0, "{trims} trims released nothing");
    assert!(pool.mapped() >= pool.used());
}

#[test]
fn a_trim_with_nothing_to_give_back_waits_for_nothing() {
    let pool = HostVmmPool::new(GRANULE, None);
    let (fences, unmaps) = (Cell::new(0), Cell::new(0));
    let trim = |pool: &HostVmmPool| {
        pool.trim_with(
            || {
                fences.set(fences.get() + 1);
                true
            },
            |_, _| {
                unmaps.set(unmaps.get() + 1);
                true
            },
        )
    };
    assert_eq!(trim(&pool).status, TrimStatus::Nothing, "an empty pool");
    let (a, size) = pool.alloc(GRANULE).unwrap();
    assert_eq!(trim(&pool).status, TrimStatus::Nothing, "a block in use");
    assert_eq!((fences.get(), unmaps.get()), (0, 0));
    pool.free(a, size);
    assert_eq!(
        trim(&pool),
        TrimOutcome {
            status: TrimStatus::Released,
            released: GRANULE
        }
    );
    assert_eq!((fences.get(), unmaps.get()), (1, 1));
    let book = LegacyBook::new();
    let outcome = book.trim_with(|| panic!("no cached buffer: no wait"), |_, _| true);
    assert_eq!(outcome.status, TrimStatus::Nothing);
}

#[test]
fn a_failed_wait_or_unmap_keeps_the_memory() {
    let mut mappings = Mappings::new();
    for _ in 0..3 {
        mappings.add(GRANULE);
    }
    // The wait fails: nothing is unmapped, everything stays recorded.
    let outcome = mappings.trim_with(0, || false, |_, _| panic!("no unmap after a failed wait"));
    assert_eq!(outcome.status, TrimStatus::FenceFailed);
    assert_eq!((outcome.released, mappings.mapped()), (0, 3 * GRANULE));
    // The second unmap fails: the top chunk went, the two below stay.
    let mut calls = 0;
    let outcome = mappings.trim_with(
        0,
        || true,
        |_, _| {
            calls += 1;
            calls == 1
        },
    );
    assert_eq!(outcome.status, TrimStatus::ReleaseFailed);
    assert_eq!(
        (outcome.released, mappings.mapped()),
        (GRANULE, 2 * GRANULE)
    );
    // A later trim gives the rest back, highest first.
    let mut order = Vec::new();
    let outcome = mappings.trim_with(
        0,
        || true,
        |offset, size| {
            order.push((offset, size));
            true
        },
    );
    assert_eq!(outcome.status, TrimStatus::Released);
    assert_eq!(order, vec![(GRANULE, GRANULE), (0, GRANULE)]);
    assert_eq!(mappings.mapped(), 0);
    // The legacy pool: a buffer the driver refuses stays cached, with those not reached.
    let book = LegacyBook::new();
    let buffers: Vec<_> = (0..3).map(|_| book.alloc(4096)).collect();
    for buffer in buffers {
        // SAFETY: each buffer came from this book and is freed once.
        unsafe { book.free(buffer) };
    }
    let cached = book.cached_bytes();
    let outcome = book.trim_with(|| false, |_, _| true);
    assert_eq!(
        (outcome.status, book.cached_bytes()),
        (TrimStatus::FenceFailed, cached)
    );
    let outcome = book.trim_with(|| true, |_, _| false);
    assert_eq!(
        (outcome.status, outcome.released),
        (TrimStatus::ReleaseFailed, 0)
    );
    assert_eq!(book.cached_bytes(), cached);
    let outcome = book.trim_with(|| true, |_, _| true);
    assert_eq!(
        (outcome.status, outcome.released),
        (TrimStatus::Released, cached)
    );
    assert_eq!((book.cached_bytes(), book.pool_size()), (0, 0));
}

#[test]
fn a_trim_is_refused_while_cuda_graphs_may_run() {
    // GGML_CUDA_DISABLE_GRAPHS switches graphs off when set to anything, "0" included (ggml's
    // own reading), and only then may a build with graphs trim.
    assert!(trim_refused_for_graphs(true, None));
    for value in ["1", "0", "", "yes"] {
        assert!(!trim_refused_for_graphs(true, Some(value)), "{value:?}");
    }
    assert!(!trim_refused_for_graphs(false, None));
    assert!(!trim_refused_for_graphs(false, Some("1")));
}

/// Waits for `rx` up to `limit`: whether the other thread got through.
fn got_through(rx: &mpsc::Receiver<()>, limit: Duration) -> bool {
    rx.recv_timeout(limit).is_ok()
}

#[test]
fn pools_come_and_go_while_a_trim_is_inside_one() {
    // Patch 0015: 0009's trim held the registry's lock while it trimmed each pool (a cudaFree or
    // a stream wait), so no pool could be created or destroyed meanwhile.
    let registry = Arc::new(PoolRegistry::new());
    for pool in 1..=3 {
        registry.add(pool);
    }
    let mut visited = Vec::new();
    let mut others_got_through = None;
    registry.for_each(|pool| {
        visited.push(pool);
        if pool == 1 {
            // inside the first pool's trim: another thread creates a pool and destroys pool 3
            let (tx, rx) = mpsc::channel();
            let other = Arc::clone(&registry);
            std::thread::spawn(move || {
                other.add(4);
                other.remove(3);
                tx.send(()).ok();
            });
            others_got_through = Some(got_through(&rx, Duration::from_secs(5)));
        }
    });
    assert_eq!(
        others_got_through,
        Some(true),
        "creating and destroying pools waited for the trim"
    );
    assert_eq!(
        visited,
        vec![1, 2],
        "pool 3 left before its turn, pool 4 came after the list"
    );
    assert_eq!(registry.len(), 3);
}

#[test]
fn a_pool_leaving_waits_for_the_trim_working_on_it() {
    let registry = Arc::new(PoolRegistry::new());
    registry.add(7);
    let trim_done = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (left_tx, left_rx) = mpsc::channel();
    let mut left_during_trim = None;
    let remover = {
        let (registry, trim_done) = (Arc::clone(&registry), Arc::clone(&trim_done));
        std::thread::spawn(move || {
            entered_rx.recv().ok();
            registry.remove(7); // the pool's destructor
            let after_trim = trim_done.load(Ordering::SeqCst);
            left_tx.send(()).ok();
            after_trim
        })
    };
    let visited = registry.for_each(|_| {
        entered_tx.send(()).ok();
        left_during_trim = Some(got_through(&left_rx, Duration::from_millis(300)));
        trim_done.store(true, Ordering::SeqCst);
    });
    assert_eq!(visited, 1);
    assert_eq!(
        left_during_trim,
        Some(false),
        "the pool left while being trimmed"
    );
    assert!(
        remover.join().unwrap(),
        "remove returned before the trim ended"
    );
    assert!(registry.is_empty());
}
