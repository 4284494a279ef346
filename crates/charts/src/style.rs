//! The charts' shared look: class and metric colours, fonts, grid styles, number formats,
//! and a small legend and message helpers that every chart draws the same way.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ChartError;

/// Font family of every label: the SVG viewer or the browser picks the actual face.
pub(crate) const FONT: &str = "sans-serif";
pub(crate) const TITLE_SIZE: u32 = 20;
pub(crate) const CAPTION_SIZE: u32 = 14;
pub(crate) const LABEL_SIZE: u32 = 12;
pub(crate) const DESC_SIZE: u32 = 13;

/// Eight colours that stay distinguishable for common colour-vision deficiencies
/// (Tableau 10 without its grey, which is ∅'s, and its yellow, which vanishes on white when
/// lightened). Class `i` always gets `PALETTE[i % 8]`, in every chart.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xFF, 0x9D, 0xA7),
];

/// Class ∅ (no answer) is grey everywhere: it is "no class", not one more class.
pub(crate) const NO_CLASS_COLOR: RGBColor = RGBColor(0x8C, 0x8C, 0x8C);
/// The cut-off line: near-black but not the axes' pure black, so it reads as data.
pub(crate) const CUTOFF_COLOR: RGBColor = RGBColor(0x20, 0x20, 0x20);
pub(crate) const TEXT_COLOR: RGBColor = RGBColor(0x20, 0x20, 0x20);
pub(crate) const MUTED_TEXT: RGBColor = RGBColor(0x55, 0x55, 0x55);
const GRID_LIGHT: RGBColor = RGBColor(0xEE, 0xEE, 0xEE);
const GRID_BOLD: RGBColor = RGBColor(0xD6, 0xD6, 0xD6);

/// The colour of a class index; None is ∅.
pub(crate) fn class_color(class: Option<u32>) -> RGBColor {
    match class {
        Some(idx) => PALETTE[idx as usize % PALETTE.len()],
        None => NO_CLASS_COLOR,
    }
}

/// The colour of the `idx`-th metric of `Metric::ALL` (the same cycle as classes).
pub(crate) fn series_color(idx: usize) -> RGBColor {
    PALETTE[idx % PALETTE.len()]
}

/// A light, opaque tint of `color` (35 % colour on white). Opaque rather than alpha so
/// stacked and neighbouring bars never blend into a third colour.
pub(crate) fn light(color: RGBColor) -> RGBColor {
    let tint = |channel: u8| 255 - ((255.0 - f64::from(channel)) * 0.35).round() as u8;
    RGBColor(tint(color.0), tint(color.1), tint(color.2))
}

pub(crate) fn grid_light() -> ShapeStyle {
    GRID_LIGHT.stroke_width(1)
}

pub(crate) fn grid_bold() -> ShapeStyle {
    GRID_BOLD.stroke_width(1)
}

pub(crate) fn text(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// A value with as many decimals as the axis's `span` needs to tell ticks apart.
pub(crate) fn format_value(value: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    // "-0.00" for a value that rounds to zero reads as a bug.
    let text = format!("{value:.decimals$}");
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_owned()
    } else {
        text
    }
}

/// A share in [0, 1] as a whole percentage.
pub(crate) fn format_percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// `n` and the noun, singular or plural.
pub(crate) fn count_noun(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// Class names can be whole free-text answers: cut long ones so axis labels and legends
/// keep their size.
pub(crate) fn short_label(name: &str, max_chars: usize) -> String {
    if name.chars().count() <= max_chars {
        name.to_owned()
    } else {
        let mut cut: String = name.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// An area's width and height in pixels, 0 where a layout left it inverted (plotters'
/// own `dim_in_pixel` casts a negative size to a huge `u32`).
pub(crate) fn size<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> (u32, u32) {
    let (x, y) = area.get_pixel_range();
    let extent = |range: std::ops::Range<i32>| {
        u32::try_from(range.end.saturating_sub(range.start)).unwrap_or(0)
    };
    (extent(x), extent(y))
}

/// Whether an area is big enough to hold a chart with axes; smaller ones get only their
/// title or a message (plotters' layout arithmetic misbehaves on areas of a few pixels).
pub(crate) fn fits<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    width: u32,
    height: u32,
) -> bool {
    let (w, h) = size(area);
    w >= width && h >= height
}

/// Fills the area white and draws the chart title; returns the area below it, or None
/// when there is no room for anything but the title.
pub(crate) fn titled<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<Option<DrawingArea<DB, Shift>>, ChartError> {
    area.fill(&WHITE)?;
    // The title's height is measured by the font backend (the browser's on wasm32), so
    // leave room for a generous one.
    if !fits(area, 60, 2 * TITLE_SIZE + 20) {
        return Ok(None);
    }
    let rest = area.titled(title, (FONT, TITLE_SIZE).into_font().color(&TEXT_COLOR))?;
    Ok(Some(rest))
}

/// Splits footnote rows off the bottom of `area`, draws them left-aligned, and returns the
/// area above. Empty lines are left out; a line too long for the width wraps at its " · "
/// separators. When the area is too short for them the notes are dropped, not the chart.
pub(crate) fn with_footer<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
) -> Result<DrawingArea<DB, Shift>, ChartError> {
    const LINE_HEIGHT: u32 = 18;
    let (width, height) = size(area);
    // ≈ 6.5 px per character at LABEL_SIZE, less the 12 px indent on both sides.
    let max_chars = ((f64::from(width.saturating_sub(24)) / 6.5) as usize).max(20);
    let lines: Vec<String> = lines
        .iter()
        .filter(|line| !line.is_empty())
        .flat_map(|line| wrap(line, max_chars))
        .collect();
    if lines.is_empty() {
        return Ok(area.clone());
    }
    let footer_height = LINE_HEIGHT * lines.len() as u32 + 6;
    if height < footer_height + 60 {
        return Ok(area.clone());
    }
    let (body, footer) = area.split_vertically(height - footer_height);
    let style = text(LABEL_SIZE, MUTED_TEXT, HPos::Left, VPos::Top);
    for (row, line) in lines.iter().enumerate() {
        footer.draw_text(line, &style, (12, 2 + row as i32 * LINE_HEIGHT as i32))?;
    }
    Ok(body)
}

/// `line` greedily packed into rows of at most `max_chars`, breaking only at " · ".
/// A single part longer than a row stays whole.
pub(crate) fn wrap(line: &str, max_chars: usize) -> Vec<String> {
    const SEPARATOR: &str = " · ";
    let mut rows: Vec<String> = Vec::new();
    for part in line.split(SEPARATOR) {
        match rows.last_mut() {
            Some(row)
                if row.chars().count() + SEPARATOR.chars().count() + part.chars().count()
                    <= max_chars =>
            {
                row.push_str(SEPARATOR);
                row.push_str(part);
            }
            _ => rows.push(part.to_owned()),
        }
    }
    rows
}

/// A message centred in `area`, for charts with nothing to plot.
pub(crate) fn message<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    line: &str,
) -> Result<(), ChartError> {
    let (w, h) = size(area);
    let style = text(CAPTION_SIZE + 2, MUTED_TEXT, HPos::Center, VPos::Center);
    area.draw_text(line, &style, (w as i32 / 2, h as i32 / 2))?;
    Ok(())
}

/// What a legend row shows in front of its label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Marker {
    /// A filled square of a colour (classes, bars).
    Square(RGBColor),
    /// A circle, filled or hollow (the scatter's kept / dropped).
    Circle(RGBColor, bool),
    /// A short solid or dashed line (curves, cut-offs).
    Line(RGBColor, bool),
}

/// Legend markers are drawn with this radius; data points use a smaller one so the two
/// never get mistaken for each other (the tests count data points by radius).
pub(crate) const LEGEND_RADIUS: i32 = 4;
const LEGEND_ROW: i32 = 18;

/// Draws legend rows top-down from the top-left of `area`; rows that do not fit are
/// summarised as "+N more".
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[(Marker, String)],
) -> Result<(), ChartError> {
    let (_, h) = size(area);
    let capacity = ((h as i32 - 8) / LEGEND_ROW).max(0) as usize;
    let shown = if rows.len() > capacity {
        capacity.saturating_sub(1)
    } else {
        rows.len()
    };
    let label_style = text(LABEL_SIZE, TEXT_COLOR, HPos::Left, VPos::Center);
    for (row, (marker, label)) in rows.iter().take(shown).enumerate() {
        let y = 8 + row as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        let x = 8;
        match *marker {
            Marker::Square(color) => {
                area.draw(&Rectangle::new(
                    [(x, y - 5), (x + 11, y + 6)],
                    color.filled(),
                ))?;
            }
            Marker::Circle(color, filled) => {
                let style = if filled {
                    color.filled()
                } else {
                    color.stroke_width(1)
                };
                area.draw(&Circle::new((x + 5, y), LEGEND_RADIUS, style))?;
            }
            Marker::Line(color, dashed) => {
                if dashed {
                    area.draw(&PathElement::new(
                        vec![(x - 2, y), (x + 3, y)],
                        color.stroke_width(2),
                    ))?;
                    area.draw(&PathElement::new(
                        vec![(x + 7, y), (x + 13, y)],
                        color.stroke_width(2),
                    ))?;
                } else {
                    area.draw(&PathElement::new(
                        vec![(x - 2, y), (x + 13, y)],
                        color.stroke_width(2),
                    ))?;
                }
            }
        }
        area.draw_text(label, &label_style, (x + 20, y))?;
    }
    if shown < rows.len() {
        let y = 8 + shown as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        let more = format!("+{} more", rows.len() - shown);
        area.draw_text(
            &more,
            &text(LABEL_SIZE, MUTED_TEXT, HPos::Left, VPos::Center),
            (28, y),
        )?;
    }
    Ok(())
}

/// A legend's width for its longest label (naive estimate: plotters measures text only
/// while drawing it), within `[min, max]` pixels.
pub(crate) fn legend_width(rows: &[(Marker, String)], min: u32, max: u32) -> u32 {
    let longest = rows
        .iter()
        .map(|(_, label)| label.chars().count())
        .max()
        .unwrap_or(0);
    // ≈ 6.5 px per character at LABEL_SIZE, plus the marker column and padding.
    (36 + (longest as f64 * 6.5).ceil() as u32).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_only_at_separators() {
        assert_eq!(wrap("a · b · c", 80), ["a · b · c"]);
        assert_eq!(wrap("aaaa · bbbb · cccc", 11), ["aaaa · bbbb", "cccc"]);
        assert_eq!(wrap("a very long part · b", 5), ["a very long part", "b"]);
    }

    #[test]
    fn formats_pick_decimals_from_the_span() {
        assert_eq!(format_value(0.5, 1.95), "0.50");
        assert_eq!(format_value(0.075, 0.195), "0.075");
        assert_eq!(format_value(150.0, 300.0), "150");
        assert_eq!(format_value(-0.0001, 1.0), "0.00");
        assert_eq!(short_label("a rather long class name", 8), "a rathe…");
        assert_eq!(short_label("up", 8), "up");
        assert_eq!(light(RGBColor(0, 0, 0)), RGBColor(166, 166, 166));
        assert_eq!(class_color(Some(8)), class_color(Some(0)));
    }
}
