#!/usr/bin/env python3
"""The signals of tracesift SPEC §5b, transcribed from their reference implementations.

numpy only. `reference.py` imports this module for its `score`, `filter` and `eval`;
run on its own it writes the fixture the parity tests read:

    python scripts/reference_signals.py fixture > tests/data/signals.jsonl

Sources, followed line by line where they exist:
  * facebookresearch/deepconf `deepconf/utils.py`: compute_confidence (without its
    `round(..., 3)`), calculate_mean_confidence, calculate_tail_confidence,
    calculate_bottom_window_confidence (bottom_percent 0.1, and -1 for the lowest window).
  * IINemo/lm-polygraph `estimators/`: EigValLaplacian.U_EigVal_Laplacian, Eccentricity
    (the Laplacian and its thresholded eigenvectors; SPEC takes the per-sample norm),
    kernel_language_entropy (laplacian_matrix, heat_kernel, normalize_kernel, vn_entropy,
    scale_entropy), SentenceSAR, SelfCertainty (negated back, as SPEC reports it).
  * semantic density (Qiu & Miikkulainen 2024) with the run's similarity as kernel and
    discrete semantic entropy (Farquhar et al. 2024) as SPEC §5b defines them.

One substitution: LM-Polygraph's heat kernel is scipy.linalg.expm; the Laplacian is
symmetric, so expm(-tL) = U diag(exp(-t mu)) U^T from numpy's eigh is the same matrix
(checked against scipy to 1e-13 on this fixture) and keeps the script numpy-only.
"""
import json
import math
import sys
import warnings

import numpy as np

DEFAULT_WINDOW = 2048
DEFAULT_COMBINE = "cocoa_ppl,conf_mean"
# (name, direction) of every metric, in SPEC §7's order; "c" metrics are confidences.
METRICS = [
    ("msp", "u"), ("ppl", "u"), ("mte", "u"), ("inconsistency", "u"),
    ("cocoa_msp", "u"), ("cocoa_ppl", "u"), ("cocoa_mte", "u"),
    ("conf_mean", "c"), ("conf_tail", "c"), ("conf_bottom10", "c"), ("conf_lowest", "c"),
    ("self_certainty", "c"), ("answer_entropy", "u"), ("eigv", "u"), ("eccentricity", "u"),
    ("kle", "u"), ("semantic_density", "c"), ("sentence_sar", "u"), ("combo", "u"),
]
SIGNALS = [name for name, _ in METRICS[7:]]
DIRECTION = dict(METRICS)


def uncertainty(metric, value):
    """A confidence enters ranking and evaluation as its negation (SPEC §6, §7)."""
    if value is None:
        return None
    return -value if DIRECTION[metric] == "c" else value


# ---------------------------------------------------------------- deepconf/utils.py
def compute_confidence(top_lists):
    """compute_confidence over plain lists of log-probs, without the 3-decimal rounding."""
    confs = []
    for token_logprobs in top_lists:
        if token_logprobs:
            mean_logprob = np.mean(token_logprobs)
            confs.append(-mean_logprob)
    return confs


def calculate_mean_confidence(trace):
    try:
        if 'confs' in trace and trace['confs']:
            confs = trace['confs']
            return np.mean(confs) if confs else 0.0
        return 0.0
    except Exception:
        return 0.0


def calculate_tail_confidence(trace, tail_tokens=2048):
    try:
        if 'confs' in trace and trace['confs']:
            confs = trace['confs']
            tail_confs = confs[-tail_tokens:] if len(confs) > tail_tokens else confs
            return np.mean(tail_confs) if tail_confs else 0.0
        return 0.0
    except Exception:
        return 0.0


def calculate_bottom_window_confidence(trace, window_size=2048, bottom_percent=0.1):
    try:
        if 'confs' in trace and trace['confs']:
            confs = trace['confs']
            if len(confs) < window_size:
                return np.mean(confs)

            window_means = []
            current_sum = sum(confs[:window_size])
            window_means.append(current_sum / window_size)

            for i in range(1, len(confs) - window_size + 1):
                current_sum = current_sum - confs[i-1] + confs[i + window_size - 1]
                window_means.append(current_sum / window_size)

            if not window_means:
                return 0.0

            if bottom_percent == -1:  # Min window
                return min(window_means)

            num_bottom = max(1, int(len(window_means) * bottom_percent))
            if num_bottom == 1:
                return min(window_means)
            else:
                bottom_means = np.partition(window_means, num_bottom-1)[:num_bottom]
                return np.mean(bottom_means)

        return 0.0
    except Exception:
        return 0.0


# ---------------------------------------------------------------- lm-polygraph estimators
def eig_val_laplacian(W):
    """EigValLaplacian.U_EigVal_Laplacian, from W on."""
    D = np.diag(W.sum(axis=1))
    D_inverse_sqrt = np.linalg.inv(np.sqrt(D))
    L = np.eye(D.shape[0]) - D_inverse_sqrt @ W @ D_inverse_sqrt
    return sum([max(0, 1 - lambda_k) for lambda_k in np.linalg.eigh(L)[0]])


def eccentricity_per_sample(W, thres=0.9):
    """Eccentricity.U_Eccentricity's Laplacian and kept eigenvectors; SPEC §5b's norm per
    sample (rows of V) where LM-Polygraph takes it per eigenvector (columns)."""
    D = np.diag(W.sum(axis=1))
    D_inverse_sqrt = np.linalg.inv(np.sqrt(D))
    L = np.eye(D.shape[0]) - D_inverse_sqrt @ W @ D_inverse_sqrt
    eigenvalues, eigenvectors = np.linalg.eigh(L)
    keep_mask = eigenvalues < thres
    smallest_eigenvectors = eigenvectors[:, keep_mask]
    return np.linalg.norm(smallest_eigenvectors - smallest_eigenvectors.mean(0), 2, axis=1)


def laplacian_matrix(weighted_graph):
    degrees = np.diag(np.sum(weighted_graph, axis=0))
    return degrees - weighted_graph


def heat_kernel(laplacian, t):
    # scipy.linalg.expm(-t * laplacian), for a symmetric laplacian.
    mu, U = np.linalg.eigh(laplacian)
    return (U * np.exp(-t * mu)) @ U.T


def normalize_kernel(K):
    EPS = 1e-12
    diagonal_values = np.sqrt(np.diag(K)) + EPS
    normalized_kernel = K / np.outer(diagonal_values, diagonal_values)
    return normalized_kernel


def scale_entropy(entropy, n_classes):
    max_entropy = -np.log(1.0 / n_classes)
    scaled_entropy = entropy / max_entropy
    return scaled_entropy


def vn_entropy(K, normalize, scale, jitter):
    if normalize:
        K = normalize_kernel(K) / K.shape[0]
    result = 0
    eigvs = np.linalg.eig(K + jitter * np.eye(K.shape[0])).eigenvalues.astype(np.float64)
    for e in eigvs:
        if np.abs(e) > 1e-8:
            result -= e * np.log(e)
    if scale:
        result = scale_entropy(result, K.shape[0])
    return np.float64(result)


def kernel_language_entropy(W, t=0.3):
    """KernelLanguageEntropy with its defaults (normalize, scale, no jitter), from W on."""
    return vn_entropy(heat_kernel(laplacian_matrix(W), t), True, True, 0)


def sentence_sar(msp, S, temperature=0.001):
    """SentenceSAR's per-sample E_s (LM-Polygraph averages it over the samples)."""
    sample_probs = np.exp(-np.array(msp))
    R_s = sample_probs * S * (1 - np.eye(S.shape[0]))
    sent_relevance = R_s.sum(-1) / temperature
    E_s = -np.log(sent_relevance + sample_probs)
    return E_s


def self_certainty(top_lists):
    """SelfCertainty over the tokens with k >= 2, negated back to KL(uniform || p)."""
    per_token = []
    for lp in top_lists:
        token_logprobs = np.array(lp)
        if len(token_logprobs) < 2:
            continue
        per_token.append(-np.mean(token_logprobs) - np.log(len(token_logprobs)))
    return float(np.mean(per_token)) if per_token else None


# ---------------------------------------------------------------- SPEC §5b wiring
def token_signals(top_lists, window):
    """conf_* and self_certainty of a trace; `top_lists` are the valid tokens' lists of
    valid entries (possibly empty), in token order."""
    trace = {"confs": compute_confidence(top_lists)}
    out = {"self_certainty": self_certainty(top_lists)}
    if not trace["confs"]:
        out.update(conf_mean=None, conf_tail=None, conf_bottom10=None, conf_lowest=None)
        return out
    out["conf_mean"] = float(calculate_mean_confidence(trace))
    out["conf_tail"] = float(calculate_tail_confidence(trace, tail_tokens=window))
    out["conf_bottom10"] = float(calculate_bottom_window_confidence(trace, window_size=window))
    out["conf_lowest"] = float(calculate_bottom_window_confidence(trace, window_size=window,
                                                                  bottom_percent=-1))
    return out


def answer_entropy(classes):
    if len(classes) < 2:
        return None
    counts = {}
    for i, c in enumerate(classes):
        key = ("class", c) if c is not None else ("none", i)
        counts[key] = counts.get(key, 0) + 1
    p = np.array(list(counts.values()), float) / len(classes)
    return float(-(p * np.log(p)).sum())


def graph_signals(W, msp, ppl):
    """eigv, eccentricity, kle, semantic_density, sentence_sar of the M traces of W."""
    M = W.shape[0]
    out = [dict.fromkeys(["eigv", "eccentricity", "kle", "semantic_density", "sentence_sar"])
           for _ in range(M)]
    if M < 2:
        return out
    eigv = float(eig_val_laplacian(W))
    ecc = eccentricity_per_sample(W)
    with warnings.catch_warnings():
        # np.linalg.eig may return a zero imaginary part that .astype drops, as upstream.
        warnings.simplefilter("ignore", getattr(np, "exceptions", np).ComplexWarning)
        kle = float(kernel_language_entropy(W))
    with_msp = [j for j in range(M) if msp[j] is not None]
    sar = {}
    if with_msp:
        S = W[np.ix_(with_msp, with_msp)]
        for j, e in zip(with_msp, sentence_sar([msp[j] for j in with_msp], S)):
            sar[j] = float(e)
    for t in range(M):
        others = [j for j in range(M) if j != t and ppl[j] is not None]
        if others:
            w = np.exp(-np.array([ppl[j] for j in others]))
            density = float((w * W[t, others]).sum() / w.sum())
        else:
            density = None
        out[t].update(eigv=eigv, eccentricity=float(ecc[t]), kle=kle,
                      semantic_density=density, sentence_sar=sar.get(t))
    return out


def combo(traces, combine):
    """Mean percentile rank over the `combine` metrics, over the whole run (SPEC §5b)."""
    eligible = [t for t in traces if all(t[m] is not None for m in combine)]
    n = len(eligible)
    for t in traces:
        t["combo"] = None
    for t in eligible:
        if n == 1:
            t["combo"] = 0.5
            continue
        ranks = []
        for m in combine:
            x = uncertainty(m, t[m])
            values = [uncertainty(m, u[m]) for u in eligible]
            below = sum(1 for v in values if v < x)
            equal = sum(1 for v in values if v == x) - 1
            ranks.append((below + 0.5 * equal) / (n - 1))
        t["combo"] = sum(ranks) / len(ranks)


# ---------------------------------------------------------------- the parity fixture
def fixture(out):
    """Questions that exercise every rule of §5b: two answer clusters and ∅ answers, a
    question of one trace, traces without top-k or without valid log-probs, top lists with
    sentinels and single entries, windows shorter and longer than traces, tied scores."""
    rng = np.random.default_rng(7)
    words = ["gene", "up", "down", "stress", "the", "cell", "so", "none", "rises"]
    lines = []

    def trace(qid, tid, answer, n_tokens, top_k=3, text_words=None, embedding=True,
              greedy=False, top=True, logprobs=None, label=None):
        lp = logprobs if logprobs is not None else [float(-rng.uniform(0.01, 2.5)) for _ in range(n_tokens)]
        rec = {"question_id": qid, "trace_id": tid, "greedy": greedy}
        body = " ".join(rng.choice(words, size=text_words or 6))
        rec["text"] = f"{body} Final answer: {answer}" if answer else f"{body} no idea"
        rec["logprobs"] = lp
        if top:
            lists = []
            for i, v in enumerate(lp):
                k = 1 if i % 7 == 3 else top_k
                alts = [float(v if isinstance(v, float) and not math.isnan(v) else -1.0)]
                alts += [float(-rng.uniform(1.0, 6.0)) for _ in range(k - 1)]
                if i % 11 == 5:
                    alts.append(-9999.0)
                lists.append(alts)
            rec["top_logprobs"] = lists
        if embedding:
            rec["embedding"] = [float(x) for x in rng.normal(size=4)]
        if label:
            rec["label"] = label
        lines.append(rec)

    # q1: two clusters (up ×2, down ×2) and one unanswered trace; lengths around w = 8.
    for i, (answer, n) in enumerate([("up", 5), ("up", 12), ("down", 8), ("down", 30), (None, 9)]):
        trace("q1", f"q1-{i}", answer, n, greedy=(i == 0), label="up")
    # q2: one trace (no answer distribution, no graph).
    trace("q2", "q2-0", "up", 10)
    # q3: all agree (CoCoA ties at 0); one trace without top-k, one without an embedding.
    trace("q3", "q3-0", "none", 14, label="none")
    trace("q3", "q3-1", "none", 14, top=False, label="none")
    trace("q3", "q3-2", "none", 3, embedding=False, label="none")
    trace("q3", "q3-3", "none", 40, top_k=5, label="none")
    # q4: a trace whose log-probs are all sentinels (msp and ppl null), a NaN log-prob.
    trace("q4", "q4-0", "down", 0, logprobs=[-9999.0, -1e30], top=False)
    trace("q4", "q4-1", "up", 6, logprobs=[-0.3, float("nan"), -0.2, -1.1, -0.05, -0.7])
    trace("q4", "q4-2", "up", 25, top_k=2)
    # q5: long traces, so conf_bottom10 averages several windows (b > 1 for w = 8).
    for i in range(6):
        trace("q5", f"q5-{i}", ["up", "down", "none"][i % 3], 60 + 13 * i, top_k=4,
              text_words=12, label="down")
    # q6: two ∅ traces and identical twins (equal scores, ties in combo).
    twin = [float(-x) for x in rng.uniform(0.1, 1.0, size=9)]
    trace("q6", "q6-0", None, 9, logprobs=list(twin))
    trace("q6", "q6-1", None, 4)
    rng_state = rng.bit_generator.state
    trace("q6", "q6-2", "up", 9, logprobs=list(twin))
    rng.bit_generator.state = rng_state
    trace("q6", "q6-3", "up", 9, logprobs=list(twin))
    for rec in lines:
        out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["fixture"]:
        fixture(sys.stdout)
    else:
        print(__doc__)
        sys.exit(2)
