//! The CUDA memory pools, exercised through their host build.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

mod pool_grow;
mod pool_ledger;
mod pool_legacy;
mod pool_policy;
mod pool_stats;
mod pool_trim;
