"""Ollama `/api/generate` and `/api/chat` output shapes, hand-built from Ollama's Go source
(from source, not recorded: no Ollama server runs here, and its source is Go, so nothing of
it can be executed from PyPI).

Each chunk is built as server/routes.go builds it (`GenerateHandler`, `ChatHandler`: one
response per runner completion chunk, each carrying that chunk's `logprobs` via
`toAPILogprobs`; with `"stream": false` the chunks' text and log-probs joined into one),
field order and `omitempty` as the structs in api/types.go declare them, encoded like Go's
`encoding/json` (floats in Go's shortest form), and validated against the official
`ollama` Python client's pydantic types. Log-probs are seeded random but valid, float32
values as the llama.cpp runner hands them over.

usage: python ollama_shapes.py [OLLAMA_SOURCE_DIR]   (a checkout of ollama/ollama at
SOURCE_VERSION to look the cited lines up again; without it KNOWN_LINES are used)
"""

import decimal
import json
import random
import struct
import sys

import ollama
from ollama import ChatResponse, GenerateResponse

import common

PROVIDER = "ollama"
MODEL = "qwen3:0.6b"


def float32(value):
    return struct.unpack("f", struct.pack("f", value))[0]


def go_float(value):
    """Go's encoding/json float64 form: shortest digits, positional unless the exponent is
    below -6 or at least 21 (encoding/json encode.go floatEncoder)."""
    text = repr(float(value))
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = text.split("e") if "e" in text else (text, "0")
        exponent = int(exponent)
        return f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if "e" in text:
        text = format(decimal.Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def go_json(value):
    """Compact JSON as Go writes it: keys in the given (struct) order, Go float form."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + go_json(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, float):
        return go_float(value)
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026")


def token_logprob(token, logprob):
    """api.TokenLogprob: token, logprob, bytes (omitempty)."""
    entry = {"token": token, "logprob": logprob}
    if token:
        entry["bytes"] = list(token.encode("utf-8"))
    return entry


def api_logprob(position):
    """api.Logprob (server/logprob.go toAPILogprobs): the token's fields, then
    top_logprobs (omitempty)."""
    entry = token_logprob(position["token"], float32(position["logprob"]))
    if position["top"]:
        entry["top_logprobs"] = [token_logprob(t, float32(lp)) for t, lp in position["top"]]
    return entry


class Clock:
    def __init__(self):
        self.nanos = 123456789

    def now(self):
        self.nanos += 18_000_000
        seconds, nanos = divmod(self.nanos, 1_000_000_000)
        return f"2026-08-21T18:48:{22 + seconds:02d}.{nanos:09d}Z".replace("000Z", "Z")


def generate_chunks(rng, top_k, thinking):
    """Runner chunks (one token each): (content piece, thinking piece, logprob entry).
    A thinking model writes `<think>` … `</think>` first; the builtin parser turns those
    tokens into `thinking` and emits tag tokens with empty text but their log-probs."""
    tokens = common.generated_tokens(rng, 2, rng.choice(common.ANSWERS))
    chunks = []
    if thinking:
        reasoning = ["Okay", ",", " PD", "IA6", " loss", " stresses", " the", " ER", "."]
        for token in ["<think>", "\n"] + reasoning + ["\n", "</think>", "\n\n"]:
            shown = "" if token in ("<think>", "</think>") else token
            kind = "thinking" if token not in ("\n\n",) else "skip"
            chunks.append((token, kind, shown))
    for token in tokens:
        chunks.append((token, "content", token))
    positions = common.token_positions(rng, [c[0] for c in chunks], top_k, greedy=False)
    out = []
    for (token, kind, shown), position in zip(chunks, positions):
        content = shown if kind == "content" else ""
        think = shown if kind == "thinking" else ""
        out.append((content, think, api_logprob(position)))
    return out


def generate_response(clock, content, thinking, logprobs, done, extra=None):
    """api.GenerateResponse in field order (Metrics and Context filled on the last)."""
    response = {"model": MODEL, "created_at": clock.now(), "response": content}
    if thinking:
        response["thinking"] = thinking
    response["done"] = done
    if extra:
        response.update(extra)
    if logprobs:
        response["logprobs"] = logprobs
    GenerateResponse.model_validate(json.loads(go_json(response)))
    return response


def chat_response(clock, content, thinking, logprobs, done, extra=None):
    """api.ChatResponse in field order: model, created_at, message, done, done_reason,
    logprobs, then the embedded Metrics."""
    message = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    response = {"model": MODEL, "created_at": clock.now(), "message": message, "done": done}
    extra = dict(extra or {})
    if "done_reason" in extra:
        response["done_reason"] = extra.pop("done_reason")
    if logprobs:
        response["logprobs"] = logprobs
    response.update(extra)
    ChatResponse.model_validate(json.loads(go_json(response)))
    return response


def final_fields(n_tokens, chat):
    fields = {"done_reason": "stop"}
    if not chat:
        fields["context"] = [151644, 872, 198, 641, 735, 20, 21, 151645, 198]
    fields.update({"total_duration": 412345678, "load_duration": 23456789,
                   "prompt_eval_count": 42, "prompt_eval_duration": 34567890,
                   "eval_count": n_tokens, "eval_duration": 298765432})
    return fields


def stream(rng, chat, top_k, thinking):
    clock = Clock()
    build = chat_response if chat else generate_response
    chunks = generate_chunks(rng, top_k, thinking)
    lines = [build(clock, c, t, [lp], False) for c, t, lp in chunks]
    lines.append(build(clock, "", "", [], True, final_fields(len(chunks), chat)))
    return lines


def joined(rng, chat, top_k, thinking):
    """`"stream": false`: the handler joins every chunk's text, thinking and log-probs into
    the last response."""
    clock = Clock()
    build = chat_response if chat else generate_response
    chunks = generate_chunks(rng, top_k, thinking)
    return build(clock, "".join(c for c, _, _ in chunks), "".join(t for _, t, _ in chunks),
                 [lp for _, _, lp in chunks], True, final_fields(len(chunks), chat))


def write_files():
    files = [
        ("generate_stream.jsonl", lambda rng: stream(rng, False, 2, False)),
        ("generate.json", lambda rng: [joined(rng, False, 3, False)]),
        ("generate_no_top.json", lambda rng: [joined(rng, False, 0, False)]),
        ("chat_thinking_stream.jsonl", lambda rng: stream(rng, True, 2, True)),
        ("chat_thinking.json", lambda rng: [joined(rng, True, 2, True)]),
    ]
    for name, make in files:
        objects = make(random.Random(f"ollama/{name}"))
        common.write_text(PROVIDER, name, "".join(go_json(o) + "\n" for o in objects))


# Where each shape is in Ollama's source, at the commit named in SOURCE_VERSION; used
# when no checkout is given (the recorder installs from PyPI only). With a checkout the
# lines are looked up again.
SOURCE_VERSION = "v0.33.0-rc2, commit fb30760996871fa9460115c753afd2c60d4ab0f7"
KNOWN_LINES = {
    ("api/types.go", "type GenerateResponse struct"): 891,
    ("api/types.go", "type TokenLogprob struct"): 498,
    ("api/types.go", "type Logprob struct"): 510,
    ("api/types.go", "type Metrics struct"): 557,
    ("server/logprob.go", "func toAPILogprobs"): 9,
    ("api/types.go", "type ChatResponse struct"): 520,
    ("api/types.go", "type Message struct"): 197,
    ("server/routes.go", "res := api.GenerateResponse{"): 671,
    ("server/routes.go", "func streamResponse"): 2097,
    ("server/routes.go", "var allLogprobs []api.Logprob"): 752,
    ("server/routes.go", 'Message:   api.Message{Role: "assistant", Content: r.Content}'): 2790,
    ("server/routes.go", "res.Message.Thinking = thinking"): 2818,
    ("server/routes.go", 'if res.Message.Content != "" || res.Message.Thinking != ""'): 2832,
}


def write_sources(source_dir):
    def cite(path, needle, label=None):
        if source_dir:
            return common.cite_text(source_dir, path, needle, label)
        return f"`{path}:{KNOWN_LINES[(path, needle)]}`" + (f" ({label})" if label else "")

    types = [cite("api/types.go", "type GenerateResponse struct", "GenerateResponse"),
             cite("api/types.go", "type TokenLogprob struct", "TokenLogprob"),
             cite("api/types.go", "type Logprob struct", "Logprob"),
             cite("api/types.go", "type Metrics struct", "Metrics"),
             cite("server/logprob.go", "func toAPILogprobs", "toAPILogprobs")]
    chat_types = [cite("api/types.go", "type ChatResponse struct", "ChatResponse"),
                  cite("api/types.go", "type Message struct", "Message")] + types[1:]
    gen_stream = [cite("server/routes.go", "res := api.GenerateResponse{",
                       "a response per runner chunk"),
                  cite("server/routes.go", "func streamResponse", "NDJSON, one per line")]
    gen_joined = [cite("server/routes.go", "var allLogprobs []api.Logprob",
                       "`stream: false` joins the chunks' log-probs")]
    chat_stream = [cite("server/routes.go", 'Message:   api.Message{Role: "assistant", '
                        'Content: r.Content}', "a response per runner chunk"),
                   cite("server/routes.go", "res.Message.Thinking = thinking",
                        "the builtin parser splits thinking from content"),
                   cite("server/routes.go", "if res.Message.Content != \"\" || "
                        "res.Message.Thinking != \"\"", "chunks with only log-probs are sent")]
    common.write_sources(PROVIDER, "Ollama: shapes from source, not recorded", f"""
**From source, not recorded.** No Ollama server runs here and its server is Go, so these
are hand-built by scripts/record/ollama_shapes.py from Ollama's source (ollama/ollama,
`{SOURCE_VERSION}`): each response is built as server/routes.go builds
it, with the fields, order and `omitempty` of the structs in api/types.go, encoded the way
Go's encoding/json writes them, and validated against the official `ollama` Python client
{ollama.__version__ if hasattr(ollama, "__version__") else ""} types (`GenerateResponse`,
`ChatResponse`). Log-probs are seeded random but valid (float32, as the llama.cpp runner
gives them). A thinking model (`think: true`) has log-probs for every generated token,
its `<think>` tags and thinking included; the text fields hold only `thinking` and
`content` without the tags.
""", [
        ("generate_stream.jsonl", "`/api/generate` with `logprobs: true, top_logprobs: 2` "
         "and the default `stream: true`: NDJSON, one `\"done\": false` response per token "
         "with that token's `logprobs`, then a `\"done\": true` response with `done_reason`, "
         "`context` and the metrics. The generation is all the chunks together.",
         types + gen_stream),
        ("generate.json", "The same with `stream: false` and `top_logprobs: 3`: one "
         "response.", types + gen_joined),
        ("generate_no_top.json", "`logprobs: true` without `top_logprobs`: no "
         "`top_logprobs` (omitempty), so mte is null.", types + gen_joined),
        ("chat_thinking_stream.jsonl", "`/api/chat` with `think: true, logprobs: true, "
         "top_logprobs: 2`, streamed: thinking chunks (`message.thinking`), tag tokens with "
         "empty text but their log-probs, then content chunks, then the done response.",
         chat_types + chat_stream),
        ("chat_thinking.json", "The same with `stream: false`: one response whose log-probs "
         "cover the thinking and the answer.", chat_types + gen_joined),
    ])


def main():
    source_dir = sys.argv[1] if len(sys.argv) > 1 else None
    print(f"ollama (from source {SOURCE_VERSION})")
    write_files()
    write_sources(source_dir)


if __name__ == "__main__":
    main()
