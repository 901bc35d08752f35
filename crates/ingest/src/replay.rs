//! The replay feed: plays a JSONL or CSV file of ticks, keeping their original pacing (from each
//! tick's `ts`, in unix µs) scaled by a speed factor, optionally looping.
//!
//! `speed = 1` plays in real time, `10` ten times faster, `0` as fast as possible. Ticks without a
//! `ts` are played at once. Output ticks get tickcast's own seq and the ingest time as `ts`, like any
//! other feed; the file's `ts` only drives pacing. Bad rows are counted and skipped like bad lines of
//! any other feed.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::csv::CsvHeader;
use crate::feed::{Feed, FeedContext, FeedError, FeedFuture};
use crate::line::{Framed, LineFramer};
use crate::parse::TickLine;
use crate::reject::Reject;
use crate::sink::TickSink;
use crate::spec::{millis, FeedConfigError, DEFAULT_MAX_LINE_BYTES, MIN_LINE_BYTES};

/// Bytes read from the file at a time.
const READ_SIZE: usize = 64 * 1024;
/// Waits shorter than this are not worth a timer: the tick joins the current batch.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// File format of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayFormat {
    /// One JSON tick per line (the TCP feed's format, with `ts`).
    Jsonl,
    /// A header row naming `ts,topic,bid,ask,last,size[,seq]`, then one tick per row.
    Csv,
}

/// Settings of a replay feed: a `kind = "replay"` entry of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Feed name for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its format; `None`: CSV for a `.csv` file, else JSONL (see [`ReplayConfig::format`]).
    #[serde(default)]
    pub format: Option<ReplayFormat>,
    /// Pacing factor; 0 = as fast as possible.
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// Start over at the end of the file.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Longest line in bytes; longer ones are skipped and counted as `too_long`. At least
    /// [`MIN_LINE_BYTES`].
    #[serde(default = "crate::spec::default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Readiness waits for this feed (connected while playing).
    #[serde(default = "crate::spec::required_by_default")]
    pub required: bool,
    /// Not ready after this long without a tick; `None` (`max_idle_ms = 0`) = off.
    #[serde(default, rename = "max_idle_ms", deserialize_with = "millis::zero_off")]
    pub max_idle: Option<Duration>,
}

fn default_name() -> String {
    "replay".into()
}
fn default_speed() -> f64 {
    1.0
}

impl ReplayConfig {
    /// A feed named `replay` playing `path` once in real time, every other setting at its default.
    pub fn new(path: PathBuf) -> Self {
        Self {
            name: default_name(),
            path,
            format: None,
            speed: default_speed(),
            looping: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            required: true,
            max_idle: None,
        }
    }

    /// The file's format: as configured, else CSV for a `.csv` file (any case) and JSONL otherwise.
    pub fn format(&self) -> ReplayFormat {
        self.format.unwrap_or_else(|| {
            let csv = self
                .path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            if csv {
                ReplayFormat::Csv
            } else {
                ReplayFormat::Jsonl
            }
        })
    }

    /// Checks the settings (the file is only opened by [`ReplayFeed::new`]).
    pub fn validate(&self) -> Result<(), FeedConfigError> {
        let feed = &self.name;
        FeedConfigError::named(feed)?;
        FeedConfigError::non_negative(feed, "speed", self.speed, " (0 = as fast as possible)")?;
        FeedConfigError::at_least(feed, "max_line_bytes", self.max_line_bytes, MIN_LINE_BYTES)
    }
}

/// A replay feed whose file was found readable at build time.
pub struct ReplayFeed {
    config: ReplayConfig,
}

impl ReplayFeed {
    /// Validates `config`, checks the file opens and, for CSV, that its header names the columns.
    pub fn new(config: ReplayConfig) -> Result<Self, FeedError> {
        config.validate()?;
        let bad = |reason: String| FeedError::Config {
            feed: config.name.clone(),
            reason,
        };
        let file = std::fs::File::open(&config.path).map_err(|error| FeedError::Io {
            feed: config.name.clone(),
            context: format!("cannot open replay file {}", config.path.display()),
            error,
        })?;
        if config.format() == ReplayFormat::Csv {
            // Only the header is checked here; the file is streamed when playing.
            let mut reader = std::io::BufReader::new(file).take(config.max_line_bytes as u64 + 2);
            let mut first = Vec::new();
            while first.iter().all(u8::is_ascii_whitespace) {
                first.clear();
                let n = reader
                    .read_until(b'\n', &mut first)
                    .map_err(|error| FeedError::Io {
                        feed: config.name.clone(),
                        context: format!("cannot read replay file {}", config.path.display()),
                        error,
                    })?;
                if n == 0 {
                    break;
                }
            }
            let first = first.trim_ascii_end();
            CsvHeader::parse(first)
                .map_err(|e| bad(format!("{}: bad CSV header: {e}", config.path.display())))?;
        }
        Ok(Self { config })
    }
}

impl Feed for ReplayFeed {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn run(self: Box<Self>, ctx: FeedContext) -> FeedFuture {
        Box::pin(run(self.config, ctx))
    }
}

async fn run(config: ReplayConfig, ctx: FeedContext) -> Result<(), FeedError> {
    let stats = ctx.publisher.stats().clone();
    let mut sink = TickSink::new(ctx.publisher, config.max_line_bytes);
    let origin = config.path.display().to_string();
    stats.set_connected(true);
    tracing::info!(feed = %config.name, file = %origin, speed = config.speed, looping = config.looping, "replay started");
    let mut pass = 0u64;
    loop {
        pass += 1;
        let before = stats.ticks_in();
        let file = tokio::fs::File::open(&config.path)
            .await
            .map_err(|error| FeedError::Io {
                feed: config.name.clone(),
                context: format!("cannot open replay file {origin}"),
                error,
            })?;
        let mut player = Player {
            config: &config,
            sink: &mut sink,
            origin: &origin,
            shutdown: &ctx.shutdown,
            header: None,
            pacer: Pacer::new(config.speed),
        };
        let finished = player.play(file).await.map_err(|error| FeedError::Io {
            feed: config.name.clone(),
            context: format!("cannot read replay file {origin}"),
            error,
        })?;
        let played = stats.ticks_in() - before;
        tracing::info!(feed = %config.name, pass, ticks = played, "replay pass done");
        if !finished || !config.looping {
            break;
        }
        if played == 0 {
            // Looping over a file without one valid tick would spin forever.
            tracing::warn!(feed = %config.name, file = %origin, "replay file has no valid tick; not looping");
            break;
        }
    }
    stats.set_connected(false);
    Ok(())
}

/// Maps file time to wall time.
struct Pacer {
    speed: f64,
    /// Wall time and file `ts` of the first paced tick of the pass.
    base: Option<(Instant, u64)>,
}

impl Pacer {
    fn new(speed: f64) -> Self {
        Self { speed, base: None }
    }

    /// When a tick stamped `ts` is due, or `None` for at once.
    fn due(&mut self, ts: Option<u64>) -> Option<Instant> {
        let ts = ts.filter(|_| self.speed > 0.0)?;
        let (wall, first) = *self.base.get_or_insert((Instant::now(), ts));
        let ahead = ts.checked_sub(first)?;
        Some(wall + Duration::from_secs_f64(ahead as f64 / 1e6 / self.speed))
    }
}

/// One pass over the file.
struct Player<'a> {
    config: &'a ReplayConfig,
    sink: &'a mut TickSink,
    origin: &'a str,
    shutdown: &'a CancellationToken,
    header: Option<CsvHeader>,
    pacer: Pacer,
}

impl Player<'_> {
    /// Plays the file to its end (`Ok(true)`) or until shutdown (`Ok(false)`).
    async fn play(&mut self, mut file: tokio::fs::File) -> std::io::Result<bool> {
        let mut framer = LineFramer::new(self.config.max_line_bytes);
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(false);
            }
            let n = file.read_buf(framer.read_buf(READ_SIZE)).await?;
            let mut eof_line = None;
            if n == 0 {
                eof_line = framer.finish();
            }
            let done = n == 0;
            let framed: Vec<Framed> = std::iter::from_fn(|| framer.next_framed())
                .chain(eof_line)
                .collect();
            for f in framed {
                match f {
                    Framed::Lines {
                        first_line,
                        mut data,
                    } => {
                        if !self.play_lines(&mut data, first_line).await {
                            return Ok(false);
                        }
                    }
                    Framed::TooLong { line } => {
                        let reject = Reject::TooLong {
                            max: self.config.max_line_bytes,
                        };
                        self.sink.stats().record_reject(&self.origin, line, &reject);
                    }
                }
            }
            if done {
                return Ok(true);
            }
            // At speed 0 nothing else waits: let the runtime's other tasks run between reads.
            tokio::task::yield_now().await;
        }
    }

    /// Plays whole lines, sleeping until each is due; false on shutdown.
    async fn play_lines(&mut self, data: &mut [u8], first_line: u64) -> bool {
        let bus = self.sink.bus().clone();
        let mut batch = bus.batch();
        let mut ts = tickcast_core::TsMicros::now();
        let mut published = 0u64;
        let max_line = self.config.max_line_bytes;
        let mut rest = data;
        let mut n = first_line;
        while !rest.is_empty() {
            let end = rest.iter().position(|b| *b == b'\n');
            let (line, tail) = match end {
                Some(i) => {
                    let (l, t) = rest.split_at_mut(i + 1);
                    (&mut l[..i], t)
                }
                None => (rest, &mut [][..]),
            };
            rest = tail;
            let line_no = n;
            n += 1;
            let line = match line {
                [head @ .., b'\r'] => head,
                l => l,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if line.len() > max_line {
                let reject = Reject::TooLong { max: max_line };
                self.sink
                    .stats()
                    .record_reject(&self.origin, line_no, &reject);
                continue;
            }
            let tick = match self.parse(line) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    self.sink.stats().record_reject(&self.origin, line_no, &e);
                    continue;
                }
            };
            if let Some(due) = self.pacer.due(tick.ts) {
                if due > Instant::now() + MIN_SLEEP {
                    drop(batch);
                    if published > 0 {
                        self.sink.stats().record_ticks(published, ts);
                        published = 0;
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep_until(due) => {}
                    }
                    batch = bus.batch();
                    ts = tickcast_core::TsMicros::now();
                }
            }
            match self.sink.publish_line(&mut batch, &tick, ts) {
                Ok(p) => published += p as u64,
                Err(e) => self.sink.stats().record_reject(&self.origin, line_no, &e),
            }
        }
        drop(batch);
        if published > 0 {
            self.sink.stats().record_ticks(published, ts);
        }
        true
    }

    /// Parses one line; `Ok(None)` for the CSV header row.
    fn parse<'l>(&mut self, line: &'l mut [u8]) -> Result<Option<TickLine<'l>>, Reject> {
        match self.config.format() {
            ReplayFormat::Jsonl => self.sink.parse_json(line).map(Some),
            ReplayFormat::Csv => match &self.header {
                None => {
                    self.header = Some(CsvHeader::parse(line)?);
                    Ok(None)
                }
                Some(h) => h.row(line).map(Some),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension_unless_set_and_sizes_are_checked() {
        let csv = ReplayConfig::new("ticks.CSV".into());
        assert_eq!(csv.format(), ReplayFormat::Csv, "format from the extension");
        let set = ReplayConfig {
            format: Some(ReplayFormat::Jsonl),
            ..csv
        };
        assert_eq!(set.format(), ReplayFormat::Jsonl);
        assert_eq!(
            ReplayConfig::new("day.jsonl".into()).format(),
            ReplayFormat::Jsonl
        );
        let short = ReplayConfig {
            max_line_bytes: 10,
            ..ReplayConfig::new("day.jsonl".into())
        };
        let e = ReplayFeed::new(short).err().unwrap().to_string();
        assert!(e.contains("max_line_bytes is 10, must be >= 64"), "{e}");
        let fast = ReplayConfig {
            speed: -1.0,
            ..ReplayConfig::new("day.jsonl".into())
        };
        assert!(fast.validate().unwrap_err().to_string().contains("speed"));
    }

    #[test]
    fn pacer_scales_file_time() {
        let mut p = Pacer::new(2.0);
        let t0 = p.due(Some(1_000_000)).unwrap();
        let t1 = p.due(Some(3_000_000)).unwrap();
        assert_eq!(t1 - t0, Duration::from_secs(1));
        // Earlier than the first tick, or no ts: at once.
        assert_eq!(p.due(Some(10)), None);
        assert_eq!(p.due(None), None);
        assert_eq!(Pacer::new(0.0).due(Some(5)), None);
    }
}
