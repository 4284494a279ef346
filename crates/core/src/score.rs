//! Per-trace token statistics (SPEC §5): the sums behind msp, ppl and mte, computed in one
//! pass over a trace's log-probs with sentinels dropped.

use crate::trace::{TraceBuf, classify_logprob, positive_zero};

/// The fewest entries a token's top list needs for its entropy (SPEC §2).
pub const MIN_TOP_K: usize = 2;

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
/// None when the list has fewer than two entries (SPEC §2: top-k needs k ≥ 2; a list of
/// only the sampled token, as vLLM's `logprobs=0` writes, says nothing about entropy) or
/// when no alternative is left.
pub fn top_k_entropy(top_logprobs: &[f64]) -> Option<f64> {
    if top_logprobs.len() < MIN_TOP_K {
        return None;
    }
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
        // The largest entry's weight is e⁰ = 1 exactly: no call for it (a fifth of them).
        let weight = if shift == 0.0 {
            1.0
        } else {
            crate::exp::exp(shift)
        };
        (sum_w + weight, sum_ws + weight * shift)
    });
    Some(positive_zero(
        (libm::log(sum_weights) - sum_weighted_shift / sum_weights).max(0.0),
    ))
}

/// Many traces' tokens in CSR form, for a backend that reduces them in batches (the GPU).
/// Values are stored as [`classify_logprob`] sees them, as f32: an invalid log-prob
/// (sentinel, NaN, impossible) becomes NaN, so every backend agrees on which tokens count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenBatch {
    /// Log-probs of every token of every trace, trace after trace.
    pub logprobs: Vec<f32>,
    /// `logprobs[trace_offsets[t]..trace_offsets[t + 1]]` are trace `t`'s tokens.
    pub trace_offsets: Vec<u32>,
    /// Top-k log-probs of every token (invalid entries as NaN).
    pub top_values: Vec<f32>,
    /// `top_values[top_offsets[i]..top_offsets[i + 1]]` is token `i`'s list (empty when
    /// the trace has none).
    pub top_offsets: Vec<u32>,
}

impl TokenBatch {
    /// Adds one trace: raw log-probs, and for each token its raw top-k list (or none).
    pub fn push_trace(&mut self, logprobs: &[f64], top_lists: Option<&[Vec<f64>]>) {
        self.push_with(logprobs, |token_idx| {
            top_lists
                .and_then(|lists| lists.get(token_idx))
                .map_or(&[][..], Vec::as_slice)
        });
    }

    /// Adds a parsed trace (its top-k lists, if any, parallel to its log-probs).
    pub fn push_buf(&mut self, trace: &TraceBuf) {
        self.push_with(&trace.logprobs, |token_idx| trace.top_list(token_idx));
    }

    fn push_with<'a>(&mut self, logprobs: &[f64], top_list: impl Fn(usize) -> &'a [f64]) {
        if self.trace_offsets.is_empty() {
            self.trace_offsets.push(0);
        }
        if self.top_offsets.is_empty() {
            self.top_offsets.push(0);
        }
        let as_f32 = |raw: f64| classify_logprob(raw).map_or(f32::NAN, |value| value as f32);
        for (token_idx, &raw) in logprobs.iter().enumerate() {
            self.logprobs.push(as_f32(raw));
            self.top_values
                .extend(top_list(token_idx).iter().map(|&value| as_f32(value)));
            self.top_offsets
                .push(u32::try_from(self.top_values.len()).unwrap_or(u32::MAX));
        }
        self.trace_offsets
            .push(u32::try_from(self.logprobs.len()).unwrap_or(u32::MAX));
    }

    pub fn n_traces(&self) -> usize {
        self.trace_offsets.len().saturating_sub(1)
    }

    pub fn n_tokens(&self) -> usize {
        self.logprobs.len()
    }

    /// The reference reduction: [`token_stats`]'s arithmetic in f64 over the batch's
    /// values. Backends are tested against it, and fall back to it.
    pub fn cpu_stats(&self) -> Vec<TokenStats> {
        let mut list: Vec<f64> = Vec::new();
        self.trace_offsets
            .windows(2)
            .map(|bounds| {
                let (start, end) = (bounds[0] as usize, bounds[1] as usize);
                let mut stats = TokenStats {
                    sum_entropy: Some(0.0),
                    ..TokenStats::default()
                };
                for token_idx in start..end.min(self.logprobs.len()) {
                    let value = f64::from(self.logprobs[token_idx]);
                    if !value.is_finite() {
                        stats.n_invalid += 1;
                        continue;
                    }
                    stats.n_valid += 1;
                    stats.sum_logprob += value;
                    list.clear();
                    if let (Some(&a), Some(&b)) = (
                        self.top_offsets.get(token_idx),
                        self.top_offsets.get(token_idx + 1),
                    ) {
                        let values = self.top_values.get(a as usize..b as usize);
                        list.extend(values.unwrap_or(&[]).iter().map(|&v| f64::from(v)));
                    }
                    stats.sum_entropy = match (stats.sum_entropy, top_k_entropy(&list)) {
                        (Some(total), Some(entropy)) => Some(total + entropy),
                        _ => None,
                    };
                }
                stats
            })
            .collect()
    }
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
        // Only the sampled token (vLLM `logprobs=0`, `top_logprobs=0`): no entropy, not 0.
        assert_eq!(top_k_entropy(&[0.0]), None);
        assert_eq!(top_k_entropy(&[-0.3]), None);
        assert_eq!(top_k_entropy(&[]), None);
        // Two entries, one of them a sentinel: the alternative is probability 0.
        assert_eq!(top_k_entropy(&[-0.0, -9999.0]), Some(0.0));
        assert_eq!(top_k_entropy(&[f64::NAN, -9999.0]), None);
    }

    #[test]
    fn mte_is_the_mean_over_valid_tokens() {
        // Token 0: uniform over 2 → ln 2; token 1 invalid (skipped with its list);
        // token 2: the sampled token and a sentinel → 0. mte = (ln 2 + 0) / 2.
        let stats = token_stats(&trace(
            &[-0.7, -9999.0, -0.1],
            Some(&[&[-0.7, -0.7], &[], &[-0.0, -9999.0]]),
        ));
        assert!(close(stats.mte().unwrap(), 2f64.ln() / 2.0));
        // A top list of only the sampled token makes mte null, not "perfectly certain".
        let one_entry = token_stats(&trace(&[-0.7, -0.1], Some(&[&[-0.7, -0.9], &[-0.1]])));
        assert_eq!(one_entry.mte(), None);
        assert!(close(one_entry.msp().unwrap(), 0.8));
        // A valid token without alternatives makes mte null.
        let missing = token_stats(&trace(&[-0.7, -0.1], Some(&[&[-0.7, -0.9], &[]])));
        assert_eq!(missing.mte(), None);
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn batch_reference_agrees_with_token_stats() {
        let mut with_top = TraceBuf {
            logprobs: vec![-0.7, -9999.0, -0.1],
            has_logprobs: true,
            ..TraceBuf::default()
        };
        with_top.begin_top_lists();
        for list in [&[-0.7, -0.7][..], &[], &[-0.1, -3.0]] {
            with_top.top_values.extend_from_slice(list);
            with_top.end_top_list();
        }
        let without_top = TraceBuf {
            logprobs: vec![-0.5, f64::NAN, -1.5],
            has_logprobs: true,
            ..TraceBuf::default()
        };
        let mut batch = TokenBatch::default();
        batch.push_buf(&with_top);
        batch.push_buf(&without_top);
        batch.push_buf(&TraceBuf::default());
        let stats = batch.cpu_stats();
        for (got, trace) in stats
            .iter()
            .zip([&with_top, &without_top, &TraceBuf::default()])
        {
            let want = token_stats(trace);
            assert_eq!((got.n_valid, got.n_invalid), (want.n_valid, want.n_invalid));
            assert!((got.sum_logprob - want.sum_logprob).abs() < 1e-6);
            match (got.mte(), want.mte()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6),
                (a, b) => assert_eq!(a, b),
            }
        }
    }
}
