#!/usr/bin/env python3
"""Checks reference_signals.py against the upstream code it transcribes, run unchanged.

    python scripts/check_upstream.py DEEPCONF_UTILS_PY LM_POLYGRAPH_ESTIMATORS_DIR

DEEPCONF_UTILS_PY is facebookresearch/deepconf's `deepconf/utils.py`; the directory holds
lm-polygraph's `src/lm_polygraph/estimators/` files eig_val_laplacian.py, eccentricity.py,
kernel_language_entropy.py, sentence_sar.py, self_certainty.py and common.py. Each file is
loaded on its own (a stub stands in for the package's `Estimator` base class, so neither
package nor its model dependencies need installing); numpy and scipy are needed. DeepConf's
`round(x, 3)` is switched off in its module, as SPEC §5b asks. Prints the largest
difference per signal; exits 1 above 1e-9.
"""
import math
import sys
import types
from pathlib import Path

import numpy as np

import reference_signals as ours


def load(path, name, package=None):
    source = Path(path).read_text()
    module = types.ModuleType(name)
    if package is not None:
        # `from .estimator import Estimator` and `from .common import ...` resolve here.
        source = source.replace("from .estimator import Estimator", "from _lmp_common import Estimator")
        source = source.replace("from .common import", "from _lmp_common import")
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def main(deepconf_utils, estimators):
    estimators = Path(estimators)
    common = load(estimators / "common.py", "_lmp_common")

    class Estimator:
        """Stands in for lm_polygraph's base class: it only records its arguments."""

        def __init__(self, *args, **kwargs):
            self.args = args

    common.Estimator = Estimator
    sys.modules["_lmp_common"] = common
    deepconf = load(deepconf_utils, "deepconf_utils")
    deepconf.round = lambda value, digits=None: value  # SPEC §5b: without the rounding
    eig = load(estimators / "eig_val_laplacian.py", "eig", "lmp")
    ecc = load(estimators / "eccentricity.py", "ecc", "lmp")
    kle = load(estimators / "kernel_language_entropy.py", "kle", "lmp")
    sar = load(estimators / "sentence_sar.py", "sar", "lmp")
    certainty = load(estimators / "self_certainty.py", "certainty", "lmp")

    rng = np.random.default_rng(11)
    worst = {}

    def note(name, a, b):
        worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))

    # DeepConf: token confidences from vLLM-like logprob dicts, then the four statistics.
    class Logprob:
        def __init__(self, logprob):
            self.logprob = logprob

    for n_tokens in [1, 5, 8, 9, 30, 200]:
        lists = [list(-rng.uniform(0.01, 6.0, size=rng.integers(1, 6))) for _ in range(n_tokens)]
        vllm = [{idx: Logprob(v) for idx, v in enumerate(lst)} for lst in lists]
        confs = deepconf.compute_confidence(vllm)
        note("compute_confidence", confs, ours.compute_confidence(lists))
        for window in [1, 4, 8, 2048]:
            got = ours.token_signals(lists, window)
            trace = {"confs": confs}
            note("conf_mean", got["conf_mean"], deepconf.calculate_mean_confidence(trace))
            note("conf_tail", got["conf_tail"], deepconf.calculate_tail_confidence(trace, window))
            note("conf_bottom10", got["conf_bottom10"],
                 deepconf.calculate_bottom_window_confidence(trace, window))
            note("conf_lowest", got["conf_lowest"],
                 deepconf.calculate_bottom_window_confidence(trace, window, -1))
        # SelfCertainty over "full-vocabulary" rows: its token distribution is the top list.
        rows = [np.array(lst) for lst in lists if len(lst) >= 2]
        if rows:
            upstream = certainty.SelfCertainty()({"greedy_log_probs": [rows]})[0]
            note("self_certainty", ours.self_certainty(lists), -upstream)

    for M in [2, 3, 5, 9, 16]:
        for _ in range(10):
            A = rng.uniform(0, 1, (M, M))
            W = (A + A.T) / 2
            np.fill_diagonal(W, 1.0)
            stats = {"semantic_matrix_entail": W[None], "sample_texts": [["x"] * M]}
            note("eigv", ours.eig_val_laplacian(W), eig.EigValLaplacian().U_EigVal_Laplacian(0, stats))
            # Upstream norms run over eigenvectors; ours over samples. Both from one basis:
            # the Laplacian's kept eigenvectors must agree up to sign, so compare the
            # per-eigenvector norms of ours with upstream's.
            _, upstream_norms = ecc.Eccentricity().U_Eccentricity(0, stats)
            D = np.diag(W.sum(axis=1))
            Dis = np.linalg.inv(np.sqrt(D))
            values, vectors = np.linalg.eigh(np.eye(M) - Dis @ W @ Dis)
            kept = vectors[:, values < 0.9].T
            ours_norms = -np.asarray([np.linalg.norm(x - x.mean(0), 2) for x in kept])
            note("eccentricity basis", ours_norms, upstream_norms)
            # KLE: upstream doubles both NLI matrices (m + mᵀ) and takes E + ½(2 − E − C) =
            # e − c + 1 for inputs e, c; e = W/2 and c = 1 − W/2 give exactly W.
            upstream_kle = kle.KernelLanguageEntropy()(
                {"semantic_matrix_entail": [W / 2], "semantic_matrix_contra": [1 - W / 2]})[0]
            note("kle", ours.kernel_language_entropy(W), upstream_kle)
            msp = list(rng.uniform(0.5, 40.0, size=M))
            upstream_sar = sar.SentenceSAR()(
                {"sample_log_probs": [list(-np.array(msp))], "sample_sentence_similarity": [W]})[0]
            note("sentence_sar (mean over samples)", np.mean(ours.sentence_sar(msp, W)), upstream_sar)

    for name, value in worst.items():
        print(f"{name}: max |ours - upstream| = {value:.3g}")
    return 0 if all(value <= 1e-9 for value in worst.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
