//! The per-trace data an importer fills in, and the log-prob validity rule of SPEC §3.

/// Where a trace came from, so its bytes can be read again for export and display
/// without keeping them in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordRef {
    /// Index of the input file (for multi-file runs).
    pub file_idx: u32,
    /// Byte offset of the record in the (decompressed) input stream.
    pub offset: u64,
    /// Length of the record in bytes.
    pub len: u64,
    /// 1-based line number of the record's first byte.
    pub line: u64,
    /// Which trace of the record this is (a response with `n` choices yields `n` traces).
    pub sub_idx: u32,
}

/// One trace as an importer sees it, before it is reduced to scores.
///
/// Importers reuse one buffer per record kind (call [`TraceBuf::clear`]), so the hot path
/// does not allocate per token. Log-probs are stored raw; validity is decided once, in
/// [`classify_logprob`], never by the importers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceBuf {
    pub question_id: Option<String>,
    pub trace_id: Option<String>,
    pub greedy: bool,
    pub prompt: Option<String>,
    pub text: Option<String>,
    pub answer: Option<String>,
    pub label: Option<String>,
    /// Token strings; filled only when the caller asked for full traces.
    pub tokens: Vec<String>,
    /// Number of token strings the record had (counted even when they are not kept).
    pub n_token_strings: Option<usize>,
    /// Raw log-probs as read; `NaN` stands for a JSON `null` or another non-number.
    pub logprobs: Vec<f64>,
    pub has_logprobs: bool,
    /// Top-k log-probs in CSR form: token `i`'s alternatives are
    /// `top_values[top_offsets[i]..top_offsets[i + 1]]`.
    pub top_offsets: Vec<u32>,
    pub top_values: Vec<f64>,
    /// Token strings of the top-k alternatives, parallel to `top_values`; only in full mode.
    pub top_tokens: Vec<String>,
    pub embedding: Option<Vec<f64>>,
}

impl TraceBuf {
    pub fn clear(&mut self) {
        self.question_id = None;
        self.trace_id = None;
        self.greedy = false;
        self.prompt = None;
        self.text = None;
        self.answer = None;
        self.label = None;
        self.tokens.clear();
        self.n_token_strings = None;
        self.logprobs.clear();
        self.has_logprobs = false;
        self.top_offsets.clear();
        self.top_values.clear();
        self.top_tokens.clear();
        self.embedding = None;
    }

    pub fn has_top(&self) -> bool {
        !self.top_offsets.is_empty()
    }

    /// Number of tokens that have a top-k list (the CSR has one more offset than lists).
    pub fn n_top_lists(&self) -> usize {
        self.top_offsets.len().saturating_sub(1)
    }

    /// Starts the top-k lists; call before the first [`TraceBuf::end_top_list`].
    pub fn begin_top_lists(&mut self) {
        self.top_offsets.clear();
        self.top_values.clear();
        self.top_tokens.clear();
        self.top_offsets.push(0);
    }

    /// Closes the current token's top-k list (the values pushed since the last call).
    pub fn end_top_list(&mut self) {
        let end = u32::try_from(self.top_values.len()).unwrap_or(u32::MAX);
        self.top_offsets.push(end);
    }

    /// The top-k log-probs of token `token_idx`, or an empty slice.
    pub fn top_list(&self, token_idx: usize) -> &[f64] {
        let (Some(&start), Some(&end)) = (
            self.top_offsets.get(token_idx),
            self.top_offsets.get(token_idx + 1),
        ) else {
            return &[];
        };
        self.top_values
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }
}

/// Log-probs at or below this are provider sentinels, not probabilities. SPEC §3 writes the
/// bound as −1e4 but names OpenAI's and vLLM's −9999 as sentinels, which that bound would
/// miss; no real log-softmax output comes near either value, so the bound sits at −9999.
pub const SENTINEL_LOGPROB: f64 = -9999.0;

/// The log-prob validity rule of SPEC §3: `None` for a sentinel or impossible value
/// (≤ −9999, −∞, NaN, > 1e-6); values in (0, 1e-6] are rounding noise and count as 0.
#[inline]
pub fn classify_logprob(value: f64) -> Option<f64> {
    if value.is_nan() || value <= SENTINEL_LOGPROB || value > 1e-6 {
        None
    } else if value > 0.0 {
        Some(0.0)
    } else {
        Some(value)
    }
}

/// Adds +0.0 so that a computed −0.0 prints as `0.0`.
#[inline]
pub(crate) fn positive_zero(value: f64) -> f64 {
    value + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprob_sentinels_follow_the_spec() {
        assert_eq!(classify_logprob(-0.5), Some(-0.5));
        assert_eq!(classify_logprob(0.0), Some(0.0));
        assert_eq!(classify_logprob(5e-7), Some(0.0));
        assert_eq!(classify_logprob(1e-6), Some(0.0));
        assert_eq!(classify_logprob(2e-6), None);
        assert_eq!(classify_logprob(-9998.0), Some(-9998.0));
        assert_eq!(classify_logprob(-9999.0), None);
        assert_eq!(classify_logprob(-1e4), None);
        assert_eq!(classify_logprob(-3.4e38), None);
        assert_eq!(classify_logprob(f64::NEG_INFINITY), None);
        assert_eq!(classify_logprob(f64::INFINITY), None);
        assert_eq!(classify_logprob(f64::NAN), None);
    }

    #[test]
    fn top_lists_are_csr() {
        let mut buf = TraceBuf::default();
        buf.begin_top_lists();
        buf.top_values.extend([-0.1, -2.0]);
        buf.end_top_list();
        buf.end_top_list();
        buf.top_values.push(-0.5);
        buf.end_top_list();
        assert_eq!(buf.n_top_lists(), 3);
        assert_eq!(buf.top_list(0), &[-0.1, -2.0]);
        assert_eq!(buf.top_list(1), &[] as &[f64]);
        assert_eq!(buf.top_list(2), &[-0.5]);
        assert_eq!(buf.top_list(3), &[] as &[f64]);
    }
}
