//! How cost grows: reads the JSON lines the peers rig (`../shared/peers`, `run.sh` / `run-feed.sh`)
//! prints per run, groups the runs of a sweep by server, and draws five charts, each server a
//! line: CPU per delivered message against fan-out per tick; CPU per message and p99 against
//! offered rate; RSS and CPU per connection-second against connection count (idle and
//! subscribed).
//!
//! Runs are told apart by their rig label (`LABEL` argument of `run.sh`): `fanout-<n>`,
//! `rate-<n>`, `conns-idle-<n>` and `conns-sub-<n>`, as `loadtest/curves.sh` writes them. Repeats
//! of one point are reduced to their median, so one noisy run does not bend a curve.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Deserialize;

/// One run as the rig's client prints it (the fields the curves use).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RigRun {
    /// Server name (`tickcast`, `bun`, ...).
    pub peer: String,
    /// The run's label.
    pub scenario: String,
    /// Connections that were open in the window.
    pub conns: f64,
    /// Topics.
    pub topics: f64,
    /// Topics per connection.
    pub per_conn: f64,
    /// Ticks per second over all topics.
    #[serde(rename = "R")]
    pub rate: f64,
    /// Measured window, seconds.
    pub window_s: f64,
    /// Messages delivered per second in the window.
    pub delivered_msgs_per_s: f64,
    /// Server CPU seconds in the window.
    pub server_cpu_s: f64,
    /// Server CPU per delivered message, µs.
    pub server_cpu_us_per_msg: f64,
    /// Server resident memory per connection, KiB.
    pub server_rss_kib_per_conn: f64,
    /// 99th percentile latency, µs (`null` in a window without ticks).
    pub p99_us: Option<f64>,
    /// Seqs that never arrived.
    #[serde(default)]
    pub gaps: f64,
}

impl RigRun {
    /// Subscribers per topic: each tick is written this many times.
    pub fn fanout(&self) -> f64 {
        self.conns * self.per_conn / self.topics.max(1.0)
    }

    /// Messages per second the feed asks the server to deliver.
    pub fn offered(&self) -> f64 {
        self.rate * self.fanout()
    }

    /// Server CPU per connection and second, µs.
    pub fn cpu_us_per_conn_s(&self) -> f64 {
        1e6 * self.server_cpu_s / (self.conns.max(1.0) * self.window_s.max(1e-9))
    }
}

/// Why the runs could not be read or drawn.
#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    /// A line is not a rig run.
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// The SVG could not be written.
    #[error("drawing {path}: {msg}")]
    Draw {
        /// The output file.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// Parses the rig's JSON lines (blank lines and `#` comments skipped).
pub fn parse_runs(text: &str) -> Result<Vec<RigRun>, CurvesError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| CurvesError::Parse {
                line: i + 1,
                msg: e.to_string(),
            })
        })
        .collect()
}

/// One server's points of one sweep, sorted by x, repeats reduced to their median.
pub type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// The points of the sweep whose labels start with `prefix`, per server: `x` and `y` of each run,
/// the median `y` of the runs that share an `x`.
pub fn series(
    runs: &[RigRun],
    prefix: &str,
    x: fn(&RigRun) -> f64,
    y: fn(&RigRun) -> f64,
) -> Series {
    let mut raw: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.scenario.starts_with(prefix)) {
        let (x, y) = (x(r), y(r));
        // A figure the run could not measure (no latency sample) is no point of the curve.
        if x.is_finite() && y.is_finite() {
            raw.entry(r.peer.clone()).or_default().push((x, y));
        }
    }
    raw.into_iter()
        .map(|(peer, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let mut out: Vec<(f64, f64)> = Vec::new();
            let mut i = 0;
            while i < pts.len() {
                let same = pts[i..].iter().take_while(|p| p.0 == pts[i].0).count();
                out.push((pts[i].0, median(&pts[i..i + same])));
                i += same;
            }
            (peer, out)
        })
        .collect()
}

/// The median `y` of points sorted by `y`.
fn median(sorted: &[(f64, f64)]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2].1
    } else {
        (sorted[n / 2 - 1].1 + sorted[n / 2].1) / 2.0
    }
}

/// One chart of the figure.
struct Chart<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

const W: u32 = 1400;
const H: u32 = 1500;

/// Draws the five charts of `runs` into `path` (SVG).
pub fn write_svg(path: &Path, runs: &[RigRun]) -> Result<(), CurvesError> {
    let charts = charts(runs);
    draw(path, &charts).map_err(|e| CurvesError::Draw {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

fn charts(runs: &[RigRun]) -> Vec<Chart<'static>> {
    let named = |s: Series, suffix: &str| -> Vec<(String, Vec<(f64, f64)>)> {
        s.into_iter()
            .map(|(peer, pts)| (format!("{peer}{suffix}"), pts))
            .collect()
    };
    let cpu = |r: &RigRun| r.server_cpu_us_per_msg;
    let mut rate_lines = named(series(runs, "rate-", RigRun::offered, cpu), " CPU");
    let p99_ms = |r: &RigRun| r.p99_us.map_or(f64::NAN, |us| us / 1000.0);
    rate_lines.extend(named(
        series(runs, "rate-", RigRun::offered, p99_ms),
        " p99 ms",
    ));
    let rss = |r: &RigRun| r.server_rss_kib_per_conn;
    let mut conn_rss = named(series(runs, "conns-idle-", |r| r.conns, rss), " idle");
    conn_rss.extend(named(
        series(runs, "conns-sub-", |r| r.conns, rss),
        " subscribed",
    ));
    let mut conn_cpu = named(
        series(runs, "conns-idle-", |r| r.conns, RigRun::cpu_us_per_conn_s),
        " idle",
    );
    conn_cpu.extend(named(
        series(runs, "conns-sub-", |r| r.conns, RigRun::cpu_us_per_conn_s),
        " subscribed",
    ));
    vec![
        Chart {
            title: "CPU per delivered message vs fan-out per tick (fixed delivered rate)",
            x_desc: "subscribers per topic (log)",
            y_desc: "server CPU µs / message",
            lines: named(series(runs, "fanout-", RigRun::fanout, cpu), ""),
        },
        Chart {
            title: "CPU per delivered message vs offered rate",
            x_desc: "offered messages/s (log)",
            y_desc: "server CPU µs / message",
            lines: named(series(runs, "rate-", RigRun::offered, cpu), ""),
        },
        Chart {
            title: "p99 latency vs offered rate",
            x_desc: "offered messages/s (log)",
            y_desc: "p99 ms (ingest -> client)",
            lines: named(series(runs, "rate-", RigRun::offered, p99_ms), ""),
        },
        Chart {
            title: "RSS per connection vs connections",
            x_desc: "connections (log)",
            y_desc: "KiB / connection",
            lines: conn_rss,
        },
        Chart {
            title: "CPU per connection-second vs connections",
            x_desc: "connections (log)",
            y_desc: "server CPU µs / (connection · s)",
            lines: conn_cpu,
        },
    ]
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn draw(path: &Path, charts: &[Chart<'_>]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "How cost grows: tickcast and its peers, external feed, one alternated batch",
        ("sans-serif", 22),
    )?;
    for (area, chart) in root.split_evenly((3, 2)).iter().zip(charts) {
        let pts = chart.lines.iter().flat_map(|(_, p)| p.iter());
        let (x_lo, x_hi, y_hi) = pts.fold((f64::MAX, 0.0f64, 0.0f64), |(a, b, c), p| {
            (a.min(p.0), b.max(p.0), c.max(p.1))
        });
        if x_hi <= 0.0 {
            area.titled(&format!("{} (no runs)", chart.title), ("sans-serif", 16))?;
            continue;
        }
        let (x_lo, x_hi) = (x_lo.max(1e-9) / 1.5, x_hi * 1.5);
        let mut c = ChartBuilder::on(area)
            .caption(chart.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), 0f64..y_hi * 1.15)?;
        c.configure_mesh()
            .x_desc(chart.x_desc)
            .y_desc(chart.y_desc)
            .x_label_formatter(&|v| crate::report::fmt_rate(*v))
            .draw()?;
        for (i, (name, pts)) in chart.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(peer: &str, label: &str, conns: f64, rate: f64, cpu: f64) -> RigRun {
        RigRun {
            peer: peer.into(),
            scenario: label.into(),
            conns,
            topics: 100.0,
            per_conn: 10.0,
            rate,
            window_s: 5.0,
            delivered_msgs_per_s: rate * conns / 10.0,
            server_cpu_s: 1.0,
            server_cpu_us_per_msg: cpu,
            server_rss_kib_per_conn: 2.0,
            p99_us: Some(900.0),
            gaps: 0.0,
        }
    }

    #[test]
    fn derived_figures() {
        let r = run("tickcast", "fanout-100", 1000.0, 4000.0, 0.4);
        assert_eq!(r.fanout(), 100.0);
        assert_eq!(r.offered(), 400_000.0);
        assert_eq!(r.cpu_us_per_conn_s(), 200.0);
    }

    #[test]
    fn a_sweep_groups_by_server_sorts_by_x_and_takes_the_median_of_repeats() {
        let runs = vec![
            run("bun", "fanout-100", 1000.0, 4000.0, 0.50),
            run("tickcast", "fanout-1000", 10000.0, 400.0, 0.30),
            run("tickcast", "fanout-100", 1000.0, 4000.0, 0.45),
            run("tickcast", "fanout-100", 1000.0, 4000.0, 0.40),
            run("tickcast", "fanout-100", 1000.0, 4000.0, 0.90),
            run("tickcast", "rate-4000", 1000.0, 4000.0, 9.0),
        ];
        let s = series(&runs, "fanout-", RigRun::fanout, |r| {
            r.server_cpu_us_per_msg
        });
        assert_eq!(s["bun"], vec![(100.0, 0.50)]);
        assert_eq!(s["tickcast"], vec![(100.0, 0.45), (1000.0, 0.30)]);
        let two = vec![runs[2].clone(), runs[3].clone()];
        let s = series(&two, "fanout-", RigRun::fanout, |r| r.server_cpu_us_per_msg);
        assert!((s["tickcast"][0].1 - 0.425).abs() < 1e-12);
    }

    #[test]
    fn rig_lines_parse_and_bad_ones_are_named() {
        let line = r#"{"peer":"bun","scenario":"rate-4000","R":4000,"conns":1000,"conns_target":1000,"topics":100,"per_conn":10,"ramp_s":0.07,"window_s":8.0,"msgs":1,"delivered_msgs_per_s":400000,"server_cpu_s":1.6,"server_cpu_us_per_msg":0.5,"server_rss_kib_per_conn":2.0,"p50_us":300,"p99_us":900,"gaps":0}"#;
        let idle = line.replace("\"p99_us\":900", "\"p99_us\":null");
        let runs = parse_runs(&format!("# a comment\n\n{line}\n{idle}\n")).unwrap();
        assert_eq!(runs.len(), 2);
        let p99 = series(&runs, "rate-", RigRun::offered, |r| {
            r.p99_us.map_or(f64::NAN, |v| v)
        });
        assert_eq!(
            p99["bun"],
            vec![(400_000.0, 900.0)],
            "the run without latency is left out"
        );
        assert_eq!(runs[0].offered(), 400_000.0);
        match parse_runs("{\"peer\":1}") {
            Err(CurvesError::Parse { line: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn draws_an_svg_with_every_chart() {
        let dir = std::env::temp_dir().join(format!("curves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        let runs = vec![
            run("tickcast", "fanout-10", 100.0, 40000.0, 0.8),
            run("tickcast", "fanout-100", 1000.0, 4000.0, 0.4),
            run("bun", "fanout-100", 1000.0, 4000.0, 0.5),
            run("tickcast", "rate-1000", 1000.0, 1000.0, 0.6),
            run("tickcast", "conns-idle-1000", 1000.0, 1.0, 5.0),
            run("tickcast", "conns-sub-1000", 1000.0, 100.0, 5.0),
        ];
        write_svg(&path, &runs).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for title in [
            "fan-out per tick",
            "offered rate",
            "RSS per connection",
            "connection-second",
        ] {
            assert!(svg.contains(title), "{title}");
        }
        assert!(svg.contains("bun") && svg.contains("tickcast subscribed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
