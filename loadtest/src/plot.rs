//! `--plot FILE.svg`: latency percentiles over time, delivery rate over time, and the window's
//! latency histogram, drawn with plotters' SVG backend (no browser, no fonts needed).

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Report, TimelinePoint};

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {msg}")]
pub struct PlotError {
    path: String,
    msg: String,
}

const W: u32 = 1200;
const H: u32 = 1000;

/// Writes the SVG; `buckets` is the fast class's window latency distribution
/// (`[upper bound µs, count]`, as in the report).
pub fn write_svg(path: &Path, r: &Report) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    draw(path, r).map_err(|e| err(&e))
}

fn draw(path: &Path, r: &Report) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "tickcast-loadgen{}: {} conns x {} topics, window {:.1}s",
        r.scenario
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default(),
        r.params.conns,
        r.params.per_conn,
        r.window_s
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let areas = root.split_evenly((3, 1));
    let tl = &r.timeline;
    let t_max = tl.last().map_or(1.0, |p| p.t_s).max(1.0);
    let window = window_span(tl);

    // 1. Latency percentiles over time (log scale).
    {
        type Pick = fn(&TimelinePoint) -> Option<f64>;
        let series: [(&str, Pick, RGBColor); 5] = [
            ("p50", |p| p.p50_us, RGBColor(31, 119, 180)),
            ("p90", |p| p.p90_us, RGBColor(44, 160, 44)),
            ("p99", |p| p.p99_us, RGBColor(255, 127, 14)),
            ("p99.9", |p| p.p999_us, RGBColor(214, 39, 40)),
            ("max", |p| p.max_us, RGBColor(120, 120, 120)),
        ];
        let all = tl
            .iter()
            .flat_map(|p| series.iter().filter_map(|s| (s.1)(p)));
        let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if hi <= 0.0 {
            (1.0, 1000.0)
        } else {
            ((lo.max(1.0)) / 2.0, hi * 2.0)
        };
        let mut c = ChartBuilder::on(&areas[0])
            .caption(
                "fast-client latency per second (tick ts -> receipt)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..t_max, (lo.max(0.5)..hi).log_scale())?;
        c.configure_mesh()
            .x_desc("seconds since start")
            .y_desc("latency (µs)")
            .draw()?;
        shade_window(&mut c, window, lo.max(0.5), hi)?;
        for (name, pick, color) in series {
            let pts: Vec<(f64, f64)> = tl
                .iter()
                .filter_map(|p| pick(p).map(|v| (p.t_s, v.max(lo))))
                .collect();
            c.draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    // 2. Delivery rate and open connections over time.
    {
        let max_rate = tl
            .iter()
            .map(|p| p.msgs_per_s.max(p.published_per_s))
            .fold(1.0f64, f64::max)
            * 1.15;
        let max_conns = tl.iter().map(|p| p.conns_open).max().unwrap_or(1).max(1) as f64 * 1.15;
        let mut c = ChartBuilder::on(&areas[1])
            .caption(
                "delivered ticks/s (and published/s), open connections",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0f64..t_max, 0f64..max_rate)?
            .set_secondary_coord(0f64..t_max, 0f64..max_conns);
        c.configure_mesh()
            .x_desc("seconds since start")
            .y_desc("messages/s")
            .y_label_formatter(&|v| crate::report::fmt_rate(*v))
            .draw()?;
        c.configure_secondary_axes().y_desc("connections").draw()?;
        shade_window(&mut c, window, 0.0, max_rate)?;
        let blue = RGBColor(31, 119, 180);
        let green = RGBColor(44, 160, 44);
        c.draw_series(LineSeries::new(
            tl.iter().map(|p| (p.t_s, p.msgs_per_s)),
            blue.stroke_width(2),
        ))?
        .label("delivered/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
        if tl.iter().any(|p| p.published_per_s > 0.0) {
            c.draw_series(LineSeries::new(
                tl.iter().map(|p| (p.t_s, p.published_per_s)),
                green.stroke_width(2),
            ))?
            .label("published/s")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2))
            });
        }
        c.draw_secondary_series(LineSeries::new(
            tl.iter().map(|p| (p.t_s, p.conns_open as f64)),
            BLACK.stroke_width(1),
        ))?
        .label("open connections (right axis)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    // 3. Window latency histogram (log-spaced buckets on a log axis).
    {
        let buckets: &[[f64; 2]] = r
            .subscribe
            .as_ref()
            .map_or(&[], |s| s.fast.latency_buckets.as_slice());
        let total: f64 = buckets.iter().map(|b| b[1]).sum::<f64>().max(1.0);
        let lo = buckets.first().map_or(1.0, |b| b[0] / 1.2).max(0.5);
        let hi = buckets.last().map_or(1000.0, |b| b[0] * 1.2).max(lo * 2.0);
        let top = buckets
            .iter()
            .map(|b| 100.0 * b[1] / total)
            .fold(1.0f64, f64::max)
            * 1.1;
        let caption = match r.subscribe.as_ref().and_then(|s| s.fast.latency_us) {
            Some(l) => format!(
                "window latency histogram (fast clients): p50 {} p99 {} p99.9 {} max {}, {} samples",
                crate::report::fmt_us(l.p50),
                crate::report::fmt_us(l.p99),
                crate::report::fmt_us(l.p999),
                crate::report::fmt_us(l.max),
                l.samples
            ),
            None => "window latency histogram: no samples".to_string(),
        };
        let mut c = ChartBuilder::on(&areas[2])
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)?;
        c.configure_mesh()
            .x_desc("latency (µs, log)")
            .y_desc("% of samples")
            .draw()?;
        let step = 2f64.powf(0.25);
        let fill = RGBColor(31, 119, 180).mix(0.7).filled();
        c.draw_series(buckets.iter().map(|b| {
            let pct = 100.0 * b[1] / total;
            Rectangle::new([((b[0] / step).max(lo), 0.0), (b[0], pct)], fill)
        }))?;
    }
    root.present()?;
    Ok(())
}

/// Start and end time of the measured window, from the timeline's phase labels.
fn window_span(tl: &[TimelinePoint]) -> Option<(f64, f64)> {
    let first = tl.iter().position(|p| p.phase == "window")?;
    let last = tl.iter().rposition(|p| p.phase == "window")?;
    let start = if first > 0 { tl[first - 1].t_s } else { 0.0 };
    let end = tl.get(last + 1).map_or(tl[last].t_s, |p| p.t_s);
    Some((start, end))
}

fn shade_window<DB: DrawingBackend, X, Y>(
    c: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    window: Option<(f64, f64)>,
    lo: f64,
    hi: f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
    DB::ErrorType: 'static,
{
    if let Some((a, b)) = window {
        c.draw_series(std::iter::once(Rectangle::new(
            [(a, lo), (b, hi)],
            RGBColor(255, 235, 160).mix(0.35).filled(),
        )))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
