//! The image menu takes raw keystrokes from any terminal: any bytes at any size, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca::ssh::menu::Menu;

fuzz_target!(|data: (u8, u16, u16, &[u8])| {
    let (n, cols, rows, keys) = data;
    let images = (0..n % 12).map(|i| format!("image-{i}")).collect();
    let mut menu = Menu::new(images, cols, rows);
    let _ = menu.render();
    for chunk in keys.chunks(7) {
        let _ = menu.input(chunk);
        let _ = menu.render();
    }
    menu.resize(rows, cols);
    let _ = menu.clear();
});
