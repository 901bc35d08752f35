//! The live progress line: once a second, connections, msgs/s, p99, gaps and errors.
//!
//! On a terminal it is an indicatif spinner line redrawn in place on stderr; otherwise (CI,
//! pipes) a plain line is printed every [`PLAIN_EVERY`] so logs stay short.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{fmt_rate, fmt_us, TimelinePoint};

/// Interval of plain progress lines when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Progress output for one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_plain: Option<Instant>,
}

impl Progress {
    /// `enabled = false` prints nothing at all.
    pub fn new(enabled: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (enabled && tty).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        Self {
            bar,
            plain: enabled && !tty,
            last_plain: None,
        }
    }

    /// Shows one timeline point.
    pub fn update(
        &mut self,
        p: &TimelinePoint,
        conns_target: u64,
        failed: u64,
        gaps: u64,
        disconnects: u64,
    ) {
        let line = format!(
            "{:>6} {:>5.0}s | conns {}/{} | {} msg/s | p99 {} | gaps {} | errors {}{}",
            p.phase,
            p.t_s,
            p.conns_open,
            conns_target,
            fmt_rate(p.msgs_per_s),
            p.p99_us.map_or("-".to_string(), fmt_us),
            gaps,
            failed + disconnects,
            if p.published_per_s > 0.0 {
                format!(" | pub {}/s", fmt_rate(p.published_per_s))
            } else {
                String::new()
            }
        );
        if let Some(b) = &self.bar {
            b.set_message(line);
            b.tick();
        } else if self.plain && self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            self.last_plain = Some(Instant::now());
            eprintln!("{line}");
        }
    }

    /// Removes the line (the final table follows).
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
