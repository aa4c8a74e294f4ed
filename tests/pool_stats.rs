//! Patch 0003: the pool counters, through the host build of `pool-stats.h`, and the Rust view.

use std::sync::Arc;
use std::thread;

use whisper_steady::cuda::host::{Counters, FreeResult, Ledger, RejectKind};

#[test]
fn counters_track_pools_bytes_and_peak() {
    let c = Counters::new();
    c.pool(true, true);
    c.pool(false, true);
    c.pool(false, true);
    c.pool(false, false);
    c.reserved(2 << 20);
    c.in_use(1000);
    c.in_use(5000);
    c.in_use(-5000);
    c.in_use(300);
    c.waiting(128);
    c.out_of_order();
    c.rejected(RejectKind::Unknown);
    c.rejected(RejectKind::Double);
    c.rejected(RejectKind::Double);
    let s = c.snapshot();
    assert_eq!(s.pools_vmm, 1);
    assert_eq!(s.pools_legacy, 1);
    assert_eq!(s.bytes_reserved, 2 << 20);
    assert_eq!(s.bytes_in_use, 1300);
    assert_eq!(s.peak_bytes_in_use, 6000);
    assert_eq!(s.bytes_waiting_reclaim, 128);
    assert_eq!(s.out_of_order_frees, 1);
    assert_eq!(s.rejected_frees, 3);
    // patch 0010: each kind in its own counter, adding up to the total
    assert_eq!(
        (
            s.rejected_unknown,
            s.rejected_size_mismatch,
            s.rejected_double
        ),
        (1, 0, 2)
    );
}

#[test]
fn counters_stay_consistent_under_concurrent_updates() {
    // Each thread holds at most one block of its own size at a time, so the peak lies between
    // the largest single block and the sum of all blocks, and the final value is exactly zero.
    let c = Arc::new(Counters::new());
    let threads = 8;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let size = 1000 * (t + 1);
                let kind = [
                    RejectKind::Unknown,
                    RejectKind::SizeMismatch,
                    RejectKind::Double,
                ][t as usize % 3];
                for _ in 0..20_000 {
                    c.in_use(size);
                    c.in_use(-size);
                    c.rejected(kind);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = c.snapshot();
    assert_eq!(s.bytes_in_use, 0, "concurrent updates lost or duplicated");
    // threads 0, 3, 6 reject unknown frees, 1, 4, 7 wrong sizes, 2, 5 double frees
    assert_eq!(
        (
            s.rejected_unknown,
            s.rejected_size_mismatch,
            s.rejected_double
        ),
        (60_000, 60_000, 40_000)
    );
    assert_eq!(s.rejected_frees, 160_000);
    let max_single = 1000 * threads;
    let sum: i64 = (1..=threads).map(|t| 1000 * t).sum();
    assert!(
        s.peak_bytes_in_use >= max_single && s.peak_bytes_in_use <= sum,
        "{s:?}"
    );
}

#[test]
fn ledger_deltas_give_the_pool_counters() {
    // The VMM pool feeds the counters with the ledger's before/after differences; check that
    // this accounting gives bytes in use = live bytes and waiting = deferred bytes at each step.
    let c = Counters::new();
    let mut ledger = Ledger::new();
    let alloc = |ledger: &mut Ledger, size: usize| {
        let waiting = ledger.waiting() as i64;
        let offset = ledger.alloc(size);
        c.in_use(size as i64);
        c.waiting(ledger.waiting() as i64 - waiting);
        let s = c.snapshot();
        assert_eq!(s.bytes_in_use as usize, ledger.live_bytes());
        assert_eq!(s.bytes_waiting_reclaim as usize, ledger.waiting());
        offset
    };
    let a = alloc(&mut ledger, 1 << 10);
    let b = alloc(&mut ledger, 1 << 12);
    let d = alloc(&mut ledger, 1 << 14);
    let free = |ledger: &mut Ledger, offset: usize, size: usize| {
        let (live, waiting) = (ledger.live_bytes() as i64, ledger.waiting() as i64);
        let result = ledger.free(offset, size);
        c.in_use(ledger.live_bytes() as i64 - live);
        c.waiting(ledger.waiting() as i64 - waiting);
        match result {
            FreeResult::Deferred => c.out_of_order(),
            FreeResult::Reclaimed => {}
            other => c.rejected(RejectKind::of(other).expect("a rejected free")),
        }
        let s = c.snapshot();
        assert_eq!(s.bytes_in_use as usize, ledger.live_bytes());
        assert_eq!(s.bytes_waiting_reclaim as usize, ledger.waiting());
    };
    free(&mut ledger, a, 1 << 10);
    free(&mut ledger, b, 1 << 12);
    free(&mut ledger, b, 1 << 12);
    // a and b became one hole; a smaller block goes into it and takes its bytes out of waiting
    let e = alloc(&mut ledger, 1 << 11);
    assert_eq!(e, a, "first fit");
    free(&mut ledger, e, 1 << 11);
    free(&mut ledger, d, 1 << 14);
    let s = c.snapshot();
    assert_eq!((s.bytes_in_use, s.bytes_waiting_reclaim), (0, 0));
    assert_eq!(s.peak_bytes_in_use, (1 << 10) + (1 << 12) + (1 << 14));
    assert_eq!((s.out_of_order_frees, s.rejected_frees), (3, 1));
    // b's second free finds no block at b: the hole below absorbed it, so it counts as unknown
    assert_eq!((s.rejected_unknown, s.rejected_double), (1, 0));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn without_cuda_the_stats_say_so() {
    let stats = whisper_steady::cuda::pool_stats();
    assert!(!stats.cuda_available);
    assert_eq!(stats, whisper_steady::cuda::PoolStats::default());
}

#[cfg(not(feature = "cuda"))]
#[test]
fn without_cuda_the_device_self_test_says_why_it_cannot_run() {
    for result in [
        whisper_steady::cuda::pool_selftest(0, 10, 1),
        whisper_steady::cuda::pool_selftest_threads(0, 4, 10, 1),
    ] {
        let why = result.expect_err("no CUDA backend");
        assert!(why.contains("no CUDA backend"), "{why}");
    }
}
