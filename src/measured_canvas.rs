//! The canvas backend with text measured on the canvas itself. plotters measures text on
//! the web by adding a `<span>` to the page and reading its size, which forces the browser
//! to lay out the whole page — on a dashboard that has just rendered a big run, ~15 ms a
//! measurement and over 100 ms a chart. `measureText` on the canvas's own 2D context gives
//! the same box without touching the page's layout.

use std::cell::RefCell;
use std::collections::HashMap;

use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use plotters_canvas::CanvasBackend;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// [`CanvasBackend`], measuring text with the canvas's `measureText`.
pub struct MeasuredCanvas {
    inner: CanvasBackend,
    context: CanvasRenderingContext2d,
    /// Sizes already measured, by (CSS font, text): a chart measures the same labels often.
    sizes: RefCell<HashMap<(String, String), (u32, u32)>>,
    /// The colour, fill and line width the context was last set to by [`draw_circle`]:
    /// a scatter draws thousands of circles in a few styles, and setting a style parses a
    /// CSS colour. Any other drawing may change the context's styles and forgets it.
    circle_style: Option<CircleStyle>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CircleStyle {
    rgb: (u8, u8, u8),
    alpha: f64,
    fill: bool,
    width: u32,
}

impl MeasuredCanvas {
    pub fn new(canvas: HtmlCanvasElement) -> Option<Self> {
        let context = canvas
            .get_context("2d")
            .ok()??
            .dyn_into::<CanvasRenderingContext2d>()
            .ok()?;
        Some(Self {
            inner: CanvasBackend::with_canvas_object(canvas)?,
            context,
            sizes: RefCell::new(HashMap::new()),
            circle_style: None,
        })
    }
}

/// What went wrong drawing on the canvas (plotters-canvas's own error, as text: its type
/// is not public).
#[derive(Debug)]
pub struct CanvasError(String);

impl std::fmt::Display for CanvasError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for CanvasError {}

/// An inner backend's result with its error as a [`CanvasError`].
fn cast<T, E: std::error::Error + Send + Sync>(
    result: Result<T, DrawingErrorKind<E>>,
) -> Result<T, DrawingErrorKind<CanvasError>> {
    result.map_err(|error| match error {
        DrawingErrorKind::DrawingError(error) => {
            DrawingErrorKind::DrawingError(CanvasError(error.to_string()))
        }
        DrawingErrorKind::FontError(error) => DrawingErrorKind::FontError(error),
    })
}

/// The CSS font plotters-canvas draws with (`draw_text` sets the same string).
fn css_font<S: BackendTextStyle>(style: &S) -> String {
    format!(
        "{} {}px {}",
        style.style().as_str(),
        style.size(),
        style.family().as_str()
    )
}

impl DrawingBackend for MeasuredCanvas {
    type ErrorType = CanvasError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<CanvasError>> {
        cast(self.inner.ensure_prepared())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<CanvasError>> {
        cast(self.inner.present())
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.draw_pixel(point, color))
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.draw_line(from, to, style))
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.draw_rect(upper_left, bottom_right, style, fill))
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.draw_path(path, style))
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        // As plotters-canvas draws it, with the style set only when it changes.
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let wanted = CircleStyle {
            rgb: color.rgb,
            alpha: color.alpha,
            fill,
            width: style.stroke_width(),
        };
        if self.circle_style != Some(wanted) {
            let (r, g, b) = color.rgb;
            let css = format!("rgba({r},{g},{b},{})", color.alpha);
            if fill {
                self.context.set_fill_style_str(&css);
            } else {
                self.context.set_stroke_style_str(&css);
                self.context.set_line_width(f64::from(wanted.width));
            }
            self.circle_style = Some(wanted);
        }
        self.context.begin_path();
        self.context
            .arc(
                f64::from(center.0),
                f64::from(center.1),
                f64::from(radius),
                0.0,
                std::f64::consts::TAU,
            )
            .map_err(|error| {
                DrawingErrorKind::DrawingError(CanvasError(format!(
                    "cannot draw a circle: {error:?}"
                )))
            })?;
        if fill {
            self.context.fill();
        } else {
            self.context.stroke();
        }
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.fill_polygon(vert, style))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.draw_text(text, style, pos))
    }

    /// The text's advance width and its font's ascent + descent: the box a `<span>` of
    /// it would have (plotters' own measure), read from the canvas.
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<CanvasError>> {
        let font = css_font(style);
        let key = (font, text.to_owned());
        if let Some(&size) = self.sizes.borrow().get(&key) {
            return Ok(size);
        }
        self.context.save();
        self.context.set_font(&key.0);
        let metrics = self.context.measure_text(text);
        self.context.restore();
        let metrics = metrics.map_err(|error| {
            DrawingErrorKind::DrawingError(CanvasError(format!("cannot measure text: {error:?}")))
        })?;
        let height = metrics.font_bounding_box_ascent() + metrics.font_bounding_box_descent();
        // A browser without font bounding boxes gives 0: a line is about 1.2 sizes high.
        let height = if height > 0.0 {
            height
        } else {
            style.size() * 1.2
        };
        let size = (metrics.width().ceil() as u32, height.ceil() as u32);
        self.sizes.borrow_mut().insert(key, size);
        Ok(size)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        self.circle_style = None;
        cast(self.inner.blit_bitmap(pos, size, src))
    }
}
