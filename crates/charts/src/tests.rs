//! Renders every chart of a small hand-computed set to SVG and checks what the SVG holds:
//! titles, class names, the exact number of bars and points, cut-off lines, legends, and
//! that no data (empty, one trace, all-null, all-equal) makes a chart fail.

use plotters::prelude::RGBColor;
use tracesift_core::dataset::{ScoredSet, score_bytes};
use tracesift_core::evaluate::{EvalReport, evaluate};
use tracesift_core::filter::{FilterOptions, Selection, select};
use tracesift_core::settings::{Metric, Scope, Settings};

use super::*;
use crate::style::{CUTOFF_COLOR, class_color, light, series_color};

/// Three questions of three traces and one of a single trace; classes up (0), down (1),
/// none (2) by first appearance; t9 has no answer (∅). With answer similarity,
/// consistency = share of the other two traces with the same class, and the default
/// metric cocoa_ppl = ppl × (1 − consistency):
///
/// | trace | q  | class | ppl  | consistency | cocoa_ppl | label |
/// |-------|----|-------|------|-------------|-----------|-------|
/// | t1    | q1 | up    | 0.15 | 0.5         | 0.075     | up    |
/// | t2    | q1 | up    | 0.5  | 0.5         | 0.25      |       |
/// | t3    | q1 | down  | 1.5  | 0           | 1.5       | up    |
/// | t4    | q2 | down  | 0.3  | 0.5         | 0.15      | down  |
/// | t5    | q2 | down  | 0.5  | 0.5         | 0.25      |       |
/// | t6    | q2 | none  | 2.0  | 0           | 2.0       | none  |
/// | t7    | q3 | none  | 0.1  | 0.5         | 0.05      |       |
/// | t8    | q3 | none  | 0.9  | 0.5         | 0.45      | none  |
/// | t9    | q3 | ∅     | 3.0  | 0           | 3.0       | none  |
/// | t10   | q4 | up    | 0.2  | null        | null      | up    |
///
/// Keep 10 % per class: ⌈0.1·n⌉ = 1 of up {t1, t2}, down {t3, t4, t5}, none {t6, t7, t8}
/// → t1, t4, t7 kept; cut-offs 0.075, 0.15, 0.05.
const SMALL: &str = r#"{"question_id":"q1","trace_id":"t1","answer":"up","logprobs":[-0.1,-0.2],"label":"up"}
{"question_id":"q1","trace_id":"t2","answer":"up","logprobs":[-0.5,-0.5]}
{"question_id":"q1","trace_id":"t3","answer":"down","logprobs":[-1.0,-2.0],"label":"up"}
{"question_id":"q2","trace_id":"t4","answer":"down","logprobs":[-0.3],"label":"down"}
{"question_id":"q2","trace_id":"t5","answer":"down","logprobs":[-0.4,-0.6]}
{"question_id":"q2","trace_id":"t6","answer":"none","logprobs":[-2.0],"label":"none"}
{"question_id":"q3","trace_id":"t7","answer":"none","logprobs":[-0.05,-0.15]}
{"question_id":"q3","trace_id":"t8","answer":"none","logprobs":[-0.9],"label":"none"}
{"question_id":"q3","trace_id":"t9","text":"I cannot tell.","logprobs":[-3.0],"label":"none"}
{"question_id":"q4","trace_id":"t10","answer":"up","logprobs":[-0.2],"label":"up"}
"#;

fn scored(jsonl: &str) -> ScoredSet {
    score_bytes(&Settings::default(), &[("x.jsonl", jsonl.as_bytes())]).unwrap()
}

fn options(scope: Scope) -> FilterOptions {
    FilterOptions {
        scope,
        ..FilterOptions::from_settings(&Settings::default()).unwrap()
    }
}

fn small() -> (ScoredSet, Selection, EvalReport) {
    let set = scored(SMALL);
    let selection = select(&set, &options(Scope::PerClass));
    let report = evaluate(&set, &options(Scope::PerClass));
    (set, selection, report)
}

fn hex(color: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2)
}

/// The SVG's elements of one tag (`<rect .../>` and so on), as their attribute text.
fn elements<'a>(svg: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    svg.match_indices(&open)
        .filter_map(|(start, _)| {
            svg.get(start..)
                .and_then(|rest| rest.find('>').and_then(|end| rest.get(..end)))
        })
        .collect()
}

fn count_with(svg: &str, tag: &str, attribute: &str) -> usize {
    elements(svg, tag)
        .iter()
        .filter(|element| element.contains(attribute))
        .count()
}

/// The text content of every `<text>` element.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once('>')
                .and_then(|(_, body)| body.split_once("</text>"))
        })
        .map(|(content, _)| content.trim())
        .collect()
}

fn render(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), ChartError>,
) -> String {
    to_svg(960, 420, draw).unwrap()
}

#[test]
fn the_small_set_is_what_the_table_says() {
    let (set, selection, report) = small();
    assert_eq!(set.classes, ["up", "down", "none"]);
    let cocoa: Vec<Option<f64>> = set
        .traces
        .iter()
        .map(|t| t.metric(Metric::CocoaPpl))
        .collect();
    let expected = [
        Some(0.075),
        Some(0.25),
        Some(1.5),
        Some(0.15),
        Some(0.25),
        Some(2.0),
        Some(0.05),
        Some(0.45),
        Some(3.0),
        None,
    ];
    for (got, want) in cocoa.iter().zip(expected) {
        assert_eq!(got.is_some(), want.is_some());
        if let (Some(got), Some(want)) = (got, want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
    let kept: Vec<usize> = (0..set.traces.len())
        .filter(|&idx| selection.kept[idx])
        .collect();
    assert_eq!(kept, [0, 3, 6]);
    assert_eq!(report.n, 7);
}

#[test]
fn histograms_draw_each_class_its_bars_and_its_cut_off() {
    let (set, selection, _) = small();
    let svg = render(|area| per_class_histograms(area, &set, &selection, Metric::CocoaPpl));
    let texts = texts(&svg);
    assert!(
        texts.contains(&"cocoa_ppl per class — kept vs dropped"),
        "{texts:?}"
    );
    for caption in [
        "up — 1 of 2 kept",
        "down — 1 of 3 kept",
        "none — 1 of 3 kept",
    ] {
        assert!(texts.contains(&caption), "{caption} in {texts:?}");
    }
    // ∅ (t9) gets no panel; t10's null score is counted in the footer.
    assert!(!texts.iter().any(|t| t.starts_with("∅")), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("1 trace without a cocoa_ppl score not drawn")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("1 trace with no answer (∅) not shown")),
        "{texts:?}"
    );

    // 30 bins over [0.05, 2.0], width 0.065; bin = ⌊(v − 0.05) / 0.065⌋, the max in bin 29:
    // up:   0.075 → 0 (kept), 0.25 → 3
    // down: 0.15 → 1 (kept), 0.25 → 3, 1.5 → 22
    // none: 0.05 → 0 (kept), 0.45 → 6, 2.0 → 29
    // so one strong bar per class and 1, 2, 2 light ones: 8 bars, none stacked.
    for (class, n_light) in [(0, 1), (1, 2), (2, 2)] {
        let strong = class_color(Some(class));
        assert_eq!(
            count_with(&svg, "rect", &format!("fill=\"{}\"", hex(strong))),
            1,
            "class {class}"
        );
        assert_eq!(
            count_with(&svg, "rect", &format!("fill=\"{}\"", hex(light(strong)))),
            n_light,
            "class {class}"
        );
    }
    // (The 2.0 bar counts only because the maximum goes into bin 29: a 31st bin would
    // have been dropped, leaving "none" one light bar.)
    // One dashed cut-off per panel, each labelled with its value.
    for label in ["cut-off 0.075", "cut-off 0.150", "cut-off 0.050"] {
        assert!(texts.contains(&label), "{label} in {texts:?}");
    }
    let dashes = count_with(
        &svg,
        "polyline",
        &format!("stroke=\"{}\"", hex(CUTOFF_COLOR)),
    );
    assert!(
        dashes >= 3 * 5,
        "dashed cut-offs are several segments each, got {dashes}"
    );
}

#[test]
fn a_global_selection_draws_its_one_cut_off_on_every_panel() {
    let set = scored(SMALL);
    let selection = select(&set, &options(Scope::Global));
    // Global 10 % of the 9 scored traces: ⌈0.9⌉ = 1, t7 at 0.05.
    assert_eq!(selection.groups.len(), 1);
    let svg = render(|area| per_class_histograms(area, &set, &selection, Metric::CocoaPpl));
    assert_eq!(
        texts(&svg)
            .iter()
            .filter(|t| **t == "cut-off 0.050")
            .count(),
        3
    );
}

#[test]
fn a_selection_by_another_metric_gets_no_cut_off() {
    let (set, selection, _) = small();
    // The cocoa_ppl selection's cut-offs are not ppl values of its kept traces.
    let svg = render(|area| per_class_histograms(area, &set, &selection, Metric::Ppl));
    let texts = texts(&svg);
    assert!(
        texts.contains(&"ppl per class — kept vs dropped"),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.starts_with("cut-off ")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("cut-off not shown")),
        "{texts:?}"
    );
    // ppl is never null here (t10 has one), so no null note.
    assert!(
        !texts.iter().any(|t| t.contains("score not drawn")),
        "{texts:?}"
    );
}

#[test]
fn class_counts_draw_all_and_kept_per_class_and_no_class() {
    let (set, selection, _) = small();
    let svg = render(|area| class_counts(area, &set, &selection));
    let texts = texts(&svg);
    assert!(
        texts.contains(&"Traces per class — before and after the filter"),
        "{texts:?}"
    );
    for name in ["up", "down", "none", "∅"] {
        assert!(texts.contains(&name), "{name} in {texts:?}");
    }
    // up {t1, t2, t10}, down {t3, t4, t5}, none {t6, t7, t8}: 3 all, 1 kept each;
    // ∅ {t9}: 1 all, 0 kept (no bar) → 3 · 2 + 1 = 7 bars.
    for class in [Some(0), Some(1), Some(2)] {
        let strong = class_color(class);
        assert_eq!(
            count_with(&svg, "rect", &format!("fill=\"{}\"", hex(light(strong)))),
            1
        );
        assert_eq!(
            count_with(&svg, "rect", &format!("fill=\"{}\"", hex(strong))),
            1
        );
    }
    let no_class = class_color(None);
    assert_eq!(
        count_with(&svg, "rect", &format!("fill=\"{}\"", hex(light(no_class)))),
        1
    );
    assert_eq!(
        count_with(&svg, "rect", &format!("fill=\"{}\"", hex(no_class))),
        0
    );
    // Count labels, after the class names: all then kept per class, ∅ last (0 kept).
    let after_names = texts
        .iter()
        .position(|t| *t == "∅")
        .map_or(&[][..], |at| &texts[at + 1..]);
    assert_eq!(
        after_names,
        ["3", "1", "3", "1", "3", "1", "1", "0"],
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("10 traces, 3 kept (30 %)")),
        "{texts:?}"
    );
}

#[test]
fn scatter_draws_every_scored_trace_filled_when_kept() {
    let (set, selection, _) = small();
    let svg = render(|area| scatter_ppl_consistency(area, &set, &selection));
    let texts = texts(&svg);
    assert!(
        texts.contains(&"ppl vs consistency — kept vs dropped"),
        "{texts:?}"
    );
    for name in ["up", "down", "none", "∅ (no answer)", "kept", "dropped"] {
        assert!(texts.contains(&name), "{name} in {texts:?}");
    }
    // t1..t9 have ppl and consistency (t10 has no consistency): 9 points, radius 3;
    // t1, t4, t7 kept (filled), the other 6 hollow.
    let points: Vec<&str> = elements(&svg, "circle")
        .into_iter()
        .filter(|c| c.contains("r=\"3\""))
        .collect();
    assert_eq!(points.len(), 9);
    assert_eq!(
        points
            .iter()
            .filter(|c| c.contains("fill=\"none\""))
            .count(),
        6
    );
    // Kept points are filled with their class colour: up, down, none one each.
    for class in [0, 1, 2] {
        let fill = format!("fill=\"{}\"", hex(class_color(Some(class))));
        assert_eq!(
            points.iter().filter(|c| c.contains(&fill)).count(),
            1,
            "class {class}"
        );
    }
    // t9 (∅) is a hollow grey circle.
    let grey = format!("stroke=\"{}\"", hex(class_color(None)));
    assert_eq!(points.iter().filter(|c| c.contains(&grey)).count(), 1);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("9 traces plotted · 1 trace without ppl or consistency skipped")),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.contains("subsample")), "{texts:?}");
}

#[test]
fn a_large_scatter_is_subsampled_and_says_so() {
    // 50,001 questions of one trace each have no consistency; give them two traces each:
    // 2 × 25,001 = 50,002 points → stride ⌈50,002 / 2,000⌉ = 26 → 1,924 drawn.
    let mut jsonl = String::new();
    for q in 0..25_001 {
        for s in 0..2 {
            let lp = -0.01 * f64::from((q * 2 + s) % 97 + 1);
            jsonl.push_str(&format!(
                "{{\"question_id\":\"q{q}\",\"answer\":\"{}\",\"logprobs\":[{lp}]}}\n",
                ["up", "down"][(q % 2) as usize]
            ));
        }
    }
    let set = scored(&jsonl);
    let selection = select(&set, &options(Scope::PerClass));
    let svg = to_svg(800, 500, |area| {
        scatter_ppl_consistency(area, &set, &selection)
    })
    .unwrap();
    let points = elements(&svg, "circle")
        .into_iter()
        .filter(|c| c.contains("r=\"3\""))
        .count();
    assert_eq!(points, 1_924);
    assert!(
        texts(&svg)
            .iter()
            .any(|t| t.contains("subsample: every 26th point drawn (1924 of 50002)"))
    );
}

#[test]
fn a_scatter_drawn_in_steps_draws_a_slice_of_points_a_step() {
    // 1,000 questions of two traces: 2,000 points, every one drawn (no subsample).
    let mut jsonl = String::new();
    for q in 0..1_000 {
        for s in 0..2 {
            let lp = -0.01 * f64::from((q * 2 + s) % 97 + 1);
            jsonl.push_str(&format!(
                "{{\"question_id\":\"q{q}\",\"answer\":\"{}\",\"logprobs\":[{lp}]}}\n",
                ["up", "down"][(q % 3 % 2) as usize]
            ));
        }
    }
    let set = scored(&jsonl);
    let selection = select(&set, &options(Scope::PerClass));
    let n_kept = selection.kept.iter().filter(|kept| **kept).count();
    assert!(n_kept > 0);
    let points = |svg: &str| {
        let circles: Vec<String> = elements(svg, "circle")
            .into_iter()
            .filter(|c| c.contains("r=\"3\""))
            .map(str::to_owned)
            .collect();
        circles
    };
    // After `begin`: the frame, axes and legend, no point.
    let frame = to_svg(900, 360, |area| {
        ScatterChart::begin(area, &set, &selection).map(|_| ())
    })
    .unwrap();
    assert!(points(&frame).is_empty());
    assert!(texts(&frame).contains(&"dropped"));
    // Each step adds the next slice; the last step says so.
    for steps in [1, 3] {
        let mut more = Vec::new();
        let svg = to_svg(900, 360, |area| {
            let mut chart = ScatterChart::begin(area, &set, &selection)?;
            for _ in 0..steps {
                more.push(chart.draw_next()?);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(points(&svg).len(), steps * POINTS_PER_STEP);
        assert!(more.iter().all(|more| *more));
        // Dropped points come first, so the kept ones are drawn over them.
        assert!(points(&svg).iter().all(|c| c.contains("fill=\"none\"")));
    }
    let mut steps = 0;
    let mut layout = None;
    let stepped = to_svg(900, 360, |area| {
        let mut chart = ScatterChart::begin(area, &set, &selection)?;
        steps = 1;
        while chart.draw_next()? {
            steps += 1;
        }
        layout = chart.finish();
        Ok(())
    })
    .unwrap();
    assert_eq!(steps, 2_000_usize.div_ceil(POINTS_PER_STEP));
    let circles = points(&stepped);
    assert_eq!(circles.len(), 2_000);
    let filled = circles
        .iter()
        .filter(|c| !c.contains("fill=\"none\""))
        .count();
    assert_eq!(filled, n_kept);
    assert!(
        circles[2_000 - n_kept..]
            .iter()
            .all(|c| !c.contains("fill=\"none\""))
    );
    // The one-call chart is the same drawing.
    let mut whole_layout = None;
    let whole = to_svg(900, 360, |area| {
        whole_layout = scatter_ppl_consistency_with_layout(area, &set, &selection)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(stepped, whole);
    assert_eq!(layout, whole_layout);
    assert!(layout.is_some());
}

/// The first `n` metrics of a report (the app draws the curves of a chosen few).
fn first_metrics(report: &EvalReport, n: usize) -> EvalReport {
    let mut report = report.clone();
    report.metrics.0.truncate(n);
    report
}

/// SPEC §5's seven metrics, the first of the table.
const PAPER_METRICS: usize = 7;

#[test]
fn selective_accuracy_has_a_line_and_a_legend_entry_per_metric() {
    let (_, _, report) = small();
    let report = first_metrics(&report, PAPER_METRICS);
    let svg = render(|area| selective_accuracy(area, &report));
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|t| t.starts_with("Selective accuracy")),
        "{texts:?}"
    );
    for (metric, _) in &report.metrics.0 {
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with(&format!("{} · ", metric.name()))),
            "{metric} in {texts:?}"
        );
    }
    // No trace has top_logprobs: mte and cocoa_mte are null everywhere and have no curve.
    assert!(texts.contains(&"mte · no scores"), "{texts:?}");
    assert!(texts.contains(&"cocoa_mte · no scores"), "{texts:?}");
    // 7 labelled traces, 5 right (t3 says down for up, t9 has no answer): baseline 71 %.
    assert!(texts.contains(&"all labelled · 71 %"), "{texts:?}");
    // inconsistency and cocoa_ppl rank the labelled traces alike (ppl only breaks the ties
    // of equal consistency, in the same order): cocoa_ppl's curve is the same, drawn dashed
    // over it, and its legend says so.
    assert!(
        texts.contains(&"cocoa_ppl · AUROC 0.88 (= inconsistency)"),
        "{texts:?}"
    );
    // Every other metric with scores draws 20 dots (5 %..100 %, no gaps: k ≥ 1 from 5 % on
    // with n = 7 for msp/ppl and n = 6 for the consistency-based ones).
    for (idx, metric) in Metric::ALL.iter().take(PAPER_METRICS).enumerate() {
        let fill = format!("fill=\"{}\"", hex(series_color(idx)));
        let dots = elements(&svg, "circle")
            .into_iter()
            .filter(|c| c.contains(&fill) && c.contains("r=\"3\""))
            .count();
        let want = if matches!(metric, Metric::Mte | Metric::CocoaMte | Metric::CocoaPpl) {
            0
        } else {
            20
        };
        assert_eq!(dots, want, "{metric}");
    }
    let dashes = count_with(
        &svg,
        "polyline",
        &format!("stroke=\"{}\"", hex(series_color(5))),
    );
    assert!(dashes > 5, "cocoa_ppl is dashed: {dashes} segments");
}

#[test]
fn selective_accuracy_without_labels_says_so() {
    let unlabelled: String = SMALL
        .lines()
        .map(|line| {
            line.replace(",\"label\":\"up\"", "")
                .replace(",\"label\":\"down\"", "")
                .replace(",\"label\":\"none\"", "")
                + "\n"
        })
        .collect();
    let set = scored(&unlabelled);
    let report = evaluate(&set, &options(Scope::PerClass));
    assert_eq!(report.n, 0);
    let svg = render(|area| selective_accuracy(area, &report));
    assert!(
        texts(&svg).iter().any(|t| t.starts_with("no gold labels")),
        "{svg}"
    );
    assert_eq!(elements(&svg, "polyline").len(), 0);
}

/// Every chart, on a set and its selection and report: the histograms of each metric
/// (in `Metric::ALL` order, each with its own metric's selection), then the class counts,
/// the scatter and the selective accuracy.
fn draw_all(set: &ScoredSet, width: u32, height: u32) -> Vec<String> {
    let selection = select(set, &options(Scope::PerClass));
    let report = evaluate(set, &options(Scope::PerClass));
    let mut svgs = Vec::new();
    for metric in Metric::ALL {
        let by_metric = select(
            set,
            &FilterOptions {
                metric: *metric,
                ..options(Scope::PerClass)
            },
        );
        svgs.push(
            to_svg(width, height, |area| {
                per_class_histograms(area, set, &by_metric, *metric)
            })
            .unwrap(),
        );
    }
    svgs.push(to_svg(width, height, |area| class_counts(area, set, &selection)).unwrap());
    svgs.push(
        to_svg(width, height, |area| {
            scatter_ppl_consistency(area, set, &selection)
        })
        .unwrap(),
    );
    svgs.push(to_svg(width, height, |area| selective_accuracy(area, &report)).unwrap());
    svgs
}

#[test]
fn every_chart_draws_an_empty_set() {
    let set = scored("");
    assert!(set.traces.is_empty() && set.classes.is_empty());
    let svgs = draw_all(&set, 800, 400);
    assert!(svgs.iter().all(|svg| svg.ends_with("</svg>\n")));
    assert!(texts(&svgs[0]).contains(&"no classes to show"));
    let n_histograms = Metric::ALL.len();
    assert!(texts(&svgs[n_histograms]).contains(&"no traces to show"));
    assert!(texts(&svgs[n_histograms + 1]).contains(&"no traces with both ppl and consistency"));
}

#[test]
fn every_chart_draws_a_single_trace() {
    // One trace: ppl 0.2, no consistency (alone in its question), so every CoCoA score is
    // null; its class has a panel whose only value is ppl → the width-1 range.
    let set = scored(r#"{"question_id":"q","answer":"up","logprobs":[-0.2],"label":"up"}"#);
    assert_eq!(set.traces.len(), 1);
    let svgs = draw_all(&set, 800, 400);
    let ppl = &svgs[1];
    assert!(texts(ppl).contains(&"up — 1 of 1 kept"), "{:?}", texts(ppl));
    assert!(texts(ppl).contains(&"cut-off 0.200"), "{:?}", texts(ppl));
    assert_eq!(
        count_with(
            ppl,
            "rect",
            &format!("fill=\"{}\"", hex(class_color(Some(0))))
        ),
        1
    );
    let cocoa = &svgs[5];
    assert!(
        texts(cocoa).contains(&"no cocoa_ppl scores to show"),
        "{:?}",
        texts(cocoa)
    );
}

#[test]
fn every_chart_draws_equal_values_and_odd_sizes() {
    // Every trace agrees with its question and has the same log-prob: all CoCoA scores
    // are exactly 0 and all ppl 0.5.
    let jsonl: String = (0..12)
        .map(|i| {
            format!(
                "{{\"question_id\":\"q{}\",\"answer\":\"{}\",\"logprobs\":[-0.5]}}\n",
                i / 3,
                ["up", "down"][(i / 3) % 2]
            )
        })
        .collect();
    let set = scored(&jsonl);
    for (width, height) in [
        (0, 0),
        (1, 1),
        (40, 30),
        (120, 90),
        (200, 160),
        (320, 240),
        (1600, 900),
    ] {
        let svgs = draw_all(&set, width, height);
        assert_eq!(svgs.len(), Metric::ALL.len() + 3, "{width}×{height}");
    }
    let svg = to_svg(900, 400, |area| {
        per_class_histograms(
            area,
            &set,
            &select(&set, &options(Scope::PerClass)),
            Metric::CocoaPpl,
        )
    })
    .unwrap();
    // All 0: the range is [-0.5, 0.5] and each class's 6 traces sit in bin 15.
    assert!(
        texts(&svg).contains(&"cut-off 0.000") || texts(&svg).contains(&"cut-off 0.00"),
        "{:?}",
        texts(&svg)
    );
}

#[test]
fn many_classes_are_capped() {
    let jsonl: String = (0..40)
        .map(|i| format!("{{\"question_id\":\"q{}\",\"answer\":\"class number {i}\",\"logprobs\":[-0.{}]}}\n", i / 2, i % 9 + 1))
        .collect();
    let set = scored(&jsonl);
    assert_eq!(set.classes.len(), 40);
    let selection = select(&set, &options(Scope::PerClass));
    let svg = to_svg(1200, 800, |area| {
        per_class_histograms(area, &set, &selection, Metric::Ppl)
    })
    .unwrap();
    assert!(
        texts(&svg)
            .iter()
            .any(|t| t.contains("the 12 largest of 40 classes shown"))
    );
    let svg = to_svg(1200, 500, |area| class_counts(area, &set, &selection)).unwrap();
    assert!(
        texts(&svg)
            .iter()
            .any(|t| t.contains("the 20 largest of 40 classes shown"))
    );
}

/// Writes the small set's charts to /tmp/charts for a look (not an assertion).
#[test]
fn write_small_set_svgs() {
    let (set, selection, report) = small();
    let dir = std::env::temp_dir().join("charts");
    std::fs::create_dir_all(&dir).unwrap();
    let empty = scored("");
    let no_labels = evaluate(&empty, &options(Scope::PerClass));
    let nothing = select(&empty, &options(Scope::PerClass));
    let charts: [(&str, String); 7] = [
        (
            "empty_histograms",
            render(|area| per_class_histograms(area, &empty, &nothing, Metric::CocoaPpl)),
        ),
        (
            "no_labels",
            render(|area| selective_accuracy(area, &no_labels)),
        ),
        (
            "histograms",
            render(|area| per_class_histograms(area, &set, &selection, Metric::CocoaPpl)),
        ),
        (
            "histograms_ppl",
            render(|area| {
                per_class_histograms(
                    area,
                    &set,
                    &select(
                        &set,
                        &FilterOptions {
                            metric: Metric::Ppl,
                            ..options(Scope::PerClass)
                        },
                    ),
                    Metric::Ppl,
                )
            }),
        ),
        (
            "class_counts",
            render(|area| class_counts(area, &set, &selection)),
        ),
        (
            "scatter",
            render(|area| scatter_ppl_consistency(area, &set, &selection)),
        ),
        (
            "selective_accuracy",
            render(|area| selective_accuracy(area, &report)),
        ),
    ];
    for (name, svg) in charts {
        std::fs::write(dir.join(format!("{name}.svg")), svg).unwrap();
    }
}

/// A larger synthetic set (5 classes, 8 traces per question, labels, top-k log-probs) for
/// a look at realistic shapes: writes to /tmp/charts/large_*.svg and only checks that
/// every chart renders.
#[test]
fn write_larger_set_svgs() {
    let classes = ["up", "down", "none", "unclear", "a rather long class name"];
    let mut jsonl = String::new();
    // A small deterministic generator (SplitMix64-like) for varied but fixed values.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    for q in 0..400 {
        let truth = (q * 7 % 5) as usize;
        let difficulty = next();
        for s in 0..8 {
            let right = next() > difficulty * 0.8;
            let class = if right {
                truth
            } else {
                (truth + 1 + (next() * 4.0) as usize) % 5
            };
            let n_tokens = 5 + (next() * 20.0) as usize;
            let base = 0.05 + difficulty * 0.6 + if right { 0.0 } else { 0.3 };
            let lps: Vec<String> = (0..n_tokens)
                .map(|_| format!("{:.4}", -base * next() * 2.0))
                .collect();
            let tops: Vec<String> = (0..n_tokens)
                .map(|_| {
                    format!(
                        "[-0.1,{:.3},{:.3}]",
                        -1.0 - next() * 3.0,
                        -3.0 - next() * 3.0
                    )
                })
                .collect();
            let answer = if next() < 0.03 {
                String::new()
            } else {
                format!(" Final answer: {}", classes[class])
            };
            jsonl.push_str(&format!(
                "{{\"question_id\":\"q{q}\",\"trace_id\":\"q{q}-s{s}\",\"text\":\"Reasoning.{answer}\",\"logprobs\":[{}],\"top_logprobs\":[{}],\"label\":\"{}\"}}\n",
                lps.join(","),
                tops.join(","),
                classes[truth]
            ));
        }
    }
    let set = scored(&jsonl);
    assert_eq!(set.traces.len(), 3200);
    let selection = select(&set, &options(Scope::PerClass));
    let report = evaluate(&set, &options(Scope::PerClass));
    let dir = std::env::temp_dir().join("charts");
    std::fs::create_dir_all(&dir).unwrap();
    for (width, height) in [(960, 420), (640, 360)] {
        let charts: [(&str, String); 4] = [
            (
                "histograms",
                to_svg(width, height, |area| {
                    per_class_histograms(area, &set, &selection, Metric::CocoaPpl)
                })
                .unwrap(),
            ),
            (
                "class_counts",
                to_svg(width, height, |area| class_counts(area, &set, &selection)).unwrap(),
            ),
            (
                "scatter",
                to_svg(width, height, |area| {
                    scatter_ppl_consistency(area, &set, &selection)
                })
                .unwrap(),
            ),
            (
                "selective_accuracy",
                to_svg(width, height, |area| selective_accuracy(area, &report)).unwrap(),
            ),
        ];
        for (name, svg) in charts {
            std::fs::write(dir.join(format!("large_{name}_{width}.svg")), svg).unwrap();
        }
    }
}

#[test]
fn inconsistent_inputs_never_panic() {
    // Values the core never produces, and a selection and report that do not match the
    // set: each chart must still draw (or skip what makes no sense), never panic.
    let (mut set, mut selection, mut report) = small();
    set.traces[0].ppl = Some(f64::NAN);
    set.traces[1].consistency = Some(f64::INFINITY);
    set.traces[2].class = Some(99);
    set.traces[3].msp = Some(1e300);
    selection.kept.truncate(4);
    selection.groups.push(tracesift_core::filter::GroupOutcome {
        class: Some(50),
        n_eligible: 1,
        n_kept: 1,
        cutoff: Some(f64::NAN),
        tie_at_cutoff: false,
    });
    report.accuracy = Some(f64::NAN);
    if let Some((_, evaluation)) = report.metrics.0.first_mut() {
        evaluation.selective_accuracy = vec![Some(f64::NEG_INFINITY), None, Some(0.5)];
    }
    // Sizes around every threshold the layouts test (title, footer, panel, legend).
    let sides = [0, 1, 30, 59, 61, 90, 119, 121, 159, 161, 200, 260, 330, 960];
    let sizes = sides
        .iter()
        .flat_map(|&width| sides.iter().map(move |&height| (width, height)));
    for (width, height) in sizes {
        for metric in Metric::ALL {
            to_svg(width, height, |area| {
                per_class_histograms(area, &set, &selection, *metric)
            })
            .unwrap();
        }
        to_svg(width, height, |area| class_counts(area, &set, &selection)).unwrap();
        to_svg(width, height, |area| {
            scatter_ppl_consistency(area, &set, &selection)
        })
        .unwrap();
        to_svg(width, height, |area| selective_accuracy(area, &report)).unwrap();
    }
}

#[test]
fn a_confidence_cut_off_is_its_smallest_kept_value() {
    // conf_mean keeps the highest first: with keep 0.5 the cut-off is the lower kept value.
    let jsonl: String = (0..6)
        .map(|i| {
            let top = -0.5 - i as f64 * 0.25;
            format!(
                "{{\"question_id\":\"q{i}\",\"answer\":\"up\",\"logprobs\":[-0.1],\"top_logprobs\":[[{top},{top}]]}}\n"
            )
        })
        .collect();
    let set = scored(&jsonl);
    let options = FilterOptions {
        metric: Metric::ConfMean,
        rule: tracesift_core::settings::Rule::Keep(0.5),
        ..options(Scope::PerClass)
    };
    let selection = select(&set, &options);
    assert_eq!(
        selection.groups[0].cutoff,
        Some(1.25),
        "C = 0.5, 0.75, …, 1.75: keep 1.75, 1.5, 1.25"
    );
    let svg = render(|area| per_class_histograms(area, &set, &selection, Metric::ConfMean));
    let texts = texts(&svg);
    assert!(texts.contains(&"cut-off 1.250"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.contains("cut-off not shown")),
        "{texts:?}"
    );
}

#[test]
fn the_histogram_layout_reads_a_pixel_back_as_a_class_and_a_value() {
    let (set, selection, _) = small();
    let mut layout = None;
    to_svg(900, 360, |area| {
        layout = Some(crate::per_class_histograms_with_layout(
            area,
            &set,
            &selection,
            Metric::CocoaPpl,
        )?);
        Ok(())
    })
    .unwrap();
    let layout = layout.unwrap();
    // A panel per class (up, down, none), side by side, none overlapping.
    let classes: Vec<u32> = layout.panels.iter().map(|panel| panel.class).collect();
    assert_eq!(classes.len(), set.classes.len());
    for pair in layout.panels.windows(2) {
        assert!(pair[0].x_pixels.1 <= pair[1].x_pixels.0, "{pair:?}");
    }
    let (low, high) = layout.range;
    assert!(low < high);
    for panel in &layout.panels {
        let middle = (low + high) / 2.0;
        let x = layout.pixel_of(panel.class, middle).unwrap();
        let y = (panel.y_pixels.0 + panel.y_pixels.1) / 2;
        let (class, value) = layout.locate(x, y).unwrap();
        assert_eq!(class, panel.class);
        // One pixel of the panel's width is the most a round trip can be off by.
        let pixel_value = (high - low) / f64::from(panel.x_pixels.1 - panel.x_pixels.0);
        assert!((value - middle).abs() <= pixel_value, "{value} vs {middle}");
        // Outside the plot (the panel's caption above it) is no panel.
        assert_eq!(layout.locate(x, panel.y_pixels.0 - 5), None);
    }
    // Bins tile the range: the first starts at its low end, the last ends at its high.
    assert_eq!(layout.bin_index_of(low), 0);
    assert_eq!(layout.bin_edges(0).0, low);
    assert_eq!(layout.bin_index_of(high), layout.n_bins - 1);
    assert_eq!(layout.bin_edges(layout.n_bins - 1).1, high);
    let inside = low + 0.37 * (high - low);
    let (bin_low, bin_high) = layout.bin_edges(layout.bin_index_of(inside));
    assert!(bin_low <= inside && inside < bin_high);
}

#[test]
fn the_scatter_layout_reads_a_pixel_back_as_ppl_and_consistency() {
    let (set, selection, _) = small();
    let mut layout = None;
    to_svg(900, 360, |area| {
        layout = crate::scatter_ppl_consistency_with_layout(area, &set, &selection)?;
        Ok(())
    })
    .unwrap();
    let layout = layout.unwrap();
    let ScatterLayout {
        x_range,
        y_range,
        x_pixels,
        y_pixels,
    } = layout.clone();
    // Every trace's point lies on the plot, and reads back as its own values to within a
    // pixel.
    let pixel_x = (x_range.1 - x_range.0) / f64::from(x_pixels.1 - x_pixels.0);
    let pixel_y = (y_range.1 - y_range.0) / f64::from(y_pixels.1 - y_pixels.0);
    for trace in &set.traces {
        let (Some(ppl), Some(consistency)) = (trace.ppl, trace.consistency) else {
            continue;
        };
        let (x, y) = layout.pixel_of(ppl, consistency);
        assert!(layout.contains(x, y) || x == x_pixels.1 || y == y_pixels.1);
        let (back_ppl, back_consistency) = layout.value_at(x, y);
        assert!((back_ppl - ppl).abs() <= pixel_x, "{back_ppl} vs {ppl}");
        assert!((back_consistency - consistency).abs() <= pixel_y);
    }
    // The plot's corners are the axes' ends: bottom-left the lows, top-right the highs;
    // a pointer past the plot is clamped to it.
    assert_eq!(
        layout.value_at(x_pixels.0, y_pixels.1),
        (x_range.0, y_range.0)
    );
    assert_eq!(
        layout.value_at(x_pixels.1, y_pixels.0),
        (x_range.1, y_range.1)
    );
    assert_eq!(layout.value_at(-50, 10_000), (x_range.0, y_range.0));
    assert!(!layout.contains(x_pixels.0 - 1, y_pixels.0));
}
