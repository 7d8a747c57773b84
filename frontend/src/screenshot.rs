//! PNG screenshots of the guest's display (`--screenshot`,
//! `--screenshot-every`, the window's host key), at the VGA's own
//! resolution: one file pixel per guest pixel.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use ringside_machine::vga::Frame;

/// Write `frame` to `path` as an 8-bit RGBA PNG.
pub fn write_png(path: &Path, frame: &Frame) -> Result<()> {
    let err =
        |e: &dyn std::fmt::Display| anyhow!("{}: cannot write screenshot: {e}", path.display());
    let png = ringside_machine::png::encode(frame.width, frame.height, &frame.rgba)
        .map_err(|e| err(&e))?;
    std::fs::write(path, png).map_err(|e| err(&e))
}

/// Read a PNG back as a frame (8-bit RGB or RGBA).
#[cfg(test)]
pub fn read_png(path: &Path) -> Result<Frame> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: cannot read PNG: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(|e| err(&e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| err(&"image too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| err(&e))?;
    buf.truncate(info.buffer_size());
    let rgba = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgba, png::BitDepth::Eight) => buf,
        (png::ColorType::Rgb, png::BitDepth::Eight) => buf
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 0xFF])
            .collect(),
        other => return Err(err(&format!("unsupported PNG format {other:?}"))),
    };
    Ok(Frame {
        width: info.width,
        height: info.height,
        rgba,
    })
}

/// `shot.png` → `shot-0001.png`, … for `--screenshot-every`.
pub fn numbered(path: &Path, n: u64) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    path.with_file_name(format!("{stem}-{n:04}.{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_machine::{Machine, MachineConfig};

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringside-shot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn machine() -> Machine {
        Machine::new(ringside_roms::DEMO.to_vec(), MachineConfig::default()).unwrap()
    }

    /// Write `text` in attribute `attr` at row `row` of the text screen, as
    /// a guest's stores to B8000 would.
    fn put_text(m: &mut Machine, row: u32, text: &str, attr: u8) {
        for (i, b) in text.bytes().enumerate() {
            let a = 0xB8000 + row * 160 + i as u32 * 2;
            m.pc.vga.mem_write(a, b);
            m.pc.vga.mem_write(a + 1, attr);
        }
    }

    #[test]
    fn text_screen_png_matches_the_render() {
        let mut m = machine();
        assert!(m.pc.vga.set_mode(3));
        put_text(&mut m, 0, "Ringside text screen: crisp 8x16 glyphs", 0x1F);
        put_text(&mut m, 2, "red on black", 0x04);
        put_text(&mut m, 3, "yellow on blue", 0x1E);
        let frame = m.frame();
        assert_eq!((frame.width, frame.height), (720, 400));
        let path = tmp("text.png");
        write_png(&path, &frame).unwrap();
        let back = read_png(&path).unwrap();
        assert_eq!(back, frame);
        // The colours are the VGA's: bright white on blue in the top left
        // cell's background, red text pixels in row 2.
        assert_eq!(back.pixel(0, 0), [0x00, 0x00, 0xAA, 0xFF]);
        let red_pixels = (32..48)
            .flat_map(|y| (0..12 * 9).map(move |x| (x, y)))
            .filter(|&(x, y)| back.pixel(x, y) == [0xAA, 0x00, 0x00, 0xFF])
            .count();
        assert!(red_pixels > 100, "{red_pixels} red pixels");
    }

    #[test]
    fn mode_13h_png_matches_the_render() {
        let mut m = machine();
        assert!(m.pc.vga.set_mode(0x13));
        for y in 0..200u32 {
            for x in 0..320u32 {
                m.pc.vga
                    .mem_write(0xA0000 + y * 320 + x, ((x / 20) + (y / 25) * 16) as u8);
            }
        }
        let frame = m.frame();
        assert_eq!((frame.width, frame.height), (320, 200));
        let path = tmp("13h.png");
        write_png(&path, &frame).unwrap();
        let back = read_png(&path).unwrap();
        assert_eq!(back, frame);
        // Colour 4 is red, colour 1 blue (the CGA colours of the palette).
        assert_eq!(back.pixel(4 * 20 + 3, 0), [0xAA, 0x00, 0x00, 0xFF]);
        assert_eq!(back.pixel(20 + 3, 0), [0x00, 0x00, 0xAA, 0xFF]);
    }

    #[test]
    fn unwritable_path_is_named() {
        let m = machine();
        let e = write_png(Path::new("/nonexistent/dir/x.png"), &m.frame())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/dir/x.png: cannot write screenshot"),
            "{e}"
        );
    }

    #[test]
    fn numbered_names() {
        assert_eq!(
            numbered(Path::new("out/shot.png"), 3),
            PathBuf::from("out/shot-0003.png")
        );
        assert_eq!(
            numbered(Path::new("shot"), 12),
            PathBuf::from("shot-0012.png")
        );
    }
}
