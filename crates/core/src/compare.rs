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

/// Labelled traces the bootstrap takes at most: below 2³¹, a resample's AUROC sums are
/// exact in u64. Beyond it (a size no one resamples a thousand times) the intervals are
/// null and `resamples` says 0.
const MAX_RESAMPLED: usize = 1 << 31;

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

/// A metric's labelled traces, prepared once for every resample.
struct Sorted {
    /// (slot among the labelled traces, is an error), in the §6 order.
    traces: Vec<(usize, bool)>,
    /// Where each run of equal uncertainties ends in `traces` (exclusive): AUROC's ties.
    tie_ends: Vec<usize>,
    /// (slot, is an error) of the labelled traces where the metric is null.
    nulls: Vec<(usize, bool)>,
}

impl Sorted {
    /// From (slot, uncertainty, is an error) in the §6 order and the null traces.
    fn new(in_order: &[(usize, f64, bool)], nulls: Vec<(usize, bool)>) -> Self {
        let mut tie_ends = Vec::new();
        let mut end = 0;
        for group in in_order.chunk_by(|a, b| a.1 == b.1) {
            end += group.len();
            tie_ends.push(end);
        }
        Self {
            traces: in_order
                .iter()
                .map(|&(slot, _, is_error)| (slot, is_error))
                .collect(),
            tie_ends,
            nulls,
        }
    }
}

/// One resample: how often each labelled trace was drawn, and the totals every metric
/// starts from.
struct Resample {
    counts: Vec<u32>,
    /// Draws of right answers (Σ counts over the labelled traces that are right).
    right: usize,
}

impl Resample {
    fn count(&self, slot: usize) -> usize {
        self.counts.get(slot).map_or(0, |&count| count as usize)
    }

    /// (draws, draws of right answers) among the traces where the metric is not null: the
    /// totals less its null traces, so no pass over its whole order is needed.
    fn totals(&self, sorted: &Sorted) -> (usize, usize) {
        let (mut n, mut n_right) = (self.counts.len(), self.right);
        for &(slot, is_error) in &sorted.nulls {
            let count = self.count(slot);
            n -= count;
            if !is_error {
                n_right -= count;
            }
        }
        (n, n_right)
    }
}

/// The oracle's rejection area of PRR for `n` traces of which `n_right` are right: its
/// order puts the right answers first, so its prefix means are min(m, n₁) / m. The sum
/// runs in [`eval::prr`]'s order; the terms with m ≤ n₁ are exactly 1, so their sum is
/// their number.
fn oracle_area(n: usize, n_right: usize, first_kept_len: usize) -> f64 {
    let ones = (n_right + 1).saturating_sub(first_kept_len);
    let mut area = ones as f64;
    for m in first_kept_len.max(n_right + 1)..=n {
        area += n_right as f64 / m as f64;
    }
    area
}

/// PRR at 50 % rejection and AUROC of the errors (ties ½) over traces weighted by the
/// resample's counts, as [`eval::prr`] (quality 1 − error) and [`eval::auroc`] give them
/// with each trace repeated `count` times; one pass over the metric's order for both.
/// `oracle` remembers the last (n, n₁) and PRR's oracle area: the metrics of one resample
/// mostly share them. AUROC's sums are exact in u64: the caller keeps the labelled traces
/// below [`MAX_RESAMPLED`], so the doubled sum stays under 2⁶³.
fn weighted_prr_auroc(
    sorted: &Sorted,
    resample: &Resample,
    oracle: &mut Option<((usize, usize), f64)>,
) -> (Option<f64>, Option<f64>) {
    let (n, n_right) = resample.totals(sorted);
    let num_rej = (PRR_REJECTION * n as f64) as usize;
    let has_prr = n > 0 && num_rej > 1 && num_rej <= n && n_right > 0 && n_right < n;
    // Without a PRR, no position is ever in the kept part.
    let first_kept_len = if has_prr { n - num_rej + 1 } else { usize::MAX };
    // PRR's prefix sums of qualities 0 and 1 are counts of right answers, exact as
    // integers; AUROC's sums are per run of tied uncertainties.
    let (mut position, mut prefix, mut area) = (0usize, 0usize, 0.0f64);
    let (mut correct_below, mut n_errors, mut n_correct, mut doubled) = (0u64, 0u64, 0u64, 0u64);
    let mut start = 0;
    for &end in &sorted.tie_ends {
        let (mut errors, mut correct) = (0u64, 0u64);
        for &(slot, is_error) in sorted.traces.get(start..end).unwrap_or_default() {
            // Without branches where they can be avoided: whether a trace is an error is
            // as good as random.
            let count = resample.count(slot);
            let right = usize::from(!is_error);
            errors += (count * (1 - right)) as u64;
            correct += (count * right) as u64;
            if position + count < first_kept_len {
                // Every copy falls before the kept part: nothing to add to the area.
                position += count;
                prefix += count * right;
                continue;
            }
            for _ in 0..count {
                position += 1;
                prefix += right;
                if position >= first_kept_len {
                    area += prefix as f64 / position as f64;
                }
            }
        }
        doubled += errors * (2 * correct_below + correct);
        correct_below += correct;
        n_errors += errors;
        n_correct += correct;
        start = end;
    }
    let auroc = (n_errors > 0 && n_correct > 0)
        .then(|| doubled as f64 / (2 * u128::from(n_errors) * u128::from(n_correct)) as f64);
    if !has_prr {
        return (None, auroc);
    }
    let raw = area / num_rej as f64;
    let oracle_sum = match *oracle {
        Some((key, sum)) if key == (n, n_right) => sum,
        _ => {
            let sum = oracle_area(n, n_right, first_kept_len);
            *oracle = Some(((n, n_right), sum));
            sum
        }
    };
    let oracle_raw = oracle_sum / num_rej as f64;
    let random = n_right as f64 / n as f64;
    let denominator = oracle_raw - random;
    (
        (denominator > 0.0).then(|| (raw - random) / denominator),
        auroc,
    )
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
    let is_right: Vec<bool> = labelled.iter().map(|&idx| !is_error(idx)).collect();
    // Each metric's (slot, uncertainty, is an error) in the §6 order.
    let in_order: Vec<Vec<(usize, f64, bool)>> = Metric::ALL
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
    let point: Vec<(Option<f64>, Option<f64>)> = in_order
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
    let resamples = if labelled.len() < MAX_RESAMPLED {
        resamples
    } else {
        0
    };
    let sorted: Vec<Sorted> = in_order
        .iter()
        .map(|list| {
            let mut listed = vec![false; labelled.len()];
            for &(slot, _, _) in list {
                if let Some(seen) = listed.get_mut(slot) {
                    *seen = true;
                }
            }
            let nulls = (0..labelled.len())
                .filter(|&slot| !listed.get(slot).copied().unwrap_or(true))
                .map(|slot| (slot, !is_right.get(slot).copied().unwrap_or(false)))
                .collect();
            Sorted::new(list, nulls)
        })
        .collect();
    let n_metrics = Metric::ALL.len();
    let mut prr_samples: Vec<Vec<Option<f64>>> = vec![Vec::new(); n_metrics];
    let mut auroc_samples: Vec<Vec<f64>> = vec![Vec::new(); n_metrics];
    let mut resample = Resample {
        counts: vec![0u32; labelled.len()],
        right: 0,
    };
    let mut state = seed;
    if !labelled.is_empty() {
        for _ in 0..resamples {
            resample.counts.iter_mut().for_each(|count| *count = 0);
            resample.right = 0;
            for _ in 0..labelled.len() {
                let slot = below(&mut state, labelled.len());
                if let Some(count) = resample.counts.get_mut(slot) {
                    *count += 1;
                }
                resample.right += usize::from(is_right.get(slot).copied().unwrap_or(false));
            }
            let mut oracle = None;
            for (metric_idx, list) in sorted.iter().enumerate() {
                let (prr, auroc) = weighted_prr_auroc(list, &resample, &mut oracle);
                if let Some(samples) = prr_samples.get_mut(metric_idx) {
                    samples.push(prr);
                }
                if let (Some(samples), Some(auroc)) = (auroc_samples.get_mut(metric_idx), auroc) {
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
                n: in_order.get(metric_idx).map_or(0, Vec::len),
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

    /// The §6-ordered list of the traces whose score is `Some`, and the others as nulls.
    fn sorted_from(quality: &[f64], scores: &[Option<f64>]) -> (Vec<usize>, Sorted) {
        let mut list: Vec<(usize, f64, bool)> = scores
            .iter()
            .zip(quality)
            .enumerate()
            .filter_map(|(slot, (&score, &q))| Some((slot, score?, q == 0.0)))
            .collect();
        list.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let nulls = scores
            .iter()
            .zip(quality)
            .enumerate()
            .filter(|(_, (score, _))| score.is_none())
            .map(|(slot, (_, &q))| (slot, q == 0.0))
            .collect();
        let order = list.iter().map(|&(slot, _, _)| slot).collect();
        (order, Sorted::new(&list, nulls))
    }

    fn resample_of(counts: Vec<u32>, quality: &[f64]) -> Resample {
        let right = counts
            .iter()
            .zip(quality)
            .filter(|(_, q)| **q == 1.0)
            .map(|(&count, _)| count as usize)
            .sum();
        Resample { counts, right }
    }

    #[test]
    fn weighted_forms_equal_the_plain_ones_on_the_repeated_traces() {
        let mut state = 3u64;
        for n in [2usize, 3, 7, 20, 101, 400] {
            for round in 0..20 {
                let quality: Vec<f64> = (0..n)
                    .map(|_| {
                        if split_mix_64(&mut state).is_multiple_of(3) {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
                // Few distinct scores, so ties are common; every seventh trace null in
                // odd rounds.
                let scores: Vec<Option<f64>> = (0..n)
                    .map(|slot| {
                        let score = (split_mix_64(&mut state) % 5) as f64;
                        (round % 2 == 0 || slot % 7 != 3).then_some(score)
                    })
                    .collect();
                let (order, sorted) = sorted_from(&quality, &scores);
                // Unit counts (the point estimate), then a resample as the bootstrap draws
                // it: a count of c is the trace listed c times, its copies side by side
                // (same metric, ppl and trace id).
                let mut drawn = vec![0u32; n];
                for _ in 0..n {
                    drawn[below(&mut state, n)] += 1;
                }
                for counts in [vec![1u32; n], drawn] {
                    let mut in_order = Vec::new();
                    let (mut repeated_scores, mut repeated_errors) = (Vec::new(), Vec::new());
                    for &slot in &order {
                        for _ in 0..counts[slot] {
                            in_order.push(quality[slot]);
                            repeated_scores.push(scores[slot].unwrap());
                            repeated_errors.push(quality[slot] == 0.0);
                        }
                    }
                    let resample = resample_of(counts, &quality);
                    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                        (a, b) => a == b,
                    };
                    let mut oracle = None;
                    let (prr, auroc) = weighted_prr_auroc(&sorted, &resample, &mut oracle);
                    assert!(close(prr, eval::prr(&in_order, 0.5)), "{prr:?}");
                    assert!(close(
                        auroc,
                        eval::auroc(&repeated_scores, &repeated_errors)
                    ));
                    // The remembered oracle gives the same PRR.
                    assert_eq!(
                        weighted_prr_auroc(&sorted, &resample, &mut oracle),
                        (prr, auroc)
                    );
                }
            }
        }
    }

    #[test]
    fn the_oracle_area_is_the_sum_over_every_position() {
        for n in 2..60usize {
            for n_right in 1..n {
                let first_kept_len = n - n / 2 + 1;
                let every = (first_kept_len..=n)
                    .map(|m| m.min(n_right) as f64 / m as f64)
                    .fold(0.0, |sum, value| sum + value);
                assert_eq!(
                    oracle_area(n, n_right, first_kept_len),
                    every,
                    "{n} {n_right}"
                );
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
