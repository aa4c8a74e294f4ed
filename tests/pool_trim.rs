//! Patch 0009: what a trim gives back. The VMM pool's bookkeeping (patch 0001's ledger and 0009's
//! list of mapped chunks) is driven on the host exactly as the pool drives it: before each
//! allocation the pool maps whole granules until the block's place is covered; a trim releases
//! the chunks above the highest block in use. A trim must never release a byte below that
//! block's end, must release every chunk wholly above it, and the pool must grow again after it.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use whisper_steady::cuda::host::{FreeResult, Ledger, Mappings};

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
