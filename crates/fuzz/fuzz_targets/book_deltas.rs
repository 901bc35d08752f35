#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickcast_fuzz::book_deltas(data));
