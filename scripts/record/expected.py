"""Computes what tracesift must report for every file under tests/data/real/, independently
of tracesift: plain Python and `json`, each file read the way its provider documents it.

For each data file FILE it writes FILE.expected.json:

    {"file": name, "how": how it was read, "args": extra `tracesift score` options,
     "lines": physical lines, "skipped_lines": [line numbers of records that are not traces],
     "questions": number of questions (as the provider groups samples; set per file in
                  FILES where the file alone does not say) or null where it is a setting,
     "invalid_tokens": sentinel log-probs dropped,
     "notes": [{"about": word, "count": N}]: echoed prompt tokens left out ("echo"), stream
              chunks assembled ("assembled"): the report must hold a note with that word
              and count,
     "traces": [{"n_tokens", "invalid_tokens", "msp", "mte"}, …] in input order}

Scores follow SPEC §5: a log-prob is valid unless it is null, NaN, ≤ −9999 or > 1e-6
(values in (0, 1e-6] count as 0); msp = −Σ valid log-probs (math.fsum: exact, then
rounded once); mte = mean over valid tokens of the entropy of the token's top list with
probabilities renormalised over the list's valid entries — null when any valid token has
no top list or one with fewer than 2 entries (SPEC §2: top-k needs k ≥ 2). `prob` values
(llama.cpp `post_sampling_probs`) are read as ln(prob). A trace with no valid token has
msp and mte null.

usage: python expected.py [DATA_ROOT]   (default tests/data/real)
"""

import json
import math
import os
import sys

SENTINEL = -9999.0
MIN_TOP_K = 2


# --- SPEC §5 arithmetic ------------------------------------------------------------------

def classify(value):
    """The valid log-prob a raw value stands for, or None (SPEC §3 sentinels)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    if math.isnan(value) or value <= SENTINEL or value > 1e-6:
        return None
    return 0.0 if value > 0.0 else value


def log_of_prob(prob):
    if prob is None:
        return None
    prob = float(prob)
    if prob <= 0.0:
        return float("-inf")
    return math.log(prob)


def entropy(top):
    """Entropy of a top list renormalised over its valid entries; None under k = 2."""
    if top is None or len(top) < MIN_TOP_K:
        return None
    valid = [v for v in (classify(x) for x in top) if v is not None]
    if not valid:
        return None
    total = math.fsum(math.exp(v) for v in valid)
    probs = [math.exp(v) / total for v in valid]
    return max(0.0, -math.fsum(p * math.log(p) for p in probs if p > 0.0))


def trace(tokens):
    """tokens: [(raw log-prob, raw top list or None)] of one generation."""
    n_tokens = 0
    invalid = 0
    logprobs = []
    entropies = []
    mte_possible = True
    for logprob, top in tokens:
        value = classify(logprob)
        if value is None:
            invalid += 1
            continue
        n_tokens += 1
        logprobs.append(value)
        token_entropy = entropy(top)
        if token_entropy is None:
            mte_possible = False
        else:
            entropies.append(token_entropy)
    msp = -math.fsum(logprobs) + 0.0 if n_tokens else None
    mte = math.fsum(entropies) / n_tokens + 0.0 if n_tokens and mte_possible else None
    return {"n_tokens": n_tokens, "invalid_tokens": invalid, "msp": msp, "mte": mte}


# --- framing ---------------------------------------------------------------------------

def physical_lines(text):
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def jsonl(text):
    """[(line number, object)] of a JSON-lines file (blank lines left out)."""
    return [(number, json.loads(line)) for number, line in enumerate(text.split("\n"), 1)
            if line.strip()]


def whole(text):
    """One JSON document (a pretty-printed object or an array)."""
    return [(1, json.loads(text))]


def sse(text):
    """[(line number, object)] of the `data:` events of a server-sent-events body; the
    `[DONE]` sentinel ends the stream (SSE: `field: value` lines, a blank line after each
    event)."""
    events = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.startswith("data:"):
            continue
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            break
        events.append((number, json.loads(payload)))
    return events


# --- providers -------------------------------------------------------------------------

def chat_token(entry):
    """One `logprobs.content[]` entry of an OpenAI chat completion, or llama.cpp's
    `post_sampling_probs` variant of it (`prob`, `top_probs[].prob`)."""
    if "prob" in entry or "top_probs" in entry:
        top = entry.get("top_probs")
        return (log_of_prob(entry.get("prob")),
                None if top is None else [log_of_prob(t.get("prob")) for t in top])
    top = entry.get("top_logprobs")
    return entry.get("logprob"), None if top is None else [t.get("logprob") for t in top]


def chat_choice(choice):
    logprobs = choice.get("logprobs") or {}
    return trace([chat_token(e) for e in (logprobs.get("content") or [])])


def legacy_choice(choice, prompt_tokens):
    """Legacy Completions `logprobs: {tokens, token_logprobs, top_logprobs, text_offset}`;
    with `echo` the first `prompt_tokens` entries are the prompt's and are not scored."""
    logprobs = choice.get("logprobs") or {}
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(values)
    tokens = []
    for value, top in list(zip(values, tops))[prompt_tokens:]:
        tokens.append((value, None if top is None else list(top.values())))
    return trace(tokens)


def echoed_prompt_entries(obj, choice):
    """How many leading entries of an `echo=true` choice are the prompt's. With one choice,
    everything before the last `usage.completion_tokens` entries (llama-cpp-python leaves
    BOS out of the echo but counts it in `usage.prompt_tokens`); with several, `usage`
    sums the choices' completions, and each choice repeats the `usage.prompt_tokens`
    prompt tokens."""
    usage = obj.get("usage") or {}
    choices = obj.get("choices") or []
    if len(choices) == 1 and "completion_tokens" in usage:
        entries = len((choice.get("logprobs") or {}).get("token_logprobs") or [])
        return entries - usage["completion_tokens"]
    return usage.get("prompt_tokens", 0)


def openai_response(obj, echo=False):
    """A chat completion or a legacy completion: one trace per choice."""
    traces = []
    for choice in obj.get("choices") or []:
        if obj.get("object") == "text_completion" and "tokens" in (choice.get("logprobs") or {}):
            prompt_tokens = echoed_prompt_entries(obj, choice) if echo else 0
            traces.append(legacy_choice(choice, prompt_tokens))
        else:
            traces.append(chat_choice(choice))
    return traces


def read_openai(records, echo=False):
    traces, ids = [], []
    for _line, obj in records:
        traces += openai_response(obj, echo)
        ids.append(obj.get("id"))
    return traces, [], len(set(ids))


def read_openai_batch(records):
    """Batch output lines: `response.body` of status 200 is a response; any other line is an
    error the batch wrote and not a trace."""
    traces, skipped = [], []
    for line, obj in records:
        response = obj.get("response") or {}
        if response.get("status_code") == 200 and obj.get("error") is None:
            body = response.get("body") or {}
            if body.get("object") == "response":
                traces.append(responses_trace(body))
            else:
                traces += openai_response(body)
        else:
            skipped.append(line)
    return traces, skipped, None


def responses_trace(obj):
    """Responses API: the `logprobs` of every `output_text` part of every `message` item,
    in order, form the one generation of the response."""
    tokens = []
    for item in obj.get("output") or []:
        if item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if part.get("type") != "output_text":
                continue
            for entry in part.get("logprobs") or []:
                tokens.append(chat_token(entry))
    return trace(tokens)


def read_responses(records):
    return [responses_trace(obj) for _line, obj in records], [], len(records)


def read_openai_chunks(records):
    """Chat-completion chunks: a generation is the `logprobs.content` of every chunk with
    the same `id` and choice `index`, in arrival order; chunks without choices (usage) add
    nothing."""
    order, tokens = [], {}
    for _line, obj in records:
        for choice in obj.get("choices") or []:
            key = (obj.get("id"), choice.get("index", 0))
            if key not in tokens:
                tokens[key] = []
                order.append(key)
            for entry in ((choice.get("logprobs") or {}).get("content") or []):
                tokens[key].append(chat_token(entry))
    return [trace(tokens[key]) for key in order], [], len({key[0] for key in order})


def llamacpp_token(entry):
    """One `completion_probabilities[]` entry of llama.cpp `/completion` (`logprob` /
    `top_logprobs`, or with `post_sampling_probs` `prob` / `top_probs`)."""
    return chat_token(entry)


def read_llamacpp(records):
    """`/completion`: an object per prompt (an array of them for a multi-prompt request);
    one question per distinct prompt."""
    traces, prompts = [], []
    for _line, obj in records:
        for result in obj if isinstance(obj, list) else [obj]:
            entries = result.get("completion_probabilities") or []
            temperature = (result.get("generation_settings") or {}).get("temperature", 1.0)
            if temperature <= 0 and any("prob" in e for e in entries):
                # Post-sampling probabilities of a greedy request: the sampling chain keeps
                # one candidate, whose probability is 1 by construction. They say nothing
                # of the model's uncertainty: no token is scored (ln 1 = 0 would read as
                # certainty).
                entries = []
            traces.append(trace([llamacpp_token(e) for e in entries]))
            prompts.append(json.dumps(result.get("prompt")))
    return traces, [], len(set(prompts))


def read_llamacpp_stream(records):
    """`/completion` with `stream: true`: partial results (`"stop": false`) carry the
    `completion_probabilities` of their tokens; the final one (`"stop": true`) ends the
    generation of its `index`."""
    order, tokens, prompts = [], {}, set()
    for _line, obj in records:
        key = obj.get("index", 0)
        if key not in tokens:
            tokens[key] = []
            order.append(key)
        for entry in obj.get("completion_probabilities") or []:
            tokens[key].append(llamacpp_token(entry))
        if obj.get("stop"):
            prompts.add(json.dumps(obj.get("prompt")))
    return [trace(tokens[key]) for key in order], [], max(1, len(prompts))


def read_vllm(records):
    """vLLM `RequestOutput`: per output, `logprobs` is a list with one `{token_id: Logprob}`
    dict per position or a `FlatLogprobs` object; the sampled token is `token_ids[i]`, the
    position's entries (distinct ids) are its top list."""
    traces, skipped, ids = [], [], []
    for line, obj in records:
        outputs = obj.get("outputs")
        if outputs is None:
            skipped.append(line)
            continue
        ids.append(obj.get("request_id"))
        for output in outputs:
            logprobs = output.get("logprobs")
            token_ids = output.get("token_ids") or []
            positions = []
            if isinstance(logprobs, dict):
                for idx, (start, end) in enumerate(zip(logprobs["start_indices"],
                                                       logprobs["end_indices"])):
                    entries = {}
                    for at in range(start, end):
                        entries.setdefault(str(logprobs["token_ids"][at]), logprobs["logprobs"][at])
                    positions.append((idx, entries))
            else:
                for idx, position in enumerate(logprobs or []):
                    positions.append((idx, {k: v["logprob"] for k, v in position.items()}))
            tokens = []
            for idx, entries in positions:
                sampled = str(token_ids[idx]) if idx < len(token_ids) else None
                tokens.append((entries.get(sampled), list(entries.values())))
            traces.append(trace(tokens))
    return traces, skipped, len(set(ids))


def sglang_tokens(meta):
    """SGLang `meta_info`: `output_token_logprobs` as [logprob, token id, text]; top lists
    nested in `output_top_logprobs` (a list of [logprob, id, text] or null per position), or
    flat (`return_flat_raw_output_top_logprobs`): `output_top_logprobs_val_flat` holding
    `output_top_logprobs_shape` = [rows, k] values after `…_null_prefix` null positions."""
    entries = meta.get("output_token_logprobs") or []
    if "output_top_logprobs_val_flat" in meta:
        values = meta["output_top_logprobs_val_flat"]
        rows, k = meta["output_top_logprobs_shape"]
        null_prefix = meta.get("output_top_logprobs_null_prefix", 0)
        tops = [None] * null_prefix + [values[r * k:(r + 1) * k] for r in range(rows)]
    else:
        tops = [None if top is None else [e[0] for e in top]
                for top in meta.get("output_top_logprobs") or []]
    tops += [None] * (len(entries) - len(tops))
    return [(entry[0], top) for entry, top in zip(entries, tops)]


def read_sglang(records):
    traces = []
    for _line, obj in records:
        for result in obj if isinstance(obj, list) else [obj]:
            traces.append(trace(sglang_tokens(result.get("meta_info") or {})))
    return traces, [], None


def read_sglang_stream(records, incremental):
    """`stream: true`: by default every chunk repeats all log-probs so far and the chunk
    with a `finish_reason` is the generation; with `--incremental-streaming-output` each
    chunk holds its new tokens only and the generation is their concatenation."""
    order, tokens = [], {}
    for _line, obj in records:
        meta = obj.get("meta_info") or {}
        key = meta.get("id")
        if key not in tokens:
            order.append(key)
            tokens[key] = []
        if incremental:
            tokens[key] += sglang_tokens(meta)
        elif meta.get("finish_reason") is not None:
            tokens[key] = sglang_tokens(meta)
    return [trace(tokens[key]) for key in order], [], len(order)


def ollama_tokens(obj):
    """Ollama top-level `logprobs`: [{token, logprob, bytes, top_logprobs?}] covering every
    generated token (a thinking model's thinking and tags included)."""
    return [chat_token(entry) for entry in obj.get("logprobs") or []]


def read_ollama(records):
    return [trace(ollama_tokens(obj)) for _line, obj in records], [], len(records)


def read_ollama_stream(records):
    """The default NDJSON stream: `"done": false` chunks with their tokens' log-probs, then
    a `"done": true` one; a generation is every chunk up to and including `done`."""
    traces, tokens = [], []
    for _line, obj in records:
        tokens += ollama_tokens(obj)
        if obj.get("done"):
            traces.append(trace(tokens))
            tokens = []
    return traces, [], len(traces)


def tgi_sequence(fields):
    """TGI `details` or a `best_of_sequences` entry: `tokens` [{id, text, logprob, special}]
    (EOS included) with `top_tokens` (one list per token) when `top_n_tokens` was set."""
    tokens = fields.get("tokens") or []
    tops = fields.get("top_tokens") or []
    tops = [[t.get("logprob") for t in top] for top in tops] + [None] * (len(tokens) - len(tops))
    return trace([(tok.get("logprob"), top) for tok, top in zip(tokens, tops)])


def read_tgi(records):
    """`/generate`: the returned sequence in `details`, then each of `best_of_sequences`
    (the other candidates of the same request); `prefill` is the prompt."""
    traces = []
    for _line, obj in records:
        for response in obj if isinstance(obj, list) else [obj]:
            details = response.get("details") or {}
            traces.append(tgi_sequence(details))
            traces += [tgi_sequence(other) for other in details.get("best_of_sequences") or []]
    return traces, [], len(records)


def read_tgi_stream(records):
    """`/generate_stream`: one event per token (`token`, `top_tokens`); the event with
    `details` ends the generation."""
    traces, tokens = [], []
    for _line, obj in records:
        top = obj.get("top_tokens")
        tokens.append(((obj.get("token") or {}).get("logprob"),
                       None if not top else [t.get("logprob") for t in top]))
        if obj.get("details") is not None:
            traces.append(trace(tokens))
            tokens = []
    return traces, [], len(traces)


READERS = {
    "openai": read_openai,
    "openai-echo": lambda records: read_openai(records, echo=True),
    "openai-batch": read_openai_batch,
    "openai-responses": read_responses,
    "openai-chunks": read_openai_chunks,
    "llamacpp": read_llamacpp,
    "llamacpp-stream": read_llamacpp_stream,
    "vllm": read_vllm,
    "sglang": read_sglang,
    "sglang-stream-cumulative": lambda records: read_sglang_stream(records, False),
    "sglang-stream-incremental": lambda records: read_sglang_stream(records, True),
    "ollama": read_ollama,
    "ollama-stream": read_ollama_stream,
    "tgi": read_tgi,
    "tgi-stream": read_tgi_stream,
}

FRAMES = {"jsonl": jsonl, "whole": whole, "sse": sse}

# Every data file, its framing and how its provider documents its content.
FILES = {
    "openai/chat_n3.jsonl": ("jsonl", "openai"),
    "openai/chat_pretty.json": ("whole", "openai"),
    "openai/chat_no_top.jsonl": ("jsonl", "openai"),
    "openai/chat_stream.sse": ("sse", "openai-chunks"),
    "openai/chat_stream_chunks.jsonl": ("jsonl", "openai-chunks"),
    "openai/completion.jsonl": ("jsonl", "openai"),
    "openai/completion_echo.jsonl": ("jsonl", "openai-echo"),
    "openai/batch_output.jsonl": ("jsonl", "openai-batch"),
    "openai/responses.jsonl": ("jsonl", "openai-responses"),
    "vllm/offline_logprobs.jsonl": ("jsonl", "vllm"),
    "vllm/offline_flat.jsonl": ("jsonl", "vllm"),
    "vllm/offline_logprobs0.jsonl": ("jsonl", "vllm"),
    "vllm/completions_echo.jsonl": ("jsonl", "openai-echo"),
    "vllm/chat_n2.jsonl": ("jsonl", "openai"),
    "vllm/chat_stream.sse": ("sse", "openai-chunks"),
    "vllm/run_batch_output.jsonl": ("jsonl", "openai-batch"),
    # `<rid>_0`, `<rid>_1` are the n samples of request `<rid>` here, but SGLang numbers the
    # prompts of a batch the same way, so the file alone does not say: scored with the
    # grouping a user sets for it.
    "sglang/generate_n2_rid.json": ("whole", "sglang",
                                    {"questions": 1, "args": ["--sample-suffix", "_[0-9]+$"]}),
    "sglang/generate.jsonl": ("jsonl", "sglang", {"questions": 2}),
    "sglang/generate_flat.json": ("whole", "sglang", {"questions": 1}),
    "sglang/stream_cumulative.sse": ("sse", "sglang-stream-cumulative"),
    "sglang/stream_incremental.sse": ("sse", "sglang-stream-incremental"),
    "ollama/generate_stream.jsonl": ("jsonl", "ollama-stream"),
    "ollama/generate.json": ("jsonl", "ollama"),
    "ollama/generate_no_top.json": ("jsonl", "ollama"),
    "ollama/chat_thinking_stream.jsonl": ("jsonl", "ollama-stream"),
    "ollama/chat_thinking.json": ("jsonl", "ollama"),
    "tgi/generate_best_of.json": ("jsonl", "tgi"),
    "tgi/generate.jsonl": ("jsonl", "tgi"),
    "tgi/generate_stream.sse": ("sse", "tgi-stream"),
    "llamacpp-server/completion.jsonl": ("jsonl", "llamacpp"),
    "llamacpp-server/completion_post_sampling.json": ("whole", "llamacpp"),
    "llamacpp-server/completion_greedy_post_sampling.json": ("whole", "llamacpp"),
    "llamacpp-server/completion_multi_prompt.json": ("whole", "llamacpp"),
    "llamacpp-server/completion_stream.sse": ("sse", "llamacpp-stream"),
    "llamacpp-server/completion_stop_word.json": ("whole", "llamacpp"),
    "llamacpp-server/completion_utf8_pieces.json": ("whole", "llamacpp"),
    # llama.cpp answers /v1/completions `logprobs` in the chat shape (`logprobs.content`),
    # and ignores `echo`.
    "llamacpp-server/v1_completions.json": ("whole", "openai"),
    "llamacpp-server/v1_completions_echo.json": ("whole", "openai"),
    "llamacpp-server/v1_chat.json": ("whole", "openai"),
    "llamacpp-server/v1_chat_top0.json": ("whole", "openai"),
    "llamacpp-server/v1_chat_post_sampling.json": ("whole", "openai"),
    "llamacpp-server/v1_chat_stream.sse": ("sse", "openai-chunks"),
    "llamacpp-server/v1_chat_n2.json": ("whole", "openai"),
    "llama-cpp-python/completion_echo.jsonl": ("jsonl", "openai-echo"),
    "llama-cpp-python/completion.jsonl": ("jsonl", "openai"),
    "llama-cpp-python/chat.jsonl": ("jsonl", "openai"),
    "llama-cpp-python/chat_top0.jsonl": ("jsonl", "openai"),
    "llama-cpp-python/chat_stream.jsonl": ("jsonl", "openai-chunks"),
}


# Readers whose generations are assembled from stream chunks (every record is a chunk).
ASSEMBLED_STREAMS = {"openai-chunks", "llamacpp-stream", "ollama-stream", "tgi-stream",
                     "sglang-stream-incremental", "sglang-stream-cumulative"}


def report_notes(reader, records):
    """What the run report must count besides skipped lines (SPEC §9: anything assembled or
    left out), as {"about": a word the report's note contains, "count": N}."""
    notes = []
    if reader == "openai-echo":
        left_out = sum(echoed_prompt_entries(obj, choice)
                       for _line, obj in records for choice in obj.get("choices") or [])
        notes.append({"about": "echo", "count": left_out})
    if reader in ASSEMBLED_STREAMS:
        notes.append({"about": "assembled", "count": len(records)})
    return notes


def expect(root, relative):
    frame, reader, *overrides = FILES[relative]
    overrides = overrides[0] if overrides else {}
    with open(os.path.join(root, relative), encoding="utf-8") as file:
        text = file.read()
    records = FRAMES[frame](text)
    traces, skipped, questions = READERS[reader](records)
    return {
        "file": os.path.basename(relative),
        "args": overrides.get("args", []),
        "how": f"{frame} records read as {reader} (scripts/record/expected.py)",
        "lines": physical_lines(text),
        "skipped_lines": skipped,
        "questions": overrides.get("questions", questions),
        "invalid_tokens": sum(t["invalid_tokens"] for t in traces),
        "notes": report_notes(reader, records),
        "traces": traces,
    }


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "tests", "data", "real")
    data_files = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.endswith(".expected.json") or name.endswith(".md") or name == "VERSION":
                continue
            data_files.append(os.path.relpath(os.path.join(folder, name), root))
    unknown = sorted(set(data_files) - set(FILES))
    if unknown:
        sys.exit(f"no reader for {unknown}: add them to FILES in {__file__}")
    for relative in sorted(data_files):
        expected = expect(root, relative)
        with open(os.path.join(root, relative + ".expected.json"), "w") as file:
            json.dump(expected, file, indent=1)
            file.write("\n")
        print(f"  {relative}: {len(expected['traces'])} traces, "
              f"{[t['n_tokens'] for t in expected['traces']]} tokens")


if __name__ == "__main__":
    main()
