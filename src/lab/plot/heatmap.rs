//! Heat maps of values per row and token: one panel per [`HeatMap`], stacked vertically in one
//! PNG. Tokens run along the x axis in reading order, one row per series; each cell is coloured
//! on the viridis scale and carries its value; a colour bar sits at the right of each panel.

use std::path::Path;

use anyhow::{ensure, Result};
use plotters::{
    prelude::ViridisRGB,
    style::{colors::colormaps::ColorMap, RGBColor, WHITE},
};

use super::{fit, render, wrap, Align, Canvas, Shown, Typeface, GREY, INK, LIGHT, MAX_SIDE};

/// A token along the x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Its text.
    pub text: String,
    /// Drawn grey (explain: a token the vocabulary does not know).
    pub muted: bool,
}

/// How a row's values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Values in [0, 1] (gates, probabilities): the colour bar's scale, clamped.
    Unit,
    /// Any range: coloured from the row's minimum (0) to its maximum (1); the cells still carry
    /// the values themselves.
    PerRow,
}

/// One row of a heat map: a value per token.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Rows with the same group are drawn together; a gap separates groups.
    pub group: String,
    /// The row's label, at its left.
    pub name: String,
    /// One value per token.
    pub values: Vec<f32>,
    /// How the values are coloured.
    pub scale: Scale,
}

/// One panel: a title, the tokens, the rows and a note under them.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// The title line above the panel.
    pub title: String,
    /// The columns, in reading order.
    pub tokens: Vec<Token>,
    /// The rows, top to bottom; each has one value per token.
    pub rows: Vec<Row>,
    /// A line of small print under the panel (may be empty).
    pub note: String,
}

const PAD: i32 = 16;
const TITLE: f64 = 20.0;
const LABEL: f64 = 15.0;
const VALUE: f64 = 12.0;
const NOTE: f64 = 13.0;
const CELL_H: i32 = 28;
const GROUP_GAP: i32 = 8;
const BAR_W: i32 = 14;

/// A panel's texts as drawn and its layout.
struct Panel {
    title: String,
    tokens: Vec<(String, bool)>,
    names: Vec<String>,
    /// The note's lines.
    note: Vec<String>,
    /// How many tokens fit in [`MAX_SIDE`].
    columns: usize,
    cell_w: i32,
    grid_left: i32,
    /// Top of each row, from the panel's top.
    row_tops: Vec<i32>,
    width: i32,
    height: i32,
}

impl Panel {
    /// Checks `map` and lays it out, its texts as `shown` draws them.
    fn new(map: &HeatMap, shown: &mut Shown) -> Result<Self> {
        let n = map.tokens.len();
        ensure!(n > 0, "a heat map with no tokens: {}", map.title);
        ensure!(!map.rows.is_empty(), "a heat map with no rows: {}", map.title);
        for row in &map.rows {
            ensure!(row.values.len() == n, "row {} has {} values for {n} tokens", row.name, row.values.len());
        }
        let face = shown.face;
        let tokens: Vec<(String, bool)> = map
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (shown.or(&t.text, || format!("#{}", i + 1)), t.muted))
            .collect();
        let names: Vec<String> = map.rows.iter().map(|r| shown.text(&r.name)).collect();
        let widest = tokens.iter().map(|(t, _)| face.width(t, LABEL)).max().unwrap_or(0);
        let cell_w = (widest + 10).clamp(44, 110);
        let grid_left = PAD + names.iter().map(|n| face.width(n, LABEL)).max().unwrap_or(0) + 12;
        // Colour bar, its tick labels and the right margin.
        let right = 24 + BAR_W + 8 + face.width("0.5", VALUE) + PAD;
        let columns = n.min(((MAX_SIDE as i32 - grid_left - right) / cell_w).max(1) as usize);
        let mut note = shown.text(&map.note);
        if columns < n {
            note = format!("first {columns} of {n} tokens shown. {note}");
        }
        let grid_right = grid_left + columns as i32 * cell_w;
        let note = wrap(face, &note, NOTE, (grid_right + right - 2 * PAD).max(560));
        let mut row_tops = vec![];
        let mut y = PAD + 36;
        for (i, row) in map.rows.iter().enumerate() {
            if i > 0 && row.group != map.rows[i - 1].group {
                y += GROUP_GAP;
            }
            row_tops.push(y);
            y += CELL_H;
        }
        let title = shown.text(&map.title);
        let note_w = note.iter().map(|l| face.width(l, NOTE)).max().unwrap_or(0);
        let width = (grid_right + right).max(2 * PAD + face.width(&title, TITLE)).max(2 * PAD + note_w);
        let width = width.min(MAX_SIDE as i32);
        let height = y + 28 + 20 * note.len() as i32 + 8 + PAD;
        Ok(Self { title, tokens, names, note, columns, cell_w, grid_left, row_tops, width, height })
    }

    /// Draws the panel with its top edge at `top`: the title, the rows, the tokens under them,
    /// the note and the colour bar.
    fn draw(&self, canvas: &Canvas, map: &HeatMap, top: i32) -> Result<()> {
        let face = canvas.face;
        let title = fit(face, &self.title, TITLE, self.width - 2 * PAD);
        canvas.text(&title, (PAD, top + PAD + 10), TITLE, INK, Align::Left)?;
        for ((row, name), &row_top) in map.rows.iter().zip(&self.names).zip(&self.row_tops) {
            self.draw_row(canvas, row, name, top + row_top)?;
        }
        let grid_bottom = top + self.row_tops.last().copied().unwrap_or(0) + CELL_H;
        for (i, (token, muted)) in self.tokens.iter().take(self.columns).enumerate() {
            let x = self.grid_left + i as i32 * self.cell_w + self.cell_w / 2;
            let token = fit(face, token, LABEL, self.cell_w - 4);
            canvas.text(
                &token,
                (x, grid_bottom + 14),
                LABEL,
                if *muted { GREY } else { INK },
                Align::Center,
            )?;
        }
        for (i, line) in self.note.iter().enumerate() {
            let line = fit(face, line, NOTE, self.width - 2 * PAD);
            canvas.text(&line, (PAD, grid_bottom + 28 + 14 + 20 * i as i32), NOTE, GREY, Align::Left)?;
        }
        self.draw_colour_bar(canvas, top + self.row_tops[0], grid_bottom)
    }

    /// Draws one row with its top edge at `y`: its name at the left, then a coloured cell
    /// carrying its value per shown token.
    fn draw_row(&self, canvas: &Canvas, row: &Row, name: &str, y: i32) -> Result<()> {
        canvas.text(name, (self.grid_left - 10, y + CELL_H / 2), LABEL, INK, Align::Right)?;
        let finite = row.values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
        for (i, &v) in row.values.iter().take(self.columns).enumerate() {
            let x = self.grid_left + i as i32 * self.cell_w;
            let (fill, label) = if v.is_finite() {
                let t = match row.scale {
                    Scale::Unit => v.clamp(0.0, 1.0),
                    Scale::PerRow if hi > lo => (v - lo) / (hi - lo),
                    Scale::PerRow => 0.5,
                };
                (ViridisRGB.get_color(t), value_label(v, row.scale))
            } else {
                (LIGHT, "nan".to_owned())
            };
            canvas.rect((x + 1, y + 1), (x + self.cell_w - 1, y + CELL_H - 1), fill)?;
            let ink = if luminance(fill) > 0.5 { INK } else { WHITE };
            canvas.text(&label, (x + self.cell_w / 2, y + CELL_H / 2), VALUE, ink, Align::Center)?;
        }
        Ok(())
    }

    /// The colour bar right of the grid: 0 at the bottom, 1 at the top, from `bar_top` over the
    /// grid's height (at most 160 px, to `grid_bottom`).
    fn draw_colour_bar(&self, canvas: &Canvas, bar_top: i32, grid_bottom: i32) -> Result<()> {
        let bar_left = self.grid_left + self.columns as i32 * self.cell_w + 24;
        let bar_h = (grid_bottom - bar_top).min(160);
        for dy in 0..bar_h {
            let color = ViridisRGB.get_color(1.0 - dy as f32 / (bar_h - 1).max(1) as f32);
            canvas.rect((bar_left, bar_top + dy), (bar_left + BAR_W, bar_top + dy + 1), color)?;
        }
        for (t, label) in [(1.0, "1"), (0.5, "0.5"), (0.0, "0")] {
            let y = bar_top + ((1.0 - t) * (bar_h - 1) as f32).round() as i32;
            canvas.rect((bar_left + BAR_W, y), (bar_left + BAR_W + 4, y + 1), INK)?;
            canvas.text(label, (bar_left + BAR_W + 7, y), VALUE, INK, Align::Left)?;
        }
        Ok(())
    }
}

/// A cell's number: two decimals for values in [0, 1], fewer for larger values.
fn value_label(v: f32, scale: Scale) -> String {
    match scale {
        Scale::Unit => format!("{v:.2}"),
        Scale::PerRow if v.abs() < 10.0 => format!("{v:.2}"),
        Scale::PerRow if v.abs() < 100.0 => format!("{v:.1}"),
        Scale::PerRow => format!("{v:.0}"),
    }
}

/// Relative luminance in [0, 1] (to pick dark or light text on a cell).
fn luminance(c: RGBColor) -> f32 {
    (0.2126 * c.0 as f32 + 0.7152 * c.1 as f32 + 0.0722 * c.2 as f32) / 255.0
}

/// Draws `maps`, one panel each, stacked top to bottom, into the PNG file `path`. Returns the
/// texts `face` has no glyphs for (drawn instead as their position, for tokens, or with '?').
/// Errors: no map, a map with no tokens or rows, a row whose length is not the token count, a
/// path not ending in `.png`, or one that cannot be written (named).
pub fn heat_maps(path: &Path, maps: &[HeatMap], face: &Typeface) -> Result<Vec<String>> {
    ensure!(!maps.is_empty(), "nothing to plot");
    let mut shown = Shown { face, unshown: vec![] };
    let panels = maps.iter().map(|m| Panel::new(m, &mut shown)).collect::<Result<Vec<_>>>()?;
    let width = panels.iter().map(|p| p.width).max().unwrap_or(1);
    let height: i32 = panels.iter().map(|p| p.height).sum();
    ensure!(
        height <= MAX_SIDE as i32,
        "{} panels are too many for one image ({height} pixels high)",
        maps.len()
    );
    render(path, (width as u32, height as u32), face, |canvas| {
        let mut top = 0;
        for (i, (panel, map)) in panels.iter().zip(maps).enumerate() {
            if i > 0 {
                canvas.rect((PAD, top), (width - PAD, top + 1), LIGHT)?;
            }
            panel.draw(canvas, map, top)?;
            top += panel.height;
        }
        Ok(())
    })?;
    Ok(shown.unshown)
}
