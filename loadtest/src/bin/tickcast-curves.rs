//! `tickcast-curves RUNS.jsonl OUT.svg`: draws how cost grows from the peers rig's JSON lines
//! (see [`tickcast_loadgen::curves`]; `loadtest/curves.sh` runs the sweeps and calls it).

use std::path::PathBuf;

use anyhow::{bail, Context};
use tickcast_loadgen::curves;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runs, out] = args.as_slice() else {
        bail!("usage: tickcast-curves RUNS.jsonl OUT.svg");
    };
    let text = std::fs::read_to_string(runs).with_context(|| format!("reading {runs}"))?;
    let runs = curves::parse_runs(&text)?;
    if runs.is_empty() {
        bail!("no runs in the input");
    }
    let out = PathBuf::from(out);
    curves::write_svg(&out, &runs)?;
    println!("{} runs -> {}", runs.len(), out.display());
    Ok(())
}
