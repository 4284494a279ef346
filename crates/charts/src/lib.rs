//! Charts of scored traces, drawn with plotters on any backend: the app draws them on a
//! canvas, tests and exports render them to SVG with [`to_svg`].
//!
//! Every chart takes the drawing area the caller made, fills it white and draws its title,
//! axes and notes into it. No data makes a chart fail: empty sets, null metrics and
//! all-equal values draw an empty or messaged chart instead. Class `i` has the same colour
//! in every chart (∅ is grey).
//!
//! Text is laid out with plotters' own font metrics: natively a naive estimate (SVG text
//! is placed by the viewer), on wasm32 the browser's, which measures text in the page's
//! DOM — so on wasm32 draw on the main thread, not in a worker.

mod counts;
mod histogram;
mod scale;
mod scatter;
mod selective;
mod style;

use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;

pub use counts::class_counts;
pub use histogram::{
    HistogramLayout, PanelLayout, PerClassChart, per_class_histograms,
    per_class_histograms_with_layout,
};
pub use scatter::{
    POINTS_PER_STEP, ScatterChart, ScatterLayout, scatter_ppl_consistency,
    scatter_ppl_consistency_with_layout,
};
pub use selective::selective_accuracy;

/// A chart drawn in steps, so a page can give each step a task of its own: the chart's
/// `begin` reads the data and draws the frame, each [`Stepwise::draw_next`] one more part.
pub trait Stepwise {
    /// Where the drawn chart put what a pointer can hit.
    type Layout;
    /// Draws the next part; false when every part has been drawn.
    fn draw_next(&mut self) -> Result<bool, ChartError>;
    /// The layout of what has been drawn.
    fn finish(self) -> Self::Layout;
}

/// Re-exported so callers name the same plotters types as the charts.
pub use plotters;

/// The CSS fonts the charts draw text in (family and sizes, bold titles aside), so a
/// browser can rasterise their glyphs before the first chart needs them.
pub fn text_fonts() -> Vec<String> {
    use style::{CAPTION_SIZE, DESC_SIZE, FONT, LABEL_SIZE, TITLE_SIZE};
    [TITLE_SIZE, CAPTION_SIZE, DESC_SIZE, LABEL_SIZE]
        .into_iter()
        .map(|size| format!("normal {size}px {FONT}"))
        .collect()
}

/// A chart could not be drawn: the drawing backend failed (never the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartError {
    message: String,
}

impl ChartError {
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ChartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chart: {}", self.message)
    }
}

impl std::error::Error for ChartError {}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        Self {
            message: error.to_string(),
        }
    }
}

/// Renders a chart into an SVG document of `width` × `height` pixels.
///
/// ```
/// # use tracesift_charts::{ChartError, to_svg};
/// let svg = to_svg(640, 400, |area| {
///     tracesift_charts::selective_accuracy(area, &tracesift_core::evaluate::EvalReport {
///         n: 0,
///         accuracy: None,
///         metrics: tracesift_core::evaluate::MetricEvals(Vec::new()),
///     })
/// })?;
/// assert!(svg.contains("no gold labels"));
/// # Ok::<(), ChartError>(())
/// ```
pub fn to_svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw(&area)?;
        // Closes the document; the backend would do it on drop too, but silently.
        area.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests;
