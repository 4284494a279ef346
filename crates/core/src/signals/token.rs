//! Token-level signals of SPEC §5b, computed in one pass over a trace's tokens while it
//! streams past: DeepConf's four confidences (Fu et al. 2025; facebookresearch/deepconf
//! `deepconf/utils.py` without its 3-decimal rounding) and self-certainty (Kang et al.
//! 2025).
//!
//! Nothing per token is kept beyond the pass: the sliding window is a ring of the last
//! min(N, w) confidences, the lowest window a running minimum, and the bottom 10 % of window
//! means a max-heap bounded by that 10 %. The buffers live in [`TokenScratch`], reused
//! from trace to trace.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::trace::{TraceBuf, classify_logprob, positive_zero};

/// DeepConf's default window (its `window_size` / `tail_tokens`).
pub const DEFAULT_WINDOW: u32 = 2048;

/// DeepConf's share of window means that `conf_bottom10` averages.
const BOTTOM_SHARE: f64 = 0.1;

/// A trace's token-level signals; None is null.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TokenSignals {
    pub conf_mean: Option<f64>,
    pub conf_tail: Option<f64>,
    pub conf_bottom10: Option<f64>,
    pub conf_lowest: Option<f64>,
    pub self_certainty: Option<f64>,
}

/// Buffers reused from trace to trace.
#[derive(Debug, Default)]
pub struct TokenScratch {
    /// The last min(N, w) confidences, oldest at `ring_next` once full.
    ring: Vec<f64>,
    /// The smallest window means so far (a max-heap, so the largest of them is on top).
    bottom: BinaryHeap<TotalOrder>,
    /// ln k for small k, so the common top-5 or top-20 lists cost no logarithm.
    ln_small: Vec<f64>,
}

/// An f64 ordered by [`f64::total_cmp`] (window means are finite, so this is their order).
#[derive(Debug, Clone, Copy)]
struct TotalOrder(f64);

impl PartialEq for TotalOrder {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for TotalOrder {}

impl PartialOrd for TotalOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sizes of top-k lists whose logarithm is tabled.
const LN_TABLE: usize = 128;

impl TokenScratch {
    fn ln(&mut self, k: usize) -> f64 {
        if self.ln_small.is_empty() {
            self.ln_small = (0..LN_TABLE).map(|k| libm::log(k as f64)).collect();
        }
        match self.ln_small.get(k) {
            Some(&ln_k) => ln_k,
            None => libm::log(k as f64),
        }
    }
}

/// The valid entries of a top list (SPEC §5b's Tᵢ): their sum and count.
#[inline]
fn top_sum(top_list: &[f64]) -> (f64, usize) {
    top_list
        .iter()
        .filter_map(|&value| classify_logprob(value))
        .fold((0.0, 0), |(sum, count), value| (sum + value, count + 1))
}

/// How many valid tokens have at least one valid top entry (N of SPEC §5b).
fn count_confidences(trace: &TraceBuf) -> usize {
    (0..trace.logprobs.len())
        .filter(|&token_idx| {
            trace
                .logprobs
                .get(token_idx)
                .is_some_and(|&raw| classify_logprob(raw).is_some())
                && trace
                    .top_list(token_idx)
                    .iter()
                    .any(|&value| classify_logprob(value).is_some())
        })
        .count()
}

/// The token signals of one trace. `window` is the `window` setting (w ≥ 1).
pub fn token_signals(trace: &TraceBuf, window: u32, scratch: &mut TokenScratch) -> TokenSignals {
    if !trace.has_top() {
        return TokenSignals::default();
    }
    let window = (window as usize).max(1);
    // How many of the smallest window means conf_bottom10 averages: b = max(1, ⌊0.1·(N−w+1)⌋)
    // as DeepConf's `int(len(window_means) * 0.1)`. It needs N before the first window, so
    // a trace long enough to have windows is counted first (a cheap pass: most top lists'
    // first entry is valid).
    let n_bottom = if trace.logprobs.len() >= window {
        let n_confidences = count_confidences(trace);
        if n_confidences >= window {
            let n_windows = n_confidences - window + 1;
            ((n_windows as f64 * BOTTOM_SHARE) as usize).max(1)
        } else {
            0
        }
    } else {
        0
    };
    scratch.ring.clear();
    scratch.bottom.clear();
    let mut ring_next = 0usize;
    let mut window_sum = 0.0f64;
    let mut lowest_window = f64::INFINITY;
    let mut sum_confidence = 0.0f64;
    let mut n_confidences = 0usize;
    let mut sum_certainty = 0.0f64;
    let mut n_certainty = 0usize;
    for (token_idx, &raw) in trace.logprobs.iter().enumerate() {
        if classify_logprob(raw).is_none() {
            continue;
        }
        let (top_sum, k) = top_sum(trace.top_list(token_idx));
        if k == 0 {
            // DeepConf skips a token without a top list.
            continue;
        }
        // Cᵢ = −(1/k) Σ v, as DeepConf's `-np.mean(...)`.
        let confidence = -(top_sum / k as f64);
        if k >= 2 {
            sum_certainty += confidence - scratch.ln(k);
            n_certainty += 1;
        }
        sum_confidence += confidence;
        n_confidences += 1;
        if scratch.ring.len() < window {
            scratch.ring.push(confidence);
            window_sum += confidence;
        } else if let Some(oldest) = scratch.ring.get_mut(ring_next) {
            window_sum += confidence - *oldest;
            *oldest = confidence;
            ring_next += 1;
            if ring_next == window {
                ring_next = 0;
                // A running sum drifts by a rounding error per token; summing the ring
                // afresh once per w tokens keeps it exact at O(1) per token.
                window_sum = scratch.ring.iter().sum();
            }
        }
        if n_confidences >= window {
            let window_mean = window_sum / window as f64;
            lowest_window = lowest_window.min(window_mean);
            if scratch.bottom.len() < n_bottom {
                scratch.bottom.push(TotalOrder(window_mean));
            } else if let Some(mut largest) = scratch.bottom.peek_mut()
                && window_mean < largest.0
            {
                *largest = TotalOrder(window_mean);
            }
        }
    }
    if n_confidences == 0 {
        // N = 0 (and then no token has k ≥ 2 either).
        return TokenSignals::default();
    }
    let conf_mean = sum_confidence / n_confidences as f64;
    let tail_sum: f64 = scratch.ring.iter().sum();
    let conf_tail = tail_sum / scratch.ring.len().max(1) as f64;
    let (conf_bottom10, conf_lowest) = if n_confidences < window {
        (conf_mean, conf_mean)
    } else {
        let bottom_sum: f64 = scratch.bottom.iter().map(|value| value.0).sum();
        (
            bottom_sum / scratch.bottom.len().max(1) as f64,
            lowest_window,
        )
    };
    TokenSignals {
        conf_mean: Some(positive_zero(conf_mean)),
        conf_tail: Some(positive_zero(conf_tail)),
        conf_bottom10: Some(positive_zero(conf_bottom10)),
        conf_lowest: Some(positive_zero(conf_lowest)),
        self_certainty: (n_certainty > 0)
            .then(|| positive_zero(sum_certainty / n_certainty as f64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(logprobs: &[f64], top: &[&[f64]]) -> TraceBuf {
        let mut buf = TraceBuf {
            logprobs: logprobs.to_vec(),
            has_logprobs: true,
            ..TraceBuf::default()
        };
        buf.begin_top_lists();
        for list in top {
            buf.top_values.extend_from_slice(list);
            buf.end_top_list();
        }
        buf
    }

    /// DeepConf's functions, transcribed over a plain list of confidences (the reference
    /// the streaming pass must equal).
    fn reference(confs: &[f64], window: usize) -> (f64, f64, f64, f64) {
        let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
        let conf_mean = mean(confs);
        let tail = if confs.len() > window {
            &confs[confs.len() - window..]
        } else {
            confs
        };
        let conf_tail = mean(tail);
        if confs.len() < window {
            return (conf_mean, conf_tail, conf_mean, conf_mean);
        }
        let mut means: Vec<f64> = confs.windows(window).map(mean).collect();
        let lowest = means.iter().copied().fold(f64::INFINITY, f64::min);
        let n_bottom = ((means.len() as f64 * 0.1) as usize).max(1);
        means.sort_by(f64::total_cmp);
        (conf_mean, conf_tail, mean(&means[..n_bottom]), lowest)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    fn check(buf: &TraceBuf, confs: &[f64], window: u32) {
        let got = token_signals(buf, window, &mut TokenScratch::default());
        let (mean, tail, bottom, lowest) = reference(confs, window as usize);
        for (name, got, want) in [
            ("conf_mean", got.conf_mean, mean),
            ("conf_tail", got.conf_tail, tail),
            ("conf_bottom10", got.conf_bottom10, bottom),
            ("conf_lowest", got.conf_lowest, lowest),
        ] {
            let got = got.unwrap();
            assert!(close(got, want), "w={window} {name}: {got} vs {want}");
        }
    }

    #[test]
    fn confidences_by_hand() {
        // C = [1, 2, 3, 4] from top lists whose means are −1, −2, −3, −4.
        let buf = trace(
            &[-0.5, -1.0, -2.0, -3.0],
            &[&[-0.5, -1.5], &[-1.0, -3.0], &[-3.0], &[-2.0, -6.0, -4.0]],
        );
        let by_window = |window| token_signals(&buf, window, &mut TokenScratch::default());
        // w = 2: windows [1,2], [2,3], [3,4] → means 1.5, 2.5, 3.5; b = max(1, ⌊0.3⌋) = 1.
        let two = by_window(2);
        assert_eq!(two.conf_mean, Some(2.5));
        assert_eq!(two.conf_tail, Some(3.5));
        assert_eq!(two.conf_bottom10, Some(1.5));
        assert_eq!(two.conf_lowest, Some(1.5));
        // w = 4 = N: one window, the whole trace.
        let four = by_window(4);
        assert_eq!(four.conf_tail, Some(2.5));
        assert_eq!(four.conf_lowest, Some(2.5));
        // w = 5 > N: every confidence is the mean of C.
        let five = by_window(5);
        assert_eq!(
            (five.conf_tail, five.conf_bottom10, five.conf_lowest),
            (Some(2.5), Some(2.5), Some(2.5))
        );
        // w = 1: windows are the tokens; the tail is the last token.
        let one = by_window(1);
        assert_eq!((one.conf_tail, one.conf_lowest), (Some(4.0), Some(1.0)));
        // Self-certainty skips the token with k = 1: (1 − ln 2) + (2 − ln 2) + (4 − ln 3).
        let expected = (7.0 - 2.0 * 2f64.ln() - 3f64.ln()) / 3.0;
        assert!(close(two.self_certainty.unwrap(), expected));
    }

    #[test]
    fn invalid_tokens_and_entries_are_skipped() {
        // Token 1's own log-prob is a sentinel: skipped with its list. Token 2's list has
        // only sentinels: no confidence. Token 3's list has a rounding-noise entry (0) and
        // a sentinel: k = 1, C = 0. Token 0: k = 2 (NaN dropped), C = 2.
        let buf = trace(
            &[-1.0, -9999.0, -0.5, -0.1],
            &[
                &[-1.0, f64::NAN, -3.0],
                &[-1.0, -1.0],
                &[-1e4, f64::NEG_INFINITY],
                &[5e-7, -9999.0],
            ],
        );
        let got = token_signals(&buf, 2048, &mut TokenScratch::default());
        assert_eq!(got.conf_mean, Some(1.0));
        assert_eq!(got.self_certainty, Some(2.0 - 2f64.ln()));
    }

    #[test]
    fn no_top_lists_means_null() {
        let mut buf = trace(&[-0.5, -1.0], &[]);
        buf.top_offsets.clear();
        assert_eq!(
            token_signals(&buf, 4, &mut TokenScratch::default()),
            TokenSignals::default()
        );
        let only_sentinels = trace(&[-0.5], &[&[-9999.0]]);
        assert_eq!(
            token_signals(&only_sentinels, 4, &mut TokenScratch::default()),
            TokenSignals::default()
        );
        // k = 1 everywhere: confidences, but no self-certainty.
        let single = trace(&[-0.5], &[&[-0.5]]);
        let got = token_signals(&single, 4, &mut TokenScratch::default());
        assert_eq!((got.conf_mean, got.self_certainty), (Some(0.5), None));
    }

    #[test]
    fn long_traces_match_the_reference_for_many_windows() {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let n = 5_000;
        let mut lists: Vec<Vec<f64>> = Vec::new();
        let mut logprobs = Vec::new();
        let mut confs = Vec::new();
        for token in 0..n {
            let k = 1 + (next() * 6.0) as usize;
            // A slow drift plus noise, so the weakest windows sit in one region.
            let scale = 0.2 + 3.0 * (token as f64 / n as f64 * 7.0).sin().abs();
            let list: Vec<f64> = (0..k).map(|_| -scale * next() * 4.0).collect();
            confs.push(-(list.iter().sum::<f64>() / k as f64));
            logprobs.push(list[0]);
            lists.push(list);
        }
        let refs: Vec<&[f64]> = lists.iter().map(Vec::as_slice).collect();
        let buf = trace(&logprobs, &refs);
        let mut scratch = TokenScratch::default();
        for window in [1, 2, 7, 64, 100, 999, 2048, 4_999, 5_000, 5_001, 100_000] {
            check(&buf, &confs, window);
            // The scratch is reused between traces without carrying anything over.
            let again = token_signals(&buf, window, &mut scratch);
            assert_eq!(
                again,
                token_signals(&buf, window, &mut TokenScratch::default())
            );
        }
    }
}
