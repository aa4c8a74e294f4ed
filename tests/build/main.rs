//! The build script (CPU flags, the patch pipeline) and the library's layering.
//!
//! One test binary with a module per topic (ripgrep's layout): each binary links
//! whisper.cpp, so fewer binaries build and link faster.

mod build_cpu;
mod layers;
mod pipeline;
