#!/usr/bin/env python3
"""Reference implementation of tracesift SPEC §2 and §4-§7, canonical JSONL only.

It exists to cross-check the `tracesift` CLI, and it is also the "json + numpy"
notebook baseline a researcher would write by hand. Simple over fast: ROUGE-L is
a plain O(n*m) dynamic programme and nothing is streamed.

    python scripts/reference.py score  FILE [--sim answer|rouge_l|embedding] [--classes SPEC] [--answer-pattern RE]
                                       [--window N] [--combine LIST]
    python scripts/reference.py filter FILE --metric M (--keep Q | --threshold X | --top N)
                                       [--scope per_class|global] [--candidates all|greedy] [--balanced]
    python scripts/reference.py eval   FILE [same options as filter; the rule defaults to --keep 0.1]

`score` prints the rows of SPEC §10, `filter` the kept trace_ids (one per line, input
order), `eval` the §10 object (plus each metric's n, kept count and kept/dropped accuracy).

Where SPEC leaves room, this file makes the same choice as tracesift (see its README):
  * a log-prob is a sentinel when NaN, <= -9999 (SPEC's own example -9999 > -1e4), or
    > 1e-6 (so +inf); values in (0, 1e-6] count as 0; JSON null counts as a sentinel.
    Sentinels inside a top-k list are dropped from that list; a valid token whose list is
    then empty (or null/missing) makes `mte` null.
  * a defaulted trace_id is `<question_id>#<0-based index among the question's traces>`.
  * numeric ids are turned into text with str() (1 -> "1"; 1e2 -> "100.0").
  * the default answer pattern is case-insensitive, a --answer-pattern is used as written;
    its first capture group that took part in the last match is the raw answer.
  * the class name is one of its own aliases; a label is normalised like an answer;
    an empty or null label means "unlabelled".
  * embedding similarity: a trace without an embedding has no consistency and is left
    out of the others' means; a zero vector has cos = 0.
  * in filter, n for --keep is the number of the group's candidates whose metric is
    non-null; --balanced then cuts every class to the smallest kept count among the
    classes that have a candidate (0 if one has nothing kept); under --scope global the
    kept traces are grouped by class for this, and ∅ traces are dropped.

The §5b signals come from reference_signals.py, transcribed from DeepConf's and
LM-Polygraph's own code.

Also as in tracesift, following the SPEC text: rouge_l compares `text`s only (a trace
without `text` has an empty one); eval covers every labelled trace (--candidates only
shapes the kept set); embeddings are compared in float64 as read.
"""
import argparse
import gzip
import json
import math
import re
import sys

import numpy as np

import reference_signals as signals

DEFAULT_PATTERN = (r"<answer>\s*(.+?)\s*</answer>"
                   r"|(?:final answer|answer)\s*[:=]\s*\**\s*([A-Za-z][\w \-]*)")
METRICS = [name for name, _ in signals.METRICS]
ROW_FIELDS = ["trace_id", "question_id", "class", "greedy", "n_tokens", "invalid_tokens",
              "msp", "ppl", "mte", "consistency", "cocoa_msp", "cocoa_ppl", "cocoa_mte"
              ] + signals.SIGNALS


class BadLine(Exception):
    pass


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def clean_logprob(x):
    """§3: the log-prob as a float, or None when it is a sentinel."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x) or x <= -9999.0 or x > 1e-6:
        return None
    return 0.0 if x > 0 else x


def id_text(x, field):
    if isinstance(x, str):
        return x
    if is_num(x):
        return str(x)
    raise BadLine(f"field `{field}`: expected a string or a number")


# ---------------------------------------------------------------- §2 reading
def read_lines(path):
    raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    for i, line in enumerate(raw.split(b"\n"), 1):
        yield i, line.rstrip(b"\r").decode("utf-8", errors="replace")


def parse_record(obj, emb_dim):
    if not isinstance(obj, dict):
        raise BadLine("the record must be an object")
    if obj.get("question_id") is None:
        raise BadLine("missing `question_id`")
    r = {"question_id": id_text(obj["question_id"], "question_id")}
    r["trace_id"] = None if obj.get("trace_id") is None else id_text(obj["trace_id"], "trace_id")
    g = obj.get("greedy")
    if g is not None and not isinstance(g, (bool, int)):
        raise BadLine("field `greedy`: expected a boolean")
    r["greedy"] = bool(g)
    for f in ("text", "answer", "label"):
        v = obj.get(f)
        if v is not None and not isinstance(v, str):
            v = id_text(v, f)
        r[f] = v
    if r["text"] is None and r["answer"] is None:
        raise BadLine("needs a `text` or an `answer`")
    lps, toks, top = obj.get("logprobs"), obj.get("tokens"), obj.get("top_logprobs")
    if lps is not None:
        if not isinstance(lps, list) or not all(v is None or is_num(v) for v in lps):
            raise BadLine("field `logprobs`: expected an array of numbers")
    if toks is not None:
        if not isinstance(toks, list) or not all(isinstance(t, str) for t in toks):
            raise BadLine("field `tokens`: expected an array of strings")
        if lps is not None and len(toks) != len(lps):
            raise BadLine("`tokens` and `logprobs` differ in length")
    if top is not None:
        if not isinstance(top, list) or len(top) != len(lps or []):
            raise BadLine("`top_logprobs` and `logprobs` differ in length")
        top = [list(t.values()) if isinstance(t, dict) else t for t in top]
        for t in top:
            if t is not None and (not isinstance(t, list) or not all(v is None or is_num(v) for v in t)):
                raise BadLine("field `top_logprobs`: expected arrays of numbers")
    r["logprobs"], r["top_logprobs"] = lps or [], top
    e = obj.get("embedding")
    if e is not None:
        if not isinstance(e, list) or not all(is_num(v) for v in e):
            raise BadLine("field `embedding`: expected an array of numbers")
        if emb_dim[0] is None:
            emb_dim[0] = len(e)
        elif len(e) != emb_dim[0]:
            raise BadLine("embedding dimension differs from the file's")
    r["embedding"] = e
    return r


def read_traces(path):
    traces, per_question, emb_dim = [], {}, [None]
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)  # Python's default accepts NaN / Infinity / -Infinity
            except ValueError:
                raise BadLine("not JSON")
            r = parse_record(obj, emb_dim)
        except BadLine as e:
            print(f"reference: {path}:{lineno}: skipped: {e}", file=sys.stderr)
            continue
        idx = per_question.get(r["question_id"], 0)
        per_question[r["question_id"]] = idx + 1
        if r["trace_id"] is None:
            r["trace_id"] = f"{r['question_id']}#{idx}"
        traces.append(r)
    return traces


# ---------------------------------------------------------------- §4 answers and classes
def parse_classes(spec):
    """`up=up,upregulated,a;down=down,b` (+ `!` = strict) -> (alias -> class, strict)."""
    if not spec:
        return {}, False
    spec = spec.strip()
    strict = spec.endswith("!")
    spec = spec[:-1] if strict else spec
    amap = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise SystemExit(2)
        cls, aliases = part.split("=", 1)
        cls = cls.strip().lower()
        for a in [cls] + aliases.split(","):
            if a.strip():
                amap[a.strip().lower()] = cls
    return amap, strict


def normalise(raw, amap, strict):
    """Trim, lower-case, map; None is class ∅."""
    if raw is None:
        return None
    a = raw.strip().lower()
    if not a:
        return None
    if a in amap:
        return amap[a]
    return None if strict else a


def extract_answer(text, pattern):
    last = None
    for m in pattern.finditer(text or ""):
        last = m
    if last is None:
        return None
    if pattern.groups == 0:
        return last.group(0)
    return next((g for g in last.groups() if g is not None), None)


# ---------------------------------------------------------------- §5 scores
def mean_token_entropy(valid_idx, top):
    if top is None or not valid_idx:
        return None
    hs = []
    for i in valid_idx:
        # SPEC §2: a top list needs k >= 2 entries to say anything about entropy.
        if len(top[i] or []) < 2:
            return None
        v = [x for x in (clean_logprob(y) for y in (top[i] or [])) if x is not None]
        if not v:
            return None
        v = np.array(v)
        lse = v.max() + math.log(np.exp(v - v.max()).sum())
        p = np.exp(v - lse)
        hs.append(lse - float((p * v).sum()))  # -Σ p log p with log p = v - lse
    return sum(hs) / len(hs)


def words(text):
    out, cur = [], []
    for ch in (text or "").lower():
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(a, b):
    if not a and not b:
        return 0.0
    return 2.0 * lcs(a, b) / (len(a) + len(b))


def emb_sim(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)
    return (1.0 + cos) / 2.0


def score(traces, sim, amap, strict, pattern, window=signals.DEFAULT_WINDOW,
          combine=signals.DEFAULT_COMBINE.split(",")):
    for t in traces:
        raw = t["answer"] if t["answer"] is not None else extract_answer(t["text"], pattern)
        t["class"] = normalise(raw, amap, strict)
        t["gold"] = normalise(t["label"], amap, False)  # an unknown label stays itself
        valid_idx, vals = [], []
        for i, x in enumerate(t["logprobs"]):
            c = clean_logprob(x)
            if c is not None:
                valid_idx.append(i)
                vals.append(c)
        L = len(vals)
        t["n_tokens"], t["invalid_tokens"] = L, len(t["logprobs"]) - L
        t["msp"] = -sum(vals) if L else None
        t["ppl"] = t["msp"] / L if L else None
        t["mte"] = mean_token_entropy(valid_idx, t["top_logprobs"])
        t["words"] = words(t["text"])
        # §5b: each valid token's list of valid top entries (empty when it has none).
        top = t["top_logprobs"]
        top_lists = [] if top is None else [
            [x for x in (clean_logprob(y) for y in (top[i] or [])) if x is not None]
            for i in valid_idx]
        t.update(signals.token_signals(top_lists, window))
    groups = {}
    for t in traces:
        groups.setdefault(t["question_id"], []).append(t)
    for group in groups.values():
        for t in group:
            sims = []
            for j in group:
                if j is t:
                    continue
                if sim == "answer":
                    sims.append(1.0 if t["class"] is not None and t["class"] == j["class"] else 0.0)
                elif sim == "rouge_l":
                    sims.append(rouge_l(t["words"], j["words"]))
                elif t["embedding"] is not None and j["embedding"] is not None:
                    sims.append(emb_sim(t["embedding"], j["embedding"]))
            if sim == "embedding" and t["embedding"] is None:
                sims = []
            c = sum(sims) / len(sims) if sims else None
            t["consistency"] = c
            t["inconsistency"] = None if c is None else 1.0 - c
            for m in ("msp", "ppl", "mte"):
                t["cocoa_" + m] = None if c is None or t[m] is None else t[m] * (1.0 - c)
        entropy = signals.answer_entropy([t["class"] for t in group])
        # W: the traces that take part in consistency.
        members = [t for t in group if t["consistency"] is not None]
        M = len(members)
        W = np.eye(M)
        for a in range(M):
            for b in range(a + 1, M):
                x, y = members[a], members[b]
                if sim == "answer":
                    w = 1.0 if x["class"] is not None and x["class"] == y["class"] else 0.0
                elif sim == "rouge_l":
                    w = rouge_l(x["words"], y["words"])
                else:
                    w = emb_sim(x["embedding"], y["embedding"])
                W[a, b] = W[b, a] = w
        graph = signals.graph_signals(W, [t["msp"] for t in members], [t["ppl"] for t in members])
        for t in group:
            t["answer_entropy"] = entropy
            t.update(dict.fromkeys(["eigv", "eccentricity", "kle", "semantic_density", "sentence_sar"]))
        for t, values in zip(members, graph):
            t.update(values)
    signals.combo(traces, combine)


# ---------------------------------------------------------------- §6 filter
def order_key(metric):
    """Most trustworthy first: an uncertainty ascending, a confidence descending."""
    return lambda t: (signals.uncertainty(metric, t[metric]), t["ppl"] is None, t["ppl"] or 0.0,
                      t["trace_id"].encode("utf-8"))


def keep_count(q, n):
    return math.ceil(q * n - 1e-9)


def select(traces, metric, keep=None, threshold=None, top=None, scope="per_class",
           candidates="all", balanced=False):
    """The kept traces (a set of ids of Python objects)."""
    pool = [t for t in traces if t[metric] is not None
            and (candidates == "all" or t["greedy"])
            and (scope == "global" or t["class"] is not None)]
    groups = {}
    for t in pool:
        groups.setdefault(t["class"] if scope == "per_class" else "", []).append(t)
    kept_by_group = {}
    for g, members in groups.items():
        members.sort(key=order_key(metric))
        if keep is not None:
            k = keep_count(keep, len(members))
        elif threshold is not None:
            passes = (lambda v: v <= threshold) if signals.DIRECTION[metric] == "u" else (lambda v: v >= threshold)
            k = sum(1 for t in members if passes(t[metric]))
        else:
            k = top
        kept_by_group[g] = members[:k]
    kept = [t for ms in kept_by_group.values() for t in ms]
    if balanced:
        # every class with a candidate counts (even one with nothing kept); ∅ is no class
        by_class = {t["class"]: [] for t in pool if t["class"] is not None}
        for t in kept:
            if t["class"] is not None:
                by_class[t["class"]].append(t)
        smallest = min((len(v) for v in by_class.values()), default=0)
        kept = [t for v in by_class.values() for t in sorted(v, key=order_key(metric))[:smallest]]
    return {id(t) for t in kept}


# ---------------------------------------------------------------- §7 evaluation
def auroc(scores, errors):
    """P(score of an error > score of a correct trace), ties ½ (Mann-Whitney)."""
    s, e = np.asarray(scores, float), np.asarray(errors, bool)
    pos, neg = s[e], s[~e]
    if len(pos) == 0 or len(neg) == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def prediction_rejection_area(quality, num_rej):
    """LM-Polygraph: mean over m = n-num_rej+1..n of the mean quality of the first m."""
    n = len(quality)
    cums = np.cumsum(quality)[-num_rej:]
    return float((cums / np.arange(n - num_rej + 1, n + 1)).sum() / num_rej)


def prr(quality_in_order):
    q = np.asarray(quality_in_order, float)
    n = len(q)
    num_rej = int(0.5 * n)
    if n == 0 or num_rej == 0 or np.all(q == q[0]):
        return None
    ue = prediction_rejection_area(q, num_rej)
    oracle = prediction_rejection_area(np.sort(q)[::-1], num_rej)
    rnd = float(q.mean())
    if oracle == rnd:
        return None
    return (ue - rnd) / (oracle - rnd)


def per_class(kept):
    """Precision / recall / F1 of each class among the kept labelled traces (∅ predicts nothing)."""
    out = []
    for c in dict.fromkeys([t["class"] for t in kept if t["class"] is not None] + [t["gold"] for t in kept]):
        tp = sum(1 for t in kept if t["class"] == c and t["gold"] == c)
        pred = sum(1 for t in kept if t["class"] == c)
        support = sum(1 for t in kept if t["gold"] == c)
        p = tp / pred if pred else None
        r = tp / support if support else None
        f1 = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
        out.append({"class": c, "precision": p, "recall": r, "f1": f1, "support": support})
    return out


def evaluate(traces, rule):
    labelled = [t for t in traces if t["gold"] is not None]
    correct = lambda t: t["class"] is not None and t["class"] == t["gold"]
    out = {"n": len(labelled),
           "accuracy": (sum(map(correct, labelled)) / len(labelled)) if labelled else None,
           "metrics": {}}
    for m in METRICS:
        s = sorted((t for t in labelled if t[m] is not None), key=order_key(m))
        n = len(s)
        q = [1.0 if correct(t) else 0.0 for t in s]
        sel = []
        for i in range(1, 21):
            k = keep_count(i / 20, n)
            sel.append(sum(q[:k]) / k if n and k else None)
        kept = select(traces, m, **rule)  # the traces `filter` would keep, labelled or not
        kq = [qq for t, qq in zip(s, q) if id(t) in kept]
        kt = [t for t in s if id(t) in kept]
        dq = [qq for t, qq in zip(s, q) if id(t) not in kept]
        out["metrics"][m] = {
            "n": n,
            "auroc": auroc([signals.uncertainty(m, t[m]) for t in s], [qq == 0.0 for qq in q]),
            "prr": prr(q),
            "selective_accuracy": sel,
            "kept": len(kq),
            "kept_accuracy": sum(kq) / len(kq) if kq else None,
            "dropped_accuracy": sum(dq) / len(dq) if dq else None,
            "per_class": per_class(kt),
        }
    return out


# ---------------------------------------------------------------- CLI
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["score", "filter", "eval"])
    ap.add_argument("input")
    ap.add_argument("--sim", default="answer", choices=["answer", "rouge_l", "embedding"])
    ap.add_argument("--classes")
    ap.add_argument("--answer-pattern")
    ap.add_argument("--metric", choices=METRICS)
    ap.add_argument("--keep", type=float)
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--top", type=int)
    ap.add_argument("--scope", default="per_class", choices=["per_class", "global"])
    ap.add_argument("--candidates", default="all", choices=["all", "greedy"])
    ap.add_argument("--balanced", action="store_true")
    ap.add_argument("--window", type=int, default=signals.DEFAULT_WINDOW)
    ap.add_argument("--combine", default=signals.DEFAULT_COMBINE)
    ap.add_argument("--out", help="write here instead of stdout")
    a = ap.parse_args(argv)
    if a.out:
        sys.stdout = open(a.out, "w", encoding="utf-8")
    amap, strict = parse_classes(a.classes)
    # the default pattern is case-insensitive; a user's pattern is taken as written ((?i) for that)
    pattern = (re.compile(a.answer_pattern) if a.answer_pattern
               else re.compile(DEFAULT_PATTERN, re.IGNORECASE))
    traces = read_traces(a.input)
    if not traces:
        print("reference: nothing usable in the input", file=sys.stderr)
        return 1
    combine = [m.strip() for m in a.combine.split(",") if m.strip()]
    if a.window < 1 or not combine or any(m not in METRICS or m == "combo" for m in combine):
        return 2
    score(traces, a.sim, amap, strict, pattern, a.window, combine)
    rules = [x is not None for x in (a.keep, a.threshold, a.top)]
    if sum(rules) > 1 or (a.keep is not None and not 0 < a.keep <= 1):
        return 2
    rule = dict(keep=a.keep, threshold=a.threshold, top=a.top, scope=a.scope,
                candidates=a.candidates, balanced=a.balanced)
    if a.command == "score":
        for t in traces:
            print(json.dumps({f: t[f] for f in ROW_FIELDS}, ensure_ascii=False))
    elif a.command == "filter":
        if a.metric is None or sum(rules) != 1:
            return 2
        kept = select(traces, a.metric, **rule)
        for t in traces:
            if id(t) in kept:
                print(t["trace_id"])
    else:
        if sum(rules) == 0:
            rule["keep"] = 0.1
        print(json.dumps(evaluate(traces, rule)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
