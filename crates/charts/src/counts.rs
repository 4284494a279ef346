//! Traces per class before and after the filter, as grouped bars.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use tracesift_core::dataset::{NO_CLASS, ScoredSet};
use tracesift_core::filter::Selection;

use crate::ChartError;
use crate::histogram::largest_classes;
use crate::style::{
    DESC_SIZE, FONT, LABEL_SIZE, TEXT_COLOR, class_color, count_noun, fits, format_percent,
    grid_bold, grid_light, light, message, short_label, size, text, titled, with_footer,
};

/// Beyond this many groups only the largest are drawn.
const MAX_GROUPS: usize = 20;
/// The x axis counts in hundredths of a class slot: integer coordinates give exact tick
/// positions (plotters has custom ticks only for axes with a default label format, which
/// its f64 axis lacks).
const SLOT: i32 = 100;
/// Half the width of a bar pair, and the gap between its bars, in x units.
const PAIR_HALF_WIDTH: i32 = 38;
const GAP: i32 = 2;

/// Grouped bars per class: all traces (light) and kept traces (strong colour), classes in
/// index order, then ∅ (when some trace has no answer) as "∅".
pub fn class_counts<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    set: &ScoredSet,
    selection: &Selection,
) -> Result<(), ChartError> {
    let Some(body) = titled(area, "Traces per class — before and after the filter")? else {
        return Ok(());
    };
    // Slot `set.classes.len()` is ∅.
    let n_slots = set.classes.len() + 1;
    let mut all = vec![0u64; n_slots];
    let mut kept = vec![0u64; n_slots];
    for (idx, trace) in set.traces.iter().enumerate() {
        let slot = trace
            .class
            .map_or(set.classes.len(), |class| class as usize);
        if let (Some(all), Some(kept)) = (all.get_mut(slot), kept.get_mut(slot)) {
            *all += 1;
            *kept += u64::from(selection.kept.get(idx).copied().unwrap_or(false));
        }
    }
    // ∅ only when it happens; a class of the map that nobody answered still shows (as 0).
    let mut candidates: Vec<usize> = (0..set.classes.len()).collect();
    if all.last().is_some_and(|&n| n > 0) {
        candidates.push(set.classes.len());
    }
    let counts: Vec<usize> = candidates
        .iter()
        .map(|&slot| all.get(slot).copied().unwrap_or(0) as usize)
        .collect();
    let groups: Vec<usize> = largest_classes(&counts, MAX_GROUPS)
        .into_iter()
        .filter_map(|position| candidates.get(position).copied())
        .collect();

    let n_traces = set.traces.len();
    let n_kept: u64 = kept.iter().sum();
    let mut summary = format!(
        "{}, {} kept",
        count_noun(n_traces, "trace", "traces"),
        n_kept
    );
    if n_traces > 0 {
        summary.push_str(&format!(
            " ({})",
            format_percent(n_kept as f64 / n_traces as f64)
        ));
    }
    if groups.len() < candidates.len() {
        summary.push_str(&format!(
            " · the {} largest of {} classes shown",
            groups.len(),
            candidates.len()
        ));
    }
    let footer = [
        "Light bars: all traces · strong bars: kept by the filter".to_owned(),
        summary,
    ];
    let body = with_footer(&body, &footer)?;
    if groups.is_empty() {
        return message(&body, "no traces to show");
    }
    if !fits(&body, 160, 120) {
        return Ok(());
    }

    let tallest = groups
        .iter()
        .filter_map(|&slot| all.get(slot))
        .copied()
        .max()
        .unwrap_or(0);
    // Room above the tallest bar for its count label.
    let y_top = (tallest + (tallest / 8).max(1)).max(1);
    let n_groups = groups.len();
    let positions: Vec<i32> = (0..n_groups as i32)
        .map(|position| position * SLOT)
        .collect();
    let names: Vec<String> = groups
        .iter()
        .map(|&slot| match set.class_name(Some(slot as u32)) {
            Some(name) => name.to_owned(),
            None => NO_CLASS.to_owned(),
        })
        .collect();
    // Labels get the characters their slot has room for (≈ 7 px each), so they never
    // run into each other.
    let (width, _) = size(&body);
    let slot_px = (width.saturating_sub(90)) as f64 / n_groups as f64;
    let max_chars = ((slot_px / 7.0).floor() as usize).clamp(3, 18);
    let x_format = |value: &i32| {
        if value % SLOT != 0 || *value < 0 {
            return String::new();
        }
        names
            .get((value / SLOT) as usize)
            .map_or_else(String::new, |name| short_label(name, max_chars))
    };

    let mut chart = ChartBuilder::on(&body)
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (-SLOT / 2..n_groups as i32 * SLOT - SLOT / 2).with_key_points(positions),
            0u64..y_top,
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(grid_light())
        .bold_line_style(grid_bold())
        .max_light_lines(1)
        .y_labels(6)
        .x_label_formatter(&x_format)
        .label_style((FONT, LABEL_SIZE).into_font().color(&TEXT_COLOR))
        .axis_desc_style((FONT, DESC_SIZE).into_font().color(&TEXT_COLOR))
        .x_desc("predicted class")
        .y_desc("traces")
        .draw()?;

    let pairs: Vec<(i32, Option<u32>, u64, u64)> = groups
        .iter()
        .enumerate()
        .map(|(position, &slot)| {
            let class = (slot < set.classes.len()).then_some(slot as u32);
            let count = |list: &[u64]| list.get(slot).copied().unwrap_or(0);
            (position as i32 * SLOT, class, count(&all), count(&kept))
        })
        .collect();
    let bars = pairs.iter().flat_map(|&(x, class, n_all, n_kept)| {
        let strong = class_color(class);
        let all_bar = (n_all > 0).then(|| {
            Rectangle::new(
                [(x - PAIR_HALF_WIDTH, 0), (x - GAP, n_all)],
                light(strong).filled(),
            )
        });
        let kept_bar = (n_kept > 0).then(|| {
            Rectangle::new(
                [(x + GAP, 0), (x + PAIR_HALF_WIDTH, n_kept)],
                strong.filled(),
            )
        });
        all_bar.into_iter().chain(kept_bar)
    });
    chart.draw_series(bars)?;

    // Counts above bars, when a bar is wide enough for its widest number.
    let bar_px = slot_px * f64::from(PAIR_HALF_WIDTH - GAP) / f64::from(SLOT);
    let digits = tallest.max(1).to_string().len() as f64;
    if bar_px >= digits * 7.0 + 2.0 {
        let style = text(LABEL_SIZE, TEXT_COLOR, HPos::Center, VPos::Bottom);
        let labels = pairs.iter().flat_map(|&(x, _, n_all, n_kept)| {
            let centre = (PAIR_HALF_WIDTH + GAP) / 2;
            [(x - centre, n_all), (x + centre, n_kept)].map(|(at, n)| {
                EmptyElement::at((at, n)) + Text::new(n.to_string(), (0, -2), style.clone())
            })
        });
        chart.draw_series(labels)?;
    }
    Ok(())
}
