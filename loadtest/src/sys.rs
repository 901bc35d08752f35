//! The few system calls the load generator needs: the open-file limit and the clock tick rate,
//! through rustix's safe wrappers.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Why the open-file limit could not be raised far enough.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
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
    // `None` is RLIM_INFINITY; getrlimit cannot fail for a valid resource.
    let lim = getrlimit(Resource::Nofile);
    let (soft, hard) = (
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    );
    if soft >= needed {
        return Ok(soft);
    }
    let new = Rlimit {
        current: Some(needed),
        maximum: Some(hard.max(needed)),
    };
    if let Err(e) = setrlimit(Resource::Nofile, new) {
        return Err(FdLimitError::HardLimit {
            needed,
            hard,
            cause: e.into(),
        });
    }
    Ok(needed)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of utime/stime in /proc/PID/stat.
pub fn clock_ticks_per_sec() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        v => v as f64,
    }
}
