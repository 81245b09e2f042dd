#![no_main]
// Errors are the expected outcome; a panic, a hang or a huge allocation is a bug.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ballast::fuzzing::peer_message(data);
});
