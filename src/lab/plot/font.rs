//! The figures' typeface: a TrueType/OpenType file read at run time (`--font PATH`, or the first
//! of [`SEARCH_PATHS`] that exists and parses), drawn by plotters through ab_glyph; with no font
//! file at all, a built-in 8×8 ASCII bitmap font (the `font8x8` crate), so a figure is always
//! drawn. No font is committed or compiled in: a CJK font is several megabytes.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ab_glyph::{Font, FontRef, ScaleFont};
use anyhow::{anyhow, Context, Result};
use plotters::style::FontStyle;

/// Where [`Typeface::find`] looks, in order: fonts with CJK glyphs first (Noto Sans CJK,
/// WenQuanYi, Droid Sans Fallback on Debian/Ubuntu, Fedora and Arch; PingFang and Heiti on
/// macOS; YaHei and SimHei on Windows), then Latin-only ones (DejaVu, Liberation, Arial).
pub const SEARCH_PATHS: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:\\Windows\\Fonts\\msyh.ttc",
    "C:\\Windows\\Fonts\\simhei.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The font figure text is drawn with.
#[derive(Clone)]
pub enum Typeface {
    /// A font file, registered with plotters under its path (the family name).
    File {
        /// The file.
        path: PathBuf,
        /// Its parsed face (the first face of a collection), to measure text and check glyphs.
        font: &'static FontRef<'static>,
    },
    /// No font file: the built-in 8×8 bitmap font, printable ASCII only.
    Builtin,
}

/// Font files read so far, by path: plotters keeps a registered font's bytes for the life of the
/// process (`&'static`), so each file is read, parsed and leaked once.
fn loaded() -> &'static Mutex<HashMap<PathBuf, &'static FontRef<'static>>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static FontRef<'static>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

impl Typeface {
    /// Reads the font file at `path` and registers it with plotters. Errors name the file when
    /// it cannot be read or is not a TrueType/OpenType font (or collection).
    pub fn load(path: &Path) -> Result<Self> {
        let mut cache = loaded().lock().map_err(|_| anyhow!("the font cache is poisoned"))?;
        if let Some(&font) = cache.get(path) {
            return Ok(Self::File { path: path.to_owned(), font });
        }
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read the font {}", path.display()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let font = FontRef::try_from_slice(bytes)
            .map_err(|_| anyhow!("{} is not a TrueType/OpenType font", path.display()))?;
        plotters::style::register_font(&family(path), FontStyle::Normal, bytes)
            .map_err(|_| anyhow!("{} is not a TrueType/OpenType font", path.display()))?;
        let font: &'static FontRef<'static> = Box::leak(Box::new(font));
        cache.insert(path.to_owned(), font);
        Ok(Self::File { path: path.to_owned(), font })
    }

    /// `--font PATH` if given (an error if it cannot be used), else the first of
    /// [`SEARCH_PATHS`] that loads and has glyphs for all of printable ASCII (labels and numbers
    /// are ASCII), else [`Typeface::Builtin`].
    pub fn find(font: Option<&Path>) -> Result<Self> {
        if let Some(path) = font {
            return Self::load(path);
        }
        let ascii: String = (' '..='~').collect();
        let usable = |p: &str| Self::load(Path::new(p)).ok().filter(|face| face.shows(&ascii));
        Ok(SEARCH_PATHS.iter().find_map(|p| usable(p)).unwrap_or(Self::Builtin))
    }

    /// Whether every character of `text` has a glyph (whitespace always does).
    pub fn shows(&self, text: &str) -> bool {
        text.chars().all(|c| {
            c.is_whitespace()
                || match self {
                    Self::File { font, .. } => font.glyph_id(c).0 != 0,
                    Self::Builtin => c.is_ascii_graphic(),
                }
        })
    }

    /// The font file, or "the built-in ASCII bitmap font".
    pub fn describe(&self) -> String {
        match self {
            Self::File { path, .. } => path.display().to_string(),
            Self::Builtin => "the built-in ASCII bitmap font (no font file found)".to_owned(),
        }
    }

    /// The one-line warning for texts this face could not show (`unshown`, as drawn instead),
    /// or `None` when it showed everything.
    pub fn warning(&self, unshown: &[String]) -> Option<String> {
        if unshown.is_empty() {
            return None;
        }
        let mut examples: Vec<&str> = unshown.iter().map(String::as_str).take(3).collect();
        if unshown.len() > 3 {
            examples.push("…");
        }
        Some(format!(
            "warning: {} has no glyphs for {} ({}): tokens are drawn as their positions, other text with '?'; \
             install a CJK font (fonts-noto-cjk or fonts-wqy-microhei) or pass --font PATH",
            self.describe(),
            examples.join(", "),
            if unshown.len() == 1 { "1 text".to_owned() } else { format!("{} texts", unshown.len()) },
        ))
    }

    /// Width in pixels of `text` at `size` pixels.
    pub(crate) fn width(&self, text: &str, size: f64) -> i32 {
        match self {
            Self::File { font, .. } => {
                let font = font.as_scaled(size as f32);
                let mut width = 0.0;
                let mut previous = None;
                for c in text.chars() {
                    let id = font.glyph_id(c);
                    width += font.h_advance(id) + previous.map_or(0.0, |p| font.kern(p, id));
                    previous = Some(id);
                }
                width.ceil() as i32
            }
            Self::Builtin => 8 * bitmap_scale(size) * text.chars().count() as i32,
        }
    }

    /// Ascent and descent (negative) in pixels at `size` pixels.
    pub(crate) fn metrics(&self, size: f64) -> (f32, f32) {
        match self {
            Self::File { font, .. } => {
                let font = font.as_scaled(size as f32);
                (font.ascent(), font.descent())
            }
            Self::Builtin => (7.0 * bitmap_scale(size) as f32, -(bitmap_scale(size) as f32)),
        }
    }
}

/// The plotters family name a font file is registered under.
pub(crate) fn family(path: &Path) -> String {
    format!("lstm-tch:{}", path.display())
}

/// The built-in font's pixel size: 8×8 glyphs scaled by a whole factor.
pub(crate) fn bitmap_scale(size: f64) -> i32 {
    ((size / 9.0).round() as i32).max(1)
}

/// The built-in font's glyph rows for `c` (bit 0 is the leftmost pixel); '?' outside ASCII.
pub(crate) fn bitmap_glyph(c: char) -> [u8; 8] {
    let index = if c.is_ascii() { c as usize } else { '?' as usize };
    font8x8::legacy::BASIC_LEGACY[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_face_shows_printable_ascii_only() {
        let face = Typeface::Builtin;
        assert!(face.shows("P(positive) 0.93 |c|"));
        assert!(!face.shows("负面"));
        assert_eq!(face.width("abc", 18.0), 3 * 8 * 2);
        assert_eq!(bitmap_glyph('负'), bitmap_glyph('?'));
        assert_ne!(bitmap_glyph('A'), [0; 8]);
    }

    #[test]
    fn a_missing_or_bad_font_file_is_an_error_naming_it() {
        let missing = Path::new("/nonexistent/font.ttf");
        let err = format!("{:#}", Typeface::find(Some(missing)).err().unwrap());
        assert!(err.contains("/nonexistent/font.ttf"), "{err}");
        let bad = std::env::temp_dir().join(format!("lstm-tch-bad-font-{}.ttf", std::process::id()));
        std::fs::write(&bad, b"not a font").unwrap();
        let err = format!("{:#}", Typeface::load(&bad).err().unwrap());
        assert!(err.contains("is not a TrueType/OpenType font"), "{err}");
        std::fs::remove_file(bad).unwrap();
    }

    #[test]
    fn the_warning_names_the_face_and_a_few_texts() {
        assert_eq!(Typeface::Builtin.warning(&[]), None);
        let unshown: Vec<String> = ["虽然", "环境", "不错", "但是"].iter().map(|s| s.to_string()).collect();
        let warning = Typeface::Builtin.warning(&unshown).unwrap();
        assert!(warning.starts_with("warning: the built-in ASCII bitmap font"), "{warning}");
        assert!(warning.contains("虽然, 环境, 不错, …") && warning.contains("4 texts"), "{warning}");
        assert!(!warning.contains('\n'));
    }
}
