//! The error convention of src/runtime/native's C++ functions: each returns NULL, or a malloc'ed message.

use std::ffi::{c_char, c_void, CStr};

extern "C" {
    fn free(ptr: *mut c_void);
}

/// `None` for NULL, else the message, whose buffer is freed here.
pub(crate) fn take_c_error(err: *mut c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from strdup/malloc, read and freed once here.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { free(err.cast()) };
    Some(message)
}
