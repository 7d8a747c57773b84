//! The one PNG writer (the `png` crate): the debugger's `screenshot` and
//! the frontend's `--screenshot` files are both 8-bit RGBA images at the
//! VGA's own resolution.

/// Encode `rgba` (`width * height * 4` bytes; a short buffer is padded
/// with transparent black) as a PNG file.
pub fn encode(width: u32, height: u32, rgba: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    let size = width as usize * height as usize * 4;
    if rgba.len() >= size {
        w.write_image_data(&rgba[..size])?;
    } else {
        let mut padded = rgba.to_vec();
        padded.resize(size, 0);
        w.write_image_data(&padded)?;
    }
    w.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_png_decodes_back_to_its_pixels() {
        let rgba = [255, 0, 0, 255, 0, 255, 0, 255];
        let p = super::encode(2, 1, &rgba).unwrap();
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        let mut r = png::Decoder::new(std::io::Cursor::new(p))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(&buf[..info.buffer_size()], &rgba);
    }
}
