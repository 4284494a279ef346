//! Per-question signals of SPEC §5b: the answer distribution (discrete semantic entropy)
//! and the similarity graph W (EigV, eccentricity, kernel language entropy, semantic
//! density, SentenceSAR).
//!
//! With `answer` similarity, W is block-diagonal with all-ones blocks (one per class, one
//! per unanswered trace), and its spectra are known in closed form: the Laplacian
//! I − D^−½WD^−½ has eigenvalue 0 once per cluster and 1 otherwise, its null space is
//! spanned by the clusters' indicator vectors, and D − W has eigenvalues 0 and n_c per
//! block. [`answer_graph`] uses those forms — exact, O(M), and free of the eigensolver's
//! rounding, so traces of one cluster tie exactly and §6's tie-break decides between them.
//! Other similarities go through nalgebra's symmetric eigen-decomposition
//! ([`similarity_graph`]); a test checks that both agree on block matrices.
//!
//! Callers pass a question's traces in a canonical order (by trace id), so the rounding of
//! every sum is the same whatever the order of the input lines.

use nalgebra::{DMatrix, SymmetricEigen};

/// Eccentricity keeps the Laplacian's eigenvectors below this eigenvalue (Lin et al.;
/// LM-Polygraph's `thres`).
const ECCENTRICITY_THRESHOLD: f64 = 0.9;
/// Heat-kernel time of kernel language entropy (LM-Polygraph's default `t`).
const HEAT_TIME: f64 = 0.3;
/// Added to √K_jj when the kernel is normalised (LM-Polygraph's `EPS`).
const KERNEL_EPS: f64 = 1e-12;
/// Eigenvalues of the normalised kernel at or below this in magnitude add no entropy
/// (LM-Polygraph's cut-off).
const ENTROPY_CUTOFF: f64 = 1e-8;
/// SentenceSAR's temperature t: relevance counts 1/t times (LM-Polygraph's `self.t`).
const SAR_TEMPERATURE: f64 = 0.001;

/// What the graph signals read from each trace of W besides the similarities.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GraphMember {
    pub msp: Option<f64>,
    pub ppl: Option<f64>,
}

/// The graph signals of one trace of W. eigv and kle are the same for every trace of the
/// question.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GraphSignals {
    pub eigv: Option<f64>,
    pub eccentricity: Option<f64>,
    pub kle: Option<f64>,
    pub semantic_density: Option<f64>,
    pub sentence_sar: Option<f64>,
}

/// Discrete semantic entropy of a question's answers: its traces clustered by class, each
/// unanswered trace (None) a cluster of its own; −Σ p_c ln p_c with p_c = n_c / M. None for
/// fewer than 2 traces.
pub fn answer_entropy(classes: &[Option<u32>]) -> Option<f64> {
    let n_traces = classes.len();
    if n_traces < 2 {
        return None;
    }
    let sizes = cluster_sizes(classes);
    let total = n_traces as f64;
    let entropy = sizes
        .iter()
        .map(|&size| {
            let share = size as f64 / total;
            -share * libm::log(share)
        })
        .fold(0.0, |sum, term| sum + term);
    Some(entropy.max(0.0))
}

/// Sizes of the answer clusters, ascending (a fixed order, so sums over clusters round
/// the same way for any order of the traces).
fn cluster_sizes(classes: &[Option<u32>]) -> Vec<usize> {
    let mut answered: Vec<u32> = classes.iter().filter_map(|&class| class).collect();
    answered.sort_unstable();
    let mut sizes: Vec<usize> = answered.chunk_by(|a, b| a == b).map(<[u32]>::len).collect();
    sizes.extend(std::iter::repeat_n(1, classes.len() - answered.len()));
    sizes.sort_unstable();
    sizes
}

/// ln(e^a + e^b), with −∞ standing for an empty sum.
fn log_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        high
    } else {
        high + libm::log1p(libm::exp(low - high))
    }
}

/// For each position t, ln Σ_{j≠t} e^{x_j} (−∞ when nothing is left), from prefix and
/// suffix sums: O(n), and no subtraction that could cancel.
fn leave_one_out_log_sums(values: &[f64], out: &mut Vec<f64>) {
    out.clear();
    let mut prefix = f64::NEG_INFINITY;
    for &value in values {
        out.push(prefix);
        prefix = log_add(prefix, value);
    }
    let mut suffix = f64::NEG_INFINITY;
    for (slot, &value) in out.iter_mut().zip(values).rev() {
        *slot = log_add(*slot, suffix);
        suffix = log_add(suffix, value);
    }
}

/// semantic density from ln Σ_{j≠t} w_j W_tj and ln Σ_{j≠t} w_j (None: no other trace
/// with a ppl).
fn density(log_numerator: f64, log_denominator: f64) -> Option<f64> {
    (log_denominator != f64::NEG_INFINITY)
        .then(|| libm::exp(log_numerator - log_denominator).min(1.0))
}

/// SentenceSAR from −msp_t and ln Σ_{j≠t} W_tj p_j.
fn sentence_sar(own_log_prob: f64, log_support: f64) -> f64 {
    -log_add(own_log_prob, log_support - libm::log(SAR_TEMPERATURE))
}

/// The graph signals under `answer` similarity, from each trace's class (None: ∅, a
/// cluster of its own) in closed form. `out` gets one entry per trace; all null for
/// fewer than 2 traces.
pub fn answer_graph(classes: &[Option<u32>], members: &[GraphMember], out: &mut Vec<GraphSignals>) {
    let n_members = classes.len().min(members.len());
    out.clear();
    out.resize(n_members, GraphSignals::default());
    if n_members < 2 {
        return;
    }
    let total = n_members as f64;
    let sizes = cluster_sizes(classes.get(..n_members).unwrap_or(&[]));
    // eigv: eigenvalue 0 once per cluster, 1 otherwise → Σ max(0, 1 − λ) = #clusters.
    let eigv = sizes.len() as f64;
    // kle: per block of n, K = J/n + e^{−tn}(I − J/n) with diagonal a = 1/n + e^{−tn}(1 − 1/n);
    // the normalised kernel's eigenvalues are s = 1/((√a + ε)²·M) once and s·e^{−tn} n − 1 times.
    let entropy_term = |lambda: f64| {
        if lambda > ENTROPY_CUTOFF {
            -lambda * libm::log(lambda)
        } else {
            0.0
        }
    };
    let entropy = sizes.iter().fold(0.0, |sum, &size| {
        let n = size as f64;
        let decay = libm::exp(-HEAT_TIME * n);
        let diagonal = 1.0 / n + decay * (1.0 - 1.0 / n);
        let root = diagonal.sqrt() + KERNEL_EPS;
        let scale = 1.0 / (root * root * total);
        sum + entropy_term(scale) + (n - 1.0) * entropy_term(scale * decay)
    });
    let kle = (entropy / libm::log(total)).max(0.0);

    // Per class, its members' positions, for the leave-one-out sums.
    let mut by_class: Vec<(u32, usize)> = classes
        .iter()
        .take(n_members)
        .enumerate()
        .filter_map(|(position, class)| Some(((*class)?, position)))
        .collect();
    by_class.sort_unstable();
    let log_weight = |position: usize| {
        members
            .get(position)
            .and_then(|member| member.ppl)
            .map_or(f64::NEG_INFINITY, |ppl| -ppl)
    };
    let log_prob = |position: usize| {
        members
            .get(position)
            .and_then(|member| member.msp)
            .map_or(f64::NEG_INFINITY, |msp| -msp)
    };
    let all_weights: Vec<f64> = (0..n_members).map(log_weight).collect();
    let mut others_weight = Vec::new();
    leave_one_out_log_sums(&all_weights, &mut others_weight);
    // Within a class W_tj = 1; across classes and for ∅, 0.
    let mut class_weight = vec![f64::NEG_INFINITY; n_members];
    let mut class_prob = vec![f64::NEG_INFINITY; n_members];
    let mut cluster_size = vec![1usize; n_members];
    let mut values = Vec::new();
    let mut sums = Vec::new();
    for group in by_class.chunk_by(|a, b| a.0 == b.0) {
        for &(_, position) in group {
            if let Some(size) = cluster_size.get_mut(position) {
                *size = group.len();
            }
        }
        for (source, target) in [
            (&log_weight as &dyn Fn(usize) -> f64, &mut class_weight),
            (&log_prob as &dyn Fn(usize) -> f64, &mut class_prob),
        ] {
            values.clear();
            values.extend(group.iter().map(|&(_, position)| source(position)));
            leave_one_out_log_sums(&values, &mut sums);
            for (&(_, position), &sum) in group.iter().zip(&sums) {
                if let Some(slot) = target.get_mut(position) {
                    *slot = sum;
                }
            }
        }
    }
    for (position, signals) in out.iter_mut().enumerate() {
        let cluster = cluster_size.get(position).copied().unwrap_or(1);
        let own_log_prob = log_prob(position);
        *signals = GraphSignals {
            eigv: Some(eigv),
            // ‖v_j − v̄‖² = 1/n_c − 1/M for the indicator basis of the null space.
            eccentricity: Some((1.0 / cluster as f64 - 1.0 / total).max(0.0).sqrt()),
            kle: Some(kle),
            semantic_density: density(
                class_weight
                    .get(position)
                    .copied()
                    .unwrap_or(f64::NEG_INFINITY),
                others_weight
                    .get(position)
                    .copied()
                    .unwrap_or(f64::NEG_INFINITY),
            ),
            sentence_sar: (own_log_prob != f64::NEG_INFINITY).then(|| {
                sentence_sar(
                    own_log_prob,
                    class_prob
                        .get(position)
                        .copied()
                        .unwrap_or(f64::NEG_INFINITY),
                )
            }),
        };
    }
}

/// Buffers of [`similarity_graph`], reused from question to question.
#[derive(Debug, Default)]
pub struct GraphScratch {
    degrees: Vec<f64>,
    terms: Vec<f64>,
}

/// The graph signals for a similarity matrix W (row-major, M × M, symmetric, W_jj = 1,
/// entries in [0, 1]) of the traces `members`. `out` gets one entry per trace; all null
/// for M < 2, when W is not M × M or not finite, or when the eigensolver does not converge.
pub fn similarity_graph(
    weights: &[f64],
    members: &[GraphMember],
    scratch: &mut GraphScratch,
    out: &mut Vec<GraphSignals>,
) {
    let n_members = members.len();
    out.clear();
    out.resize(n_members, GraphSignals::default());
    if n_members < 2
        || weights.len() != n_members * n_members
        || !weights.iter().all(|w| w.is_finite())
    {
        return;
    }
    let weight =
        |row: usize, col: usize| weights.get(row * n_members + col).copied().unwrap_or(0.0);
    scratch.degrees.clear();
    scratch.degrees.extend(
        (0..n_members).map(|row| (0..n_members).fold(0.0, |sum, col| sum + weight(row, col))),
    );
    let degrees = &scratch.degrees;
    let degree = |idx: usize| degrees.get(idx).copied().unwrap_or(1.0);
    let total = n_members as f64;
    // Bounded iterations: the solver reports failure instead of looping on bad input.
    let max_iterations = 64 * n_members + 64;

    // eigv and eccentricity: the symmetric normalised Laplacian I − D^−½ W D^−½.
    let laplacian = DMatrix::from_fn(n_members, n_members, |row, col| {
        let identity = if row == col { 1.0 } else { 0.0 };
        identity - weight(row, col) / (degree(row) * degree(col)).sqrt()
    });
    let Some(spectrum) = SymmetricEigen::try_new(laplacian, f64::EPSILON, max_iterations) else {
        return;
    };
    let eigv = spectrum
        .eigenvalues
        .iter()
        .fold(0.0, |sum, &lambda| sum + (1.0 - lambda).max(0.0));
    let kept: Vec<usize> = spectrum
        .eigenvalues
        .iter()
        .enumerate()
        .filter(|(_, lambda)| **lambda < ECCENTRICITY_THRESHOLD)
        .map(|(idx, _)| idx)
        .collect();
    let vectors = &spectrum.eigenvectors;
    let centre: Vec<f64> = kept
        .iter()
        .map(|&col| vectors.column(col).sum() / total)
        .collect();

    // kle: the heat kernel expm(−t(D − W)) from the eigen-decomposition of D − W.
    let graph_laplacian = DMatrix::from_fn(n_members, n_members, |row, col| {
        let diagonal = if row == col { degree(row) } else { 0.0 };
        diagonal - weight(row, col)
    });
    let Some(heat) = SymmetricEigen::try_new(graph_laplacian, f64::EPSILON, max_iterations) else {
        return;
    };
    let decays = heat.eigenvalues.map(|mu| libm::exp(-HEAT_TIME * mu));
    let kernel =
        &heat.eigenvectors * DMatrix::from_diagonal(&decays) * heat.eigenvectors.transpose();
    let roots: Vec<f64> = (0..n_members)
        .map(|idx| kernel.get((idx, idx)).map_or(0.0, |k| k.max(0.0)).sqrt() + KERNEL_EPS)
        .collect();
    let root = |idx: usize| roots.get(idx).copied().unwrap_or(1.0);
    let normalised = DMatrix::from_fn(n_members, n_members, |row, col| {
        kernel.get((row, col)).copied().unwrap_or(0.0) / (root(row) * root(col)) / total
    });
    let Some(kernel_spectrum) = SymmetricEigen::try_new(normalised, f64::EPSILON, max_iterations)
    else {
        return;
    };
    scratch.terms.clear();
    scratch.terms.extend(
        kernel_spectrum
            .eigenvalues
            .iter()
            .filter(|lambda| lambda.abs() > ENTROPY_CUTOFF && **lambda > 0.0)
            .map(|&lambda| -lambda * libm::log(lambda)),
    );
    // The solver returns eigenvalues in no fixed order; sorting the terms fixes the rounding.
    scratch.terms.sort_unstable_by(f64::total_cmp);
    let kle = (scratch.terms.iter().fold(0.0, |sum, term| sum + term) / libm::log(total)).max(0.0);

    for (position, signals) in out.iter_mut().enumerate() {
        let eccentricity = kept
            .iter()
            .zip(&centre)
            .fold(0.0, |sum, (&col, &mean)| {
                let offset = vectors.get((position, col)).copied().unwrap_or(0.0) - mean;
                sum + offset * offset
            })
            .sqrt();
        let mut log_numerator = f64::NEG_INFINITY;
        let mut log_denominator = f64::NEG_INFINITY;
        let mut log_support = f64::NEG_INFINITY;
        for (other, member) in members.iter().enumerate() {
            if other == position {
                continue;
            }
            let similarity = weight(position, other);
            if let Some(ppl) = member.ppl {
                log_denominator = log_add(log_denominator, -ppl);
                if similarity > 0.0 {
                    log_numerator = log_add(log_numerator, libm::log(similarity) - ppl);
                }
            }
            if let Some(msp) = member.msp
                && similarity > 0.0
            {
                log_support = log_add(log_support, libm::log(similarity) - msp);
            }
        }
        let own_msp = members.get(position).and_then(|member| member.msp);
        *signals = GraphSignals {
            eigv: Some(eigv.max(0.0)),
            eccentricity: Some(eccentricity),
            kle: Some(kle),
            semantic_density: density(log_numerator, log_denominator),
            sentence_sar: own_msp.map(|msp| sentence_sar(-msp, log_support)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn answer_entropy_by_hand() {
        // Two clusters of 2 and one ∅: p = 2/5, 2/5, 1/5 for the classes, and each ∅ its own.
        let classes = [Some(0), Some(1), Some(0), None, Some(1)];
        let p = [0.4f64, 0.4, 0.2];
        let expected: f64 = p.iter().map(|p| -p * p.ln()).sum();
        assert!(close(answer_entropy(&classes).unwrap(), expected, 1e-15));
        assert_eq!(answer_entropy(&[Some(3), Some(3)]), Some(0.0));
        assert_eq!(answer_entropy(&[Some(3)]), None);
        // Two ∅ are two clusters, not one.
        assert!(close(
            answer_entropy(&[None, None]).unwrap(),
            2f64.ln(),
            1e-15
        ));
    }

    fn block_weights(classes: &[Option<u32>]) -> Vec<f64> {
        let n = classes.len();
        let mut weights = vec![0.0; n * n];
        for (row, a) in classes.iter().enumerate() {
            for (col, b) in classes.iter().enumerate() {
                let same = row == col || (a.is_some() && a == b);
                weights[row * n + col] = if same { 1.0 } else { 0.0 };
            }
        }
        weights
    }

    #[test]
    fn closed_forms_equal_the_eigensolver_on_answer_graphs() {
        let members: Vec<GraphMember> = (0..9)
            .map(|idx| GraphMember {
                msp: (idx != 4).then_some(3.0 + idx as f64 * 7.5),
                ppl: (idx != 2).then_some(0.1 + idx as f64 * 0.37),
            })
            .collect();
        let cases: [&[Option<u32>]; 6] = [
            &[Some(0), Some(0)],
            &[Some(0), Some(1)],
            &[
                Some(0),
                Some(0),
                Some(1),
                None,
                Some(1),
                Some(1),
                Some(2),
                None,
                Some(0),
            ],
            &[None, None, None],
            &[Some(5); 9],
            &[Some(1), Some(2), Some(1), Some(1), Some(2)],
        ];
        for classes in cases {
            let members = &members[..classes.len()];
            let mut exact = Vec::new();
            answer_graph(classes, members, &mut exact);
            let mut solved = Vec::new();
            similarity_graph(
                &block_weights(classes),
                members,
                &mut GraphScratch::default(),
                &mut solved,
            );
            assert_eq!(exact.len(), classes.len());
            for (a, b) in exact.iter().zip(&solved) {
                for (name, x, y) in [
                    ("eigv", a.eigv, b.eigv),
                    ("eccentricity", a.eccentricity, b.eccentricity),
                    ("kle", a.kle, b.kle),
                    ("semantic_density", a.semantic_density, b.semantic_density),
                    ("sentence_sar", a.sentence_sar, b.sentence_sar),
                ] {
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            assert!(close(x, y, 1e-9), "{classes:?} {name}: {x} vs {y}")
                        }
                        (x, y) => assert_eq!(x, y, "{classes:?} {name}"),
                    }
                }
            }
        }
    }

    #[test]
    fn two_clusters_by_hand() {
        // Classes [a, a, b]: eigv = 2; eccentricity √(1/2 − 1/3) for a, √(1 − 1/3) for b.
        let classes = [Some(0), Some(0), Some(1)];
        let members = [
            GraphMember {
                msp: Some(1.0),
                ppl: Some(0.5),
            },
            GraphMember {
                msp: Some(2.0),
                ppl: Some(1.0),
            },
            GraphMember {
                msp: Some(3.0),
                ppl: Some(1.5),
            },
        ];
        let mut out = Vec::new();
        answer_graph(&classes, &members, &mut out);
        assert_eq!(out[0].eigv, Some(2.0));
        assert!(close(
            out[0].eccentricity.unwrap(),
            (1.0f64 / 6.0).sqrt(),
            1e-15
        ));
        assert!(close(
            out[2].eccentricity.unwrap(),
            (2.0f64 / 3.0).sqrt(),
            1e-15
        ));
        // Semantic density of trace 0: w = e^−1 (same class), e^−1.5 (other) → share of the first.
        let (w1, w2) = ((-1.0f64).exp(), (-1.5f64).exp());
        assert!(close(
            out[0].semantic_density.unwrap(),
            w1 / (w1 + w2),
            1e-15
        ));
        assert_eq!(out[2].semantic_density, Some(0.0));
        // SentenceSAR of trace 0: −ln(e^−1 + 1000·e^−2); of trace 2 (alone): msp = 3.
        let expected = -((-1.0f64).exp() + 1000.0 * (-2.0f64).exp()).ln();
        assert!(close(out[0].sentence_sar.unwrap(), expected, 1e-14));
        assert!(close(out[2].sentence_sar.unwrap(), 3.0, 1e-15));
        // kle by hand: blocks of 2 and 1 (M = 3).
        let decay = (-0.6f64).exp();
        let a2 = 0.5 + decay * 0.5;
        let s2 = 1.0 / ((a2.sqrt() + 1e-12).powi(2) * 3.0);
        let s1 = 1.0 / ((1.0f64 + 1e-12).powi(2) * 3.0);
        let h = |x: f64| -x * x.ln();
        let expected_kle = (h(s2) + h(s2 * decay) + h(s1)) / 3f64.ln();
        assert!(close(out[0].kle.unwrap(), expected_kle, 1e-14));
    }

    #[test]
    fn nothing_for_fewer_than_two_or_bad_matrices() {
        let mut out = Vec::new();
        answer_graph(&[Some(0)], &[GraphMember::default()], &mut out);
        assert_eq!(out, [GraphSignals::default()]);
        let mut scratch = GraphScratch::default();
        similarity_graph(
            &[1.0, f64::NAN, f64::NAN, 1.0],
            &[GraphMember::default(); 2],
            &mut scratch,
            &mut out,
        );
        assert_eq!(out, [GraphSignals::default(); 2]);
        similarity_graph(
            &[1.0, 0.5, 0.5],
            &[GraphMember::default(); 2],
            &mut scratch,
            &mut out,
        );
        assert_eq!(out, [GraphSignals::default(); 2]);
    }

    #[test]
    fn no_underflow_in_log_space() {
        // Probabilities e^−5000 would be 0 in plain arithmetic: the ratio and the log stay exact.
        let members = [
            GraphMember {
                msp: Some(5000.0),
                ppl: Some(900.0),
            },
            GraphMember {
                msp: Some(5001.0),
                ppl: Some(901.0),
            },
        ];
        let weights = [1.0, 0.5, 0.5, 1.0];
        let mut out = Vec::new();
        similarity_graph(&weights, &members, &mut GraphScratch::default(), &mut out);
        assert!(close(out[0].semantic_density.unwrap(), 0.5, 1e-12));
        let expected = 5000.0 - (1.0 + 500.0 * (-1.0f64).exp()).ln();
        assert!(close(out[0].sentence_sar.unwrap(), expected, 1e-12));
    }
}
