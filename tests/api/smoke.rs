//! The CPU library links and answers through the raw bindings.

use std::ffi::CStr;

use whisper_steady::sys;

#[test]
fn version_is_the_pinned_upstream() {
    assert_eq!(whisper_steady::WHISPER_CPP_VERSION, "1.8.3");
    assert_eq!(whisper_steady::get_whisper_version(), "1.8.3");
}

#[test]
fn system_info_lists_the_cpu_backend() {
    let info = whisper_steady::print_system_info();
    assert!(info.starts_with("WHISPER : "), "{info}");
    assert!(info.contains("CPU : "), "{info}");
}

#[test]
fn raw_calls_into_whisper_cpp() {
    // SAFETY: plain queries of static tables.
    unsafe {
        assert_eq!(sys::whisper_lang_max_id(), 99);
        let en = c"en";
        assert_eq!(sys::whisper_lang_id(en.as_ptr()), 0);
        let de = CStr::from_ptr(sys::whisper_lang_str(2));
        assert_eq!(de.to_str().unwrap(), "de");
        let params = sys::whisper_full_default_params(
            sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY,
        );
        assert_eq!(params.greedy.best_of, 5);
        assert!(params.n_threads >= 1);
    }
}

#[test]
fn a_missing_model_fails_cleanly() {
    let path = c"/nonexistent/whisper-steady-model.bin";
    // SAFETY: valid NUL-terminated path and default parameters; a null return is the failure.
    let ctx = unsafe {
        sys::whisper_init_from_file_with_params(
            path.as_ptr(),
            sys::whisper_context_default_params(),
        )
    };
    assert!(ctx.is_null());
}

#[test]
fn the_state_lock_of_patch_0006_is_linked_and_ignores_null() {
    // SAFETY: patch 0006 defines these as no-ops on null states.
    unsafe {
        sys::whisper_state_lock(std::ptr::null_mut());
        sys::whisper_state_unlock(std::ptr::null_mut());
        assert!(!sys::whisper_state_try_lock(std::ptr::null_mut()));
        sys::whisper_lock(std::ptr::null_mut());
        sys::whisper_unlock(std::ptr::null_mut());
    }
    assert_eq!(sys::WHISPER_STEADY_STATE_LOCK, 1);
}
