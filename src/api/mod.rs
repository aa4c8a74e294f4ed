//! The safe API, compatible with whisper-rs 0.16. Everything is re-exported at the crate root.

pub(crate) mod abort;
pub(crate) mod callbacks;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod grammar;
pub(crate) mod logging;
pub(crate) mod params;
pub(crate) mod standalone;
pub(crate) mod state;
pub(crate) mod tokenizer;
pub(crate) mod utilities;
pub(crate) mod vad;
#[cfg(feature = "vulkan")]
pub(crate) mod vulkan;
