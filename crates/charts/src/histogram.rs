//! Per-class histograms of one metric, kept vs dropped, with each class's cut-off.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use tracesift_core::dataset::ScoredSet;
use tracesift_core::filter::Selection;
use tracesift_core::metrics::Direction;
use tracesift_core::settings::Metric;

use crate::scale::{bin_edge, bin_index, histogram, value_range};
use crate::style::{
    CAPTION_SIZE, CUTOFF_COLOR, DESC_SIZE, FONT, LABEL_SIZE, TEXT_COLOR, class_color, count_noun,
    fits, format_value, grid_bold, grid_light, light, message, short_label, size, text, titled,
    with_footer,
};
use crate::{ChartError, Stepwise};

/// Bins per panel, over the metric's range across all classes.
const N_BINS: usize = 30;
/// Beyond this many classes only the largest get a panel (free-text answers can make
/// thousands of classes; panels of a few pixels show nothing).
const MAX_PANELS: usize = 12;

/// Per-class histograms of `metric` (one panel per class, ∅ excluded), 30 bins over the
/// metric's range across all classes (shared x-axis); bars stacked kept (strong colour,
/// bottom) and dropped (light, top) per `selection`; a dashed vertical line at each
/// class's cut-off (for a global selection, the single global cut-off on every panel).
///
/// `selection` must rank by `metric`: a group whose cut-off is not the largest `metric`
/// of its kept traces (another metric's selection) gets no line, and the footer says so.
/// Traces with a null metric are not drawn; the footer says how many.
pub fn per_class_histograms<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
    metric: Metric,
) -> Result<(), ChartError> {
    per_class_histograms_with_layout(area, set, selection, metric).map(|_| ())
}

/// Where a drawn per-class histogram put its panels, so a pointer on the drawing can be
/// read back as a class and a metric value (the app's cut-off drag and bin clicks).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramLayout {
    /// The x axis's metric range, shared by every panel.
    pub range: (f64, f64),
    pub n_bins: usize,
    pub panels: Vec<PanelLayout>,
}

/// One class's plotting area, in the drawing's pixels (right and bottom exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct PanelLayout {
    pub class: u32,
    pub x_pixels: (i32, i32),
    pub y_pixels: (i32, i32),
    /// The cut-off line drawn on this panel, if one was.
    pub cutoff: Option<f64>,
}

impl HistogramLayout {
    /// The class and metric value under pixel `(x, y)`, if it is on a panel's plot.
    pub fn locate(&self, x: i32, y: i32) -> Option<(u32, f64)> {
        let panel = self.panels.iter().find(|panel| {
            (panel.x_pixels.0..panel.x_pixels.1).contains(&x)
                && (panel.y_pixels.0..panel.y_pixels.1).contains(&y)
        })?;
        Some((panel.class, self.value_at(panel.class, x)?))
    }

    /// The metric value at pixel column `x` of `class`'s panel, clamped to the axis (a
    /// drag that leaves the panel stops at its edge).
    pub fn value_at(&self, class: u32, x: i32) -> Option<f64> {
        let panel = self.panels.iter().find(|panel| panel.class == class)?;
        let width = f64::from(panel.x_pixels.1 - panel.x_pixels.0).max(1.0);
        let share = (f64::from(x - panel.x_pixels.0) / width).clamp(0.0, 1.0);
        Some(self.range.0 + share * (self.range.1 - self.range.0))
    }

    /// Each panel's drawn cut-off line as (class, pixel column).
    pub fn cutoff_pixels(&self) -> Vec<(u32, i32)> {
        self.panels
            .iter()
            .filter_map(|panel| Some((panel.class, self.pixel_of(panel.class, panel.cutoff?)?)))
            .collect()
    }

    /// The pixel column of `value` on `class`'s panel.
    pub fn pixel_of(&self, class: u32, value: f64) -> Option<i32> {
        let panel = self.panels.iter().find(|panel| panel.class == class)?;
        let span = self.range.1 - self.range.0;
        if span <= 0.0 {
            return None;
        }
        let share = (value - self.range.0) / span;
        let width = f64::from(panel.x_pixels.1 - panel.x_pixels.0);
        Some(panel.x_pixels.0 + (share * width).round() as i32)
    }

    /// The index of the bin that counted `value` (the same rule as the bars', so a
    /// bin's traces are exactly those with this index).
    pub fn bin_index_of(&self, value: f64) -> usize {
        bin_index(value, self.range, self.n_bins)
    }

    /// Bin `index`'s `[low, high)` edges (the last bin includes its high).
    pub fn bin_edges(&self, index: usize) -> (f64, f64) {
        (
            bin_edge(index, self.range, self.n_bins),
            bin_edge(index + 1, self.range, self.n_bins),
        )
    }
}

/// [`per_class_histograms`], returning where its panels are (empty when none was drawn).
pub fn per_class_histograms_with_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
    metric: Metric,
) -> Result<HistogramLayout, ChartError> {
    let mut chart = PerClassChart::begin(area, set, selection, metric)?;
    while chart.draw_next()? {}
    Ok(chart.finish())
}

/// [`per_class_histograms`] drawn a panel at a time, so a page can draw each panel in a
/// task of its own: [`PerClassChart::begin`] reads the traces and draws the title and the
/// footer, each [`Stepwise::draw_next`] one class's panel.
pub struct PerClassChart<DB: DrawingBackend> {
    metric: Metric,
    /// Panels still to draw, in order: where, which class, its name, its (value, kept)
    /// pairs and its cut-off.
    panels: std::vec::IntoIter<Panel<DB>>,
    layout: HistogramLayout,
}

struct Panel<DB: DrawingBackend> {
    cell: DrawingArea<DB, Shift>,
    class: u32,
    name: String,
    values: Vec<(f64, bool)>,
    cutoff: Option<f64>,
}

impl<DB: DrawingBackend> PerClassChart<DB> {
    /// Reads the traces, draws the title and the footer, and lays out the panels.
    pub fn begin(
        area: &DrawingArea<DB, Shift>,
        set: &ScoredSet,
        selection: &Selection,
        metric: Metric,
    ) -> Result<Self, ChartError> {
        let mut chart = Self {
            metric,
            panels: Vec::new().into_iter(),
            layout: HistogramLayout {
                n_bins: N_BINS,
                ..HistogramLayout::default()
            },
        };
        let title = format!("{} per class — kept vs dropped", metric.name());
        let Some(body) = titled(area, &title)? else {
            return Ok(chart);
        };
        let is_kept = |idx: usize| selection.kept.get(idx).copied().unwrap_or(false);

        // Per class: (value, kept) of its scored traces; nulls and ∅ are only counted.
        let mut per_class: Vec<Vec<(f64, bool)>> = vec![Vec::new(); set.classes.len()];
        let mut n_traces_per_class = vec![0usize; set.classes.len()];
        let (mut n_null, mut n_no_class) = (0usize, 0usize);
        for (idx, trace) in set.traces.iter().enumerate() {
            let Some(class) = trace.class else {
                n_no_class += 1;
                continue;
            };
            let (Some(values), Some(n_traces)) = (
                per_class.get_mut(class as usize),
                n_traces_per_class.get_mut(class as usize),
            ) else {
                continue;
            };
            *n_traces += 1;
            // A non-finite score cannot happen (SPEC: finite or null); were one to come, it
            // is treated as null rather than breaking the axis.
            match trace.metric(metric).filter(|value| value.is_finite()) {
                Some(value) => values.push((value, is_kept(idx))),
                None => n_null += 1,
            }
        }

        let (cutoffs, mismatched) = cutoffs(set, selection, metric);
        let panels = largest_classes(&n_traces_per_class, MAX_PANELS);

        let mut notes = Vec::new();
        if n_null > 0 {
            notes.push(format!(
                "{} without a {} score not drawn",
                count_noun(n_null, "trace", "traces"),
                metric.name()
            ));
        }
        if n_no_class > 0 {
            notes.push(format!(
                "{} with no answer (∅) not shown",
                count_noun(n_no_class, "trace", "traces")
            ));
        }
        if panels.len() < set.classes.len() {
            notes.push(format!(
                "the {} largest of {} classes shown",
                panels.len(),
                set.classes.len()
            ));
        }
        if mismatched {
            notes.push(format!(
                "cut-off not shown where the selection ranks by another metric than {}",
                metric.name()
            ));
        }
        let footer = [
            "Strong bars: kept · light bars: dropped · dashed line: cut-off (last kept score)"
                .to_owned(),
            notes.join(" · "),
        ];
        let body = with_footer(&body, &footer)?;

        if set.classes.is_empty() {
            message(&body, "no classes to show")?;
            return Ok(chart);
        }
        // One x range for every panel, so their positions compare; cut-offs are included so
        // a global cut-off set by a ∅ trace still lies on the axis.
        let range = value_range(
            panels
                .iter()
                .flat_map(|&class| {
                    per_class
                        .get(class)
                        .into_iter()
                        .flatten()
                        .map(|&(value, _)| value)
                })
                .chain(
                    panels
                        .iter()
                        .filter_map(|&class| cutoffs.get(class).copied().flatten()),
                ),
        );
        let Some(range) = range else {
            message(&body, &format!("no {} scores to show", metric.name()))?;
            return Ok(chart);
        };
        chart.layout.range = range;

        let (rows, cols) = grid(panels.len());
        let cells = body.split_evenly((rows, cols));
        chart.panels = cells
            .into_iter()
            .zip(&panels)
            .map(|(cell, &class)| Panel {
                cell,
                class: class as u32,
                name: set.class_name(Some(class as u32)).unwrap_or("").to_owned(),
                values: per_class
                    .get_mut(class)
                    .map(std::mem::take)
                    .unwrap_or_default(),
                cutoff: cutoffs.get(class).copied().flatten(),
            })
            .collect::<Vec<_>>()
            .into_iter();
        Ok(chart)
    }
}

impl<DB: DrawingBackend> Stepwise for PerClassChart<DB> {
    type Layout = HistogramLayout;

    /// Draws the next class's panel; false when every panel has been drawn.
    fn draw_next(&mut self) -> Result<bool, ChartError> {
        let Some(next) = self.panels.next() else {
            return Ok(false);
        };
        let drawn = panel(
            &next.cell,
            self.metric,
            self.layout.range,
            next.class,
            &next.name,
            &next.values,
            next.cutoff,
        )?;
        self.layout.panels.extend(drawn);
        Ok(self.panels.len() > 0)
    }

    /// Where the panels drawn so far are.
    fn finish(self) -> HistogramLayout {
        self.layout
    }
}

/// One class's histogram.
fn panel<DB: DrawingBackend>(
    cell: &DrawingArea<DB, Shift>,
    metric: Metric,
    range: (f64, f64),
    class: u32,
    name: &str,
    values: &[(f64, bool)],
    cutoff: Option<f64>,
) -> Result<Option<PanelLayout>, ChartError> {
    let n_kept = values.iter().filter(|(_, kept)| *kept).count();
    let suffix = format!(" — {} of {} kept", n_kept, values.len());
    // The name gets what the panel's width leaves (≈ 7.5 px per caption character).
    let (width, _) = size(cell);
    let budget = (f64::from(width) / 7.5) as usize;
    let caption = format!(
        "{}{suffix}",
        short_label(name, budget.saturating_sub(suffix.chars().count()).max(4))
    );
    if !fits(cell, 150, 120) {
        let style = text(LABEL_SIZE, TEXT_COLOR, HPos::Left, VPos::Top);
        cell.draw_text(&caption, &style, (4, 4))?;
        return Ok(None);
    }
    let bins = histogram(values.iter().copied(), range, N_BINS);
    let tallest = bins
        .iter()
        .map(|[kept, dropped]| kept.saturating_add(*dropped))
        .max()
        .unwrap_or(0);
    // Headroom above the tallest bar for the cut-off label; at least 1 so an empty panel
    // still has an axis.
    let y_top = (tallest.saturating_add((tallest / 8).max(1))).max(1);

    let mut chart = ChartBuilder::on(cell)
        .caption(caption, (FONT, CAPTION_SIZE).into_font().color(&TEXT_COLOR))
        .margin(8)
        .margin_right(14)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(range.0..range.1, 0u32..y_top)?;
    let span = range.1 - range.0;
    let x_format = |value: &f64| format_value(*value, span);
    chart
        .configure_mesh()
        .light_line_style(grid_light())
        .bold_line_style(grid_bold())
        .max_light_lines(1)
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&x_format)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
        .x_desc(metric.name())
        .y_desc("traces")
        .draw()?;

    let strong = class_color(Some(class));
    let pale = light(strong);
    let bars = bins.iter().enumerate().flat_map(|(idx, &[kept, dropped])| {
        let (x0, x1) = (
            bin_edge(idx, range, N_BINS),
            bin_edge(idx + 1, range, N_BINS),
        );
        // Kept at the bottom so the kept mass reads off the axis directly.
        let kept_bar = (kept > 0).then(|| bar([(x0, 0), (x1, kept)], strong.filled()));
        let dropped_bar = (dropped > 0).then(|| {
            bar(
                [(x0, kept), (x1, kept.saturating_add(dropped))],
                pale.filled(),
            )
        });
        kept_bar.into_iter().chain(dropped_bar)
    });
    chart.draw_series(bars)?;

    if let Some(cutoff) = cutoff {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(cutoff, 0u32), (cutoff, y_top)],
            6,
            4,
            CUTOFF_COLOR.stroke_width(2),
        )))?;
        // Label on the side with more room, so it never runs off the panel.
        let on_right = cutoff <= range.0 + span / 2.0;
        let (anchor, dx) = if on_right {
            (HPos::Left, 5)
        } else {
            (HPos::Right, -5)
        };
        let label = format!("cut-off {}", format_value(cutoff, span / 10.0));
        chart.draw_series(std::iter::once(
            EmptyElement::at((cutoff, y_top))
                + Text::new(
                    label,
                    (dx, 2),
                    text(LABEL_SIZE, CUTOFF_COLOR, anchor, VPos::Top),
                ),
        ))?;
    }
    if values.is_empty() {
        let plot = chart.plotting_area().strip_coord_spec();
        message(&plot, "no scores")?;
    }
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    Ok(Some(PanelLayout {
        class,
        x_pixels: (x_pixels.start, x_pixels.end),
        y_pixels: (y_pixels.start, y_pixels.end),
        cutoff,
    }))
}

/// A bar with a 1-pixel gap on its left, so neighbouring bins stay apart.
fn bar(corners: [(f64, u32); 2], style: ShapeStyle) -> Rectangle<(f64, u32)> {
    let mut rect = Rectangle::new(corners, style);
    rect.set_margin(0, 0, 1, 0);
    rect
}

/// The cut-off to draw per class index, and whether some group's cut-off was left out
/// because it does not belong to `metric`.
///
/// A group's cut-off is the metric of its last kept trace, and the filter keeps most
/// trustworthy first, so it is the least trustworthy kept value — the largest uncertainty,
/// or the smallest confidence — exactly when the selection ranked by `metric`
/// ([`Selection`] does not say).
fn cutoffs(set: &ScoredSet, selection: &Selection, metric: Metric) -> (Vec<Option<f64>>, bool) {
    let mut per_class = vec![None; set.classes.len()];
    let mut mismatched = false;
    let global = selection.groups.iter().any(|group| group.class.is_none());
    // One pass over the kept traces: per class (or for the one global group), the largest
    // uncertainty kept and whether every kept trace had a score.
    let n_slots = if global { 1 } else { set.classes.len() };
    let mut largest: Vec<Option<f64>> = vec![None; n_slots];
    let mut all_scored = vec![true; n_slots];
    for (idx, trace) in set.traces.iter().enumerate() {
        if !selection.kept.get(idx).copied().unwrap_or(false) {
            continue;
        }
        let slot = if global {
            0
        } else {
            match trace.class {
                Some(class) => class as usize,
                None => continue,
            }
        };
        let (Some(largest), Some(all_scored)) = (largest.get_mut(slot), all_scored.get_mut(slot))
        else {
            continue;
        };
        match metric.uncertainty(trace) {
            Some(value) => *largest = Some(largest.map_or(value, |l: f64| l.max(value))),
            None => *all_scored = false,
        }
    }
    for group in &selection.groups {
        let Some(cutoff) = group.cutoff.filter(|cutoff| cutoff.is_finite()) else {
            continue;
        };
        // Compared as uncertainties (a confidence negated), which the filter sorts ascending.
        let cutoff_uncertainty = match metric.direction() {
            Direction::Uncertainty => cutoff,
            Direction::Confidence => -cutoff,
        };
        let slot = if global {
            Some(0)
        } else {
            group.class.map(|class| class as usize)
        };
        let matches = slot.is_some_and(|slot| {
            all_scored.get(slot).copied().unwrap_or(false)
                && largest.get(slot).copied().flatten() == Some(cutoff_uncertainty)
        });
        if !matches {
            mismatched = true;
            continue;
        }
        match group.class {
            None => per_class.iter_mut().for_each(|slot| *slot = Some(cutoff)),
            Some(class) => {
                if let Some(slot) = per_class.get_mut(class as usize) {
                    *slot = Some(cutoff);
                }
            }
        }
    }
    (per_class, mismatched)
}

/// Indices of the (at most `max`) classes with the most traces, in class order; ties go
/// to the lower index.
pub(crate) fn largest_classes(counts: &[usize], max: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    if order.len() > max {
        order.sort_by(|&a, &b| counts.get(b).cmp(&counts.get(a)).then(a.cmp(&b)));
        order.truncate(max);
        order.sort_unstable();
    }
    order
}

/// Rows and columns for `n` panels: one row up to 3, then near-square, wider than tall.
fn grid(n: usize) -> (usize, usize) {
    if n <= 3 {
        return (1, n.max(1));
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    (n.div_ceil(cols), cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_fits_every_panel() {
        assert_eq!(grid(0), (1, 1));
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(3), (1, 3));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (2, 3));
        assert_eq!(grid(7), (3, 3));
        assert_eq!(grid(12), (3, 4));
    }

    #[test]
    fn largest_classes_keeps_class_order() {
        assert_eq!(largest_classes(&[5, 1, 9, 1], 10), vec![0, 1, 2, 3]);
        assert_eq!(largest_classes(&[5, 1, 9, 1], 2), vec![0, 2]);
        assert_eq!(largest_classes(&[1, 1, 1], 2), vec![0, 1]);
    }
}
