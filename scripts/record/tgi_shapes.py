"""Text Generation Inference `/generate` and `/generate_stream` output shapes, hand-built
from TGI's Rust router source (from source, not recorded: TGI needs a GPU, and its router is
Rust, so nothing of it can be executed from PyPI).

Each response has the fields, order and `skip_serializing_if` of the structs in
router/src/lib.rs, serde_json's encoding (f32 log-probs in their shortest form, a NaN
log-prob as null: the first prompt token's), and is validated against the official TGI
Python client's types (`text-generation` on PyPI: `Response`, `StreamResponse`). Log-probs
are seeded random but valid.

usage: python tgi_shapes.py
"""

import json
import random

import numpy as np
import text_generation
from text_generation.types import Response, StreamResponse

import common

PROVIDER = "tgi"
# router/src/lib.rs and server.rs at this version (huggingface/text-generation-inference).
SOURCE_VERSION = "v3.3.7-1-gdb931fcf, commit db931fcf42da018a3657580c64bf2720f167f9ab"
LINES = {
    "PrefillToken": "router/src/lib.rs:1376",
    "Token": "router/src/lib.rs:1386",
    "BestOfSequence": "router/src/lib.rs:1442",
    "Details": "router/src/lib.rs:1458",
    "GenerateResponse": "router/src/lib.rs:1474",
    "StreamDetails": "router/src/lib.rs:1492",
    "StreamResponse": "router/src/lib.rs:1504",
    "generate_stream": "router/src/server.rs:497 (`Event::default().json_data(token)`: "
                       "`data:` events, no `[DONE]`)",
    "best_of": "router/src/server.rs:326 (`best_of_sequences`: the candidates other than the "
               "returned one)",
}
EOS = (2, "</s>")


def f32(value):
    """An f32 as serde_json writes it (shortest form), read back as a float."""
    return float(str(np.float32(value)))


class Vocab:
    def __init__(self):
        self.ids = {}

    def id(self, text):
        return self.ids.setdefault(text, 300 + 41 * len(self.ids))


def token(vocab, text, logprob, special=False):
    return {"id": EOS[0] if special else vocab.id(text), "text": text, "logprob": f32(logprob),
            "special": special}


def sequence(rng, vocab, top_n):
    """(tokens, top_tokens) of one generated sequence ending with the EOS token."""
    texts = common.generated_tokens(rng, 2, rng.choice(common.ANSWERS)) + [EOS[1]]
    positions = common.token_positions(rng, texts, max(top_n, 1), greedy=False)
    tokens, tops = [], []
    for position in positions:
        special = position["token"] == EOS[1]
        tokens.append(token(vocab, position["token"], position["logprob"], special))
        tops.append([token(vocab, t, lp, t == EOS[1]) for t, lp in position["top"][:top_n]])
    return tokens, tops


def prefill(rng, vocab):
    """`decoder_input_details: true`: the prompt's tokens; the first has no log-prob (NaN,
    written as null)."""
    texts = ["<s>", "Does", " PD", "IA", "6", " knock", "-down", " change", " SL", "C", "35",
             "B", "1", "?"]
    positions = common.token_positions(rng, texts, 1, greedy=False)
    return [{"id": 1 if n == 0 else vocab.id(p["token"]), "text": p["token"],
             "logprob": None if n == 0 else f32(p["logprob"])}
            for n, p in enumerate(positions)]


def details(rng, vocab, top_n, with_prefill, seed):
    tokens, tops = sequence(rng, vocab, top_n)
    fields = {"finish_reason": "eos_token", "generated_tokens": len(tokens), "seed": seed,
              "prefill": prefill(rng, vocab) if with_prefill else [], "tokens": tokens}
    return fields, tops, "".join(t["text"] for t in tokens if not t["special"])


def generate_response(rng, vocab, top_n, best_of):
    main, tops, text = details(rng, vocab, top_n, True, 4242)
    others = []
    for number in range(best_of - 1):
        other, other_tops, other_text = details(rng, vocab, top_n, True, 4243 + number)
        sequence_fields = {"generated_text": other_text, **other}
        if top_n:
            sequence_fields["top_tokens"] = other_tops
        others.append(sequence_fields)
    if others:
        main["best_of_sequences"] = others
    if top_n:
        main["top_tokens"] = tops
    response = {"generated_text": text, "details": main}
    Response.model_validate(response) if hasattr(Response, "model_validate") else Response(**response)
    return response


def stream_events(rng, vocab, top_n):
    tokens, tops = sequence(rng, vocab, top_n)
    events = []
    for index, (tok, top) in enumerate(zip(tokens, tops), 1):
        last = index == len(tokens)
        event = {"index": index, "token": tok}
        if top_n:
            event["top_tokens"] = top
        event["generated_text"] = "".join(t["text"] for t in tokens if not t["special"]) \
            if last else None
        event["details"] = {"finish_reason": "eos_token", "generated_tokens": len(tokens),
                            "seed": 4242, "input_length": 14} if last else None
        StreamResponse(**event)
        events.append(event)
    return events


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write_files():
    rng, vocab = random.Random("tgi/generate_best_of.json"), Vocab()
    common.write_text(PROVIDER, "generate_best_of.json",
                      dumps(generate_response(rng, vocab, 2, 2)) + "\n")
    rng, vocab = random.Random("tgi/generate.jsonl"), Vocab()
    common.write_text(PROVIDER, "generate.jsonl", "".join(
        dumps(generate_response(rng, vocab, 0, 1)) + "\n" for _ in range(2)))
    rng, vocab = random.Random("tgi/generate_stream.sse"), Vocab()
    common.write_text(PROVIDER, "generate_stream.sse", "".join(
        "data:" + dumps(event) + "\n\n" for event in stream_events(rng, vocab, 2)))


def write_sources():
    def cite(*names):
        return [f"`{LINES[n].split(' ')[0]}`" + (f" {LINES[n].split(' ', 1)[1]}"
                                                 if " " in LINES[n] else f" ({n})")
                for n in names]
    common.write_sources(PROVIDER, "Text Generation Inference: shapes from source, not recorded",
                         f"""
**From source, not recorded.** TGI needs a GPU and its router is Rust, so these are
hand-built by scripts/record/tgi_shapes.py from the router's source (huggingface/
text-generation-inference `{SOURCE_VERSION}`): the fields, order and `skip_serializing_if`
of its response structs, serde_json's encoding (f32 in shortest form; the first prompt
token's NaN log-prob as null), validated against the official TGI client `text-generation`
{text_generation.__version__ if hasattr(text_generation, "__version__") else ""} (PyPI)
types. Log-probs are seeded random but valid. Every sequence ends with the EOS token
(`special: true`), whose log-prob is part of the generation.
""", [
        ("generate_best_of.json", "`/generate` with `details: true, decoder_input_details: "
         "true, top_n_tokens: 2, best_of: 2`: the returned sequence in `details.tokens` "
         "(`top_tokens` beside it) and the other candidate in `details.best_of_sequences`; "
         "`prefill` holds the prompt (first log-prob null) and is not generated text.",
         cite("GenerateResponse", "Details", "BestOfSequence", "Token", "PrefillToken",
              "best_of")),
        ("generate.jsonl", "Two `/generate` responses with `details: true` and no "
         "`top_n_tokens` (`top_tokens` left out), one per line: no top lists, mte null.",
         cite("GenerateResponse", "Details", "Token")),
        ("generate_stream.sse", "`/generate_stream` with `details: true, top_n_tokens: 2`: "
         "one `data:` event per token (`index`, `token`, `top_tokens`), the last with "
         "`generated_text` and `details`.",
         cite("StreamResponse", "StreamDetails", "Token", "generate_stream")),
    ])


def main():
    print(f"tgi (from source {SOURCE_VERSION})")
    write_files()
    write_sources()


if __name__ == "__main__":
    main()
