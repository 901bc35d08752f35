#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickcast_fuzz::tick_line(data));
