//! Patch 0020: a VMM pool whose growth finds no device memory makes room once (the other
//! pools' trims) with its own lock released, then tries once more; a pool with room never makes
//! any. Through the host build of `pool-grow.h` (csrc/pool_host.cpp), with a fake device.

use std::sync::atomic::{AtomicUsize, Ordering};

use pool_host::{pool_cap_parse, GrowLock};

/// Whether `lock` is held, asked from another thread (asking from the holder is undefined).
fn held(lock: &GrowLock) -> bool {
    std::thread::scope(|s| s.spawn(|| lock.held_elsewhere()).join().unwrap())
}

#[test]
fn growth_without_room_makes_room_once_without_the_lock_and_tries_again() {
    let lock = GrowLock::new();
    // The device has 4 units free; the pool needs 6; the other pools hold 3 they do not use.
    let free = AtomicUsize::new(4);
    let (grows, rooms) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let grown = lock.grow(
        &mut || {
            grows.fetch_add(1, Ordering::SeqCst);
            assert!(held(&lock), "growth runs with the pool's lock");
            let have = free.load(Ordering::SeqCst);
            if have < 6 {
                return false;
            }
            free.store(have - 6, Ordering::SeqCst);
            true
        },
        &mut || {
            rooms.fetch_add(1, Ordering::SeqCst);
            assert!(
                !held(&lock),
                "room is made with the pool's lock released (another pool's trim of this one \
                 would deadlock on it)"
            );
            free.fetch_add(3, Ordering::SeqCst);
        },
    );
    assert!(grown);
    assert_eq!(grows.load(Ordering::SeqCst), 2);
    assert_eq!(rooms.load(Ordering::SeqCst), 1);
    assert_eq!(free.load(Ordering::SeqCst), 1);
    assert!(!held(&lock), "the lock is released at the end");
}

#[test]
fn a_second_refusal_is_reported_and_room_is_made_only_once() {
    let lock = GrowLock::new();
    let (grows, rooms) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let grown = lock.grow(
        &mut || {
            grows.fetch_add(1, Ordering::SeqCst);
            false
        },
        &mut || {
            rooms.fetch_add(1, Ordering::SeqCst);
        },
    );
    assert!(
        !grown,
        "the pool reports no room (then aborts, in its worker process)"
    );
    assert_eq!((grows.into_inner(), rooms.into_inner()), (2, 1));
}

#[test]
fn growth_that_finds_room_makes_none() {
    let lock = GrowLock::new();
    let rooms = AtomicUsize::new(0);
    assert!(lock.grow(&mut || true, &mut || {
        rooms.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(rooms.into_inner(), 0);
}

#[test]
fn the_pool_cap_is_decimal_bytes_and_anything_else_is_no_cap() {
    assert_eq!(pool_cap_parse("1048576"), 1 << 20);
    assert_eq!(pool_cap_parse("0"), 0);
    for none in ["", "1MiB", "-5", " 12", "12 ", "0x10", "lots"] {
        assert_eq!(pool_cap_parse(none), 0, "{none:?}");
    }
}
