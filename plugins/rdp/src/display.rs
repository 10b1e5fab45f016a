//! From the framebuffer to Guacamole: dirty regions (coalesced into a bounded list), each region
//! encoded as PNG (text-like) or JPEG (photographic), written as `img`/`blob`/`end` instructions
//! on a small cycle of stream indexes, frames closed with `sync`; at most a few frames in flight
//! before the browser acknowledges them.

use std::collections::VecDeque;

use base64::Engine as _;

use crate::guac::Instruction;

/// A rectangle of the framebuffer: right and bottom exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    fn right(&self) -> u32 {
        self.x + self.w
    }

    fn bottom(&self) -> u32 {
        self.y + self.h
    }

    pub fn union(&self, o: &Rect) -> Rect {
        let x = self.x.min(o.x);
        let y = self.y.min(o.y);
        Rect {
            x,
            y,
            w: self.right().max(o.right()) - x,
            h: self.bottom().max(o.bottom()) - y,
        }
    }

    /// Whether the two overlap or touch.
    fn touches(&self, o: &Rect) -> bool {
        self.x <= o.right() && o.x <= self.right() && self.y <= o.bottom() && o.y <= self.bottom()
    }

    /// Clipped to a `width` x `height` framebuffer; None when nothing is left.
    pub fn clip(&self, width: u32, height: u32) -> Option<Rect> {
        let right = self.right().min(width);
        let bottom = self.bottom().min(height);
        (self.x < right && self.y < bottom).then(|| Rect {
            x: self.x,
            y: self.y,
            w: right - self.x,
            h: bottom - self.y,
        })
    }
}

/// The dirty regions since the last frame, never more than `max`.
#[derive(Debug)]
pub struct Regions {
    rects: Vec<Rect>,
    max: usize,
}

impl Regions {
    pub fn new(max: usize) -> Self {
        Self {
            rects: Vec::new(),
            max: max.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    pub fn take(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.rects)
    }

    pub fn clear(&mut self) {
        self.rects.clear();
    }

    /// Adds a region; merges it with those it touches when the union wastes little, and merges
    /// the cheapest pair while there are too many.
    pub fn add(&mut self, rect: Rect) {
        if rect.w == 0 || rect.h == 0 {
            return;
        }
        let mut rect = rect;
        loop {
            let found = self.rects.iter().position(|r| {
                let u = r.union(&rect);
                // Contained either way, or a union no bigger than the two parts side by side.
                r.touches(&rect) && u.area() <= r.area() + rect.area()
            });
            match found {
                Some(i) => {
                    let r = self.rects.swap_remove(i);
                    rect = r.union(&rect);
                }
                None => break,
            }
        }
        self.rects.push(rect);
        while self.rects.len() > self.max {
            self.merge_cheapest();
        }
    }

    fn merge_cheapest(&mut self) {
        let mut best = (0, 1, u64::MAX);
        for i in 0..self.rects.len() {
            for j in i + 1..self.rects.len() {
                let (a, b) = (&self.rects[i], &self.rects[j]);
                let waste = a.union(b).area().saturating_sub(a.area() + b.area());
                if waste < best.2 {
                    best = (i, j, waste);
                }
            }
        }
        let (i, j, _) = best;
        if j < self.rects.len() {
            let b = self.rects.swap_remove(j);
            self.rects[i] = self.rects[i].union(&b);
        }
    }
}

/// Copies a region of an RGBA framebuffer out as packed RGB.
pub fn extract_rgb(rgba: &[u8], stride_px: u32, r: &Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.area() as usize * 3);
    for row in r.y..r.bottom() {
        let start = (row as usize * stride_px as usize + r.x as usize) * 4;
        let end = start + r.w as usize * 4;
        if let Some(line) = rgba.get(start..end) {
            for px in line.chunks_exact(4) {
                out.extend_from_slice(&px[..3]);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
}

impl Format {
    pub fn mimetype(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }
}

/// PNG for small or text-like regions (many pixels equal to their left neighbour), JPEG for
/// large busy ones.
pub fn choose_format(rgb: &[u8], w: u32, h: u32, jpeg_allowed: bool) -> Format {
    if !jpeg_allowed || u64::from(w) * u64::from(h) < 64 * 64 || w < 8 || h < 8 {
        return Format::Png;
    }
    let mut equal = 0u64;
    let mut total = 0u64;
    let row_bytes = w as usize * 3;
    for line in rgb.chunks_exact(row_bytes) {
        for i in (3..line.len()).step_by(3) {
            total += 1;
            if line[i..i + 3] == line[i - 3..i] {
                equal += 1;
            }
        }
    }
    if total == 0 || equal * 100 >= total * 60 {
        Format::Png
    } else {
        Format::Jpeg
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("png: {0}")]
    Png(#[from] png::EncodingError),
    #[error("jpeg: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("region too large")]
    TooLarge,
}

pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(rgb.len() / 4 + 64);
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        encoder.set_filter(png::FilterType::Paeth);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

pub fn encode_jpeg(rgb: &[u8], w: u32, h: u32, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let w = u16::try_from(w).map_err(|_| EncodeError::TooLarge)?;
    let h = u16::try_from(h).map_err(|_| EncodeError::TooLarge)?;
    let mut out = Vec::with_capacity(rgb.len() / 8 + 64);
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)?;
    Ok(out)
}

/// One region ready to send.
#[derive(Debug)]
pub struct Encoded {
    pub rect: Rect,
    pub format: Format,
    pub bytes: Vec<u8>,
}

/// Encodes regions (pixels already copied out). CPU-bound: run it off the async workers.
pub fn encode_regions(
    regions: Vec<(Rect, Vec<u8>)>,
    jpeg_quality: Option<u8>,
) -> Result<Vec<Encoded>, EncodeError> {
    regions
        .into_iter()
        .map(|(rect, rgb)| {
            let format = choose_format(&rgb, rect.w, rect.h, jpeg_quality.is_some());
            let bytes = match (format, jpeg_quality) {
                (Format::Jpeg, Some(q)) => encode_jpeg(&rgb, rect.w, rect.h, q)?,
                _ => encode_png(&rgb, rect.w, rect.h)?,
            };
            Ok(Encoded {
                rect,
                format,
                bytes,
            })
        })
        .collect()
}

/// Raw bytes per blob: a multiple of 3 so each blob is valid base64 on its own.
pub const BLOB_BYTES: usize = 6048;
/// Instructions are grouped into display frames of about this many characters.
const FRAME_CHARS: usize = 64 * 1024;
/// Composite operation "over" (guacamole-common-js channel mask 0xE).
const MASK_OVER: u32 = 14;

/// Writes Guacamole instructions, cycling stream indexes 1..=64.
#[derive(Debug, Default)]
pub struct GuacWriter {
    next_stream: u32,
    out: Vec<String>,
    current: String,
}

impl GuacWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, instruction: &Instruction) {
        let wire = instruction.encode();
        if !self.current.is_empty() && self.current.len() + wire.len() > FRAME_CHARS {
            self.out.push(std::mem::take(&mut self.current));
        }
        self.current.push_str(&wire);
    }

    pub fn size(&mut self, width: u32, height: u32) {
        self.push(&Instruction::new(
            "size",
            &["0", &width.to_string(), &height.to_string()],
        ));
    }

    /// The size of a layer (`size` of layer 0 is the desktop; negative layers are buffers).
    pub fn layer_size(&mut self, layer: i32, width: u32, height: u32) {
        self.push(&Instruction::new(
            "size",
            &[&layer.to_string(), &width.to_string(), &height.to_string()],
        ));
    }

    /// A region of the desktop, drawn over layer 0.
    pub fn image(&mut self, e: &Encoded) {
        self.stream_image(
            0,
            MASK_OVER,
            e.format.mimetype(),
            e.rect.x,
            e.rect.y,
            &e.bytes,
        );
    }

    /// An image drawn into `layer` at (x, y) with the composite operation `mask`: `img`, its
    /// `blob`s, `end`, on the next stream index.
    pub fn stream_image(
        &mut self,
        layer: i32,
        mask: u32,
        mimetype: &str,
        x: u32,
        y: u32,
        bytes: &[u8],
    ) {
        self.next_stream = self.next_stream % 64 + 1;
        let stream = self.next_stream.to_string();
        self.push(&Instruction::new(
            "img",
            &[
                &stream,
                &mask.to_string(),
                &layer.to_string(),
                mimetype,
                &x.to_string(),
                &y.to_string(),
            ],
        ));
        let mut b64 = String::with_capacity(BLOB_BYTES / 3 * 4);
        for chunk in bytes.chunks(BLOB_BYTES) {
            b64.clear();
            base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut b64);
            self.push(&Instruction::new("blob", &[&stream, &b64]));
        }
        self.push(&Instruction::new("end", &[&stream]));
    }

    /// The cursor: the `width` x `height` top-left corner of `layer`, hotspot at (x, y).
    pub fn cursor(&mut self, x: u32, y: u32, layer: i32, width: u32, height: u32) {
        self.push(&Instruction::new(
            "cursor",
            &[
                &x.to_string(),
                &y.to_string(),
                &layer.to_string(),
                "0",
                "0",
                &width.to_string(),
                &height.to_string(),
            ],
        ));
    }

    pub fn sync(&mut self, timestamp: u64) {
        self.push(&Instruction::new("sync", &[&timestamp.to_string()]));
    }

    /// The instructions written so far, grouped into display frames.
    pub fn finish(&mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.out.push(std::mem::take(&mut self.current));
        }
        std::mem::take(&mut self.out)
    }
}

/// Frames sent but not yet acknowledged by the browser's `sync`.
#[derive(Debug)]
pub struct FlowControl {
    unacked: VecDeque<u64>,
    max_unacked: usize,
    last_timestamp: u64,
}

impl FlowControl {
    pub fn new(max_unacked: usize) -> Self {
        Self {
            unacked: VecDeque::new(),
            max_unacked: max_unacked.max(1),
            last_timestamp: 0,
        }
    }

    pub fn can_send(&self) -> bool {
        self.unacked.len() < self.max_unacked
    }

    /// The timestamp for the next frame's `sync`: `now_ms`, or one more than the last.
    pub fn next_timestamp(&mut self, now_ms: u64) -> u64 {
        let ts = now_ms.max(self.last_timestamp + 1);
        self.last_timestamp = ts;
        self.unacked.push_back(ts);
        ts
    }

    /// The browser painted everything up to `timestamp`.
    pub fn ack(&mut self, timestamp: u64) {
        while self.unacked.front().is_some_and(|t| *t <= timestamp) {
            self.unacked.pop_front();
        }
    }

    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::guac::Parser;

    fn r(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn regions_merge_and_stay_bounded() {
        let mut g = Regions::new(4);
        g.add(r(0, 0, 10, 10));
        g.add(r(2, 2, 3, 3)); // inside
        assert_eq!(g.rects(), &[r(0, 0, 10, 10)]);
        g.add(r(10, 0, 10, 10)); // touching, union = sum
        assert_eq!(g.rects(), &[r(0, 0, 20, 10)]);
        g.add(r(100, 100, 5, 5)); // far away: separate
        assert_eq!(g.rects().len(), 2);
        for i in 0..50 {
            g.add(r(200 + i * 20, 300, 4, 4));
        }
        assert!(g.rects().len() <= 4);
        // Everything added is still covered.
        let covered = |p: &Rect| {
            g.rects().iter().any(|c| {
                c.x <= p.x && c.y <= p.y && c.right() >= p.right() && c.bottom() >= p.bottom()
            })
        };
        assert!(covered(&r(2, 2, 3, 3)));
        assert!(covered(&r(100, 100, 5, 5)));
        for i in 0..50 {
            assert!(covered(&r(200 + i * 20, 300, 4, 4)));
        }
        assert_eq!(r(5, 5, 10, 10).clip(12, 8), Some(r(5, 5, 7, 3)));
        assert_eq!(r(20, 5, 10, 10).clip(12, 8), None);
    }

    #[test]
    fn png_round_trip_is_pixel_exact() {
        let (w, h) = (37u32, 23u32);
        let mut rgba = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgba.extend_from_slice(&[(x * 7) as u8, (y * 11) as u8, (x ^ y) as u8, 255]);
            }
        }
        let rect = r(3, 4, 20, 10);
        let rgb = extract_rgb(&rgba, w, &rect);
        assert_eq!(rgb.len(), 20 * 10 * 3);
        let png_bytes = encode_png(&rgb, rect.w, rect.h).unwrap();
        let decoder = png::Decoder::new(png_bytes.as_slice());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (20, 10));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], rgb.as_slice());
        // Pixel (3,4) of the framebuffer is the first of the region.
        assert_eq!(&buf[..3], &[21, 44, 7]);
    }

    #[test]
    fn format_choice_and_jpeg() {
        let flat = vec![200u8; 100 * 100 * 3];
        assert_eq!(choose_format(&flat, 100, 100, true), Format::Png);
        let mut seed = 1u32;
        let noisy: Vec<u8> = (0..100 * 100 * 3)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        assert_eq!(choose_format(&noisy, 100, 100, true), Format::Jpeg);
        assert_eq!(choose_format(&noisy, 100, 100, false), Format::Png);
        let jpeg = encode_jpeg(&noisy, 100, 100, 80).unwrap();
        assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
        let encoded = encode_regions(vec![(r(0, 0, 100, 100), noisy)], Some(80)).unwrap();
        assert_eq!(encoded[0].format, Format::Jpeg);
    }

    #[test]
    fn instructions_parse_and_blobs_are_self_contained() {
        let e = Encoded {
            rect: r(5, 6, 1, 1),
            format: Format::Png,
            bytes: (0..20000u32).map(|i| i as u8).collect(),
        };
        let mut w = GuacWriter::new();
        w.size(800, 600);
        w.image(&e);
        w.sync(42);
        let frames = w.finish();
        let mut all = Vec::new();
        let mut p = Parser::new();
        for f in &frames {
            all.extend(p.feed(f).unwrap());
        }
        assert_eq!(all[0], Instruction::new("size", &["0", "800", "600"]));
        assert_eq!(
            all[1],
            Instruction::new("img", &["1", "14", "0", "image/png", "5", "6"])
        );
        let mut data = Vec::new();
        for i in &all[2..all.len() - 2] {
            assert_eq!(i.opcode, "blob");
            let chunk = base64::engine::general_purpose::STANDARD
                .decode(i.arg(1).unwrap())
                .unwrap();
            data.extend(chunk);
        }
        assert_eq!(data, e.bytes);
        assert_eq!(all[all.len() - 2], Instruction::new("end", &["1"]));
        assert_eq!(all[all.len() - 1], Instruction::new("sync", &["42"]));
        // Streams cycle within 1..=64.
        let mut w = GuacWriter::new();
        for _ in 0..130 {
            w.image(&e);
        }
        let text = w.finish().concat();
        assert!(text.contains("3.img,2.64,"));
        assert!(!text.contains("3.img,2.65,"));
    }

    #[test]
    fn flow_control_waits_for_acks() {
        let mut f = FlowControl::new(2);
        assert!(f.can_send());
        let a = f.next_timestamp(100);
        let b = f.next_timestamp(100);
        assert_eq!((a, b), (100, 101));
        assert!(!f.can_send());
        f.ack(100);
        assert!(f.can_send());
        f.ack(5000);
        assert_eq!(f.unacked(), 0);
    }
}
