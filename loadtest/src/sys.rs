//! The few libc calls the load generator needs: the open-file limit and the clock tick rate.
//!
//! This is the only module with `unsafe`; every call is a plain syscall wrapper on owned
//! stack values.
#![allow(unsafe_code)]

/// Why the open-file limit could not be raised far enough.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `getrlimit` itself failed.
    #[error("cannot read the open-file limit: {0}")]
    Read(std::io::Error),
    /// The hard limit is below what the run needs and this process may not raise it.
    #[error(
        "this run needs about {needed} open files but the hard limit is {hard} and could not be raised \
         ({cause}); run as root, or raise it first: `ulimit -Hn {needed}; ulimit -n {needed}` \
         (or `nofile` in /etc/security/limits.conf)"
    )]
    HardLimit {
        /// Descriptors the run needs.
        needed: u64,
        /// The hard limit in force.
        hard: u64,
        /// What `setrlimit` said.
        cause: std::io::Error,
    },
}

/// Raises RLIMIT_NOFILE so `needed` descriptors fit; returns the soft limit now in force.
///
/// The soft limit is raised up to the hard limit; past that the hard limit is raised too,
/// which only works with CAP_SYS_RESOURCE (root).
pub fn raise_fd_limit(needed: u64) -> Result<u64, FdLimitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(FdLimitError::Read(std::io::Error::last_os_error()));
    }
    if lim.rlim_cur >= needed {
        return Ok(lim.rlim_cur);
    }
    let new = libc::rlimit {
        rlim_cur: needed,
        rlim_max: lim.rlim_max.max(needed),
    };
    // SAFETY: setrlimit reads the rlimit struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
        let cause = std::io::Error::last_os_error();
        return Err(FdLimitError::HardLimit {
            needed,
            hard: lim.rlim_max,
            cause,
        });
    }
    Ok(needed)
}

/// Clock ticks per second, the unit of utime/stime in /proc/PID/stat.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory arguments.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}
