//! The process allocator's settings: with the `mimalloc` feature (the default), the `lstm-tch`
//! binary allocates everything with mimalloc, libtorch's tensors included (`src/main.rs`).

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v3: the sixteenth option of `mi_option_e`):
/// milliseconds before memory freed back to mimalloc is returned to the operating system
/// (v3's default 1,000; -1: never). The Rust bindings name no constant for it; the test below checks
/// the index against the option's documented default.
#[cfg(feature = "mimalloc")]
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the memory the process frees for its own reuse instead of returning it to the
/// operating system, so that the resident set stays at its high-water mark rather than rising
/// and falling with every large batch: what a long-running server wants, whose peak is bounded
/// by its batch limits and reached at warm-up. Without the `mimalloc` feature, nothing.
pub fn retain_freed_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_option_set writes one of mimalloc's option values (an atomic store); the index
    // is a valid option (tested).
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1)
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_is_mimallocs_and_retaining_sets_it_to_never() {
        // SAFETY: reads of mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000, "option {PURGE_DELAY} is not purge_delay (v3's default: 1,000 ms)");
        }
        retain_freed_memory();
        assert_eq!(get(), -1);
    }
}
