//! World files from arbitrary bytes: loading answers with a world or an
//! error, never a panic, and a world that loads saves as a file that loads
//! the same world.

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
    let saved = world.to_file();
    let text = saved.to_json();
    let reread = WorldFile::parse(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
    let again = World::from_file(&reread).unwrap_or_else(|err| panic!("{text}: {err}"));
    let mut resaved = again.to_file();
    // Outside a paused runtime a world's time follows the real clock, so
    // the milliseconds between the two loads show; time never goes back.
    assert!(saved.now_ms <= resaved.now_ms);
    resaved.now_ms = saved.now_ms;
    assert_eq!(resaved.to_json(), text);
});
