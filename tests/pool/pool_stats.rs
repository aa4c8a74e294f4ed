//! Patch 0003: the pool counters, through the host build of `pool-stats.h`, and the Rust view.
//! Patch 0015: the VMM pool's free logs after releasing its lock, the rejected frees are read so
//! that the kinds never exceed the total, and a request beyond the pool's range is refused
//! before rounding.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use pool_host::{
    vmm_round_request, Counters, FreeResult, HostVmmPool, Ledger, RejectKind, VmmLog, VmmLogEvent,
    VMM_MAX_SIZE,
};

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

#[test]
fn a_log_callback_may_use_the_pool_it_logs_for() {
    // A user's log callback that frees or allocates on the pool (or trims it) ran while the
    // pool held its own non-recursive lock: it deadlocked. The scenario runs on a thread with a
    // time limit, so that a deadlock fails the test instead of hanging it.
    let logged = Arc::new(std::sync::Mutex::new(Vec::<VmmLogEvent>::new()));
    let log: VmmLog = {
        let logged = Arc::clone(&logged);
        Box::new(move |pool: &HostVmmPool, event: VmmLogEvent| {
            logged.lock().unwrap().push(event);
            // the callback uses the pool: a block in and out, and a trim
            let (offset, size) = pool.alloc(256).expect("a small block");
            pool.free(offset, size);
            pool.trim_with(|| true, |_, _| true);
        })
    };
    let pool = HostVmmPool::new(2 << 20, Some(log));
    let (tx, rx) = mpsc::channel();
    let worker = {
        let pool = Arc::clone(&pool);
        thread::spawn(move || {
            let (a, size_a) = pool.alloc(1000).unwrap();
            let (b, size_b) = pool.alloc(1000).unwrap();
            let out_of_order = pool.free(a, size_a); // logged: the pool's first out-of-order free
                                                     // the callback's block went into a's hole and came back: a is a hole again
            let double = pool.free(a, size_a); // logged: the first rejected free
            let outside = pool.free_outside(64); // counted, not logged (the second rejected)
            pool.free(b, size_b);
            tx.send((out_of_order, double, outside)).ok();
        })
    };
    let results = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the pool deadlocked in its own log callback");
    worker.join().unwrap();
    assert_eq!(
        results,
        (
            FreeResult::Deferred,
            FreeResult::Double,
            FreeResult::Unknown
        )
    );
    let logged = logged.lock().unwrap().clone();
    assert_eq!(
        logged,
        vec![
            VmmLogEvent {
                result: FreeResult::Deferred,
                outside: false,
                n_rejected: 0
            },
            VmmLogEvent {
                result: FreeResult::Double,
                outside: false,
                n_rejected: 1
            },
        ]
    );
    // the counters saw every free, the callback's own included (its block, placed in a's
    // hole below b, was freed out of order twice; only the pool's first is logged)
    let s = pool.counters();
    assert_eq!((s.bytes_in_use, s.bytes_waiting_reclaim), (0, 0));
    assert_eq!((s.out_of_order_frees, s.rejected_frees), (3, 2));
    assert_eq!((s.rejected_double, s.rejected_unknown), (1, 1));
}

#[test]
fn the_pool_logs_its_first_rejected_free_and_every_thousandth() {
    let count = Arc::new(AtomicU64::new(0));
    let log: VmmLog = {
        let count = Arc::clone(&count);
        Box::new(move |_: &HostVmmPool, event: VmmLogEvent| {
            assert!(event.outside);
            count.fetch_add(1, Ordering::SeqCst);
        })
    };
    let pool = HostVmmPool::new(2 << 20, Some(log));
    for _ in 0..2500 {
        assert_eq!(pool.free_outside(128), FreeResult::Unknown);
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "the 1st, 1000th and 2000th"
    );
    assert_eq!(pool.counters().rejected_unknown, 2500);
}

#[test]
fn readers_never_see_more_rejected_frees_by_kind_than_in_total() {
    // A rejected free bumped its kind before the total, and the statistics read the total
    // first: a reader in between saw the kinds add up to more than the total.
    let c = Arc::new(Counters::new());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
            thread::spawn(move || {
                let (mut reads, mut over) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let s = c.snapshot();
                    let kinds = s.rejected_unknown + s.rejected_size_mismatch + s.rejected_double;
                    over += u64::from(kinds > s.rejected_frees);
                    reads += 1;
                }
                (reads, over)
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let kind = [
                    RejectKind::Unknown,
                    RejectKind::SizeMismatch,
                    RejectKind::Double,
                ][t % 3];
                for _ in 0..300_000 {
                    c.rejected(kind);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, over) = readers
        .into_iter()
        .map(|r| r.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert!(reads > 0);
    assert_eq!(over, 0, "{over} of {reads} reads saw kinds above the total");
    let s = c.snapshot();
    assert_eq!(s.rejected_frees, 1_200_000);
    assert_eq!(
        s.rejected_unknown + s.rejected_size_mismatch + s.rejected_double,
        1_200_000
    );
}

#[test]
fn a_request_beyond_the_pool_is_refused_before_rounding() {
    assert_eq!(vmm_round_request(0), Some(128));
    assert_eq!(vmm_round_request(1), Some(128));
    assert_eq!(vmm_round_request(128), Some(128));
    assert_eq!(vmm_round_request(129), Some(256));
    assert_eq!(vmm_round_request(VMM_MAX_SIZE - 1), Some(VMM_MAX_SIZE));
    assert_eq!(vmm_round_request(VMM_MAX_SIZE), Some(VMM_MAX_SIZE));
    assert_eq!(vmm_round_request(VMM_MAX_SIZE + 1), None);
    // Near SIZE_MAX upstream's rounding, 128 * ((size + 127) / 128), wraps around to 0: the pool
    // handed out a small block for a huge request.
    let upstream = |size: usize| 128usize.wrapping_mul(size.wrapping_add(127) / 128);
    for size in [usize::MAX, usize::MAX - 5, usize::MAX - 126] {
        assert!(upstream(size) < size, "upstream's rounding of {size} wraps");
        assert_eq!(vmm_round_request(size), None, "{size}");
    }
    // every accepted request is rounded up, never down
    for size in (0..64)
        .map(|i| 1usize << (i % 36))
        .chain([VMM_MAX_SIZE - 127])
    {
        let rounded = vmm_round_request(size).unwrap();
        assert!(rounded >= size.max(1) && rounded % 128 == 0 && rounded - size.max(1) < 128);
    }
    let pool = HostVmmPool::new(2 << 20, None);
    assert_eq!(pool.alloc(usize::MAX - 5), None);
    assert_eq!((pool.used(), pool.mapped()), (0, 0));
}
