//! The build script: CPU flags and the patch pipeline.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

mod build_cpu;
mod pipeline;
