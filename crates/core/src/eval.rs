//! Selective-prediction statistics of a score: selective accuracy, AUROC, PRR and per-class P/R/F1.
//!
//! Scores are "higher = more uncertain", and a trace's quality is 1.0 when its predicted
//! class equals its gold label, else 0.0. Functions that take `sorted_*` slices expect
//! them in the caller's deterministic order: metric ascending (most confident first),
//! ties already broken.

use std::collections::BTreeMap;

/// Number of coverage levels of [`selective_accuracy`]: 0.05, 0.10, …, 1.00.
pub const N_COVERAGE_STEPS: usize = 20;

/// Selective accuracy at coverages s = 0.05, 0.10, …, 1.00.
///
/// For each `k_step` in 1..=20, s = `k_step as f64 * 0.05`, and the value is the mean
/// quality of the first k = ceil(s·n − 1e-9) traces (clamped to [0, n]), or `None` when
/// k == 0 (so 20 `None`s for n == 0). The 1e-9 keeps s·n values such as
/// 3·0.05·20 = 3.0000000000000004 from rounding up to the next trace.
pub fn selective_accuracy(sorted_quality: &[f64]) -> Vec<Option<f64>> {
    let n_traces = sorted_quality.len();
    let mut values = Vec::with_capacity(N_COVERAGE_STEPS);
    // k grows with s, so one running sum serves every coverage level; it adds in the same
    // order as summing each prefix separately, so the results are identical.
    let mut prefix_sum = 0.0f64;
    let mut prefix_len = 0usize;
    let mut rest = sorted_quality.iter();
    for k_step in 1..=N_COVERAGE_STEPS {
        let coverage = k_step as f64 * 0.05;
        // A float-to-int `as` saturates, so a tiny negative ceil (n == 0) becomes 0.
        let k = ((coverage * n_traces as f64 - 1e-9).ceil() as usize).min(n_traces);
        while prefix_len < k {
            let Some(&quality) = rest.next() else { break };
            prefix_sum += quality;
            prefix_len += 1;
        }
        values.push((prefix_len > 0).then(|| prefix_sum / prefix_len as f64));
    }
    values
}

/// AUROC of the score as a detector of errors (positives = errors; a higher score should
/// mean an error). Ties count ½.
///
/// Mann–Whitney U over average ranks in O(n log n): AUROC = (sum of ranks of positives −
/// n_pos(n_pos+1)/2) / (n_pos·n_neg). Scores are ordered with [`f64::total_cmp`] and equal
/// scores (by `==`, so −0.0 ties with +0.0) share their average rank. `None` if there are
/// no positives, no negatives, or the two slices differ in length. Scores must be finite.
pub fn auroc(scores: &[f64], is_error: &[bool]) -> Option<f64> {
    if scores.len() != is_error.len() {
        return None;
    }
    let mut order: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(is_error.iter().copied())
        .collect();
    order.sort_by(|left, right| left.0.total_cmp(&right.0));

    // Doubled ranks are integers even for tied groups, so U is accumulated exactly and
    // the only rounding is the final division.
    let mut doubled_rank_sum_pos: u128 = 0;
    let mut n_pos: u128 = 0;
    let mut group_start = 0usize;
    while let Some(&(group_score, _)) = order.get(group_start) {
        let group_len = order
            .get(group_start..)
            .unwrap_or(&[])
            .iter()
            .take_while(|(score, _)| *score == group_score)
            .count()
            // A NaN (excluded by the contract) equals nothing, not even itself; counting
            // it as its own group keeps the loop moving.
            .max(1);
        let group_end = group_start + group_len;
        // 1-based ranks group_start+1 ..= group_end average to (group_start+1+group_end)/2.
        let doubled_avg_rank = (group_start + 1 + group_end) as u128;
        let n_pos_in_group = order
            .get(group_start..group_end)
            .unwrap_or(&[])
            .iter()
            .filter(|(_, error)| *error)
            .count() as u128;
        doubled_rank_sum_pos += doubled_avg_rank * n_pos_in_group;
        n_pos += n_pos_in_group;
        group_start = group_end;
    }

    let n_neg = order.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let doubled_u = doubled_rank_sum_pos - n_pos * (n_pos + 1);
    Some(doubled_u as f64 / (2 * n_pos * n_neg) as f64)
}

/// Normalised prediction-rejection ratio at `max_rejection`, as LM-Polygraph computes it,
/// with the random baseline as its exact expectation.
///
/// raw(q): num_rej = floor(max_rejection·n) (Python's `int()`); raw is the average, over
/// m in (n − num_rej + 1)..=n, of the mean of the first m qualities. The oracle is raw of
/// the qualities sorted descending; the random baseline is the mean quality (each prefix
/// mean of a uniformly random order has that expectation). PRR = (raw − random) /
/// (oracle − random).
///
/// `None` when n == 0, num_rej == 0, num_rej > n (max_rejection above 1, where
/// LM-Polygraph fails on mismatched shapes), all qualities are equal, or num_rej == 1: then
/// only m = n remains, raw is the overall mean for every order, and oracle == random.
pub fn prr(sorted_quality: &[f64], max_rejection: f64) -> Option<f64> {
    let n_traces = sorted_quality.len();
    // `as` truncates toward zero like `int()`, and sends NaN and negatives to 0.
    let num_rej = (max_rejection * n_traces as f64) as usize;
    if n_traces == 0 || num_rej <= 1 || num_rej > n_traces {
        return None;
    }
    let first = sorted_quality.first().copied()?;
    if sorted_quality.iter().all(|&quality| quality == first) {
        return None;
    }

    let random = mean(sorted_quality)?;
    let raw = raw_rejection_area(sorted_quality, num_rej);
    let mut descending = sorted_quality.to_vec();
    descending.sort_by(|left, right| right.total_cmp(left));
    let oracle = raw_rejection_area(&descending, num_rej);

    let denominator = oracle - random;
    // Mathematically positive once the cases above are excluded; the check stops a
    // rounding-level denominator from producing a meaningless ratio.
    if denominator.is_nan() || denominator <= 0.0 {
        return None;
    }
    Some((raw - random) / denominator)
}

/// LM-Polygraph's un-normalised PRR: average of the prefix means for m > n − num_rej.
fn raw_rejection_area(sorted_quality: &[f64], num_rej: usize) -> f64 {
    let first_kept_len = sorted_quality.len() - num_rej + 1;
    let mut prefix_sum = 0.0f64;
    let mut area = 0.0f64;
    for (prefix_len, &quality) in (1usize..).zip(sorted_quality) {
        prefix_sum += quality;
        if prefix_len >= first_kept_len {
            area += prefix_sum / prefix_len as f64;
        }
    }
    area / num_rej as f64
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassPrf {
    pub class_id: u32,
    /// `None` when nothing was predicted as this class.
    pub precision: Option<f64>,
    /// `None` when no trace has this gold label.
    pub recall: Option<f64>,
    /// `None` when precision or recall is; 0.0 when both are 0.0.
    pub f1: Option<f64>,
    /// Number of traces whose gold label is this class.
    pub support: usize,
}

/// Per-class precision / recall / F1 from (predicted class, gold label) pairs.
///
/// A `None` prediction (no answer) equals no label. One entry per class id that occurs as
/// a prediction or a label, sorted by class id.
pub fn per_class_prf(pairs: &[(Option<u32>, u32)]) -> Vec<ClassPrf> {
    #[derive(Default)]
    struct Counts {
        n_correct: usize,
        n_predicted: usize,
        support: usize,
    }

    let mut counts: BTreeMap<u32, Counts> = BTreeMap::new();
    for &(predicted, label) in pairs {
        counts.entry(label).or_default().support += 1;
        if let Some(predicted) = predicted {
            let class_counts = counts.entry(predicted).or_default();
            class_counts.n_predicted += 1;
            if predicted == label {
                class_counts.n_correct += 1;
            }
        }
    }

    counts
        .into_iter()
        .map(|(class_id, class_counts)| {
            let n_correct = class_counts.n_correct as f64;
            let precision =
                (class_counts.n_predicted > 0).then(|| n_correct / class_counts.n_predicted as f64);
            let recall =
                (class_counts.support > 0).then(|| n_correct / class_counts.support as f64);
            // 2pr/(p+r) equals 2·correct/(predicted+support) whenever both are defined
            // (and gives 0 when both are 0); the count form rounds only once.
            let f1 = match (precision, recall) {
                (Some(_), Some(_)) => {
                    Some(2.0 * n_correct / (class_counts.n_predicted + class_counts.support) as f64)
                }
                _ => None,
            };
            ClassPrf {
                class_id,
                precision,
                recall,
                f1,
                support: class_counts.support,
            }
        })
        .collect()
}

/// Mean of a slice, `None` if empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    // Folding from +0.0 (std's float `sum` starts at −0.0) keeps a zero mean positive.
    let sum = values.iter().fold(0.0f64, |acc, &value| acc + value);
    Some(sum / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_close(actual: Option<f64>, expected: f64) {
        match actual {
            Some(value) => assert!(
                (value - expected).abs() < 1e-12,
                "got {value}, expected {expected}"
            ),
            None => panic!("got None, expected {expected}"),
        }
    }

    /// Every permutation of `items` (Heap's algorithm), for brute-force expectations.
    fn all_permutations(items: &[f64]) -> Vec<Vec<f64>> {
        fn heap(k: usize, items: &mut Vec<f64>, out: &mut Vec<Vec<f64>>) {
            if k <= 1 {
                out.push(items.clone());
                return;
            }
            heap(k - 1, items, out);
            for swap_idx in 0..k - 1 {
                if k.is_multiple_of(2) {
                    items.swap(swap_idx, k - 1);
                } else {
                    items.swap(0, k - 1);
                }
                heap(k - 1, items, out);
            }
        }
        let mut work = items.to_vec();
        let mut out = Vec::new();
        heap(work.len(), &mut work, &mut out);
        out
    }

    /// AUROC as the fraction of (error, correct) pairs ordered correctly, ties ½.
    fn naive_auroc(scores: &[f64], is_error: &[bool]) -> Option<f64> {
        let mut favourable = 0.0;
        let mut n_pairs = 0usize;
        for (pos_score, _) in scores.iter().zip(is_error).filter(|(_, error)| **error) {
            for (neg_score, _) in scores.iter().zip(is_error).filter(|(_, error)| !**error) {
                n_pairs += 1;
                if pos_score > neg_score {
                    favourable += 1.0;
                } else if pos_score == neg_score {
                    favourable += 0.5;
                }
            }
        }
        (n_pairs > 0).then(|| favourable / n_pairs as f64)
    }

    #[test]
    fn selective_accuracy_n7() {
        let quality = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        // k = ceil(0.35·k_step − 1e-9): steps 1–2 → 1, 3–5 → 2, 6–8 → 3, 9–11 → 4,
        // 12–14 → 5, 15–17 → 6, 18–20 → 7 (0.35·20 = 7 exactly, the 1e-9 keeps it 7).
        // Prefix sums 1,2,2,3,3,3,4 → means 1, 1, 2/3, 3/4, 3/5, 3/6, 4/7.
        let expected_k = [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7];
        let prefix_means = [1.0, 1.0, 2.0 / 3.0, 0.75, 0.6, 0.5, 4.0 / 7.0];
        let values = selective_accuracy(&quality);
        assert_eq!(values.len(), 20);
        for (value, k) in values.iter().zip(expected_k) {
            assert_close(*value, prefix_means[k - 1]);
        }
    }

    #[test]
    fn selective_accuracy_epsilon_keeps_exact_prefixes() {
        // n = 20: k must be exactly k_step although 3·0.05·20 = 3.0000000000000004. With
        // quality 1 only at index 3 (0-based), k = 3 gives 0/3 while k = 4 would give 1/4.
        let mut quality = [0.0; 20];
        quality[3] = 1.0;
        let values = selective_accuracy(&quality);
        assert_eq!(values[2], Some(0.0));
        assert_close(values[3], 0.25);
        assert_close(values[19], 0.05);
    }

    #[test]
    fn selective_accuracy_small_n() {
        assert_eq!(selective_accuracy(&[]), vec![None; 20]);
        // n = 1: ceil(0.05 − 1e-9) = 1 already at the first step.
        assert_eq!(selective_accuracy(&[0.0]), vec![Some(0.0); 20]);
    }

    #[test]
    fn auroc_hand_example() {
        // Ascending: 0.1 (ok) r1, 0.35 (ok) r2, 0.4 (err) r3, 0.8 (err) r4.
        // Error ranks 3 + 4 = 7; U = 7 − 2·3/2 = 4; AUROC = 4 / (2·2) = 1.0.
        assert_eq!(
            auroc(&[0.1, 0.4, 0.35, 0.8], &[false, true, false, true]),
            Some(1.0)
        );
        // Ascending: 0.2 (err) r1, 0.3 (ok) r2, 0.5 (err) r3.
        // Error ranks 1 + 3 = 4; U = 4 − 3 = 1; AUROC = 1 / (2·1) = 0.5.
        assert_eq!(auroc(&[0.5, 0.2, 0.3], &[true, true, false]), Some(0.5));
        // Ascending: 0.1 (err) r1, 0.9 (ok) r2 → U = 1 − 1 = 0 → 0.0.
        assert_eq!(auroc(&[0.9, 0.1], &[false, true]), Some(0.0));
    }

    #[test]
    fn auroc_ties() {
        // All equal: ranks all (1+4)/2 = 2.5; errors 2·2.5 = 5; U = 5 − 3 = 2; 2/4 = 0.5.
        assert_eq!(auroc(&[0.3; 4], &[true, false, true, false]), Some(0.5));
        // Scores [1, 2, 2, 3], errors at the second 2 and at 3; ranks 1, 2.5, 2.5, 4.
        // Error ranks 2.5 + 4 = 6.5; U = 6.5 − 3 = 3.5; AUROC = 3.5/4 = 0.875.
        assert_eq!(
            auroc(&[1.0, 2.0, 2.0, 3.0], &[false, false, true, true]),
            Some(0.875)
        );
        // −0.0 ties with +0.0: one pair, tied → 0.5.
        assert_eq!(auroc(&[-0.0, 0.0], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.0, -0.0], &[false, true]), Some(0.5));
    }

    #[test]
    fn auroc_undefined() {
        assert_eq!(auroc(&[], &[]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(auroc(&[0.1, 0.2], &[false]), None);
    }

    #[test]
    fn prr_hand_examples() {
        // [1,1,0,1,0,0], 0.5: n = 6, num_rej = 3, m = 4, 5, 6; prefix sums 1,2,2,3,3,3
        // → 3/4, 3/5, 3/6, the same as the oracle [1,1,1,0,0,0] → PRR = 1.
        assert_close(prr(&[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], 0.5), 1.0);
        // [0,1,1,0,1,0], 0.5: prefix sums 0,1,2,2,3,3 → 2/4, 3/5, 3/6, raw = 1.6/3;
        // oracle = (0.75 + 0.6 + 0.5)/3 = 1.85/3; random = 0.5 = 1.5/3
        // → PRR = (1.6 − 1.5)/(1.85 − 1.5) = 0.1/0.35 = 2/7.
        assert_close(prr(&[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], 0.5), 2.0 / 7.0);
        assert_close(
            Some(raw_rejection_area(&[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], 3)),
            1.6 / 3.0,
        );
        // [1,0,1,0], 1.0: num_rej = 4, m = 1..4 → 1, 1/2, 2/3, 2/4, raw = (8/3)/4 = 2/3;
        // oracle [1,1,0,0] → 1, 1, 2/3, 1/2, (19/6)/4 = 19/24; random 1/2
        // → PRR = (1/6)/(7/24) = 4/7.
        assert_close(prr(&[1.0, 0.0, 1.0, 0.0], 1.0), 4.0 / 7.0);
        // Worst order [0,0,1,1], 1.0: 0, 0, 1/3, 1/2 → raw = (5/6)/4 = 5/24
        // → PRR = (5/24 − 12/24)/(19/24 − 12/24) = −1.
        assert_close(prr(&[0.0, 0.0, 1.0, 1.0], 1.0), -1.0);
        // [1,0,0,1,0], 0.5: num_rej = int(2.5) = 2, m = 4, 5; prefix sums 1,1,1,2,2
        // → raw = (2/4 + 2/5)/2 = 0.45; oracle [1,1,0,0,0] → (2/4 + 2/5)/2 = 0.45 → 1.
        assert_close(prr(&[1.0, 0.0, 0.0, 1.0, 0.0], 0.5), 1.0);
        // [0,1,0,0,1], 0.5: prefix sums 0,1,1,1,2 → raw = (1/4 + 2/5)/2 = 0.325;
        // random 0.4 → PRR = (0.325 − 0.4)/(0.45 − 0.4) = −1.5.
        assert_close(prr(&[0.0, 1.0, 0.0, 0.0, 1.0], 0.5), -1.5);
    }

    #[test]
    fn prr_undefined() {
        assert_eq!(prr(&[], 0.5), None);
        assert_eq!(prr(&[1.0, 1.0, 1.0, 1.0], 0.5), None);
        assert_eq!(prr(&[0.0, 0.0, 0.0], 1.0), None);
        // int(0.1·6) = 0 rejected.
        assert_eq!(prr(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 0.1), None);
        // int(0.2·6) = 1: only m = n, raw = oracle = random.
        assert_eq!(prr(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 0.2), None);
        assert_eq!(prr(&[1.0, 0.0], 1.5), None);
        assert_eq!(prr(&[1.0, 0.0], f64::NAN), None);
        assert_eq!(prr(&[1.0, 0.0], -1.0), None);
    }

    #[test]
    fn prr_random_baseline_is_the_exact_expectation() {
        for quality in [
            [1.0, 1.0, 0.0, 1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.25, 0.5, 1.0, 0.0, 0.75, 0.1],
        ] {
            let orders = all_permutations(&quality);
            assert_eq!(orders.len(), 720);
            let distinct_orders: std::collections::BTreeSet<Vec<u64>> =
                all_permutations(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
                    .iter()
                    .map(|order| order.iter().map(|value| value.to_bits()).collect())
                    .collect();
            assert_eq!(distinct_orders.len(), 720);
            let expected_mean = mean(&quality).unwrap_or(f64::NAN);
            for num_rej in 1..=6 {
                let raw_sum = orders
                    .iter()
                    .map(|order| raw_rejection_area(order, num_rej))
                    .fold(0.0, |acc, raw| acc + raw);
                assert_close(Some(raw_sum / 720.0), expected_mean);
            }
        }
    }

    #[test]
    fn per_class_prf_hand_example() {
        let pairs = [
            (Some(0), 0),
            (Some(0), 1),
            (Some(1), 1),
            (None, 1),
            (Some(2), 0),
            (Some(5), 4),
            (Some(3), 6),
            (Some(6), 3),
        ];
        // class 0: predicted 2 (1 right), support 2 → p 1/2, r 1/2, f1 2·1/(2+2) = 0.5.
        // class 1: predicted 1 (1 right), support 3 → p 1, r 1/3, f1 2·1/(1+3) = 0.5.
        // class 2: predicted 1 (0 right), support 0 → p 0, r None, f1 None.
        // class 3: predicted 1 (0 right), support 1 → p 0, r 0, f1 0.
        // class 4: predicted 0, support 1 → p None, r 0, f1 None.
        // class 5: predicted 1 (0 right), support 0 → p 0, r None, f1 None.
        // class 6: as class 3.
        let prf = |class_id, precision, recall, f1, support| ClassPrf {
            class_id,
            precision,
            recall,
            f1,
            support,
        };
        assert_eq!(
            per_class_prf(&pairs),
            vec![
                prf(0, Some(0.5), Some(0.5), Some(0.5), 2),
                prf(1, Some(1.0), Some(1.0 / 3.0), Some(0.5), 3),
                prf(2, Some(0.0), None, None, 0),
                prf(3, Some(0.0), Some(0.0), Some(0.0), 1),
                prf(4, None, Some(0.0), None, 1),
                prf(5, Some(0.0), None, None, 0),
                prf(6, Some(0.0), Some(0.0), Some(0.0), 1),
            ]
        );
        assert_eq!(per_class_prf(&[]), vec![]);
        // Only "no answer" for label 7: p None, r 0/1.
        assert_eq!(
            per_class_prf(&[(None, 7)]),
            vec![prf(7, None, Some(0.0), None, 1)]
        );
    }

    #[test]
    fn per_class_f1_matches_harmonic_mean() {
        // Label 0 ×3 predicted [0, 0, 1]; label 1 ×1 predicted [0]:
        // class 0: p 2/3, r 2/3 → f1 2/3; class 1: p 0/1, r 0/1 → f1 0.
        let result = per_class_prf(&[(Some(0), 0), (Some(0), 0), (Some(1), 0), (Some(0), 1)]);
        assert_close(result[0].precision, 2.0 / 3.0);
        assert_close(result[0].recall, 2.0 / 3.0);
        assert_close(result[0].f1, 2.0 / 3.0);
        assert_eq!(result[1].f1, Some(0.0));
    }

    #[test]
    fn mean_examples() {
        assert_eq!(mean(&[]), None);
        // (1 + 2 + 6)/3 = 3.
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert!(mean(&[-0.0]).is_some_and(|value| value.is_sign_positive()));
    }

    proptest! {
        #[test]
        fn auroc_matches_pair_counting(
            cases in prop::collection::vec((0u8..8, any::<bool>()), 0..60),
        ) {
            // Few distinct scores so ties are common.
            let scores: Vec<f64> = cases.iter().map(|(score, _)| f64::from(*score) / 4.0).collect();
            let errors: Vec<bool> = cases.iter().map(|(_, error)| *error).collect();
            let fast = auroc(&scores, &errors);
            let slow = naive_auroc(&scores, &errors);
            prop_assert_eq!(fast.is_some(), slow.is_some());
            if let (Some(fast), Some(slow)) = (fast, slow) {
                prop_assert!((fast - slow).abs() < 1e-12);
            }
        }

        #[test]
        fn prr_is_at_most_one(
            quality in prop::collection::vec(prop::bool::ANY, 0..80),
            max_rejection in 0.0f64..=1.0,
        ) {
            let quality: Vec<f64> = quality.into_iter().map(f64::from).collect();
            if let Some(value) = prr(&quality, max_rejection) {
                prop_assert!(value <= 1.0 + 1e-12);
                prop_assert!(value.is_finite());
            }
            let mut descending = quality.clone();
            descending.sort_by(|left, right| right.total_cmp(left));
            if let Some(value) = prr(&descending, max_rejection) {
                prop_assert!((value - 1.0).abs() < 1e-12);
            }
        }

        #[test]
        fn selective_accuracy_full_coverage_is_the_mean(
            quality in prop::collection::vec(prop::bool::ANY, 1..100),
        ) {
            let quality: Vec<f64> = quality.into_iter().map(f64::from).collect();
            let values = selective_accuracy(&quality);
            prop_assert_eq!(values.len(), 20);
            prop_assert_eq!(values[19], mean(&quality));
        }
    }
}
