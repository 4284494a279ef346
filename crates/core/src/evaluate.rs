//! Evaluation against gold labels (SPEC §7): how well each uncertainty score separates the
//! model's right answers from its wrong ones, and what the filter's kept set is worth.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::dataset::ScoredSet;
use crate::eval;
use crate::filter::{self, FilterOptions};
use crate::settings::Metric;

/// Quality is 1 for a right answer; class ∅ never equals a label.
fn is_correct(class: Option<u32>, label: u32) -> bool {
    class == Some(label)
}

/// Indices of the traces that have a gold label, in input order.
pub(crate) fn labelled_traces(set: &ScoredSet) -> Vec<usize> {
    set.traces
        .iter()
        .enumerate()
        .filter(|(_, trace)| trace.label.is_some())
        .map(|(idx, _)| idx)
        .collect()
}

/// Whether trace `idx` is an error against its gold label (SPEC §7: class ∅ is one); a
/// trace without a label counts as one too.
pub(crate) fn is_error(set: &ScoredSet, idx: usize) -> bool {
    set.traces.get(idx).is_none_or(|trace| {
        trace
            .label
            .is_none_or(|label| !is_correct(trace.class, label))
    })
}

/// The evaluation of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEval {
    /// Labelled traces where the metric is not null.
    pub n: usize,
    pub auroc: Option<f64>,
    /// Normalised prediction-rejection ratio at 50 % rejection.
    pub prr: Option<f64>,
    /// Accuracy of the most confident 5 %, 10 %, …, 100 %.
    pub selective_accuracy: Vec<Option<f64>>,
    /// Labelled traces the filter keeps with this metric, and accuracies on each side.
    pub kept: usize,
    pub kept_accuracy: Option<f64>,
    pub dropped_accuracy: Option<f64>,
    /// True when tied scores straddle a filter cut-off, so the tie-break order (not the
    /// score) decided some of what was kept.
    pub tie_at_cutoff: bool,
    /// Per-class precision / recall / F1 of the kept traces.
    pub per_class: Vec<ClassEval>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEval {
    pub class: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub support: usize,
}

/// The `eval` output of SPEC §10.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Labelled traces.
    pub n: usize,
    /// Accuracy over all labelled traces.
    pub accuracy: Option<f64>,
    pub metrics: MetricEvals,
}

/// Metric name → evaluation, serialised as a JSON object in the order of [`Metric::ALL`]
/// (SPEC §7's order).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricEvals(pub Vec<(Metric, MetricEval)>);

impl Serialize for MetricEvals {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (metric, evaluation) in &self.0 {
            map.serialize_entry(metric.name(), evaluation)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MetricEvals {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = MetricEvals;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of metric name → evaluation")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetricEvals, A::Error> {
                let mut entries = Vec::new();
                while let Some((name, evaluation)) = map.next_entry::<String, MetricEval>()? {
                    let metric = Metric::from_name(&name).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown metric `{name}`"))
                    })?;
                    entries.push((metric, evaluation));
                }
                Ok(MetricEvals(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Evaluates every metric over every labelled trace (SPEC §7). `options` gives the rule,
/// scope and candidates of the filter behind the kept-vs-dropped figures only; its metric
/// is replaced by each metric in turn.
pub fn evaluate(set: &ScoredSet, options: &FilterOptions) -> EvalReport {
    let labelled = labelled_traces(set);
    let quality_of = |idx: usize| {
        set.traces
            .get(idx)
            .and_then(|trace| Some(f64::from(u8::from(is_correct(trace.class, trace.label?)))))
            .unwrap_or(0.0)
    };
    let all_qualities: Vec<f64> = labelled.iter().map(|&idx| quality_of(idx)).collect();
    let metrics = Metric::ALL
        .iter()
        .map(|&metric| {
            let mut scored: Vec<usize> = labelled
                .iter()
                .copied()
                .filter(|&idx| set.traces.get(idx).and_then(|t| t.metric(metric)).is_some())
                .collect();
            filter::sort_by_order(&set.traces, metric, &mut scored);
            let sorted_quality: Vec<f64> = scored.iter().map(|&idx| quality_of(idx)).collect();
            // A confidence enters as its negation, so AUROC reads the same for every metric.
            let scores: Vec<f64> = scored
                .iter()
                .filter_map(|&idx| set.traces.get(idx).and_then(|t| metric.uncertainty(t)))
                .collect();
            let is_error: Vec<bool> = sorted_quality.iter().map(|&q| q == 0.0).collect();

            let selection = filter::select(set, &FilterOptions { metric, ..*options });
            let kept_flag = |idx: usize| selection.kept.get(idx).copied().unwrap_or(false);
            let (kept, dropped): (Vec<usize>, Vec<usize>) =
                scored.iter().copied().partition(|&idx| kept_flag(idx));
            let accuracy = |idxs: &[usize]| {
                eval::mean(&idxs.iter().map(|&idx| quality_of(idx)).collect::<Vec<_>>())
            };
            let pairs: Vec<(Option<u32>, u32)> = kept
                .iter()
                .filter_map(|&idx| set.traces.get(idx).and_then(|t| Some((t.class, t.label?))))
                .collect();
            let per_class = eval::per_class_prf(&pairs)
                .into_iter()
                .map(|prf| ClassEval {
                    class: set.class_name(Some(prf.class_id)).unwrap_or("").to_owned(),
                    precision: prf.precision,
                    recall: prf.recall,
                    f1: prf.f1,
                    support: prf.support,
                })
                .collect();
            let evaluation = MetricEval {
                n: scored.len(),
                auroc: eval::auroc(&scores, &is_error),
                prr: eval::prr(&sorted_quality, 0.5),
                selective_accuracy: eval::selective_accuracy(&sorted_quality),
                kept: kept.len(),
                kept_accuracy: accuracy(&kept),
                dropped_accuracy: accuracy(&dropped),
                tie_at_cutoff: selection.groups.iter().any(|group| group.tie_at_cutoff),
                per_class,
            };
            (metric, evaluation)
        })
        .collect();
    EvalReport {
        n: labelled.len(),
        accuracy: eval::mean(&all_qualities),
        metrics: MetricEvals(metrics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::score_bytes;
    use crate::settings::Settings;

    #[test]
    fn report_round_trips_through_json() {
        let input = br#"{"question_id":"a","answer":"up","label":"up","logprobs":[-0.1]}
{"question_id":"a","answer":"down","label":"up","logprobs":[-2.0]}
{"question_id":"b","answer":"down","label":"down","logprobs":[-0.3,-0.2]}
"#;
        let settings = Settings::default();
        let set = score_bytes(&settings, &[("in.jsonl", input)]).unwrap();
        let report = evaluate(&set, &FilterOptions::from_settings(&settings).unwrap());
        let json = serde_json::to_string(&report).unwrap();
        let back: EvalReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(back.metrics.0.len(), Metric::ALL.len());
        assert!(serde_json::from_str::<EvalReport>(&json.replace("\"msp\"", "\"bogus\"")).is_err());
    }
}
