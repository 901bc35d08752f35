//! Software prefetch: start loading cache lines a loop will touch a few steps later.
//!
//! The gateway's write pass walks connections scattered over the heap, and each write's first touch
//! of a connection's state is a cache miss the CPU cannot start early, because the address comes
//! from the object before. Issuing the loads a few connections ahead lets them land while the
//! current connection's `send` runs in the kernel (microseconds).
#![allow(unsafe_code)]

/// Hints the CPU to load the cache lines holding the `len` bytes at `p` into all cache levels.
/// A no-op on architectures without a prefetch instruction here.
#[inline(always)]
pub fn prefetch<T>(p: *const T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = p as usize;
        let Some(end) = start.checked_add(len.max(1) - 1) else {
            return;
        };
        let first = start & !(LINE - 1);
        let lines = ((end & !(LINE - 1)) - first) / LINE + 1;
        let p = p.cast::<i8>();
        for k in 0..lines {
            let line = first + k * LINE;
            // SAFETY: PREFETCHT0 is a hint: it never faults and has no architectural effect,
            // whatever the address (dangling or null included), so no pointer validity is needed;
            // `wrapping_add` keeps the address arithmetic defined for any pointer.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line.wrapping_sub(start))) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn prefetching_any_address_is_harmless() {
        // The hint must never fault: null, dangling and wrapped-around addresses included.
        prefetch(std::ptr::null::<u8>(), 4096);
        prefetch(std::ptr::dangling::<u64>(), 64);
        prefetch(usize::MAX as *const u8, 1);
        let v = vec![7u8; 300];
        prefetch(v.as_ptr(), v.len());
        prefetch(v.as_ptr(), 0);
        assert_eq!(v[299], 7);
    }
}
