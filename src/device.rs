//! The devices ggml knows in this build: the CPU always, GPUs with their backend's feature.
//! Read by the safe API (the abort report), the recognizer (lanes, health) and the CLI; it sits
//! below all of them and only queries (no device is initialized anew or reset).

use std::ffi::CStr;

use crate::sys;

/// One device as ggml reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// ggml's name (`CPU`, `CUDA0`, ...).
    pub name: String,
    /// The description (the CPU model, the GPU name).
    pub description: String,
    /// `cpu`, `gpu`, `igpu` or `accel`.
    pub kind: &'static str,
    /// Free memory in bytes, as the device reports it.
    pub memory_free: u64,
    /// Total memory in bytes.
    pub memory_total: u64,
}

fn c_text(ptr: *const std::ffi::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns NUL-terminated strings that live as long as the device registry.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The devices ggml knows in this build (the CPU always; GPUs with their backend's feature),
/// with free and total memory. Only queries: no device is initialized anew or reset.
pub fn devices() -> Vec<DeviceInfo> {
    // SAFETY: the registry's functions take indices below its count and return devices that
    // live for the whole process; the memory query writes two integers.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .map(|i| sys::ggml_backend_dev_get(i))
            .filter(|dev| !dev.is_null())
            .map(|dev| {
                let (mut free, mut total) = (0usize, 0usize);
                sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
                DeviceInfo {
                    name: c_text(sys::ggml_backend_dev_name(dev)),
                    description: c_text(sys::ggml_backend_dev_description(dev)),
                    kind: match sys::ggml_backend_dev_type(dev) {
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_CPU => "cpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU => "gpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU => "igpu",
                        _ => "accel",
                    },
                    memory_free: free as u64,
                    memory_total: total as u64,
                }
            })
            .collect()
    }
}

/// How many GPU devices (discrete or integrated) ggml has in this build on this machine: the
/// ones whisper.cpp's `gpu_device` counts.
pub(crate) fn gpu_device_count() -> usize {
    devices()
        .iter()
        .filter(|d| d.kind == "gpu" || d.kind == "igpu")
        .count()
}
