//! The server's mouse pointer as the browser's cursor: the pointer image (RGBA, straight alpha)
//! is drawn into an off-screen buffer layer as a PNG with alpha, then `cursor` makes that layer
//! region the cursor. A hidden pointer is a 1x1 transparent cursor; the default pointer is a small
//! arrow drawn here (what guacd does too). The server's pointer moves are not forwarded: the
//! browser's own mouse position is the truth.

use ironrdp_graphics::pointer::DecodedPointer;

use crate::display::{EncodeError, GuacWriter};

/// The buffer layer that holds the cursor image.
pub const LAYER: i32 = -1;
/// Composite operation "src": the image replaces the layer's pixels, alpha included.
const MASK_SRC: u32 = 12;
/// Pointers larger than this (RDP allows 384x384) are refused.
const MAX_SIDE: u32 = 512;

/// A cursor ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub width: u32,
    pub height: u32,
    pub hotspot_x: u32,
    pub hotspot_y: u32,
    pub png: Vec<u8>,
}

/// The default arrow: 'X' black, 'O' white, anything else transparent; hotspot at the tip.
const ARROW: [&str; 17] = [
    "X          ",
    "XX         ",
    "XOX        ",
    "XOOX       ",
    "XOOOX      ",
    "XOOOOX     ",
    "XOOOOOX    ",
    "XOOOOOOX   ",
    "XOOOOOOOX  ",
    "XOOOOOOOOX ",
    "XOOOOOXXXXX",
    "XOOXOOX    ",
    "XOX XOOX   ",
    "XX  XOOX   ",
    "X    XOOX  ",
    "     XOOX  ",
    "      XX   ",
];

impl Cursor {
    /// From straight-alpha RGBA pixels, row after row.
    pub fn from_rgba(
        width: u32,
        height: u32,
        hotspot_x: u32,
        hotspot_y: u32,
        rgba: &[u8],
    ) -> Result<Self, EncodeError> {
        if width == 0 || height == 0 {
            return Self::hidden();
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(EncodeError::TooLarge);
        }
        let len = width as usize * height as usize * 4;
        let pixels = rgba.get(..len).ok_or(EncodeError::TooLarge)?;
        Ok(Self {
            width,
            height,
            hotspot_x: hotspot_x.min(width - 1),
            hotspot_y: hotspot_y.min(height - 1),
            png: encode_png_rgba(pixels, width, height)?,
        })
    }

    /// The server's pointer (decoded for accelerated rendering: straight alpha).
    pub fn from_pointer(p: &DecodedPointer) -> Result<Self, EncodeError> {
        Self::from_rgba(
            u32::from(p.width),
            u32::from(p.height),
            u32::from(p.hotspot_x),
            u32::from(p.hotspot_y),
            &p.bitmap_data,
        )
    }

    /// No visible cursor.
    pub fn hidden() -> Result<Self, EncodeError> {
        Ok(Self {
            width: 1,
            height: 1,
            hotspot_x: 0,
            hotspot_y: 0,
            png: encode_png_rgba(&[0, 0, 0, 0], 1, 1)?,
        })
    }

    /// The default arrow.
    pub fn arrow() -> Result<Self, EncodeError> {
        let width = ARROW.iter().map(|row| row.len()).max().unwrap_or(1);
        let mut rgba = Vec::with_capacity(width * ARROW.len() * 4);
        for row in ARROW {
            for x in 0..width {
                rgba.extend_from_slice(match row.as_bytes().get(x) {
                    Some(b'X') => &[0, 0, 0, 255],
                    Some(b'O') => &[255, 255, 255, 255],
                    _ => &[0, 0, 0, 0],
                });
            }
        }
        let (w, h) = (
            u32::try_from(width).unwrap_or(1),
            u32::try_from(ARROW.len()).unwrap_or(1),
        );
        Self::from_rgba(w, h, 0, 0, &rgba)
    }

    /// `size` of the buffer layer, the image into it, then `cursor`.
    pub fn write(&self, w: &mut GuacWriter) {
        w.layer_size(LAYER, self.width, self.height);
        w.stream_image(LAYER, MASK_SRC, "image/png", 0, 0, &self.png);
        w.cursor(
            self.hotspot_x,
            self.hotspot_y,
            LAYER,
            self.width,
            self.height,
        );
    }
}

fn encode_png_rgba(rgba: &[u8], w: u32, h: u32) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(rgba.len() / 2 + 64);
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgba)?;
        writer.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::guac::{Instruction, Parser};

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = png::Decoder::new(png_bytes).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn pointer_pixels_survive_with_alpha() {
        let rgba: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 10) as u8).collect();
        let c = Cursor::from_rgba(3, 2, 1, 9, &rgba).unwrap();
        assert_eq!((c.width, c.height, c.hotspot_x, c.hotspot_y), (3, 2, 1, 1));
        let (info, pixels) = decode(&c.png);
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(pixels, rgba);
        // Too few pixels, too large, empty.
        assert!(Cursor::from_rgba(3, 3, 0, 0, &rgba).is_err());
        assert!(Cursor::from_rgba(1000, 1, 0, 0, &[0; 4000]).is_err());
        assert_eq!(
            Cursor::from_rgba(0, 5, 0, 0, &[]).unwrap(),
            Cursor::hidden().unwrap()
        );
    }

    #[test]
    fn hidden_and_arrow() {
        let (_, pixels) = decode(&Cursor::hidden().unwrap().png);
        assert_eq!(pixels, [0, 0, 0, 0]);
        let arrow = Cursor::arrow().unwrap();
        assert_eq!((arrow.width, arrow.height), (11, 17));
        let (_, pixels) = decode(&arrow.png);
        assert_eq!(&pixels[..8], &[0, 0, 0, 255, 0, 0, 0, 0]);
    }

    #[test]
    fn instructions() {
        let c = Cursor::from_rgba(2, 2, 1, 0, &[255; 16]).unwrap();
        let mut w = GuacWriter::new();
        c.write(&mut w);
        let all = Parser::new().feed(&w.finish().concat()).unwrap();
        assert_eq!(all[0], Instruction::new("size", &["-1", "2", "2"]));
        assert_eq!(
            all[1],
            Instruction::new("img", &["1", "12", "-1", "image/png", "0", "0"])
        );
        assert_eq!(all[2].opcode, "blob");
        let png_bytes = base64::engine::general_purpose::STANDARD
            .decode(all[2].arg(1).unwrap())
            .unwrap();
        assert_eq!(png_bytes, c.png);
        assert_eq!(all[3], Instruction::new("end", &["1"]));
        assert_eq!(
            all[4],
            Instruction::new("cursor", &["1", "0", "-1", "0", "0", "2", "2"])
        );
        assert_eq!(all.len(), 5);
    }
}
