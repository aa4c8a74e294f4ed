//! Vulkan devices (feature `vulkan`).

use std::ffi::CStr;

use crate::sys;

/// Memory of a Vulkan device, in bytes.
#[derive(Debug, Clone)]
pub struct VKVram {
    /// Free memory.
    pub free: usize,
    /// Total memory.
    pub total: usize,
}

/// Human-readable device information
#[derive(Debug, Clone)]
pub struct VkDeviceInfo {
    /// ggml's device index.
    pub id: i32,
    /// Device description.
    pub name: String,
    /// Device memory.
    pub vram: VKVram,
    /// ggml buffer type of the device.
    pub buf_type: sys::ggml_backend_buffer_type_t,
}

/// Enumerate every physical GPU ggml can see.
pub fn list_devices() -> Vec<VkDeviceInfo> {
    // SAFETY: plain queries of the Vulkan backend; buffers are sized and NUL-terminated.
    unsafe {
        let count = sys::ggml_backend_vk_get_device_count();
        (0..count)
            .map(|id| {
                let mut name = [0 as std::ffi::c_char; 256];
                sys::ggml_backend_vk_get_device_description(id, name.as_mut_ptr(), name.len());
                name[name.len() - 1] = 0;
                let mut free = 0usize;
                let mut total = 0usize;
                sys::ggml_backend_vk_get_device_memory(id, &mut free, &mut total);
                VkDeviceInfo {
                    id,
                    name: CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
                    vram: VKVram { free, total },
                    buf_type: sys::ggml_backend_vk_buffer_type(id as usize),
                }
            })
            .collect()
    }
}
