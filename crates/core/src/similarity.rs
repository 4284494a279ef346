//! Trace similarity within a question: ROUGE-L over word ids, embedding cosine and pairwise means.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a 64 parameters (offset basis and prime from the FNV reference). A fixed,
/// byte-oriented hash keeps word ids identical on every platform (wasm32 included)
/// and across runs, which std's seeded hashers do not.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Above this many `u64` limbs (8 MiB) the per-word position masks of [`lcs_len`] are
/// rebuilt on the fly from position lists instead of being stored densely, so two very
/// long texts with a large vocabulary cannot make the dense table grow quadratically.
const DENSE_MASK_LIMB_BUDGET: usize = 1 << 20;

/// Lower-cased word ids of a text for ROUGE-L.
///
/// The text is split on every char that is not [`char::is_alphanumeric`] (Unicode), empty
/// pieces are dropped, each word is lower-cased with [`str::to_lowercase`] and hashed with
/// FNV-1a 64 over the UTF-8 bytes of the lower-cased word. Two distinct words share an id
/// only on a 64-bit hash collision.
pub fn word_ids(text: &str) -> Vec<u64> {
    text.split(|ch: char| !ch.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(word_id)
        .collect()
}

fn word_id(word: &str) -> u64 {
    if word.is_ascii() {
        // ASCII lower-casing agrees with `str::to_lowercase` here and needs no allocation,
        // which matters because almost every word of a trace takes this path.
        fnv1a_64(word.bytes().map(|byte| byte.to_ascii_lowercase()))
    } else {
        // `str::to_lowercase` (not per-char lowering) so context rules such as the Greek
        // final sigma are applied.
        fnv1a_64(word.to_lowercase().bytes())
    }
}

fn fnv1a_64(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(FNV_OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// Length of the longest common subsequence of two word-id sequences.
///
/// Bit-parallel (Allison–Dix / Hyyrö), O(|a|·|b|/64): the shorter sequence is encoded as
/// one position bitmask per distinct word and the longer one is scanned once.
pub fn lcs_len(a: &[u64], b: &[u64]) -> usize {
    lcs_len_with_budget(a, b, DENSE_MASK_LIMB_BUDGET)
}

fn lcs_len_with_budget(a: &[u64], b: &[u64], dense_limb_budget: usize) -> usize {
    let (short_seq, long_seq) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short_seq.is_empty() {
        return 0;
    }
    let n_limbs = short_seq.len().div_ceil(64);
    let words = WordIndex::new(short_seq);
    // Hyyrö's row-difference vector: a zero bit marks a position of the short sequence
    // where the LCS with the scanned part of the long one grows by one, so the zero count
    // is the LCS and all-ones is the empty start. Padding bits above the sequence never
    // see a mask bit and stay 1, so the count below needs no masking.
    let mut state = vec![u64::MAX; n_limbs];

    if words.n_words().saturating_mul(n_limbs) <= dense_limb_budget {
        let dense = words.dense_masks(n_limbs);
        for word in long_seq {
            if let Some(word_idx) = words.find(*word) {
                let start = word_idx * n_limbs;
                if let Some(mask) = dense.get(start..start + n_limbs) {
                    advance(&mut state, mask.iter().copied());
                }
            }
        }
    } else {
        let lists = words.position_lists();
        for word in long_seq {
            if let Some(word_idx) = words.find(*word) {
                advance(&mut state, sparse_mask(lists.of(word_idx), n_limbs));
            }
        }
    }

    let n_ones: usize = state.iter().map(|limb| limb.count_ones() as usize).sum();
    n_limbs * 64 - n_ones
}

/// One step of Hyyrö's LCS recurrence `V' = (V + (V & M)) | (V & !M)` over little-endian
/// limbs. The addition is what lets a match slide to the next free position, so its carry
/// must cross limb boundaries. Words absent from the mask side are skipped by the callers:
/// with `M = 0` the step leaves `V` unchanged.
fn advance(state: &mut [u64], mask_limbs: impl Iterator<Item = u64>) {
    let mut carry = false;
    for (state_limb, mask_limb) in state.iter_mut().zip(mask_limbs) {
        let matched = *state_limb & mask_limb;
        let (partial, carry_a) = state_limb.overflowing_add(matched);
        let (sum, carry_b) = partial.overflowing_add(u64::from(carry));
        carry = carry_a || carry_b;
        *state_limb = sum | (*state_limb & !mask_limb);
    }
}

/// Limbs of a position bitmask built from sorted positions while they are consumed, so the
/// sparse path needs no buffer per word.
fn sparse_mask(sorted_positions: &[usize], n_limbs: usize) -> impl Iterator<Item = u64> {
    let mut rest = sorted_positions;
    (0..n_limbs).map(move |limb_idx| {
        let mut limb = 0u64;
        while let Some((&pos, tail)) = rest.split_first() {
            if pos / 64 != limb_idx {
                break;
            }
            limb |= 1u64 << (pos % 64);
            rest = tail;
        }
        limb
    })
}

/// Hasher for word ids in [`WordIndex`]. SipHash dominated the cost of short LCS calls; a
/// folded multiply is enough because the map is only probed, never iterated, so neither
/// DoS resistance nor a stable iteration order is needed, and it still spreads small
/// integer ids (as tests and other callers may pass) over hashbrown's bucket and tag bits.
#[derive(Default)]
struct WordIdHasher(u64);

impl Hasher for WordIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        let product = u128::from(self.0) * 0x9e37_79b9_7f4a_7c15;
        (product as u64) ^ ((product >> 64) as u64)
    }
}

/// Dense index (in order of first occurrence) of each distinct word of the mask-side
/// sequence, and that index for every position.
struct WordIndex {
    index: HashMap<u64, usize, BuildHasherDefault<WordIdHasher>>,
    word_of_pos: Vec<usize>,
}

impl WordIndex {
    fn new(seq: &[u64]) -> Self {
        let mut index: HashMap<u64, usize, BuildHasherDefault<WordIdHasher>> =
            HashMap::with_capacity_and_hasher(seq.len(), BuildHasherDefault::default());
        let word_of_pos = seq
            .iter()
            .map(|&word| {
                let next_idx = index.len();
                *index.entry(word).or_insert(next_idx)
            })
            .collect();
        Self { index, word_of_pos }
    }

    fn n_words(&self) -> usize {
        self.index.len()
    }

    fn find(&self, word: u64) -> Option<usize> {
        self.index.get(&word).copied()
    }

    /// All masks in one flat table, `n_limbs` limbs per distinct word.
    fn dense_masks(&self, n_limbs: usize) -> Vec<u64> {
        let mut dense = vec![0u64; self.n_words() * n_limbs];
        for (pos, &word_idx) in self.word_of_pos.iter().enumerate() {
            if let Some(limb) = dense.get_mut(word_idx * n_limbs + pos / 64) {
                *limb |= 1u64 << (pos % 64);
            }
        }
        dense
    }

    /// Ascending positions per word in compressed form (a counting sort), so memory stays
    /// linear in the sequence length whatever the vocabulary.
    fn position_lists(&self) -> PositionLists {
        let mut starts = vec![0usize; self.n_words() + 1];
        for &word_idx in &self.word_of_pos {
            if let Some(count) = starts.get_mut(word_idx + 1) {
                *count += 1;
            }
        }
        let mut running = 0;
        for start in &mut starts {
            running += *start;
            *start = running;
        }
        let mut cursors = starts.clone();
        let mut positions = vec![0usize; self.word_of_pos.len()];
        for (pos, &word_idx) in self.word_of_pos.iter().enumerate() {
            if let Some(cursor) = cursors.get_mut(word_idx) {
                if let Some(slot) = positions.get_mut(*cursor) {
                    *slot = pos;
                }
                *cursor += 1;
            }
        }
        PositionLists { starts, positions }
    }
}

/// `positions[starts[k]..starts[k + 1]]` are the ascending positions of word `k`.
struct PositionLists {
    starts: Vec<usize>,
    positions: Vec<usize>,
}

impl PositionLists {
    fn of(&self, word_idx: usize) -> &[usize] {
        let start = self.starts.get(word_idx).copied().unwrap_or(0);
        let end = self.starts.get(word_idx + 1).copied().unwrap_or(start);
        self.positions.get(start..end).unwrap_or(&[])
    }
}

/// ROUGE-L F1 = 2·LCS/(|a|+|b|); 0.0 if both are empty.
pub fn rouge_l_f1(a: &[u64], b: &[u64]) -> f64 {
    rouge_l_from_lcs(lcs_len(a, b), a.len(), b.len())
}

/// ROUGE-L F1 from an LCS length computed elsewhere (the GPU): the same f64 arithmetic, so
/// an exact LCS gives the identical score.
pub fn rouge_l_from_lcs(lcs: usize, len_a: usize, len_b: usize) -> f64 {
    let total_len = len_a + len_b;
    if total_len == 0 {
        return 0.0;
    }
    2.0 * lcs as f64 / total_len as f64
}

/// Embedding similarity (1 + cos(a, b)) / 2, computed in f64, in [0, 1].
///
/// If either vector has zero norm, cos is taken as 0 (the result is 0.5). Returns `None`
/// if the lengths differ, and also if the cosine is not a number (an input holds a NaN
/// or an infinity), so a broken embedding makes its pairs undefined rather than scored.
pub fn embedding_similarity(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let mut dot = 0.0f64;
    let mut norm_sq_a = 0.0f64;
    let mut norm_sq_b = 0.0f64;
    for (&value_a, &value_b) in a.iter().zip(b) {
        dot += value_a * value_b;
        norm_sq_a += value_a * value_a;
        norm_sq_b += value_b * value_b;
    }
    embedding_from_dot(dot, norm_sq_a, norm_sq_b)
}

/// [`embedding_similarity`] from a dot product computed elsewhere (the GPU) and the two
/// squared norms.
pub fn embedding_from_dot(dot: f64, norm_sq_a: f64, norm_sq_b: f64) -> Option<f64> {
    let cos = if norm_sq_a == 0.0 || norm_sq_b == 0.0 {
        0.0
    } else {
        // One square root of the product keeps parallel vectors such as [1, 2] and [2, 4]
        // at exactly cos = 1; separate roots only where the product would overflow.
        let product = norm_sq_a * norm_sq_b;
        if product.is_finite() {
            dot / product.sqrt()
        } else {
            dot / norm_sq_a.sqrt() / norm_sq_b.sqrt()
        }
    };
    if cos.is_nan() {
        return None;
    }
    Some((1.0 + cos.clamp(-1.0, 1.0)) / 2.0)
}

/// For one question: fill `out` with each item's mean similarity to the OTHER items.
///
/// `sim(i, j)` is called once per unordered pair, with `i < j` (so it must be symmetric);
/// `None` means the pair is undefined and is left out of both items' means. Items without
/// any defined pair get `None`, and so does every item when `n < 2`. `out` should have
/// length `n`: entries past `n` are set to `None`, and if `out` is shorter, the missing
/// items still count towards the means of the others but their own means are dropped.
pub fn mean_pairwise<F: FnMut(usize, usize) -> Option<f64>>(
    n: usize,
    mut sim: F,
    out: &mut [Option<f64>],
) {
    // (sum, count) per item; sums start at +0.0 so an all-zero mean is never printed as -0.
    let mut sums: Vec<(f64, usize)> = vec![(0.0, 0); n];
    for item_i in 0..n {
        for item_j in item_i + 1..n {
            let Some(pair_sim) = sim(item_i, item_j) else {
                continue;
            };
            for item_idx in [item_i, item_j] {
                if let Some((sum, count)) = sums.get_mut(item_idx) {
                    *sum += pair_sim;
                    *count += 1;
                }
            }
        }
    }
    for (slot_idx, slot) in out.iter_mut().enumerate() {
        *slot = match sums.get(slot_idx) {
            Some(&(sum, count)) if count > 0 => Some(sum / count as f64),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook O(n·m) dynamic programme, the reference for the bit-parallel version.
    fn naive_lcs(a: &[u64], b: &[u64]) -> usize {
        let mut prev_row = vec![0usize; b.len() + 1];
        let mut row = vec![0usize; b.len() + 1];
        for &word_a in a {
            for (col, &word_b) in b.iter().enumerate() {
                row[col + 1] = if word_a == word_b {
                    prev_row[col] + 1
                } else {
                    row[col].max(prev_row[col + 1])
                };
            }
            std::mem::swap(&mut prev_row, &mut row);
        }
        prev_row[b.len()]
    }

    fn ids(words: &[&str]) -> Vec<u64> {
        words.iter().map(|word| word_id(word)).collect()
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        match actual {
            Some(value) => assert!(
                (value - expected).abs() < 1e-12,
                "got {value}, expected {expected}"
            ),
            None => panic!("got None, expected {expected}"),
        }
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_64("".bytes()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64("foobar".bytes()), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn words_are_split_on_non_alphanumerics_and_lowercased() {
        assert_eq!(word_ids("a-b  c").len(), 3);
        assert_eq!(word_ids("a-b  c"), ids(&["a", "b", "c"]));
        assert_eq!(word_ids(""), Vec::<u64>::new());
        assert_eq!(word_ids(" -- ,. "), Vec::<u64>::new());
        assert_eq!(word_ids("The THE the"), ids(&["the", "the", "the"]));
        // Digits are alphanumeric, so "3.14" is two words.
        assert_eq!(word_ids("x=3.14"), ids(&["x", "3", "14"]));
    }

    #[test]
    fn unicode_words_are_lowercased() {
        assert_eq!(word_ids("Größe ÜBER"), ids(&["größe", "über"]));
        assert_eq!(word_ids("Größe ÜBER"), word_ids("GRÖßE über"));
        // The id is the hash of the lower-cased UTF-8 bytes.
        assert_eq!(word_ids("ÜBER"), vec![fnv1a_64("über".bytes())]);
        // Word-final capital sigma lowers to ς, as `str::to_lowercase` does.
        assert_eq!(word_ids("ΟΔΟΣ"), vec![fnv1a_64("οδος".bytes())]);
    }

    #[test]
    fn rouge_l_hand_example() {
        let a = word_ids("The cat sat on the mat.");
        let b = word_ids("the cat is on a mat");
        assert_eq!(a, ids(&["the", "cat", "sat", "on", "the", "mat"]));
        assert_eq!(b, ids(&["the", "cat", "is", "on", "a", "mat"]));
        // Common subsequence the, cat, on, mat → 4.
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len(&b, &a), 4);
        // 2·4 / (6 + 6) = 8/12.
        assert_close(Some(rouge_l_f1(&a, &b)), 8.0 / 12.0);
    }

    #[test]
    fn rouge_l_edge_cases() {
        assert_eq!(rouge_l_f1(&[], &[]), 0.0);
        assert_eq!(rouge_l_f1(&[1, 2], &[]), 0.0);
        assert_eq!(rouge_l_f1(&[1, 2], &[3]), 0.0);
        assert_eq!(rouge_l_f1(&[1, 2, 3], &[1, 2, 3]), 1.0);
        // [1,2,3] vs [3,2,1]: LCS 1 → 2·1/6 = 1/3.
        assert_close(Some(rouge_l_f1(&[1, 2, 3], &[3, 2, 1])), 1.0 / 3.0);
    }

    #[test]
    fn lcs_crosses_limb_boundaries() {
        // 130 zeros vs 65 zeros: LCS 65 spans limbs 0 and 1 of the 65-long side.
        assert_eq!(lcs_len(&[0; 130], &[0; 65]), 65);
        // 200 alternating 0/1 (100 ones) vs 128 ones → min(100, 128) = 100.
        let alternating: Vec<u64> = (0..200).map(|idx| idx % 2).collect();
        assert_eq!(lcs_len(&alternating, &[1; 128]), 100);
        // Reversal of 0..128 against itself: only one element in common order.
        let forward: Vec<u64> = (0..128).collect();
        let backward: Vec<u64> = (0..128).rev().collect();
        assert_eq!(lcs_len(&forward, &backward), 1);
        assert_eq!(lcs_len(&forward, &forward), 128);
    }

    #[test]
    fn embedding_similarity_hand_examples() {
        // Orthogonal: cos 0 → (1 + 0)/2.
        assert_eq!(embedding_similarity(&[1.0, 0.0], &[0.0, 1.0]), Some(0.5));
        // Parallel: dot 10, norms² 5 and 20, √100 = 10 → cos 1 → 1.0.
        assert_eq!(embedding_similarity(&[1.0, 2.0], &[2.0, 4.0]), Some(1.0));
        // Opposite: cos −1 → 0.0.
        assert_eq!(embedding_similarity(&[1.0, 0.0], &[-1.0, 0.0]), Some(0.0));
        assert_eq!(embedding_similarity(&[0.0, 0.0], &[3.0, 1.0]), Some(0.5));
        assert_eq!(embedding_similarity(&[], &[]), Some(0.5));
        assert_eq!(embedding_similarity(&[1.0], &[1.0, 0.0]), None);
        assert_eq!(embedding_similarity(&[f64::NAN, 1.0], &[1.0, 0.0]), None);
        // [3,4] vs [4,3]: dot 24, norms 5 and 5 → cos 0.96 → 0.98.
        assert_close(embedding_similarity(&[3.0, 4.0], &[4.0, 3.0]), 0.98);
    }

    #[test]
    fn mean_pairwise_hand_example() {
        let sim_of = |item_i: usize, item_j: usize| match (item_i, item_j) {
            (0, 1) => Some(1.0),
            (0, 2) => Some(0.0),
            (1, 2) => Some(0.5),
            _ => panic!("pair ({item_i}, {item_j}) asked for"),
        };
        let mut out = [None; 3];
        mean_pairwise(3, sim_of, &mut out);
        // Item 0: (1 + 0)/2; item 1: (1 + 0.5)/2; item 2: (0 + 0.5)/2.
        assert_eq!(out, [Some(0.5), Some(0.75), Some(0.25)]);
    }

    #[test]
    fn mean_pairwise_excludes_undefined_pairs() {
        let mut out = [None; 3];
        let mut calls = Vec::new();
        mean_pairwise(
            3,
            |item_i, item_j| {
                calls.push((item_i, item_j));
                match (item_i, item_j) {
                    (0, 2) => Some(0.0),
                    (1, 2) => Some(0.5),
                    _ => None,
                }
            },
            &mut out,
        );
        assert_eq!(calls, [(0, 1), (0, 2), (1, 2)]);
        // Without pair (0,1): item 0 → 0/1; item 1 → 0.5/1; item 2 → (0 + 0.5)/2.
        assert_eq!(out, [Some(0.0), Some(0.5), Some(0.25)]);

        let mut out = [Some(9.0); 3];
        mean_pairwise(3, |item_i, _| (item_i != 0).then_some(1.0), &mut out);
        // Only (1,2) is defined, so item 0 has no mean.
        assert_eq!(out, [None, Some(1.0), Some(1.0)]);
    }

    #[test]
    fn mean_pairwise_tolerates_a_mismatched_out() {
        let sim_of = |item_i: usize, item_j: usize| Some((item_i + item_j) as f64);
        // Pairs (0,1)=1, (0,2)=2, (1,2)=3 → means (1+2)/2, (1+3)/2, (2+3)/2.
        let mut longer = [Some(7.0); 4];
        mean_pairwise(3, sim_of, &mut longer);
        assert_eq!(longer, [Some(1.5), Some(2.0), Some(2.5), None]);
        let mut shorter = [None; 2];
        mean_pairwise(3, sim_of, &mut shorter);
        assert_eq!(shorter, [Some(1.5), Some(2.0)]);
    }

    #[test]
    fn mean_pairwise_needs_two_items() {
        let mut out = [Some(1.0)];
        mean_pairwise(1, |_, _| Some(1.0), &mut out);
        assert_eq!(out, [None]);
        let mut out: [Option<f64>; 0] = [];
        mean_pairwise(0, |_, _| Some(1.0), &mut out);
    }

    fn small_alphabet_seq(alphabet: u64) -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(0..alphabet, 0..300)
    }

    proptest! {
        #[test]
        fn lcs_matches_naive_dp(
            alphabet in 1u64..6,
            seed_a in small_alphabet_seq(6),
            seed_b in small_alphabet_seq(6),
        ) {
            let a: Vec<u64> = seed_a.iter().map(|word| word % alphabet).collect();
            let b: Vec<u64> = seed_b.iter().map(|word| word % alphabet).collect();
            let expected = naive_lcs(&a, &b);
            prop_assert_eq!(lcs_len(&a, &b), expected);
            prop_assert_eq!(lcs_len(&b, &a), expected);
            // Budget 0 forces the sparse (on-the-fly mask) path.
            prop_assert_eq!(lcs_len_with_budget(&a, &b, 0), expected);
        }

        #[test]
        fn lcs_matches_naive_dp_large_alphabet(
            a in prop::collection::vec(0u64..40, 0..200),
            b in prop::collection::vec(0u64..40, 0..200),
        ) {
            prop_assert_eq!(lcs_len(&a, &b), naive_lcs(&a, &b));
        }

        #[test]
        fn embedding_similarity_is_symmetric_and_in_range(
            pair in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 0..20),
        ) {
            let (a, b): (Vec<f64>, Vec<f64>) = pair.into_iter().unzip();
            let forward = embedding_similarity(&a, &b);
            prop_assert_eq!(forward, embedding_similarity(&b, &a));
            let value = forward.unwrap_or(-1.0);
            prop_assert!((0.0..=1.0).contains(&value));
        }
    }
}
