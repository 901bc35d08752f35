//! Replays the committed fuzz corpora (`crates/fuzz/corpus/<target>/`) through the same checks the
//! fuzz targets run (`crates/fuzz/src/lib.rs`, compiled here on stable): the client-message parser,
//! the feed line splitter and tick parser, the book and trade line parser, book deltas against a
//! reference book, the frame codec and the inbound frame tracker. Any seed
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

#[test]
fn market_line_corpus() {
    replay("market_line", checks::market_line);
}

#[test]
fn book_deltas_corpus() {
    replay("book_deltas", checks::book_deltas);
}

/// Beyond the seeds: each seed of the two market targets mutated (bytes flipped, inserted,
/// dropped) with a fixed-seed generator, so the checks see thousands of near-valid lines on stable
/// too. Deterministic, bounded (a few thousand inputs per seed).
#[test]
fn mutated_market_seeds() {
    for (target, check) in [
        ("market_line", checks::market_line as fn(&[u8])),
        ("book_deltas", checks::book_deltas),
    ] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus")
            .join(target);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for entry in std::fs::read_dir(&dir).expect("corpus dir") {
            let seed = std::fs::read(entry.expect("entry").path()).expect("seed");
            for _ in 0..2_000 {
                let mut data = seed.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % (data.len() + 1);
                    let byte = b"{}[]\",:.-0159ebstk "[(next() % 19) as usize];
                    match next() % 3 {
                        0 if at < data.len() => data[at] = byte,
                        1 => data.insert(at, byte),
                        _ if at < data.len() => {
                            data.remove(at);
                        }
                        _ => {}
                    }
                }
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    panic!("{target}: {:?}", String::from_utf8_lossy(&data));
                }
            }
        }
    }
}
