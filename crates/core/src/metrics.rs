//! The metric table: every score tracesift can rank traces by, with its direction, a
//! one-line explanation, its paper and its null rule. Every list of metrics (the score rows,
//! the canonical `scores` object, the CSV, `eval`, `--metric`, the app's picker and columns,
//! the README) is read from here, so adding a metric is one entry plus its computation.

use serde::{Deserialize, Serialize};

use crate::dataset::TraceScores;
use crate::trace::positive_zero;

/// Which way a metric points (SPEC §5b). Values are stored as their papers define them; the
/// filter and the evaluation read them through [`Metric::uncertainty`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// ↑u: higher = less trustworthy.
    Uncertainty,
    /// ↑c: higher = more trustworthy.
    Confidence,
}

impl Direction {
    /// The SPEC's notation: `↑u` or `↑c`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::Uncertainty => "↑u",
            Direction::Confidence => "↑c",
        }
    }
}

/// One row of the metric table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    pub name: &'static str,
    pub direction: Direction,
    /// One sentence for the app's hover titles and the README.
    pub summary: &'static str,
    /// Where it comes from (and the reference implementation it matches).
    pub paper: &'static str,
    /// When the value is null rather than a number.
    pub null_rule: &'static str,
}

/// Declares the table: the [`Metric`] enum, in SPEC §7's order, and for each metric its
/// [`MetricInfo`] and how its value is read from a scored trace.
macro_rules! metric_table {
    ($(
        $variant:ident {
            name: $name:literal,
            direction: $direction:ident,
            summary: $summary:literal,
            paper: $paper:literal,
            null: $null:literal,
            value: |$trace:ident| $value:expr $(,)?
        }
    )+) => {
        /// A score the filter ranks by and the evaluation compares (SPEC §5, §5b).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Metric {
            $(#[serde(rename = $name)] $variant),+
        }

        impl Metric {
            /// Every metric, in the order of SPEC §7 (§5, then §5b).
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),+];

            pub const fn info(self) -> &'static MetricInfo {
                match self {
                    $(Metric::$variant => &MetricInfo {
                        name: $name,
                        direction: Direction::$direction,
                        summary: $summary,
                        paper: $paper,
                        null_rule: $null,
                    }),+
                }
            }

            /// The value as its paper reports it (never negated); None is null.
            pub fn value(self, trace: &TraceScores) -> Option<f64> {
                match self {
                    $(Metric::$variant => {
                        let $trace = trace;
                        $value
                    }),+
                }
            }
        }
    };
}

metric_table! {
    Msp {
        name: "msp",
        direction: Uncertainty,
        summary: "Negative log-probability of the whole trace (−Σ ℓᵢ): long or unlikely traces score high.",
        paper: "maximum sequence probability; LM-Polygraph MaximumSequenceProbability",
        null: "no valid log-prob",
        value: |trace| trace.msp
    }
    Ppl {
        name: "ppl",
        direction: Uncertainty,
        summary: "Mean negative log-probability per token (log-perplexity): how surprised the model was on average.",
        paper: "perplexity; LM-Polygraph Perplexity",
        null: "no valid log-prob",
        value: |trace| trace.ppl
    }
    Mte {
        name: "mte",
        direction: Uncertainty,
        summary: "Mean entropy of each token's top-k alternatives (renormalised over the k): how spread the model's choices were.",
        paper: "mean token entropy; LM-Polygraph MeanTokenEntropy",
        null: "a valid token without a top-k list of k ≥ 2",
        value: |trace| trace.mte
    }
    Inconsistency {
        name: "inconsistency",
        direction: Uncertainty,
        summary: "1 − mean similarity to the question's other traces: the share of samples that disagree.",
        paper: "self-consistency, Wang et al. 2023 (arXiv 2203.11171)",
        null: "fewer than 2 comparable traces in the question",
        value: |trace| trace.inconsistency()
    }
    CocoaMsp {
        name: "cocoa_msp",
        direction: Uncertainty,
        summary: "Sequence surprise × inconsistency: confident and agreed-on traces score near 0.",
        paper: "CoCoA, Vashurin et al. 2025 (arXiv 2502.04964); LM-Polygraph CocoaMSP",
        null: "msp or consistency is null",
        value: |trace| trace.cocoa_msp()
    }
    CocoaPpl {
        name: "cocoa_ppl",
        direction: Uncertainty,
        summary: "Perplexity × inconsistency, the paper's CoCoA: keep the lowest ~10 % per class.",
        paper: "CoCoA, Vashurin et al. 2025; the filter of Stoisser et al. 2025 (arXiv 2510.05871)",
        null: "ppl or consistency is null",
        value: |trace| trace.cocoa_ppl()
    }
    CocoaMte {
        name: "cocoa_mte",
        direction: Uncertainty,
        summary: "Mean token entropy × inconsistency.",
        paper: "CoCoA, Vashurin et al. 2025; LM-Polygraph CocoaMTE",
        null: "mte or consistency is null",
        value: |trace| trace.cocoa_mte()
    }
    ConfMean {
        name: "conf_mean",
        direction: Confidence,
        summary: "Mean token confidence, a token's confidence being minus the mean log-prob of its top-k list.",
        paper: "DeepConf, Fu et al. 2025 (arXiv 2508.15260); deepconf utils.py",
        null: "no valid token has a top-k list",
        value: |trace| trace.signals.conf_mean.get()
    }
    ConfTail {
        name: "conf_tail",
        direction: Confidence,
        summary: "Mean token confidence over the last `window` tokens, where the answer is written.",
        paper: "DeepConf tail confidence, Fu et al. 2025",
        null: "no valid token has a top-k list",
        value: |trace| trace.signals.conf_tail.get()
    }
    ConfBottom10 {
        name: "conf_bottom10",
        direction: Confidence,
        summary: "Mean of the lowest 10 % of sliding-window confidences (window `window`): the trace's weakest stretches.",
        paper: "DeepConf bottom-10 % group confidence, Fu et al. 2025",
        null: "no valid token has a top-k list",
        value: |trace| trace.signals.conf_bottom10.get()
    }
    ConfLowest {
        name: "conf_lowest",
        direction: Confidence,
        summary: "Lowest sliding-window confidence (window `window`): the trace's single weakest stretch.",
        paper: "DeepConf lowest group confidence, Fu et al. 2025",
        null: "no valid token has a top-k list",
        value: |trace| trace.signals.conf_lowest.get()
    }
    SelfCertainty {
        name: "self_certainty",
        direction: Confidence,
        summary: "Mean KL divergence of each token's top-k distribution from uniform: how peaked the model's choices were.",
        paper: "self-certainty, Kang et al. 2025 (arXiv 2502.18581); LM-Polygraph SelfCertainty reports its negation",
        null: "no valid token has a top-k list of k ≥ 2",
        value: |trace| trace.signals.self_certainty.get()
    }
    AnswerEntropy {
        name: "answer_entropy",
        direction: Uncertainty,
        summary: "Entropy of the question's answer classes (each unanswered trace its own cluster); the same for every trace of the question.",
        paper: "discrete semantic entropy, Farquhar et al., Nature 2024",
        null: "a question of one trace",
        value: |trace| trace.signals.answer_entropy.get()
    }
    Eigv {
        name: "eigv",
        direction: Uncertainty,
        summary: "Sum of the similarity graph's Laplacian eigenvalues below 1: a continuous count of the question's meaning clusters.",
        paper: "EigV, Lin et al. 2023 (arXiv 2305.19187); LM-Polygraph EigValLaplacian",
        null: "fewer than 2 comparable traces in the question, or a trace outside its similarity graph",
        value: |trace| trace.signals.eigv.get()
    }
    Eccentricity {
        name: "eccentricity",
        direction: Uncertainty,
        summary: "Distance of the trace from the centre of its question in the graph Laplacian's spectral embedding: an outlier scores high.",
        paper: "eccentricity, Lin et al. 2023 (the per-sample form; LM-Polygraph Eccentricity takes norms over eigenvectors)",
        null: "fewer than 2 comparable traces in the question, or a trace outside its similarity graph",
        value: |trace| trace.signals.eccentricity.get()
    }
    Kle {
        name: "kle",
        direction: Uncertainty,
        summary: "Von Neumann entropy of the heat kernel of the question's similarity graph, scaled to [0, 1].",
        paper: "kernel language entropy, Nikitin et al. 2024 (arXiv 2405.20003); LM-Polygraph KernelLanguageEntropy",
        null: "fewer than 2 comparable traces in the question, or a trace outside its similarity graph",
        value: |trace| trace.signals.kle.get()
    }
    SemanticDensity {
        name: "semantic_density",
        direction: Confidence,
        summary: "Similarity to the question's other traces, each weighted by its probability per token (e^−ppl).",
        paper: "semantic density, Qiu & Miikkulainen 2024 (arXiv 2405.13845), the run's similarity as kernel",
        null: "a trace outside its similarity graph, or no other trace there with a ppl",
        value: |trace| trace.signals.semantic_density.get()
    }
    SentenceSar {
        name: "sentence_sar",
        direction: Uncertainty,
        summary: "−log of the trace's probability plus its relevance-weighted support from the question's other traces.",
        paper: "SentenceSAR, Duan et al. 2024 (arXiv 2307.01379); LM-Polygraph SentenceSAR",
        null: "msp is null, or a trace outside its similarity graph",
        value: |trace| trace.signals.sentence_sar.get()
    }
    Combo {
        name: "combo",
        direction: Uncertainty,
        summary: "Mean percentile rank over the metrics of the `combine` setting (default cocoa_ppl,conf_mean), over the whole run.",
        paper: "rank average of uncertainty signals, after the finding that combined signals filter better (Stoisser et al. 2025)",
        null: "one of the combined metrics is null",
        value: |trace| trace.signals.combo.get()
    }
}

impl Metric {
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn direction(self) -> Direction {
        self.info().direction
    }

    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|metric| metric.name() == text)
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|metric| metric.name()).collect();
        names.join("|")
    }

    /// The value as an uncertainty (higher = less trustworthy): a confidence is negated, so
    /// the filter and the evaluation read every metric the same way (SPEC §6, §7).
    pub fn uncertainty(self, trace: &TraceScores) -> Option<f64> {
        let value = self.value(trace)?;
        Some(match self.direction() {
            Direction::Uncertainty => value,
            // +0.0 so that a confidence of 0 is the uncertainty 0, not −0 (which orders
            // below +0 in a total order).
            Direction::Confidence => positive_zero(-value),
        })
    }

    /// Whether a value passes a threshold x (SPEC §6): ↑u keeps ≤ x, ↑c keeps ≥ x.
    pub fn passes_threshold(self, value: f64, threshold: f64) -> bool {
        match self.direction() {
            Direction::Uncertainty => value <= threshold,
            Direction::Confidence => value >= threshold,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl crate::settings::Named for Metric {
    const ALL: &'static [Metric] = Metric::ALL;

    fn name(self) -> &'static str {
        Metric::name(self)
    }

    fn from_name(text: &str) -> Option<Self> {
        Metric::from_name(text)
    }
}

/// One score column of the outputs: a metric, or `consistency`, which SPEC §5 reports
/// beside the metrics but nothing ranks by (its uncertainty is `inconsistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreColumn {
    Consistency,
    Metric(Metric),
}

impl ScoreColumn {
    pub fn name(self) -> &'static str {
        match self {
            ScoreColumn::Consistency => "consistency",
            ScoreColumn::Metric(metric) => metric.name(),
        }
    }

    pub fn value(self, trace: &TraceScores) -> Option<f64> {
        match self {
            ScoreColumn::Consistency => trace.consistency,
            ScoreColumn::Metric(metric) => metric.value(trace),
        }
    }
}

/// Which output a column list is for; they differ only around `consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSet {
    /// `tracesift score` rows (SPEC §10): `consistency` in `inconsistency`'s place.
    ScoreRow,
    /// The canonical `scores` object, the CSV and the app's table: both.
    Full,
}

/// The score columns of an output, in table order (built once: every row reads them).
pub fn score_columns(set: ColumnSet) -> &'static [ScoreColumn] {
    static SCORE_ROW: std::sync::OnceLock<Vec<ScoreColumn>> = std::sync::OnceLock::new();
    static FULL: std::sync::OnceLock<Vec<ScoreColumn>> = std::sync::OnceLock::new();
    let cell = match set {
        ColumnSet::ScoreRow => &SCORE_ROW,
        ColumnSet::Full => &FULL,
    };
    cell.get_or_init(|| {
        let mut columns = Vec::with_capacity(Metric::ALL.len() + 1);
        for &metric in Metric::ALL {
            if metric == Metric::Inconsistency {
                columns.push(ScoreColumn::Consistency);
                if set == ColumnSet::ScoreRow {
                    continue;
                }
            }
            columns.push(ScoreColumn::Metric(metric));
        }
        columns
    })
}

/// The table as Markdown, for the README (a test keeps the README's copy equal to this).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | dir | what it measures | source | null when |\n");
    out.push_str("|---|---|---|---|---|\n");
    for metric in Metric::ALL {
        let info = metric.info();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            info.name,
            info.direction.arrow(),
            info.summary,
            info.paper,
            info.null_rule
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (idx, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(Metric::from_name(metric.name()), Some(*metric));
            assert!(Metric::ALL[..idx].iter().all(|m| m.name() != metric.name()));
            let json = serde_json::to_string(metric).unwrap();
            assert_eq!(json, format!("\"{}\"", metric.name()));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), *metric);
        }
        assert_eq!(Metric::from_name("consistency"), None);
    }

    #[test]
    fn the_table_follows_spec_order() {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "msp",
                "ppl",
                "mte",
                "inconsistency",
                "cocoa_msp",
                "cocoa_ppl",
                "cocoa_mte",
                "conf_mean",
                "conf_tail",
                "conf_bottom10",
                "conf_lowest",
                "self_certainty",
                "answer_entropy",
                "eigv",
                "eccentricity",
                "kle",
                "semantic_density",
                "sentence_sar",
                "combo",
            ]
        );
        let confidences: Vec<&str> = Metric::ALL
            .iter()
            .filter(|m| m.direction() == Direction::Confidence)
            .map(|m| m.name())
            .collect();
        assert_eq!(
            confidences,
            [
                "conf_mean",
                "conf_tail",
                "conf_bottom10",
                "conf_lowest",
                "self_certainty",
                "semantic_density"
            ]
        );
    }

    #[test]
    fn column_sets_place_consistency() {
        let row: Vec<&str> = score_columns(ColumnSet::ScoreRow)
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(
            row[..7],
            [
                "msp",
                "ppl",
                "mte",
                "consistency",
                "cocoa_msp",
                "cocoa_ppl",
                "cocoa_mte"
            ]
        );
        assert_eq!(row.len(), Metric::ALL.len());
        let full: Vec<&str> = score_columns(ColumnSet::Full)
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(full[3..5], ["consistency", "inconsistency"]);
        assert_eq!(full.len(), Metric::ALL.len() + 1);
    }
}
