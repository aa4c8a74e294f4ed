//! The build's one error type, and the guard that turns the cmake and bindgen crates' panics
//! into it.

use std::fmt;

/// A build failure, with a message that tells the user what to do.
#[derive(Debug)]
pub struct BuildError(String);

impl BuildError {
    /// Wraps a message.
    pub fn new(message: impl Into<String>) -> Self {
        BuildError(message.into())
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<crate::patches::PipelineError> for BuildError {
    fn from(e: crate::patches::PipelineError) -> Self {
        BuildError(e.to_string())
    }
}

/// Runs `f`, turning a panic inside it (the cmake and bindgen crates panic on failure) into a
/// [`BuildError`] that names the tool and says what to do, without a backtrace.
pub fn no_panic<T>(tool: &str, hint: &str, f: impl FnOnce() -> T) -> Result<T, BuildError> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        let message = message
            .replace("build script failed, must exit now", "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        BuildError::new(format!("{tool} failed: {message}. Hint: {hint}"))
    })
}
