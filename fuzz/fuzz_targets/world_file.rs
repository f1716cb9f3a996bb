//! World files from arbitrary bytes: loading answers with a world or an
//! error, never a panic, and a world that loads saves as a file that loads.

#![no_main]

use amishare_sim::{World, WorldFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = WorldFile::parse(text) else {
        return;
    };
    let Ok(world) = World::from_file(&file) else {
        return;
    };
    let saved = world.to_file().to_json();
    let reread = WorldFile::parse(&saved).unwrap_or_else(|err| panic!("{saved}: {err}"));
    let again = World::from_file(&reread).unwrap_or_else(|err| panic!("{saved}: {err}"));
    assert_eq!(again.to_file().to_json(), saved);
});
