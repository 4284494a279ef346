//! Which signal fits this data? With gold labels, every metric ranked by PRR and AUROC on
//! the labelled traces, each with a seeded bootstrap confidence interval, and for each the
//! interval of its PRR gap to the best, so a user can tell real differences from noise.
//! Without labels, how strongly the metrics agree: the Spearman rank correlation of every
//! pair over the traces, which shows which signals are redundant.
//!
//! The bootstrap resamples the labelled traces with replacement and evaluates every metric
//! on the same resample (a paired bootstrap), so differences between metrics are measured
//! on equal footing. A resample is a count per trace: the §6 order of a resample is the
//! full order with each trace repeated, so each metric is sorted once and every resample
//! costs one pass per metric.

use serde::{Deserialize, Serialize};

use crate::dataset::ScoredSet;
use crate::eval;
use crate::filter::{self, split_mix_64};
use crate::metrics::{Direction, Metric};

/// Resamples of the labelled traces behind each interval.
pub const DEFAULT_RESAMPLES: u32 = 1000;

/// Share of rejected traces of PRR (SPEC §7).
const PRR_REJECTION: f64 = 0.5;

/// A 95 % percentile interval (2.5 % and 97.5 % of the resampled values, linearly
/// interpolated as numpy's `percentile` does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// One metric's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedMetric {
    pub metric: Metric,
    pub direction: Direction,
    /// Labelled traces where the metric is not null.
    pub n: usize,
    /// PRR and AUROC on all labelled traces (as `eval`'s `metrics` section reports them).
    pub prr: Option<f64>,
    pub prr_ci: Option<Interval>,
    pub auroc: Option<f64>,
    pub auroc_ci: Option<Interval>,
    /// Interval of PRR(best) − PRR(this metric) over the same resamples: a low end above 0
    /// means the best metric is better beyond resampling noise. Null for the best itself.
    pub prr_gap_to_best: Option<Interval>,
}

/// Every metric, best first: by PRR, then AUROC (nulls last), then table order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Labelled traces.
    pub n: usize,
    pub resamples: u32,
    pub seed: u64,
    /// The first metric of `metrics` when it has a PRR or an AUROC.
    pub best: Option<Metric>,
    pub metrics: Vec<RankedMetric>,
}

/// How strongly the metrics agree: Spearman's ρ of every pair of metrics over the traces
/// where both are not null, read as uncertainties (a confidence negated), so ρ near 1
/// means two metrics order the traces alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub metrics: Vec<Metric>,
    /// `spearman[a][b]`, for `metrics[a]` and `metrics[b]`; null with fewer than 2 common
    /// traces or a metric constant on them.
    pub spearman: Vec<Vec<Option<f64>>>,
    /// Traces behind each coefficient.
    pub n: Vec<Vec<usize>>,
}

/// `tracesift eval`'s JSON: SPEC §10's object (`n`, `accuracy`, `metrics`), then the
/// ranking of the metrics (null without labels) and their agreement.
#[derive(Debug, Serialize)]
pub struct EvalOutput<'a> {
    #[serde(flatten)]
    pub report: &'a crate::evaluate::EvalReport,
    pub ranking: Option<&'a Ranking>,
    pub agreement: &'a Agreement,
}

/// A uniform index below `n` (multiply-shift: no division, bias below 2⁻³²).
fn below(state: &mut u64, n: usize) -> usize {
    ((u128::from(split_mix_64(state)) * n as u128) >> 64) as usize
}

/// A metric's labelled traces in the §6 order: (slot among the labelled traces,
/// uncertainty, is an error).
type Sorted = Vec<(usize, f64, bool)>;

/// AUROC of the errors over traces weighted by `counts` (ties ½), as [`eval::auroc`] with
/// each trace repeated `counts[slot]` times.
fn weighted_auroc(sorted: &Sorted, counts: &[u32]) -> Option<f64> {
    let mut correct_below = 0u128;
    let (mut n_errors, mut n_correct) = (0u128, 0u128);
    let mut doubled = 0u128;
    for group in sorted.chunk_by(|a, b| a.1 == b.1) {
        let (mut errors, mut correct) = (0u128, 0u128);
        for &(slot, _, is_error) in group {
            let count = u128::from(counts.get(slot).copied().unwrap_or(0));
            if is_error {
                errors += count;
            } else {
                correct += count;
            }
        }
        doubled += errors * (2 * correct_below + correct);
        correct_below += correct;
        n_errors += errors;
        n_correct += correct;
    }
    (n_errors > 0 && n_correct > 0).then(|| doubled as f64 / (2 * n_errors * n_correct) as f64)
}

/// PRR at 50 % rejection over traces weighted by `counts`, as [`eval::prr`] with each
/// trace repeated `counts[slot]` times (quality 1 − error, so the oracle puts the n₁ right
/// answers first and its prefix sums are min(m, n₁)).
fn weighted_prr(sorted: &Sorted, counts: &[u32]) -> Option<f64> {
    let count_of = |slot: usize| counts.get(slot).copied().map_or(0, |c| c as usize);
    let n: usize = sorted.iter().map(|&(slot, _, _)| count_of(slot)).sum();
    let n_right: usize = sorted
        .iter()
        .filter(|(_, _, is_error)| !is_error)
        .map(|&(slot, _, _)| count_of(slot))
        .sum();
    let num_rej = (PRR_REJECTION * n as f64) as usize;
    if n == 0 || num_rej <= 1 || num_rej > n || n_right == 0 || n_right == n {
        return None;
    }
    let first_kept_len = n - num_rej + 1;
    let (mut position, mut prefix, mut area) = (0usize, 0.0f64, 0.0f64);
    for &(slot, _, is_error) in sorted {
        let quality = if is_error { 0.0 } else { 1.0 };
        for _ in 0..count_of(slot) {
            position += 1;
            prefix += quality;
            if position >= first_kept_len {
                area += prefix / position as f64;
            }
        }
    }
    let raw = area / num_rej as f64;
    let oracle = (first_kept_len..=n)
        .map(|m| m.min(n_right) as f64 / m as f64)
        .fold(0.0, |sum, value| sum + value)
        / num_rej as f64;
    let random = n_right as f64 / n as f64;
    let denominator = oracle - random;
    (denominator > 0.0).then(|| (raw - random) / denominator)
}

/// The 2.5 % and 97.5 % points of the values (numpy's default linear interpolation);
/// null when fewer than half of the `resamples` gave a value.
fn interval(values: &mut [f64], resamples: u32) -> Option<Interval> {
    if values.is_empty() || values.len() * 2 < resamples as usize {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let at = |share: f64| {
        let position = share * (values.len() - 1) as f64;
        let lower = position.floor() as usize;
        let upper = position.ceil() as usize;
        let (Some(&a), Some(&b)) = (values.get(lower), values.get(upper)) else {
            return f64::NAN;
        };
        a + (b - a) * (position - lower as f64)
    };
    let (low, high) = (at(0.025), at(0.975));
    (low.is_finite() && high.is_finite()).then_some(Interval { low, high })
}

/// Ranks every metric by PRR and AUROC on the labelled traces, with `resamples` bootstrap
/// resamples drawn from `seed`.
pub fn rank_metrics(set: &ScoredSet, resamples: u32, seed: u64) -> Ranking {
    let labelled = crate::evaluate::labelled_traces(set);
    let is_error = |idx: usize| crate::evaluate::is_error(set, idx);
    let slot_of: std::collections::HashMap<usize, usize> = labelled
        .iter()
        .enumerate()
        .map(|(slot, &idx)| (idx, slot))
        .collect();
    let sorted: Vec<Sorted> = Metric::ALL
        .iter()
        .map(|&metric| {
            let mut idxs: Vec<usize> = labelled
                .iter()
                .copied()
                .filter(|&idx| set.traces.get(idx).and_then(|t| t.metric(metric)).is_some())
                .collect();
            filter::sort_by_order(&set.traces, metric, &mut idxs);
            idxs.iter()
                .filter_map(|&idx| {
                    let value = metric.uncertainty(set.traces.get(idx)?)?;
                    Some((*slot_of.get(&idx)?, value, is_error(idx)))
                })
                .collect()
        })
        .collect();

    // Point estimates, as `evaluate` computes them.
    let point: Vec<(Option<f64>, Option<f64>)> = sorted
        .iter()
        .map(|list| {
            let quality: Vec<f64> = list
                .iter()
                .map(|&(_, _, error)| if error { 0.0 } else { 1.0 })
                .collect();
            let scores: Vec<f64> = list.iter().map(|&(_, value, _)| value).collect();
            let errors: Vec<bool> = list.iter().map(|&(_, _, error)| error).collect();
            (
                eval::prr(&quality, PRR_REJECTION),
                eval::auroc(&scores, &errors),
            )
        })
        .collect();
    let mut order: Vec<usize> = (0..Metric::ALL.len()).collect();
    let descending = |value: Option<f64>| value.map_or(f64::INFINITY, |v| -v);
    order.sort_by(|&a, &b| {
        let (prr_a, auroc_a) = point.get(a).copied().unwrap_or((None, None));
        let (prr_b, auroc_b) = point.get(b).copied().unwrap_or((None, None));
        descending(prr_a)
            .total_cmp(&descending(prr_b))
            .then(descending(auroc_a).total_cmp(&descending(auroc_b)))
            .then(a.cmp(&b))
    });
    let best_slot = order.first().copied().filter(|&idx| {
        point
            .get(idx)
            .is_some_and(|(p, a)| p.is_some() || a.is_some())
    });

    // The paired bootstrap: one resample of the labelled traces, every metric on it.
    let n_metrics = Metric::ALL.len();
    let mut prr_samples: Vec<Vec<Option<f64>>> = vec![Vec::new(); n_metrics];
    let mut auroc_samples: Vec<Vec<f64>> = vec![Vec::new(); n_metrics];
    let mut counts = vec![0u32; labelled.len()];
    let mut state = seed;
    if !labelled.is_empty() {
        for _ in 0..resamples {
            counts.iter_mut().for_each(|count| *count = 0);
            for _ in 0..labelled.len() {
                if let Some(count) = counts.get_mut(below(&mut state, labelled.len())) {
                    *count += 1;
                }
            }
            for (metric_idx, list) in sorted.iter().enumerate() {
                if let Some(samples) = prr_samples.get_mut(metric_idx) {
                    samples.push(weighted_prr(list, &counts));
                }
                if let (Some(samples), Some(auroc)) = (
                    auroc_samples.get_mut(metric_idx),
                    weighted_auroc(list, &counts),
                ) {
                    samples.push(auroc);
                }
            }
        }
    }
    let best_prr: Vec<Option<f64>> = best_slot
        .and_then(|slot| prr_samples.get(slot).cloned())
        .unwrap_or_default();

    let metrics = order
        .iter()
        .filter_map(|&metric_idx| {
            let metric = *Metric::ALL.get(metric_idx)?;
            let (prr, auroc) = point.get(metric_idx).copied().unwrap_or((None, None));
            let mut prr_values: Vec<f64> = prr_samples
                .get(metric_idx)
                .map(|samples| samples.iter().flatten().copied().collect())
                .unwrap_or_default();
            let mut auroc_values = auroc_samples.get(metric_idx).cloned().unwrap_or_default();
            let prr_gap_to_best = if Some(metric_idx) == best_slot {
                None
            } else {
                let mut gaps: Vec<f64> = best_prr
                    .iter()
                    .zip(prr_samples.get(metric_idx).map_or(&[][..], Vec::as_slice))
                    .filter_map(|(best, this)| Some((*best)? - (*this)?))
                    .collect();
                interval(&mut gaps, resamples)
            };
            Some(RankedMetric {
                metric,
                direction: metric.direction(),
                n: sorted.get(metric_idx).map_or(0, Vec::len),
                prr,
                prr_ci: prr.and_then(|_| interval(&mut prr_values, resamples)),
                auroc,
                auroc_ci: auroc.and_then(|_| interval(&mut auroc_values, resamples)),
                prr_gap_to_best,
            })
        })
        .collect();
    Ranking {
        n: labelled.len(),
        resamples,
        seed,
        best: best_slot.and_then(|slot| Metric::ALL.get(slot).copied()),
        metrics,
    }
}

/// The curves worth drawing on one selective-accuracy chart: `chosen` (the filter's
/// metric) and the best others by PRR, then AUROC, `n` in all, in table order. Nineteen
/// curves on one chart would hide each other.
pub fn curves_to_show(
    report: &crate::evaluate::EvalReport,
    chosen: Metric,
    n: usize,
) -> crate::evaluate::EvalReport {
    let mut by_quality: Vec<(usize, Metric, Option<f64>, Option<f64>)> = report
        .metrics
        .0
        .iter()
        .enumerate()
        .filter(|(_, (metric, evaluation))| *metric != chosen && evaluation.n > 0)
        .map(|(idx, (metric, evaluation))| (idx, *metric, evaluation.prr, evaluation.auroc))
        .collect();
    let descending = |value: Option<f64>| value.map_or(f64::INFINITY, |v| -v);
    by_quality.sort_by(|a, b| {
        descending(a.2)
            .total_cmp(&descending(b.2))
            .then(descending(a.3).total_cmp(&descending(b.3)))
            .then(a.0.cmp(&b.0))
    });
    let mut shown: Vec<Metric> = by_quality
        .iter()
        .take(n.saturating_sub(1))
        .map(|entry| entry.1)
        .collect();
    shown.push(chosen);
    let mut subset = report.clone();
    subset
        .metrics
        .0
        .retain(|(metric, _)| shown.contains(metric));
    subset
}

/// Mid-ranks (ties share their average rank) of `values`, 1-based.
fn mid_ranks(values: &[f64], ranks: &mut Vec<f64>, order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..values.len());
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (values.get(a).copied(), values.get(b).copied());
        x.unwrap_or(0.0).total_cmp(&y.unwrap_or(0.0))
    });
    ranks.clear();
    ranks.resize(values.len(), 0.0);
    let mut start = 0;
    for group in order.chunk_by(|&a, &b| values.get(a) == values.get(b)) {
        let rank = (2 * start + group.len() + 1) as f64 / 2.0;
        for &idx in group {
            if let Some(slot) = ranks.get_mut(idx) {
                *slot = rank;
            }
        }
        start += group.len();
    }
}

/// Pearson's correlation of two equally long lists; None when either is constant.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let mean = |values: &[f64]| values.iter().take(n).sum::<f64>() / n as f64;
    let (mean_a, mean_b) = (mean(a), mean(b));
    let (mut cross, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        cross += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a) * (x - mean_a);
        var_b += (y - mean_b) * (y - mean_b);
    }
    (var_a > 0.0 && var_b > 0.0).then(|| (cross / (var_a * var_b).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's ρ of every pair of metrics over the traces (labels not needed).
pub fn agreement(set: &ScoredSet) -> Agreement {
    let n_metrics = Metric::ALL.len();
    let values: Vec<Vec<Option<f64>>> = Metric::ALL
        .iter()
        .map(|&metric| {
            set.traces
                .iter()
                .map(|trace| metric.uncertainty(trace))
                .collect()
        })
        .collect();
    let mut spearman = vec![vec![None; n_metrics]; n_metrics];
    let mut counts = vec![vec![0usize; n_metrics]; n_metrics];
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let (mut rank_x, mut rank_y, mut order) = (Vec::new(), Vec::new(), Vec::new());
    for a in 0..n_metrics {
        for b in a..n_metrics {
            let (Some(column_a), Some(column_b)) = (values.get(a), values.get(b)) else {
                continue;
            };
            xs.clear();
            ys.clear();
            for (x, y) in column_a.iter().zip(column_b) {
                if let (Some(x), Some(y)) = (x, y) {
                    xs.push(*x);
                    ys.push(*y);
                }
            }
            mid_ranks(&xs, &mut rank_x, &mut order);
            mid_ranks(&ys, &mut rank_y, &mut order);
            let rho = pearson(&rank_x, &rank_y);
            for (row, col) in [(a, b), (b, a)] {
                if let Some(slot) = spearman.get_mut(row).and_then(|r| r.get_mut(col)) {
                    *slot = rho;
                }
                if let Some(slot) = counts.get_mut(row).and_then(|r| r.get_mut(col)) {
                    *slot = xs.len();
                }
            }
        }
    }
    Agreement {
        metrics: Metric::ALL.to_vec(),
        spearman,
        n: counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::score_bytes;
    use crate::settings::Settings;

    fn sorted_from(quality: &[f64], scores: &[f64]) -> Sorted {
        let mut list: Sorted = scores
            .iter()
            .zip(quality)
            .enumerate()
            .map(|(slot, (&score, &q))| (slot, score, q == 0.0))
            .collect();
        list.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        list
    }

    #[test]
    fn weighted_forms_equal_the_plain_ones_for_unit_counts() {
        let mut state = 3u64;
        for n in [2usize, 3, 7, 20, 101] {
            for _ in 0..20 {
                let quality: Vec<f64> = (0..n)
                    .map(|_| {
                        if split_mix_64(&mut state).is_multiple_of(3) {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                // Few distinct scores, so ties are common.
                let scores: Vec<f64> = (0..n)
                    .map(|_| (split_mix_64(&mut state) % 5) as f64)
                    .collect();
                let sorted = sorted_from(&quality, &scores);
                let ones = vec![1u32; n];
                let in_order: Vec<f64> = sorted.iter().map(|&(s, _, _)| quality[s]).collect();
                let errors: Vec<bool> = quality.iter().map(|&q| q == 0.0).collect();
                let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                    (a, b) => a == b,
                };
                assert!(close(
                    weighted_prr(&sorted, &ones),
                    eval::prr(&in_order, 0.5)
                ));
                assert!(close(
                    weighted_auroc(&sorted, &ones),
                    eval::auroc(&scores, &errors)
                ));
                // A count of 2 is the trace listed twice.
                let mut twice = ones.clone();
                twice[0] = 2;
                // The copy sorts right after its original, as a resampled trace does (same
                // metric, ppl and trace id).
                let mut doubled_order = Vec::new();
                for &(slot, _, _) in &sorted {
                    doubled_order.push(quality[slot]);
                    if slot == 0 {
                        doubled_order.push(quality[slot]);
                    }
                }
                let mut doubled_scores = scores.clone();
                doubled_scores.push(scores[0]);
                let mut doubled_errors = errors.clone();
                doubled_errors.push(errors[0]);
                assert!(close(
                    weighted_prr(&sorted, &twice),
                    eval::prr(&doubled_order, 0.5)
                ));
                assert!(close(
                    weighted_auroc(&sorted, &twice),
                    eval::auroc(&doubled_scores, &doubled_errors)
                ));
            }
        }
    }

    #[test]
    fn interval_is_numpy_percentile() {
        // numpy.percentile(range(1, 101), [2.5, 97.5]) = [3.475, 97.525].
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        let found = interval(&mut values, 100).unwrap();
        assert!((found.low - 3.475).abs() < 1e-12 && (found.high - 97.525).abs() < 1e-12);
        assert_eq!(interval(&mut [1.0], 1000), None);
    }

    fn labelled_file() -> String {
        // Wrong answers carry lower log-probs: ppl separates them, inconsistency less so.
        let mut out = String::new();
        let mut state = 1u64;
        for question in 0..60 {
            for sample in 0..5 {
                let wrong = split_mix_64(&mut state).is_multiple_of(4);
                let answer = if wrong { "down" } else { "up" };
                let jitter = (split_mix_64(&mut state) % 100) as f64 / 100.0;
                // A right answer's token is likely (p 0.74–0.95), a wrong one's a coin toss
                // (p ≈ 0.5–0.55); the one alternative holds the rest of the mass, as in a
                // real top-2 list, so the top-k confidence is lower when wrong.
                let logprob = if wrong {
                    -0.6 - 0.09 * jitter
                } else {
                    -0.05 - 0.25 * jitter
                };
                let alternative = (1.0 - f64::exp(logprob)).ln();
                out.push_str(&format!(
                    "{{\"question_id\":\"q{question}\",\"trace_id\":\"q{question}-{sample}\",\"answer\":\"{answer}\",\"label\":\"up\",\"logprobs\":[{logprob},{logprob}],\"top_logprobs\":[[{logprob},{alternative}],[{logprob},{alternative}]]}}\n"
                ));
            }
        }
        out
    }

    #[test]
    fn ranking_is_seeded_and_puts_the_best_first() {
        let text = labelled_file();
        let set = score_bytes(&Settings::default(), &[("in.jsonl", text.as_bytes())]).unwrap();
        let ranking = rank_metrics(&set, 200, 7);
        assert_eq!(ranking.n, 300);
        assert_eq!(ranking.metrics.len(), Metric::ALL.len());
        assert_eq!(
            ranking,
            rank_metrics(&set, 200, 7),
            "same seed, same intervals"
        );
        assert_ne!(ranking, rank_metrics(&set, 200, 8));
        let best = &ranking.metrics[0];
        assert_eq!(ranking.best, Some(best.metric));
        assert!(best.prr_gap_to_best.is_none());
        let prrs: Vec<f64> = ranking.metrics.iter().filter_map(|m| m.prr).collect();
        assert!(prrs.windows(2).all(|w| w[0] >= w[1]), "{prrs:?}");
        // ppl separates the errors perfectly here; its interval holds its estimate.
        let ppl = ranking
            .metrics
            .iter()
            .find(|m| m.metric == Metric::Ppl)
            .unwrap();
        assert_eq!(ppl.auroc, Some(1.0));
        let ci = ppl.prr_ci.unwrap();
        assert!(ci.low <= ppl.prr.unwrap() && ppl.prr.unwrap() <= ci.high + 1e-12);
        // A confidence is ranked through its negation: conf_mean is as good as ppl here.
        let conf = ranking
            .metrics
            .iter()
            .find(|m| m.metric == Metric::ConfMean)
            .unwrap();
        assert!(conf.auroc.unwrap() > 0.9, "{conf:?}");
        // Metrics well below the best have a gap interval above 0.
        let answer_entropy = ranking
            .metrics
            .iter()
            .find(|m| m.metric == Metric::AnswerEntropy)
            .unwrap();
        assert!(
            answer_entropy.prr_gap_to_best.unwrap().low > 0.0,
            "{answer_entropy:?}"
        );
    }

    #[test]
    fn no_labels_no_ranking_but_agreement() {
        let text = labelled_file().replace(",\"label\":\"up\"", "");
        let set = score_bytes(&Settings::default(), &[("in.jsonl", text.as_bytes())]).unwrap();
        let ranking = rank_metrics(&set, 100, 0);
        assert_eq!((ranking.n, ranking.best), (0, None));
        assert!(
            ranking
                .metrics
                .iter()
                .all(|m| m.prr_ci.is_none() && m.auroc.is_none())
        );
        let agreement = agreement(&set);
        let at = |a: Metric, b: Metric| {
            let ia = Metric::ALL.iter().position(|&m| m == a).unwrap();
            let ib = Metric::ALL.iter().position(|&m| m == b).unwrap();
            (agreement.spearman[ia][ib], agreement.n[ia][ib])
        };
        // msp = 2·ppl for two-token traces: the same order.
        assert_eq!(at(Metric::Msp, Metric::Ppl).0, Some(1.0));
        assert_eq!(at(Metric::Ppl, Metric::Ppl), (Some(1.0), 300));
        // A confidence read as an uncertainty: conf_mean agrees with ppl, not against it.
        assert!(at(Metric::ConfMean, Metric::Ppl).0.unwrap() > 0.9);
        let (rho, _) = at(Metric::Ppl, Metric::Inconsistency);
        assert!(rho.unwrap().abs() < 1.0);
        assert_eq!(agreement.spearman[3][5], agreement.spearman[5][3]);
    }

    #[test]
    fn the_chart_shows_the_chosen_metric_and_the_best() {
        let text = labelled_file();
        let settings = Settings::default();
        let set = score_bytes(&settings, &[("in.jsonl", text.as_bytes())]).unwrap();
        let options = crate::filter::FilterOptions::from_settings(&settings).unwrap();
        let report = crate::evaluate::evaluate(&set, &options);
        let shown = curves_to_show(&report, Metric::AnswerEntropy, 4);
        let names: Vec<Metric> = shown.metrics.0.iter().map(|(m, _)| *m).collect();
        assert_eq!(names.len(), 4);
        assert!(names.contains(&Metric::AnswerEntropy) && names.contains(&Metric::Ppl));
        let mut in_table_order = names.clone();
        in_table_order.sort_by_key(|m| Metric::ALL.iter().position(|x| x == m));
        assert_eq!(names, in_table_order);
    }

    #[test]
    fn spearman_by_hand() {
        // x = [1, 2, 3, 4], y = [1, 3, 2, 4]: d² = 0 + 1 + 1 + 0 → ρ = 1 − 6·2/(4·15) = 0.8.
        let (mut rx, mut ry, mut order) = (Vec::new(), Vec::new(), Vec::new());
        mid_ranks(&[1.0, 2.0, 3.0, 4.0], &mut rx, &mut order);
        mid_ranks(&[10.0, 30.0, 20.0, 40.0], &mut ry, &mut order);
        assert!((pearson(&rx, &ry).unwrap() - 0.8).abs() < 1e-12);
        // Ties share the mid-rank.
        mid_ranks(&[5.0, 1.0, 5.0], &mut rx, &mut order);
        assert_eq!(rx, [2.5, 1.0, 2.5]);
        assert_eq!(pearson(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
