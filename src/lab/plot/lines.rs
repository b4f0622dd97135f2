//! Line charts: y against x for several series (experiment curves: loss or accuracy per epoch,
//! time per size), on a linear or logarithmic y axis, with a legend.

use std::path::Path;

use anyhow::{ensure, Result};
use plotters::{
    prelude::{Circle, PathElement},
    style::{Color, RGBColor},
};

use super::{drawing, fit, render, wrap, Align, Canvas, Shown, Typeface, GREY, INK, LIGHT};

/// One curve: a name for the legend and its points `(x, y)` in drawing order. Points with a
/// non-finite coordinate are left out, breaking the line there.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// The points, joined in this order.
    pub points: Vec<(f64, f64)>,
    /// Error bars `(x, low, high)`, drawn as vertical whiskers in the series' colour (a spread
    /// over seeds, say); empty for none. Bars with a non-finite value are left out.
    pub spread: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A series without error bars.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points, spread: vec![] }
    }
}

/// The series' colours, in order (matplotlib's tab10), repeating after ten.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const SIZE: (i32, i32) = (900, 560);
const PAD: i32 = 16;
const TITLE: f64 = 20.0;
const LABEL: f64 = 15.0;
const TICK: f64 = 13.0;

/// An axis: its range (in log10 units on a log axis) and its ticks `(position, label)`.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

/// A linear axis over `[lo, hi]`: about six ticks at 1, 2 or 5 times a power of ten, the range
/// widened to the outer ticks.
fn linear_axis(lo: f64, hi: f64) -> Axis {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
    let raw = (hi - lo) / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = magnitude
        * match raw / magnitude {
            r if r < 1.5 => 1.0,
            r if r < 3.0 => 2.0,
            r if r < 7.0 => 5.0,
            _ => 10.0,
        };
    let (first, last) = ((lo / step).floor() as i64, (hi / step).ceil() as i64);
    let decimals = (-step.log10().floor()).clamp(0.0, 9.0) as usize;
    let ticks =
        (first..=last).map(|k| (k as f64 * step, format!("{:.*}", decimals, k as f64 * step))).collect();
    Axis { lo: first as f64 * step, hi: last as f64 * step, ticks }
}

/// A log axis over `[lo, hi]` (both > 0): whole decades, with 2 and 5 between them when there
/// are at most two, and every second, third... decade when there are more than twelve.
fn log_axis(lo: f64, hi: f64) -> Axis {
    let (mut first, mut last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    if last == first {
        last += 1;
    }
    let every = (last - first + 11) / 12;
    first = last - (last - first + every - 1) / every * every;
    let mut ticks = vec![];
    for k in (first..=last).step_by(every as usize) {
        let multiples: &[f64] = if last - first <= 2 && k < last { &[1.0, 2.0, 5.0] } else { &[1.0] };
        for &m in multiples {
            let v = m * 10f64.powi(k);
            let label = match k {
                0..=4 => format!("{}", m as i64 * 10i64.pow(k as u32)),
                -3..=-1 => format!("{:.*}", -k as usize, v),
                _ => format!("{m}e{k}"),
            };
            ticks.push((v.log10(), label));
        }
    }
    Axis { lo: first as f64, hi: last as f64, ticks }
}

/// Whether both coordinates of a point are finite.
fn finite(&(x, y): &(f64, f64)) -> bool {
    x.is_finite() && y.is_finite()
}

/// Whether every value of an error bar `(x, low, high)` is finite.
fn bar_finite(&(x, lo, hi): &(f64, f64, f64)) -> bool {
    x.is_finite() && lo.is_finite() && hi.is_finite()
}

/// A series' finite points and the ends of its finite error bars: what the axes must hold.
fn extent(s: &Series) -> Vec<(f64, f64)> {
    let bars = s.spread.iter().filter(|b| bar_finite(b)).flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
    s.points.iter().filter(|p| finite(p)).copied().chain(bars).collect()
}

/// The x and y axes that hold every series' extent. Errors: a y ≤ 0 on a log scale (naming the
/// series), no finite point.
fn axes(series: &[Series], log_y: bool) -> Result<(Axis, Axis)> {
    for s in series {
        if let Some((x, y)) = extent(s).into_iter().find(|&(_, y)| log_y && y <= 0.0) {
            anyhow::bail!("series {}: y = {y} at x = {x} cannot go on a log scale", s.name);
        }
    }
    let points: Vec<(f64, f64)> = series.iter().flat_map(extent).collect();
    ensure!(!points.is_empty(), "nothing to plot: no series has a finite point");
    let range = |f: fn(&(f64, f64)) -> f64| {
        points.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)))
    };
    let ((x_lo, x_hi), (y_lo, y_hi)) = (range(|p| p.0), range(|p| p.1));
    let x_axis = linear_axis(x_lo, x_hi);
    let y_axis = if log_y { log_axis(y_lo, y_hi) } else { linear_axis(y_lo, y_hi) };
    Ok((x_axis, y_axis))
}

/// A line chart laid out: its axes, the plot area and its texts as drawn.
struct Chart<'a> {
    face: &'a Typeface,
    x_axis: Axis,
    y_axis: Axis,
    log_y: bool,
    title: String,
    /// The note's lines.
    note: Vec<String>,
    x_label: String,
    y_label: String,
    /// The series' names, for the legend.
    names: Vec<String>,
    legend_w: i32,
    /// The plot area's left and right edges.
    x0: i32,
    x1: i32,
    /// The plot area's top and bottom edges.
    y0: i32,
    y1: i32,
}

impl<'a> Chart<'a> {
    /// Checks `series`, finds the axes and lays out the texts (as `shown` draws them).
    fn new(
        shown: &mut Shown<'a>,
        title: &str,
        x_label: &str,
        y_label: &str,
        series: &[Series],
        log_y: bool,
    ) -> Result<Self> {
        let (x_axis, y_axis) = axes(series, log_y)?;
        let face = shown.face;
        let (title, note) = title.split_once('\n').unwrap_or((title, ""));
        let (title, note) = (shown.text(title), shown.text(note));
        let (x_label, y_label) = (shown.text(x_label), shown.text(y_label));
        let names: Vec<String> = series.iter().map(|s| shown.text(&s.name)).collect();
        let legend_w = names.iter().map(|n| face.width(n, LABEL)).max().unwrap_or(0).min(260) + 40;
        let tick_w = y_axis.ticks.iter().map(|(_, l)| face.width(l, TICK)).max().unwrap_or(0);
        let (w, h) = SIZE;
        let (x0, x1) = (PAD + tick_w + 8, w - PAD - legend_w);
        let note = wrap(face, &note, TICK, w - 2 * PAD);
        let note_h = 18 * note.len() as i32;
        let (y0, y1) = (PAD + 36 + 22 + note_h, h - PAD - 50);
        Ok(Self {
            face,
            x_axis,
            y_axis,
            log_y,
            title,
            note,
            x_label,
            y_label,
            names,
            legend_w,
            x0,
            x1,
            y0,
            y1,
        })
    }

    /// The pixel column of `x`.
    fn px(&self, x: f64) -> i32 {
        let (x0, x1, axis) = (self.x0, self.x1, &self.x_axis);
        x0 + ((x - axis.lo) / (axis.hi - axis.lo) * (x1 - x0) as f64).round() as i32
    }

    /// The pixel row of `v`, in the y axis' units (log10 units on a log axis).
    fn row(&self, v: f64) -> i32 {
        let (y0, y1, axis) = (self.y0, self.y1, &self.y_axis);
        y1 - ((v - axis.lo) / (axis.hi - axis.lo) * (y1 - y0) as f64).round() as i32
    }

    /// The pixel row of `y`.
    fn py(&self, y: f64) -> i32 {
        self.row(if self.log_y { y.log10() } else { y })
    }

    /// Draws the title, the note, the axis labels, the grid with its tick labels and the frame.
    fn draw_frame(&self, canvas: &Canvas) -> Result<()> {
        let (face, (w, h), (x0, x1, y0, y1)) = (self.face, SIZE, (self.x0, self.x1, self.y0, self.y1));
        canvas.text(&fit(face, &self.title, TITLE, w - 2 * PAD), (PAD, PAD + 10), TITLE, INK, Align::Left)?;
        for (i, line) in self.note.iter().enumerate() {
            let line = fit(face, line, TICK, w - 2 * PAD);
            canvas.text(&line, (PAD, PAD + 32 + 18 * i as i32), TICK, GREY, Align::Left)?;
        }
        let y_label = fit(face, &self.y_label, LABEL, w - 2 * PAD);
        canvas.text(&y_label, (PAD, y0 - 16), LABEL, INK, Align::Left)?;
        canvas.text(&self.x_label, ((x0 + x1) / 2, h - PAD - 10), LABEL, INK, Align::Center)?;
        for (t, label) in &self.x_axis.ticks {
            let x = self.px(*t);
            canvas.rect((x, y0), (x + 1, y1), LIGHT)?;
            canvas.text(label, (x, y1 + 14), TICK, INK, Align::Center)?;
        }
        for (t, label) in &self.y_axis.ticks {
            let y = self.row(*t);
            canvas.rect((x0, y), (x1, y + 1), LIGHT)?;
            canvas.text(label, (x0 - 6, y), TICK, INK, Align::Right)?;
        }
        for (a, b) in [
            ((x0, y0), (x1, y0 + 1)),
            ((x0, y1), (x1 + 1, y1 + 1)),
            ((x0, y0), (x0 + 1, y1)),
            ((x1, y0), (x1 + 1, y1)),
        ] {
            canvas.rect(a, b, GREY)?;
        }
        Ok(())
    }

    /// Draws series `i`: its lines (and dots), its error bars and its legend entry.
    fn draw_series(&self, canvas: &Canvas, i: usize, s: &Series) -> Result<()> {
        let color = PALETTE[i % PALETTE.len()];
        // Runs of finite points, each one line.
        for run in s.points.split(|p| !finite(p)) {
            let pixels: Vec<(i32, i32)> = run.iter().map(|&(x, y)| (self.px(x), self.py(y))).collect();
            canvas.area.draw(&PathElement::new(pixels.clone(), color.stroke_width(2))).map_err(drawing)?;
            if s.points.len() <= 40 {
                for p in pixels {
                    canvas.area.draw(&Circle::new(p, 3, color.filled())).map_err(drawing)?;
                }
            }
        }
        for &(x, lo, hi) in s.spread.iter().filter(|b| bar_finite(b)) {
            let (x, top, bottom) = (self.px(x), self.py(hi), self.py(lo));
            canvas.rect((x, top), (x + 2, bottom + 1), color)?;
            canvas.rect((x - 4, top), (x + 6, top + 2), color)?;
            canvas.rect((x - 4, bottom - 1), (x + 6, bottom + 1), color)?;
        }
        let (x1, y) = (self.x1, self.y0 + 10 + i as i32 * 22);
        canvas.rect((x1 + 12, y - 1), (x1 + 32, y + 2), color)?;
        let name = fit(self.face, &self.names[i], LABEL, self.legend_w - 40);
        canvas.text(&name, (x1 + 38, y), LABEL, INK, Align::Left)
    }
}

/// Draws `series` as lines (with dots when a series has at most 40 points, and their error bars)
/// into the PNG file `path`: `title` above (the text after a `\n`, in smaller grey type under
/// it, wrapped at spaces: a note such as the machine and the seeds), `x_label` under the x axis,
/// `y_label` above the y axis, a legend at the right; `log_y` puts y on a log10 scale. Returns
/// the texts `face` has no glyphs for (drawn with '?'). Errors: no finite point, a y ≤ 0 on a
/// log scale (naming the series), a path not ending in `.png` or one that cannot be written.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    face: &Typeface,
) -> Result<Vec<String>> {
    let mut shown = Shown { face, unshown: vec![] };
    let chart = Chart::new(&mut shown, title, x_label, y_label, series, log_y)?;
    let (w, h) = SIZE;
    render(path, (w as u32, h as u32), face, |canvas: &Canvas| {
        chart.draw_frame(canvas)?;
        for (i, s) in series.iter().enumerate() {
            chart.draw_series(canvas, i, s)?;
        }
        Ok(())
    })?;
    Ok(shown.unshown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn linear_ticks_are_round_numbers_covering_the_data() {
        let a = linear_axis(1.0, 8.0);
        assert_eq!(labels(&a), ["1", "2", "3", "4", "5", "6", "7", "8"]);
        assert_eq!((a.lo, a.hi), (1.0, 8.0));
        let a = linear_axis(0.613, 0.97);
        assert_eq!(labels(&a), ["0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90", "0.95", "1.00"]);
        assert!(a.lo <= 0.613 && a.hi >= 0.97);
        // One value: a range around it.
        assert_eq!(labels(&linear_axis(3.0, 3.0)), ["2.0", "2.5", "3.0", "3.5", "4.0"]);
    }

    #[test]
    fn log_ticks_are_decades_with_2_and_5_on_short_ranges() {
        let a = log_axis(0.012, 0.9);
        assert_eq!(labels(&a), ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
        assert_eq!((a.lo, a.hi), (-2.0, 0.0));
        let a = log_axis(3e-6, 2e2);
        assert_eq!(labels(&a), ["1e-6", "1e-5", "1e-4", "0.001", "0.01", "0.1", "1", "10", "100", "1000"]);
        // 47 decades: every fourth, ending at the top decade.
        let a = log_axis(2e-47, 0.5);
        assert_eq!(labels(&a)[..3], ["1e-48", "1e-44", "1e-40"]);
        assert_eq!(labels(&a)[11..], ["1e-4", "1"]);
        assert_eq!((a.lo, a.hi), (-48.0, 0.0));
    }
}
