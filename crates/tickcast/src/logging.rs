//! Logging that can never take a thread down.
//!
//! tracing-subscriber's own writer reports a failed write with `eprintln!`, which panics when
//! stderr is a closed pipe (`tickcast | head -1`), killing whichever thread logged: the feed, the
//! signal handler. Here a line that cannot be written is dropped and counted in
//! `tickcast_log_lines_dropped_total` instead. Colours go only to a terminal, never to a pipe or a
//! file, and never when `NO_COLOR` is set (<https://no-color.org>).

use std::io::{self, IsTerminal, Write};

use prometheus::IntCounter;
use tracing_subscriber::fmt::MakeWriter;

/// Writes each log line to stderr, dropping (and counting) the ones stderr refuses.
#[derive(Clone)]
pub struct LogWriter {
    dropped: IntCounter,
}

impl LogWriter {
    /// A writer counting its dropped lines in `dropped`.
    pub fn new(dropped: IntCounter) -> Self {
        Self { dropped }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole event per call: count a failed write as one line.
        if io::stderr().lock().write_all(buf).is_err() {
            self.dropped.inc();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether log lines get ANSI colours: only on a terminal, and not with `NO_COLOR` set.
pub fn use_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && io::stderr().is_terminal()
}

/// The counter of lines the writer had to drop.
pub fn dropped_counter() -> IntCounter {
    // A static, valid name and help: construction cannot fail.
    IntCounter::new(
        "tickcast_log_lines_dropped_total",
        "Log lines that could not be written (stderr closed or full) and were dropped.",
    )
    .expect("valid metric")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_always_succeeds_for_the_formatter() {
        let mut w = LogWriter::new(dropped_counter());
        assert_eq!(w.write(b"line\n").unwrap(), 5);
        assert!(w.flush().is_ok());
    }
}
