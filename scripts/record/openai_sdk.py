"""Serialises the official `openai` package's own response types into tests/data/real/openai/.

No request reaches OpenAI: each object is built from the JSON the API documents and
validated by the SDK's own pydantic models (`model_validate`), then written the way a user
saves it (`model_dump_json()` per line, `to_json()` for a pretty file, SSE `data:` lines for
a stream). The legacy Completions echo response has null first entries
(`token_logprobs[0]`, `top_logprobs[0]`), which the SDK's strict types reject, so it is
built with `construct` as the SDK itself does when it reads a response
(openai/_models.py `construct_type`). Log-probs are seeded random but valid (common.py).
"""

import json
import sys

import openai
from openai.types import Batch, Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

import common

PROVIDER = "openai"
MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1752900000


def token_bytes(token):
    return list(token.encode("utf-8"))


def chat_logprob_entries(positions):
    return [
        {
            "token": p["token"],
            "logprob": p["logprob"],
            "bytes": token_bytes(p["token"]),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": token_bytes(t)} for t, lp in p["top"]
            ],
        }
        for p in positions
    ]


def chat_completion_dict(rng, completion_id, n, top_k, n_words):
    choices = []
    total = 0
    for idx in range(n):
        answer = rng.choice(common.ANSWERS)
        tokens = common.generated_tokens(rng, n_words + idx, answer)
        positions = common.token_positions(rng, tokens, top_k, greedy=False)
        total += len(tokens)
        choices.append({
            "index": idx,
            "message": {"role": "assistant", "content": "".join(tokens), "refusal": None,
                        "annotations": []},
            "logprobs": {"content": chat_logprob_entries(positions), "refusal": None},
            "finish_reason": "stop",
        })
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": choices,
        "usage": {
            "prompt_tokens": 57, "completion_tokens": total, "total_tokens": 57 + total,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_560af6e559",
    }


def chat_files():
    rng = common.new_rng("openai/chat_n3.jsonl")
    lines = []
    for number, _question in enumerate(common.QUESTIONS):
        data = chat_completion_dict(rng, f"chatcmpl-Bx{number:04d}n3", n=3, top_k=2, n_words=2)
        lines.append(ChatCompletion.model_validate(data).model_dump_json())
    common.write_text(PROVIDER, "chat_n3.jsonl", "".join(line + "\n" for line in lines))

    # `print(completion.to_json())` into a file: one pretty object of several lines.
    rng = common.new_rng("openai/chat_pretty.json")
    data = chat_completion_dict(rng, "chatcmpl-BxPretty01", n=1, top_k=2, n_words=4)
    common.write_text(PROVIDER, "chat_pretty.json",
                      ChatCompletion.model_validate(data).to_json() + "\n")

    # logprobs=true without top_logprobs: every token's `top_logprobs` is [].
    rng = common.new_rng("openai/chat_no_top.jsonl")
    data = chat_completion_dict(rng, "chatcmpl-BxNoTop001", n=2, top_k=0, n_words=3)
    common.write_text(PROVIDER, "chat_no_top.jsonl",
                      ChatCompletion.model_validate(data).model_dump_json() + "\n")


def chunk(completion_id, choices, usage=None):
    data = {
        "id": completion_id, "object": "chat.completion.chunk", "created": CREATED,
        "model": MODEL, "service_tier": "default", "system_fingerprint": "fp_560af6e559",
        "choices": choices, "usage": usage,
    }
    return ChatCompletionChunk.model_validate(data)


def stream_chunks(rng, completion_id, n, top_k):
    """The chunks of `stream=True, n=n, logprobs=True, top_logprobs=top_k,
    stream_options={"include_usage": True}`: a role chunk per choice, one chunk per token
    (choices interleaved), a finish chunk per choice, then the usage chunk with no choices."""
    per_choice = []
    for idx in range(n):
        tokens = common.generated_tokens(rng, 1 + idx, rng.choice(common.ANSWERS))
        per_choice.append(common.token_positions(rng, tokens, top_k, greedy=False))
    chunks = []
    for idx in range(n):
        chunks.append(chunk(completion_id, [{
            "index": idx, "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None, "finish_reason": None}]))
    longest = max(len(p) for p in per_choice)
    for step in range(longest):
        for idx, positions in enumerate(per_choice):
            if step >= len(positions):
                continue
            entry = chat_logprob_entries([positions[step]])
            chunks.append(chunk(completion_id, [{
                "index": idx, "delta": {"content": positions[step]["token"]},
                "logprobs": {"content": entry, "refusal": None}, "finish_reason": None}]))
    for idx in range(n):
        chunks.append(chunk(completion_id, [{
            "index": idx, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    completion_tokens = sum(len(p) for p in per_choice)
    chunks.append(chunk(completion_id, [], usage={
        "prompt_tokens": 57, "completion_tokens": completion_tokens,
        "total_tokens": 57 + completion_tokens}))
    return chunks


def stream_files():
    rng = common.new_rng("openai/chat_stream.sse")
    chunks = stream_chunks(rng, "chatcmpl-BxStream0001", n=2, top_k=2)
    # What the API sends and `curl -N` saves: `data: <json>` events, a blank line after each.
    text = "".join(f"data: {c.model_dump_json()}\n\n" for c in chunks) + "data: [DONE]\n\n"
    common.write_text(PROVIDER, "chat_stream.sse", text)

    # What `for chunk in stream: f.write(chunk.model_dump_json() + "\n")` saves.
    rng = common.new_rng("openai/chat_stream_chunks.jsonl")
    chunks = stream_chunks(rng, "chatcmpl-BxStream0002", n=1, top_k=3)
    common.write_text(PROVIDER, "chat_stream_chunks.jsonl",
                      "".join(c.model_dump_json() + "\n" for c in chunks))


def completion_choice(rng, index, prompt_tokens, echo, top_k):
    tokens = common.generated_tokens(rng, 1 + index, rng.choice(common.ANSWERS))
    positions = common.token_positions(rng, tokens, top_k, greedy=False)
    all_tokens, token_logprobs, top_logprobs = [], [], []
    if echo:
        prompt_positions = common.token_positions(rng, prompt_tokens, top_k, greedy=False)
        for number, position in enumerate(prompt_positions):
            all_tokens.append(position["token"])
            # The first prompt token has no log-prob: nothing came before it.
            token_logprobs.append(None if number == 0 else position["logprob"])
            top_logprobs.append(None if number == 0 else dict(position["top"]))
    for position in positions:
        all_tokens.append(position["token"])
        token_logprobs.append(position["logprob"])
        top_logprobs.append(dict(position["top"]))
    offsets, offset = [], 0
    for token in all_tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "index": index,
        "text": "".join(all_tokens) if echo else "".join(tokens),
        "logprobs": {"tokens": all_tokens, "token_logprobs": token_logprobs,
                     "top_logprobs": top_logprobs, "text_offset": offsets},
        "finish_reason": "stop",
    }, len(tokens)


def completion_files():
    prompt_tokens = ["Q", ":", " Does", " PD", "IA", "6", " knock", "-down", " change",
                     " SL", "C", "35", "B", "1", "?", "\n", "A", ":"]
    for name, echo, n in (("completion_echo.jsonl", True, 2), ("completion.jsonl", False, 2)):
        rng = common.new_rng(f"openai/{name}")
        lines = []
        for number in range(2):
            choices, generated = [], 0
            for index in range(n):
                choice, n_generated = completion_choice(rng, index, prompt_tokens, echo, 3)
                choices.append(choice)
                generated += n_generated
            data = {
                "id": f"cmpl-Bx{number:02d}{'Echo' if echo else 'Plain'}",
                "object": "text_completion", "created": CREATED,
                "model": "gpt-3.5-turbo-instruct", "choices": choices,
                "usage": {"prompt_tokens": len(prompt_tokens), "completion_tokens": generated,
                          "total_tokens": len(prompt_tokens) + generated},
                "system_fingerprint": None,
            }
            if echo:
                # Strict validation rejects the null first entries: build it as the SDK
                # builds a response it reads, without validation.
                completion = Completion.construct(**data)
            else:
                completion = Completion.model_validate(data)
            lines.append(completion.model_dump_json())
        common.write_text(PROVIDER, name, "".join(line + "\n" for line in lines))


def batch_files():
    """Batch output lines (`GET /v1/files/{output_file_id}/content`): one line per request,
    `{id, custom_id, response: {status_code, request_id, body}, error}`, body as the API
    returns it (fields unset by the API left out). A request the API refused has its error
    in `response.body.error` (status 400); one the batch never ran has `response: null` and
    `error`."""
    rng = common.new_rng("openai/batch_output.jsonl")
    lines = []
    for number in range(3):
        body = ChatCompletion.model_validate(
            chat_completion_dict(rng, f"chatcmpl-BxBatch{number:04d}", n=1, top_k=2, n_words=2))
        lines.append({
            "id": f"batch_req_68a4c1{number:02d}",
            "custom_id": f"SLC35B1|PDIA6|K562__s{number}",
            "response": {"status_code": 200, "request_id": f"a1b2c3d4e5f6{number:04d}",
                         "body": body.model_dump(exclude_unset=True)},
            "error": None,
        })
    lines.append({
        "id": "batch_req_68a4c1x3", "custom_id": "SLC35B1|PDIA6|K562__s3",
        "response": {"status_code": 400, "request_id": "a1b2c3d4e5f60003",
                     "body": {"error": {"message": "Invalid value for 'top_logprobs': must be "
                                        "less than or equal to 20.",
                                        "type": "invalid_request_error",
                                        "param": "top_logprobs", "code": None}}},
        "error": None,
    })
    lines.append({
        "id": "batch_req_68a4c1x4", "custom_id": "SLC35B1|PDIA6|K562__s4", "response": None,
        "error": {"code": "batch_expired",
                  "message": "This request could not be executed before the completion "
                             "window expired."},
    })
    # The batch object says where those lines come from; validate a plausible one so the
    # field names above are the SDK's.
    Batch.model_validate({
        "id": "batch_68a4c1", "object": "batch", "endpoint": "/v1/chat/completions",
        "completion_window": "24h", "created_at": CREATED, "input_file_id": "file-in",
        "status": "completed", "output_file_id": "file-out", "error_file_id": "file-err",
        "request_counts": {"total": 5, "completed": 3, "failed": 2},
    })
    common.write_jsonl(PROVIDER, "batch_output.jsonl", lines)


def response_dict(rng, response_id, top_k, reasoning):
    tokens = common.generated_tokens(rng, 3, rng.choice(common.ANSWERS))
    positions = common.token_positions(rng, tokens, top_k, greedy=False)
    output = []
    if reasoning:
        output.append({"id": f"rs_{response_id}", "type": "reasoning",
                       "summary": [{"type": "summary_text",
                                    "text": "PDIA6 loss raises ER stress; SLC35B1 rises."}]})
    output.append({
        "id": f"msg_{response_id}", "type": "message", "role": "assistant",
        "status": "completed",
        "content": [{
            "type": "output_text", "text": "".join(tokens), "annotations": [],
            "logprobs": [
                {"token": p["token"], "bytes": token_bytes(p["token"]),
                 "logprob": p["logprob"],
                 "top_logprobs": [{"token": t, "bytes": token_bytes(t), "logprob": lp}
                                  for t, lp in p["top"]]}
                for p in positions
            ],
        }],
    })
    return {
        "id": f"resp_{response_id}", "object": "response", "created_at": CREATED,
        "status": "completed", "model": "gpt-5-mini-2025-08-07", "output": output,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "top_logprobs": top_k, "error": None, "incomplete_details": None,
        "instructions": None, "metadata": {},
        "reasoning": {"effort": "low", "summary": "auto"} if reasoning else None,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "usage": {"input_tokens": 57,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": len(tokens) + (40 if reasoning else 0),
                  "output_tokens_details": {"reasoning_tokens": 40 if reasoning else 0},
                  "total_tokens": 57 + len(tokens) + (40 if reasoning else 0)},
    }


def responses_files():
    rng = common.new_rng("openai/responses.jsonl")
    lines = [
        Response.model_validate(response_dict(rng, f"68a4c1e2{n:04d}", 2, reasoning=n == 0))
        .model_dump_json()
        for n in range(2)
    ]
    common.write_text(PROVIDER, "responses.jsonl", "".join(line + "\n" for line in lines))


def main():
    print(f"openai {openai.__version__}")
    chat_files()
    stream_files()
    completion_files()
    batch_files()
    responses_files()
    write_sources()


def write_sources():
    from openai._models import BaseModel
    from openai.types.batch_request_counts import BatchRequestCounts
    from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
    from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice, ChoiceDelta
    from openai.types.chat.chat_completion_token_logprob import (
        ChatCompletionTokenLogprob, TopLogprob)
    from openai.types.completion_choice import CompletionChoice, Logprobs
    from openai.types.responses.response_output_message import ResponseOutputMessage
    from openai.types.responses.response_output_text import Logprob, ResponseOutputText
    cite = common.cite_class
    chat = [cite(ChatCompletion), cite(Choice), cite(ChoiceLogprobs),
            cite(ChatCompletionTokenLogprob), cite(TopLogprob)]
    chunks = [cite(ChatCompletionChunk), cite(ChunkChoice), cite(ChoiceDelta),
              cite(ChatCompletionTokenLogprob)]
    legacy = [cite(Completion), cite(CompletionChoice), cite(Logprobs)]
    responses = [cite(Response), cite(ResponseOutputMessage), cite(ResponseOutputText),
                 cite(Logprob)]
    dump = "`model_dump_json()` (" + cite(BaseModel.model_dump_json) + ")"
    common.write_sources(PROVIDER, "OpenAI: the official SDK's own response types", f"""
Serialised by scripts/record/openai_sdk.py from the `openai` package {openai.__version__}
(PyPI) response types. No request reached OpenAI: each object is built from the JSON the API
documents, validated by the SDK's pydantic models, and written as a user saves it. Token
log-probs are seeded random but valid: top lists sorted descending, the sampled token drawn
from its list so its `logprob` equals its entry there. Recorded shapes, synthetic values.
""", [
        ("chat_n3.jsonl", f"Two `ChatCompletion`s (`n=3`, `logprobs=true`, `top_logprobs=2`), "
         f"one per line, each written with {dump}.", chat),
        ("chat_pretty.json", "One `ChatCompletion` written with `to_json()` (indent 2): a "
         "pretty object over many lines, as `print(completion.to_json())` saves it.", chat),
        ("chat_no_top.jsonl", "`logprobs=true` without `top_logprobs`: every token's "
         "`top_logprobs` is `[]`, so no token has a top list and mte is null.", chat),
        ("chat_stream.sse", "`stream=true, n=2, logprobs=true, top_logprobs=2, "
         "stream_options={include_usage: true}`: `ChatCompletionChunk`s as the API sends "
         "them, `data: <model_dump_json()>` events and `data: [DONE]`; a role chunk per "
         "choice, one token per chunk with the choices interleaved, a finish chunk per "
         "choice, then a usage chunk with `choices: []`.", chunks),
        ("chat_stream_chunks.jsonl", "One choice streamed with `top_logprobs=3`, saved one "
         "`chunk.model_dump_json()` per line (no `data:` framing).", chunks),
        ("completion.jsonl", "Legacy `Completion`s (`n=2`, `logprobs=3`): `tokens`, "
         "`token_logprobs`, `top_logprobs` as `{token: logprob}` objects, `text_offset`.",
         legacy),
        ("completion_echo.jsonl", "Legacy `Completion`s with `echo=true` (`n=2`, "
         "`logprobs=3`): each choice starts with the 18 prompt tokens (`usage.prompt_tokens`), "
         "the first with `null` in `token_logprobs` and `top_logprobs`. The SDK's strict "
         "types reject that null, so these are built with `Completion.construct` "
         f"({cite(BaseModel.construct)}), as the SDK builds what it reads. Only the tokens after the "
         "prompt are the completion's.", legacy),
        ("batch_output.jsonl", "Batch API output lines `{id, custom_id, response: "
         "{status_code, request_id, body}, error}` (the line format is the API's, not an "
         "SDK type; `Batch` and its `request_counts` were validated with "
         f"{cite(Batch)}, {cite(BatchRequestCounts)}): three `ChatCompletion` bodies "
         "(`model_dump(exclude_unset=True)`, the API's own fields), a request refused with "
         "status 400 and `body.error`, and one that expired (`response: null`, `error`). "
         "The last two are not traces.", chat),
        ("responses.jsonl", "Two Responses API `Response`s (`include=[\"message.output_text."
         "logprobs\"]`, `top_logprobs=2`), the first with a `reasoning` item before the "
         "message, written with `model_dump_json()`.", responses),
    ])


if __name__ == "__main__":
    sys.exit(main())
