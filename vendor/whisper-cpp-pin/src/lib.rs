//! Empty: this crate only carries the pinned upstream dependency.
