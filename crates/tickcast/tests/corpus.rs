//! Replays the committed fuzz corpora (`crates/fuzz/corpus/<target>/`) through the same checks the
//! fuzz targets run (`crates/fuzz/src/lib.rs`, compiled here on stable): the client-message parser,
//! the feed line splitter and tick parser, the frame codec and the inbound frame tracker. Any seed
//! that panics fails the test with its file name.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{target}: only {} seeds", files.len());
    for path in files {
        let data = std::fs::read(&path).expect("read seed");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: seed {} failed its check", path.display());
        }
    }
}

#[test]
fn client_request_corpus() {
    replay("client_request", checks::client_request);
}

#[test]
fn tick_line_corpus() {
    replay("tick_line", checks::tick_line);
}

#[test]
fn frame_codec_corpus() {
    replay("frame_codec", checks::frame_codec);
}

#[test]
fn inbound_frames_corpus() {
    replay("inbound_frames", checks::inbound_frames);
}
