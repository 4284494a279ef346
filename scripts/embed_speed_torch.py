#!/usr/bin/env python3
"""PyTorch's milliseconds per text for all-MiniLM-L6-v2 through sentence-transformers, on
the same 256-word-piece text as crates/embed/examples/speed.rs: one thread and every
thread, one text at a time (median of 10) and 64 texts in batches of 32. The figure
`cargo xtask bench` sets beside tracesift's own.

Usage: PYTHON scripts/embed_speed_torch.py MODEL_DIR   (a Python with torch and
sentence-transformers; `cargo xtask bench` makes one in target/torch-venv)
"""
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

SENTENCE = ("Knocking down the transcription factor reduces repression of the target "
            "gene, so its expression in this cell line should rise; ")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: embed_speed_torch.py MODEL_DIR")
    model = SentenceTransformer(sys.argv[1], device="cpu")
    model.max_seq_length = 256
    text = SENTENCE * 12
    pieces = len(model.tokenizer(text, truncation=True, max_length=256)["input_ids"])
    assert pieces == 256, f"the text fills the model's input ({pieces} word-pieces)"
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        model.encode([text] * 3, batch_size=1)  # warm-up
        single = []
        for _ in range(10):
            started = time.perf_counter()
            model.encode([text], batch_size=1)
            single.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        model.encode([text] * 64, batch_size=32)
        batch = (time.perf_counter() - started) * 1e3 / 64
        print(f"embedding on {threads} thread(s) (all-MiniLM-L6-v2, 256 word-pieces, PyTorch "
              f"{torch.__version__} via sentence-transformers): {statistics.median(single):.1f} ms a "
              f"text one at a time (median of 10), {batch:.1f} ms a text for 64 texts in batches of 32")


if __name__ == "__main__":
    main()
