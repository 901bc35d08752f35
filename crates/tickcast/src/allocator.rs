//! The process allocator: mimalloc, set up so that freed memory goes back to the OS.
//!
//! Measured with `loadtest/memprobe.py` (8,000 subscribed connections opened, then closed; RSS of the
//! server): with mimalloc's v3 defaults the baseline was 28.7 MiB and 46.5 MiB stayed resident after
//! every connection closed, still growing 10 s later. Two causes: transparent huge pages (mimalloc
//! asks for them and khugepaged collapses mostly empty 2 MiB ranges, so RSS grows with nothing
//! allocated), and a purge delay of 1 s, multiplied by 10 for arenas. With THP off for the process
//! and a 10 ms purge delay: baseline 17.0 MiB, 2.1 KiB per connection, 19.1 MiB after the close, and
//! no CPU cost measurable on the peers rig. mimalloc's own `MIMALLOC_ALLOW_THP` and
//! `MIMALLOC_PURGE_DELAY` variables still win when set.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option number. Its enum keeps retired options as placeholders, so this is the same
// in its v2 and v3 headers (mimalloc.h, `mi_option_e`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Purge delay: freed pages go back to the OS after this many milliseconds unused.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Applies the settings above unless the environment chose otherwise; call first thing in `main`,
/// before other threads exist.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores an integer in mimalloc's option table; any value is
        // valid for this option.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // What mimalloc does itself for MIMALLOC_ALLOW_THP=0, which it reads before `main`: the
        // kernel then neither faults in nor collapses huge pages for this process.
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            eprintln!(
                "tickcast: could not disable transparent huge pages: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Returns the calling thread's freed pages to the OS now, instead of when it next allocates (the
/// gateway calls this on a shard after a mass disconnect; see `GatewayConfig::heap_trim`).
pub fn collect() {
    // SAFETY: mi_collect only walks the calling thread's own heap; `false` = no forced reclaim of
    // pages other threads abandoned, which keeps it cheap.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
