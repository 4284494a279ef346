"""Helpers shared by the recorders: where files go, and realistic log-probs for the files
that are serialised from a provider's own types rather than recorded from a running model.

Realistic means: every log-prob is ≤ 0, each top list is sorted descending, its
probabilities sum to at most 1, and the sampled token's log-prob is exactly its entry in
the top list (the sampled token is drawn from the list, so it is always in it).
"""

import json
import math
import os
import random

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL = os.path.join(REPO, "tests", "data", "real")

# The questions and reasoning words of the traces (PerturbQA-style, as the project scores).
QUESTIONS = [
    ("SLC35B1|PDIA6|K562", "In K562 cells, does CRISPRi knock-down of PDIA6 change the "
     "expression of SLC35B1? Answer up, down or none."),
    ("HSPA5|ATF6|K562", "In K562 cells, does CRISPRi knock-down of ATF6 change the "
     "expression of HSPA5? Answer up, down or none."),
]
SYSTEM = "You are a careful molecular biologist. Think step by step, then give a final answer."
REASONING = (
    " PDIA6 is an ER chaperone; losing it raises unfolded protein load, which activates the"
    " UPR through ATF6 and IRE1. SLC35B1 imports ATP into the ER and is a UPR target, so its"
    " expression likely increases."
).split(" ")
ANSWERS = ["up", "down", "none"]
ALTERNATIVES = [" the", " a", " it", " and", " is", " of", " to", ",", ".", " in", " up",
                " down", " none", " ER", " UPR", " gene", " cells", " likely", " not", "\n"]


def out_dir(provider):
    path = os.path.join(REAL, provider)
    os.makedirs(path, exist_ok=True)
    return path


def write_text(provider, name, text):
    path = os.path.join(out_dir(provider), name)
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.write(text)
    print(f"  wrote {os.path.relpath(path, REPO)} ({len(text.encode())} bytes)")
    return path


def write_jsonl(provider, name, objects):
    return write_text(provider, name, "".join(json.dumps(o) + "\n" for o in objects))


def generated_tokens(rng, n_reasoning_words, answer):
    """Tokens of one trace: some reasoning, then `Final answer: <answer>`."""
    start = rng.randrange(0, max(1, len(REASONING) - n_reasoning_words))
    words = REASONING[start:start + n_reasoning_words]
    tokens = []
    for idx, word in enumerate(words):
        if not word:
            continue
        tokens.append(word if idx == 0 and not tokens else " " + word)
    return tokens + ["\n\n", "Final", " answer", ":", " " + answer]


def token_positions(rng, tokens, top_k, greedy):
    """For each generated token: its log-prob and its top list [(token, logprob)], sorted
    descending. The generated token is placed in the list at a rank drawn from the list's
    own probabilities (rank 0 when greedy), so its log-prob is its entry."""
    positions = []
    for token in tokens:
        width = max(top_k, 1)
        # A peaked distribution: the top token takes most of the mass, a few tokens share
        # the rest, and an unlisted remainder keeps the list's sum below 1.
        top_mass = 1.0 - rng.choice([1e-3, 2e-2, 0.1, 0.3, 0.5]) * rng.uniform(0.3, 1.0)
        weights = [top_mass] + [rng.random() ** 3 * (1 - top_mass) for _ in range(width - 1)]
        listed = sum(weights)
        if listed >= 1.0:
            weights = [w / listed * 0.995 for w in weights]
        probs = sorted(weights, reverse=True)
        logprobs = [math.log(p) for p in probs]
        if greedy:
            rank = 0
        else:
            rank = rng.choices(range(width), weights=probs)[0]
        others = [alt for alt in ALTERNATIVES if alt != token]
        rng.shuffle(others)
        names = others[:width]
        names[rank] = token
        top = list(zip(names, logprobs))
        positions.append({"token": token, "logprob": logprobs[rank], "top": top[:top_k]})
    return positions


def new_rng(name):
    """A generator seeded by the file name, so a re-recording writes the same values."""
    return random.Random(name)


def cite_class(obj, label=None):
    """`package/module.py:line` of a class or function, in the installed package the
    recording used."""
    import inspect
    path = inspect.getsourcefile(obj)
    _lines, number = inspect.getsourcelines(obj)
    marker = os.sep + "site-packages" + os.sep
    short = path.split(marker, 1)[1] if marker in path else os.path.relpath(path, REPO)
    return f"`{short}:{number}` ({label or obj.__qualname__})"


def cite_text(root, relative, needle, label=None):
    """`relative:line` of the first line of root/relative containing `needle`."""
    with open(os.path.join(root, relative), encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if needle in line:
                return f"`{relative}:{number}`" + (f" ({label})" if label else "")
    raise SystemExit(f"{needle!r} is no longer in {relative}: update the recorder")


def write_sources(provider, title, intro, files):
    """SOURCES.md of a provider folder: per data file, how it was produced and where each
    shape comes from. files: [(name, how, [citations])]."""
    lines = [f"# {title}", "", intro.strip(), "",
             "Re-create with `cargo xtask record` (scripts/record/); the expected scores "
             "beside each file (`*.expected.json`) come from scripts/record/expected.py.", ""]
    for name, how, citations in files:
        lines.append(f"## `{name}`")
        lines.append("")
        lines.append(how.strip())
        if citations:
            lines.append("")
            lines.append("Shapes: " + "; ".join(citations) + ".")
        lines.append("")
    write_text(provider, "SOURCES.md", "\n".join(lines))

