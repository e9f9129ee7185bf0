//! The platform icon files that `icons/generate.py` writes: the `.ico`
//! tauri-build needs to build for Windows, and the `.icns` of the macOS
//! bundle. Each must hold the app icon at the sizes the platforms look for.

use mcp_auth_e2e::repo_root;

#[test]
fn the_windows_ico_holds_the_app_icon_at_16_to_256_px() {
    let file = std::fs::File::open(repo_root().join("icons/icon.ico")).unwrap_or_else(|e| panic!("{e}"));
    let dir = ico::IconDir::read(file).unwrap_or_else(|e| panic!("icon.ico is not an icon: {e}"));
    let mut sizes = Vec::new();
    for entry in dir.entries() {
        let image = entry.decode().unwrap_or_else(|e| panic!("an entry does not decode: {e}"));
        assert_eq!((image.width(), image.height()), (entry.width(), entry.height()));
        sizes.push(image.width());
    }
    assert_eq!(sizes, vec![16, 32, 48, 256]);
}

#[test]
fn the_macos_icns_holds_png_elements_from_16_to_512_px() {
    let bytes = std::fs::read(repo_root().join("icons/icon.icns")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&bytes[..4], b"icns");
    let total = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    assert_eq!(total, bytes.len(), "the header's length is the file's");
    let mut at = 8;
    let mut found = Vec::new();
    while at < bytes.len() {
        let kind = String::from_utf8_lossy(&bytes[at..at + 4]).into_owned();
        let len = u32::from_be_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let image = ico::IconImage::read_png(std::io::Cursor::new(&bytes[at + 8..at + len]))
            .unwrap_or_else(|e| panic!("element {kind} is not a PNG: {e}"));
        assert_eq!(image.width(), image.height());
        found.push((kind, image.width()));
        at += len;
    }
    let want: Vec<(String, u32)> =
        [("icp4", 16), ("icp5", 32), ("icp6", 64), ("ic07", 128), ("ic08", 256), ("ic09", 512)]
            .into_iter()
            .map(|(k, s)| (k.to_owned(), s))
            .collect();
    assert_eq!(found, want);
}
