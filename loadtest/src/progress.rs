//! The live progress line: once a second, connections, msgs/s, p99, gap markers and
//! unannounced gaps (fast and slow classes apart) and errors.
//!
//! On a terminal it is an indicatif spinner line redrawn in place on stderr; otherwise (CI,
//! pipes) a plain line is printed every [`PLAIN_EVERY`] so logs stay short.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{fmt_rate, fmt_us, TimelinePoint};

/// Interval of plain progress lines when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Gap figures of the run so far (all phases), per class (`[fast, slow]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GapFigures {
    /// Gap markers received.
    pub markers: [u64; 2],
    /// Missing seqs no marker announced.
    pub unannounced: [u64; 2],
    /// The run has slow connections (otherwise only the fast figures are shown).
    pub slow: bool,
}

impl GapFigures {
    /// `markers 0 | unannounced 0`, or `markers f0 s12 | unannounced f0 s0` with slow readers.
    fn line(&self) -> String {
        let pair = |v: [u64; 2]| {
            if self.slow {
                format!("f{} s{}", v[0], v[1])
            } else {
                v[0].to_string()
            }
        };
        format!(
            "markers {} | unannounced {}",
            pair(self.markers),
            pair(self.unannounced)
        )
    }
}

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
        gaps: &GapFigures,
        disconnects: u64,
    ) {
        let line = format!(
            "{:>6} {:>5.0}s | conns {}/{} | {} msg/s | p99 {} | {} | errors {}{}",
            p.phase,
            p.t_s,
            p.conns_open,
            conns_target,
            fmt_rate(p.msgs_per_s),
            p.p99_us.map_or("-".to_string(), fmt_us),
            gaps.line(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_figures_show_classes_apart_only_with_slow_readers() {
        let mut g = GapFigures {
            markers: [0, 12],
            unannounced: [0, 3],
            slow: true,
        };
        assert_eq!(g.line(), "markers f0 s12 | unannounced f0 s3");
        g.slow = false;
        assert_eq!(g.line(), "markers 0 | unannounced 0");
    }
}
