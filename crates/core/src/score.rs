//! Per-trace token statistics (SPEC §5): the sums behind msp, ppl and mte, computed in one
//! pass over a trace's log-probs with sentinels dropped.

use crate::trace::{TraceBuf, classify_logprob, positive_zero};

/// What one trace's tokens contribute to the scores.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TokenStats {
    /// Valid log-probs (L of SPEC §5).
    pub n_valid: u32,
    /// Log-probs dropped as sentinels or impossible values.
    pub n_invalid: u32,
    /// Σ ℓᵢ over valid tokens.
    pub sum_logprob: f64,
    /// Σ Hᵢ over valid tokens, when every valid token has a usable top-k list.
    pub sum_entropy: Option<f64>,
}

impl TokenStats {
    /// −Σ ℓᵢ; None without valid tokens.
    pub fn msp(&self) -> Option<f64> {
        (self.n_valid > 0).then(|| positive_zero(-self.sum_logprob))
    }

    /// −(1/L) Σ ℓᵢ; None without valid tokens.
    pub fn ppl(&self) -> Option<f64> {
        (self.n_valid > 0).then(|| positive_zero(-self.sum_logprob / f64::from(self.n_valid)))
    }

    /// (1/L) Σ Hᵢ; None without valid tokens or without top-k on every valid token.
    pub fn mte(&self) -> Option<f64> {
        let sum_entropy = self.sum_entropy?;
        (self.n_valid > 0).then(|| positive_zero(sum_entropy / f64::from(self.n_valid)))
    }
}

/// Reduces a trace's log-probs. The caller has checked that top-k lists, if any, are
/// parallel to the log-probs.
pub fn token_stats(trace: &TraceBuf) -> TokenStats {
    let has_top = trace.has_top();
    let mut stats = TokenStats {
        sum_entropy: has_top.then_some(0.0),
        ..TokenStats::default()
    };
    for (token_idx, &raw) in trace.logprobs.iter().enumerate() {
        let Some(logprob) = classify_logprob(raw) else {
            stats.n_invalid += 1;
            continue;
        };
        stats.n_valid += 1;
        stats.sum_logprob += logprob;
        if let Some(sum_entropy) = stats.sum_entropy.as_mut() {
            match top_k_entropy(trace.top_list(token_idx)) {
                Some(entropy) => *sum_entropy += entropy,
                None => stats.sum_entropy = None,
            }
        }
    }
    stats
}

/// Entropy of one token's top-k distribution renormalised over those k (as uqlm does):
/// H = −Σ p̃ log p̃ with p̃ᵥ = e^ℓᵥ / Σ e^ℓᵤ. Sentinels (≤ −9999, −∞) are probability 0
/// and drop out; NaN or positive values are not probabilities and are dropped too.
/// None when no alternative is left.
pub fn top_k_entropy(top_logprobs: &[f64]) -> Option<f64> {
    let valid = || {
        top_logprobs
            .iter()
            .filter_map(|&value| classify_logprob(value))
    };
    let max = valid().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return None;
    }
    // With m = max ℓ and wᵥ = e^(ℓᵥ−m): H = ln Σw − Σ wᵥ(ℓᵥ−m) / Σw, stable for any ℓ.
    let (sum_weights, sum_weighted_shift) = valid().fold((0.0, 0.0), |(sum_w, sum_ws), value| {
        let shift = value - max;
        let weight = shift.exp();
        (sum_w + weight, sum_ws + weight * shift)
    });
    Some(positive_zero(
        (sum_weights.ln() - sum_weighted_shift / sum_weights).max(0.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(logprobs: &[f64], top: Option<&[&[f64]]>) -> TraceBuf {
        let mut buf = TraceBuf {
            logprobs: logprobs.to_vec(),
            has_logprobs: true,
            ..TraceBuf::default()
        };
        if let Some(lists) = top {
            buf.begin_top_lists();
            for list in lists {
                buf.top_values.extend_from_slice(list);
                buf.end_top_list();
            }
        }
        buf
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn msp_and_ppl_by_hand() {
        // ℓ = [−0.5, −1.5, −1.0] → Σ = −3, L = 3 → msp 3, ppl 1.
        let stats = token_stats(&trace(&[-0.5, -1.5, -1.0], None));
        assert_eq!(stats.msp(), Some(3.0));
        assert_eq!(stats.ppl(), Some(1.0));
        assert_eq!(stats.mte(), None);
    }

    #[test]
    fn sentinels_are_dropped_and_counted() {
        // Valid: −0.2, 0 (from 5e-7), −0.4 → Σ = −0.6, L = 3; invalid: −9999, NaN, −∞, 0.5.
        let stats = token_stats(&trace(
            &[-0.2, -9999.0, f64::NAN, 5e-7, f64::NEG_INFINITY, 0.5, -0.4],
            None,
        ));
        assert_eq!(stats.n_valid, 3);
        assert_eq!(stats.n_invalid, 4);
        assert!(close(stats.msp().unwrap(), 0.6));
        assert!(close(stats.ppl().unwrap(), 0.2));
    }

    #[test]
    fn no_valid_tokens_means_null_not_zero() {
        let stats = token_stats(&trace(&[-1e30, f64::NAN], None));
        assert_eq!((stats.msp(), stats.ppl(), stats.mte()), (None, None, None));
        let all_zero = token_stats(&trace(&[0.0, 0.0], None));
        assert_eq!(all_zero.msp().map(f64::to_bits), Some(0.0f64.to_bits()));
    }

    #[test]
    fn top_k_entropy_by_hand() {
        // Uniform over 4 → ln 4, whatever the common log-prob is (renormalised).
        assert!(close(top_k_entropy(&[-3.0; 4]).unwrap(), 4f64.ln()));
        // p = [0.5, 0.25] renormalise to [2/3, 1/3]: H = −(2/3 ln 2/3 + 1/3 ln 1/3).
        let expected = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
        assert!(close(
            top_k_entropy(&[0.5f64.ln(), 0.25f64.ln()]).unwrap(),
            expected
        ));
        // A sentinel is probability 0: same entropy as without it.
        assert!(close(
            top_k_entropy(&[0.5f64.ln(), 0.25f64.ln(), -9999.0, f64::NEG_INFINITY]).unwrap(),
            expected
        ));
        assert_eq!(top_k_entropy(&[0.0]), Some(0.0));
        assert_eq!(top_k_entropy(&[]), None);
        assert_eq!(top_k_entropy(&[f64::NAN, -9999.0]), None);
    }

    #[test]
    fn mte_is_the_mean_over_valid_tokens() {
        // Token 0: uniform over 2 → ln 2; token 1 invalid (skipped with its list);
        // token 2: one alternative → 0. mte = (ln 2 + 0) / 2.
        let stats = token_stats(&trace(
            &[-0.7, -9999.0, -0.1],
            Some(&[&[-0.7, -0.7], &[], &[-0.1]]),
        ));
        assert!(close(stats.mte().unwrap(), 2f64.ln() / 2.0));
        // A valid token without alternatives makes mte null.
        let missing = token_stats(&trace(&[-0.7, -0.1], Some(&[&[-0.7, -0.9], &[]])));
        assert_eq!(missing.mte(), None);
    }
}
