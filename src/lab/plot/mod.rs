//! Figures as PNG files, drawn with plotters into an RGB buffer and encoded with `png`:
//! [`heat_maps`] (a value per row and token: `explain --plot`) and [`lines()`] (y against x for
//! several series, optionally on a log scale: experiment curves).
//!
//! Text goes through a [`Typeface`]: a font file found at run time, or the built-in ASCII bitmap
//! font when there is none, so drawing never needs a font to succeed. A text the face has no
//! glyphs for is drawn in a form it can show (a token as its position, other text with '?'), and
//! the figure functions return those texts so the caller can warn ([`Typeface::warning`]).

mod font;
mod heatmap;
mod lines;

use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use plotters::{
    coord::Shift,
    prelude::{BitMapBackend, DrawingArea, IntoDrawingArea, Rectangle, Text},
    style::{Color, FontFamily, RGBColor, TextStyle, WHITE},
};

pub use font::{Typeface, SEARCH_PATHS};
pub use heatmap::{heat_maps, HeatMap, Row, Scale, Token};
pub use lines::{lines, Series};

/// Largest side of a figure, in pixels (a longer text's heat map is cut to fit, with a note).
pub const MAX_SIDE: u32 = 16_000;

/// Checks that `path` names a PNG file (its extension is `.png`, any case), before any work.
pub fn check_png_path(path: &Path) -> Result<()> {
    let png = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    ensure!(png, "{}: the plot is a PNG image; give a file name ending in .png", path.display());
    Ok(())
}

/// Horizontal alignment of a text at its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Center,
    Right,
}

/// What a figure's texts become with a typeface: themselves when it has their glyphs, else a
/// form it can show, the original kept in `unshown` for the caller's warning.
pub(crate) struct Shown<'a> {
    pub face: &'a Typeface,
    pub unshown: Vec<String>,
}

impl Shown<'_> {
    /// `text` if the face shows it, else `fallback`.
    pub fn or(&mut self, text: &str, fallback: impl FnOnce() -> String) -> String {
        if self.face.shows(text) {
            return text.to_owned();
        }
        if !self.unshown.iter().any(|u| u == text) {
            self.unshown.push(text.to_owned());
        }
        fallback()
    }

    /// `text` with each character the face cannot show replaced by '?'.
    pub fn text(&mut self, text: &str) -> String {
        let face = self.face;
        self.or(text, || text.chars().map(|c| if face.shows(&c.to_string()) { c } else { '?' }).collect())
    }
}

/// A drawing area with the typeface that writes on it. Coordinates are pixels from the top left.
pub(crate) struct Canvas<'a, 'b> {
    pub area: DrawingArea<BitMapBackend<'b>, Shift>,
    pub face: &'a Typeface,
}

impl Canvas<'_, '_> {
    /// Fills the rectangle from `(x0, y0)` to `(x1, y1)` (exclusive: the bitmap backend's
    /// filled rectangles are half-open).
    pub fn rect(&self, (x0, y0): (i32, i32), (x1, y1): (i32, i32), color: RGBColor) -> Result<()> {
        self.area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled())).map_err(drawing)
    }

    /// Width of `text` at `size` pixels.
    pub fn width(&self, text: &str, size: f64) -> i32 {
        self.face.width(text, size)
    }

    /// Draws `text` (which the face can show: see [`Shown`]) at `size` pixels, aligned
    /// horizontally at `x` and vertically centred on `y`.
    pub fn text(
        &self,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        color: RGBColor,
        align: Align,
    ) -> Result<()> {
        let width = self.width(text, size);
        let left = match align {
            Align::Left => x,
            Align::Center => x - width / 2,
            Align::Right => x - width,
        };
        let (ascent, descent) = self.face.metrics(size);
        // The baseline that centres the ascent-descent box on y.
        let baseline = y as f32 + (ascent + descent) / 2.0;
        match self.face {
            Typeface::File { path, .. } => {
                // plotters' ab_glyph renderer puts the baseline size/2 below the anchor.
                let top = (baseline - size as f32 / 2.0).round() as i32;
                let family = font::family(path);
                let style = TextStyle::from((FontFamily::Name(&family), size)).color(&color);
                self.area.draw(&Text::new(text, (left, top), style)).map_err(drawing)
            }
            Typeface::Builtin => {
                let scale = font::bitmap_scale(size);
                let top = baseline.round() as i32 - 7 * scale;
                for (i, c) in text.chars().enumerate() {
                    for (row, bits) in font::bitmap_glyph(c).iter().enumerate() {
                        for col in 0..8 {
                            if bits >> col & 1 == 1 {
                                let (px, py) =
                                    (left + (8 * i as i32 + col) * scale, top + row as i32 * scale);
                                self.rect((px, py), (px + scale, py + scale), color)?;
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// `text`, cut with '…' to at most `max` pixels wide.
pub(crate) fn fit(face: &Typeface, text: &str, size: f64, max: i32) -> String {
    if face.width(text, size) <= max {
        return text.to_owned();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let cut: String = chars.iter().chain(['…'].iter()).collect();
        if face.width(&cut, size) <= max || chars.is_empty() {
            return if face.shows("…") { cut } else { chars.iter().chain(['.'].iter()).collect() };
        }
    }
    String::new()
}

/// `text` in lines of at most `max` pixels, broken at spaces (none for an empty text).
pub(crate) fn wrap(face: &Typeface, text: &str, size: f64, max: i32) -> Vec<String> {
    let mut lines: Vec<String> = vec![];
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        match lines.last_mut() {
            Some(line) if face.width(&format!("{line} {word}"), size) <= max => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

/// Draws a `width`×`height` figure on white with `draw` and writes it to `path` as a PNG.
pub(crate) fn render(
    path: &Path,
    (width, height): (u32, u32),
    face: &Typeface,
    draw: impl FnOnce(&Canvas) -> Result<()>,
) -> Result<()> {
    check_png_path(path)?;
    ensure!(width > 0 && height > 0, "an empty figure ({width}×{height})");
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        area.fill(&WHITE).map_err(drawing)?;
        let canvas = Canvas { area, face };
        draw(&canvas)?;
        canvas.area.present().map_err(drawing)?;
    }
    let mut encoded = vec![];
    {
        let mut encoder = png::Encoder::new(&mut encoded, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().context("encoding the PNG")?;
        writer.write_image_data(&rgb).context("encoding the PNG")?;
        writer.finish().context("encoding the PNG")?;
    }
    std::fs::write(path, encoded).with_context(|| format!("cannot write the plot {}", path.display()))
}

/// A plotters drawing error as an anyhow error.
pub(crate) fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Text colours.
pub(crate) const INK: RGBColor = RGBColor(20, 20, 20);
pub(crate) const GREY: RGBColor = RGBColor(130, 130, 130);
pub(crate) const LIGHT: RGBColor = RGBColor(225, 225, 225);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let face = Typeface::Builtin;
        let text = "AMD EPYC (2 cores), 1 thread, load 4.7; seeds 0-2, 30000 train  sequences; chance 0.5";
        for max in [1, 40, 120, 400, 10_000] {
            let lines = wrap(&face, text, 12.0, max);
            for line in &lines {
                assert!(face.width(line, 12.0) <= max || !line.contains(' '), "{line:?} wider than {max}");
            }
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(lines.join(" ").split(' ').collect::<Vec<_>>(), words, "max {max}");
        }
        assert_eq!(wrap(&face, "a b", 12.0, 10_000), ["a b"]);
        assert!(wrap(&face, "", 12.0, 100).is_empty());
    }

    #[test]
    fn only_png_names_are_accepted() {
        assert!(check_png_path(Path::new("out/Plot.PNG")).is_ok());
        let err = check_png_path(Path::new("plot.jpg")).unwrap_err().to_string();
        assert!(err.contains("plot.jpg") && err.contains(".png"), "{err}");
        assert!(check_png_path(Path::new("plot")).is_err());
    }
}
