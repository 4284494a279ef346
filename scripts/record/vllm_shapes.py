"""vLLM output shapes, produced by vLLM's own code taken from its wheel (from source, not
recorded: vLLM needs a GPU and torch, neither of which is here).

The wheel is downloaded (`pip download --no-deps vllm==VERSION`), and the classes and
functions that build each output are executed straight from its source files by
source_loader.py: `Logprob`, `FlatLogprobs` and `append_logprobs_for_next_position` (how
the engine stores each position's log-probs), `CompletionOutput` and `RequestOutput` (what
`LLM.generate` returns), the OpenAI server's `_create_completion_logprobs` /
`_create_chat_logprobs` and its pydantic response models, and the batch runner's
`BatchRequestOutput`. Only the model is missing: its log-probs are seeded random but
valid, rounded to float32 as the engine's tensors hold them.

usage: python vllm_shapes.py WHEEL
"""

import json
import math
import random
import struct
import sys
import types

import common
from source_loader import SourceModules

PROVIDER = "vllm"
MODULES = [
    "vllm/logprobs.py",
    "vllm/outputs.py",
    "vllm/entrypoints/openai/completion/protocol.py",
    "vllm/entrypoints/openai/completion/serving.py",
    "vllm/entrypoints/openai/chat_completion/protocol.py",
    "vllm/entrypoints/openai/chat_completion/serving.py",
    "vllm/entrypoints/serve/engine/protocol.py",
    "vllm/entrypoints/generate/base/protocol.py",
    "vllm/entrypoints/generate/base/serving.py",
    "vllm/entrypoints/launchers/run_batch.py",
]
PROMPT = ("<|im_start|>user\nIn K562 cells, does CRISPRi knock-down of PDIA6 change the "
          "expression of SLC35B1? Answer up, down or none.<|im_end|>\n<|im_start|>assistant\n")
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def float32(value):
    return struct.unpack("f", struct.pack("f", value))[0]


class Vocab:
    """Token ids for the strings the traces use (the ids a tokenizer would give)."""

    def __init__(self):
        self.strings = []
        self.ids = {}

    def id(self, text):
        if text not in self.ids:
            self.ids[text] = 1000 + 37 * len(self.strings)
            self.strings.append(text)
        return self.ids[text]

    def decode(self, token_id):
        return self.strings[(token_id - 1000) // 37]


class Engine:
    def __init__(self, source, seed):
        self.source = source
        self.rng = random.Random(seed)
        self.vocab = Vocab()
        self.uuid = 0
        source.namespace["random_uuid"] = self.random_uuid
        self.append = source.define("append_logprobs_for_next_position")
        self.create_sample_logprobs = source.define("create_sample_logprobs")
        self.create_prompt_logprobs = source.define("create_prompt_logprobs")
        self.CompletionOutput = source.define("CompletionOutput")
        self.RequestOutput = source.define("RequestOutput")

    def random_uuid(self):
        self.uuid += 1
        return f"{self.rng.getrandbits(64):016x}{self.uuid:04x}"

    def position(self, logprobs, token, num_logprobs, outside_top=False):
        """Appends one position: the sampled `token` and the top `num_logprobs`, as the
        sampler hands them to append_logprobs_for_next_position (sampled first, with its
        rank, then the top-k). Returns (token id, sampled log-prob)."""
        width = max(num_logprobs, 1) + 3
        positions = common.token_positions(self.rng, [token], width, greedy=False)[0]
        ranked = [(name, float32(lp)) for name, lp in positions["top"]]
        rank = [name for name, _ in ranked].index(token)
        if outside_top and rank < num_logprobs:
            # Sampled at temperature 1 from outside the top k: swap it below the list.
            below = self.rng.randrange(num_logprobs, width)
            names = [name for name, _ in ranked]
            names[rank], names[below] = names[below], names[rank]
            ranked = [(name, lp) for name, (_, lp) in zip(names, ranked)]
            rank = below
        sampled_lp = ranked[rank][1]
        top = ranked[:num_logprobs]
        ids = [self.vocab.id(token)] + [self.vocab.id(name) for name, _ in top]
        self.append(logprobs, token_ids=ids, logprobs=[sampled_lp] + [lp for _, lp in top],
                    decoded_tokens=[token] + [name for name, _ in top], rank=rank + 1,
                    num_logprobs=num_logprobs)
        return ids[0], sampled_lp

    def completion_output(self, index, num_logprobs, flat, n_words, outside_every=0):
        tokens = common.generated_tokens(self.rng, n_words, self.rng.choice(common.ANSWERS))
        logprobs = self.create_sample_logprobs(flat)
        token_ids, cumulative = [], 0.0
        for number, token in enumerate(tokens):
            outside = bool(outside_every) and number % outside_every == outside_every - 1
            token_id, logprob = self.position(logprobs, token, num_logprobs, outside)
            token_ids.append(token_id)
            cumulative += logprob
        return self.CompletionOutput(
            index=index, text="".join(tokens), token_ids=token_ids,
            cumulative_logprob=cumulative, logprobs=logprobs, finish_reason="stop",
            stop_reason=None)

    def prompt_logprobs(self, prompt_tokens, num_logprobs):
        logprobs = self.create_prompt_logprobs(False)
        ids = [self.vocab.id(prompt_tokens[0])]
        for token in prompt_tokens[1:]:
            token_id, _ = self.position(logprobs, token, num_logprobs)
            ids.append(token_id)
        return logprobs, ids

    def request_output(self, request_id, n, num_logprobs, flat=False, outside_every=0):
        prompt_ids = [self.vocab.id(t) for t in ("<|im_start|>", "user", "\n", "In", " K")]
        outputs = [self.completion_output(i, num_logprobs, flat, 2 + i, outside_every)
                   for i in range(n)]
        return self.RequestOutput(
            request_id=request_id, prompt=PROMPT, prompt_token_ids=prompt_ids,
            prompt_logprobs=None, outputs=outputs, finished=True, num_cached_tokens=0)


def dump(obj):
    """`json.dumps(output, default=lambda o: o.__dict__)`, the usual way to save what
    `LLM.generate` returns (RequestOutput has no serialiser of its own)."""
    return json.dumps(obj, default=lambda o: o.__dict__)


class Serving:
    """A stand-in `self` for the OpenAI server's methods: only the attributes they read."""

    def __init__(self, source, *methods):
        self.return_tokens_as_token_ids = False
        self._functions = {}
        for class_name, name in methods:
            self._functions[name] = source.method(class_name, name)

    def __getattr__(self, name):
        function = self._functions[name]
        if isinstance(function, staticmethod):
            return function.__func__
        return types.MethodType(function, self)


def offline_files(source):
    engine = Engine(source, "vllm/offline_logprobs.jsonl")
    lines = [dump(engine.request_output(qid, n=2, num_logprobs=2, outside_every=3))
             for qid, _ in common.QUESTIONS]
    common.write_text(PROVIDER, "offline_logprobs.jsonl", "".join(l + "\n" for l in lines))

    engine = Engine(source, "vllm/offline_flat.jsonl")
    line = dump(engine.request_output(common.QUESTIONS[0][0], n=2, num_logprobs=2, flat=True,
                                      outside_every=4))
    common.write_text(PROVIDER, "offline_flat.jsonl", line + "\n")

    engine = Engine(source, "vllm/offline_logprobs0.jsonl")
    line = dump(engine.request_output(common.QUESTIONS[0][0], n=2, num_logprobs=0))
    common.write_text(PROVIDER, "offline_logprobs0.jsonl", line + "\n")


def completions_echo_file(source):
    """`/v1/completions` with `echo=true, logprobs=2, n=2`: the server joins the prompt's
    log-probs (first entry None) and each output's, and turns them into the legacy shape."""
    engine = Engine(source, "vllm/completions_echo.jsonl")
    serving = Serving(source, ("OpenAIServingCompletion", "_create_completion_logprobs"),
                      ("GenerateBaseServing", "_get_decoded_token"))
    clamp = source.define("clamp_prompt_logprobs")
    CompletionResponse = source.define("CompletionResponse")
    CompletionResponseChoice = source.define("CompletionResponseChoice")
    UsageInfo = source.define("UsageInfo")
    prompt_tokens = ["Q", ":", " Does", " PD", "IA", "6", " change", " SL", "C", "35", "B",
                     "1", "?", "\n", "A", ":"]
    prompt_logprobs, prompt_ids = engine.prompt_logprobs(prompt_tokens, 2)
    prompt_logprobs = clamp(prompt_logprobs)
    choices, generated = [], 0
    for index in range(2):
        output = engine.completion_output(index, 2, False, 2 + index)
        logprobs = serving._create_completion_logprobs(
            token_ids=[*prompt_ids, *output.token_ids],
            top_logprobs=[*prompt_logprobs, *output.logprobs],
            tokenizer=engine.vocab, num_output_top_logprobs=2)
        choices.append(CompletionResponseChoice(
            index=index, text="".join(prompt_tokens) + output.text, logprobs=logprobs,
            finish_reason=output.finish_reason, stop_reason=output.stop_reason,
            prompt_logprobs=prompt_logprobs))
        generated += len(output.token_ids)
    response = CompletionResponse(
        id=f"cmpl-{engine.random_uuid()}", created=1752900000, model=MODEL, choices=choices,
        usage=UsageInfo(prompt_tokens=len(prompt_ids), completion_tokens=generated,
                        total_tokens=len(prompt_ids) + generated))
    common.write_text(PROVIDER, "completions_echo.jsonl", response.model_dump_json() + "\n")


def chat_response(source, engine, serving, n, top_logprobs):
    ChatCompletionResponse = source.define("ChatCompletionResponse")
    ChatCompletionResponseChoice = source.define("ChatCompletionResponseChoice")
    ChatMessage = source.define("ChatMessage")
    UsageInfo = source.define("UsageInfo")
    choices, generated = [], 0
    for index in range(n):
        output = engine.completion_output(index, top_logprobs, False, 2 + index)
        logprobs = serving._create_chat_logprobs(
            token_ids=output.token_ids, top_logprobs=output.logprobs,
            tokenizer=engine.vocab, num_output_top_logprobs=top_logprobs)
        choices.append(ChatCompletionResponseChoice(
            index=index, message=ChatMessage(role="assistant", content=output.text),
            logprobs=logprobs, finish_reason="stop", stop_reason=None))
        generated += len(output.token_ids)
    return ChatCompletionResponse(
        id=f"chatcmpl-{engine.random_uuid()}", created=1752900000, model=MODEL,
        choices=choices, usage=UsageInfo(prompt_tokens=40, completion_tokens=generated,
                                         total_tokens=40 + generated))


def chat_serving(source):
    return Serving(source, ("OpenAIServingChat", "_create_chat_logprobs"),
                   ("OpenAIServingChat", "_get_top_logprobs"),
                   ("GenerateBaseServing", "_get_decoded_token"))


def chat_files(source):
    engine = Engine(source, "vllm/chat_n2.jsonl")
    response = chat_response(source, engine, chat_serving(source), n=2, top_logprobs=2)
    common.write_text(PROVIDER, "chat_n2.jsonl", response.model_dump_json() + "\n")


def chat_stream_file(source):
    """`stream=true, logprobs=true, top_logprobs=2`: a role chunk, one chunk per token with
    that token's logprobs, a finish chunk, then (`stream_options.include_usage`) a usage
    chunk; each `data: chunk.model_dump_json(exclude_unset=True, exclude_none=not
    chunk.choices)` and `data: [DONE]` (chat_completion/serving.py)."""
    engine = Engine(source, "vllm/chat_stream.sse")
    serving = chat_serving(source)
    Stream = source.define("ChatCompletionStreamResponse")
    StreamChoice = source.define("ChatCompletionResponseStreamChoice")
    DeltaMessage = source.define("DeltaMessage")
    UsageInfo = source.define("UsageInfo")
    output = engine.completion_output(0, 2, False, 3)
    chunk_id = f"chatcmpl-{engine.random_uuid()}"

    def chunk(choices, **fields):
        # As chat_completion_stream_generator_raw builds them: `object` passed explicitly,
        # so `exclude_unset` keeps it, with the fields each kind of chunk sets.
        return Stream(id=chunk_id, object="chat.completion.chunk", created=1752900000,
                      model=MODEL, choices=choices, **fields)

    chunks = [chunk([StreamChoice(index=0, delta=DeltaMessage(role="assistant", content=""),
                                  logprobs=None, finish_reason=None)],
                    prompt_token_ids=None)]
    for number, token_id in enumerate(output.token_ids):
        logprobs = serving._create_chat_logprobs(
            token_ids=[token_id], top_logprobs=[output.logprobs[number]],
            tokenizer=engine.vocab, num_output_top_logprobs=2)
        last = number == len(output.token_ids) - 1
        chunks.append(chunk([StreamChoice(
            index=0, delta=DeltaMessage(content=engine.vocab.decode(token_id)),
            logprobs=logprobs, finish_reason="stop" if last else None)],
            kv_transfer_params=None))
    n_generated = len(output.token_ids)
    chunks.append(chunk([], usage=UsageInfo(prompt_tokens=40, completion_tokens=n_generated,
                                            total_tokens=40 + n_generated),
                        system_fingerprint=None, metrics=None))
    text = "".join(
        "data: " + c.model_dump_json(exclude_unset=True, exclude_none=not c.choices) + "\n\n"
        for c in chunks) + "data: [DONE]\n\n"
    common.write_text(PROVIDER, "chat_stream.sse", text)


def run_batch_file(source):
    """`python -m vllm.entrypoints.openai.run_batch` output: one `BatchRequestOutput` per
    line (`model_dump_json()`); a request the server refused carries the `ErrorResponse` in
    `error` (status 400), one that could not run (a stream request) an error string."""
    engine = Engine(source, "vllm/run_batch_output.jsonl")
    serving = chat_serving(source)
    BatchRequestOutput = source.define("BatchRequestOutput")
    BatchResponseData = source.define("BatchResponseData")
    ErrorResponse = source.define("ErrorResponse")
    ErrorInfo = source.define("ErrorInfo")
    # Only annotates the parameter; the request model pulls in the whole request schema.
    source.stub("BatchRequestInput")
    make_error_request_output = source.define("make_error_request_output")
    lines = []
    for number in range(2):
        body = chat_response(source, engine, serving, n=1, top_logprobs=2)
        lines.append(BatchRequestOutput(
            id=f"vllm-{engine.random_uuid()}", custom_id=f"SLC35B1|PDIA6|K562__s{number}",
            response=BatchResponseData(body=body,
                                       request_id=f"vllm-batch-{engine.random_uuid()}"),
            error=None))
    error = ErrorResponse(error=ErrorInfo(
        message="top_logprobs must be a non-negative integer, got -1.",
        type="BadRequestError", param="top_logprobs", code=400))
    lines.append(BatchRequestOutput(
        id=f"vllm-{engine.random_uuid()}", custom_id="SLC35B1|PDIA6|K562__s2",
        response=BatchResponseData(status_code=error.error.code,
                                   request_id=f"vllm-batch-{engine.random_uuid()}"),
        error=error))
    lines.append(make_error_request_output(
        types.SimpleNamespace(custom_id="SLC35B1|PDIA6|K562__s3"),
        error_msg="Request must not be sent in stream mode"))
    common.write_text(PROVIDER, "run_batch_output.jsonl",
                      "".join(line.model_dump_json() + "\n" for line in lines))


def write_sources(source, version):
    cite = source.cite
    line = source.line_of
    logprob_store = [cite("Logprob"), cite("append_logprobs_for_next_position")]
    offline = [cite("RequestOutput"), cite("CompletionOutput")] + logprob_store
    completion_server = [
        cite("OpenAIServingCompletion._create_completion_logprobs"),
        line("vllm/entrypoints/openai/completion/serving.py", "if request.echo:") +
        " (echo joins prompt and output log-probs)",
        cite("CompletionLogProbs"), cite("CompletionResponseChoice"), cite("CompletionResponse"),
        cite("clamp_prompt_logprobs")]
    chat_server = [cite("OpenAIServingChat._create_chat_logprobs"),
                   cite("OpenAIServingChat._get_top_logprobs"),
                   cite("ChatCompletionLogProbsContent"), cite("ChatCompletionResponse")]
    stream = [line("vllm/entrypoints/openai/chat_completion/serving.py",
                   "exclude_unset=True, exclude_none=not chunk.choices") + " (chunk framing)",
              line("vllm/entrypoints/openai/chat_completion/serving.py", 'yield "data: [DONE]'),
              line("vllm/entrypoints/openai/chat_completion/serving.py",
                   "final_usage_chunk = ChatCompletionStreamResponse(") + " (usage chunk)",
              cite("ChatCompletionStreamResponse"), cite("ChatCompletionResponseStreamChoice"),
              cite("DeltaMessage")]
    batch = [cite("BatchRequestOutput"), cite("BatchResponseData"),
             cite("make_error_request_output"),
             line("vllm/entrypoints/launchers/run_batch.py", "error=response,") +
             " (an ErrorResponse in `error`)", cite("ErrorResponse")]
    stubbed = ", ".join(sorted(source.stubbed))
    common.write_sources(PROVIDER, "vLLM: shapes from source, not recorded", f"""
**From source, not recorded.** vLLM needs torch and a GPU, so no vLLM engine ran. Each file
is produced by scripts/record/vllm_shapes.py running vLLM {version}'s own code, taken out of
its PyPI wheel (`pip download --no-deps vllm=={version}`) and executed definition by
definition (scripts/record/source_loader.py): the engine's log-prob containers, the output
classes `LLM.generate` returns, and the OpenAI server's log-prob builders and pydantic
response models. The model is the only stand-in: its log-probs are seeded random, valid,
rounded to float32; the sampled token is sometimes outside the top k, as at temperature 1.
Names the executed code refers to but the recording never uses were left as `Any`:
{stubbed}. Line numbers are in vllm {version}.
""", [
        ("offline_logprobs.jsonl", "Two `RequestOutput`s of `LLM.generate` with "
         "`SamplingParams(n=2, logprobs=2)`, saved with `json.dumps(output, default=lambda o: "
         "o.__dict__)`. Each position is a `{token_id: Logprob}` dict: the sampled token first "
         "(with its rank), then the top 2; a sampled token outside the top 2 makes 3 entries.",
         offline),
        ("offline_flat.jsonl", "The same with `flat_logprobs=True`: `logprobs` is a "
         "`FlatLogprobs` (`start_indices`, `end_indices`, `token_ids`, `logprobs`, `ranks`, "
         "`decoded_tokens`), the sampled token repeated when it is also in the top k.",
         [cite("FlatLogprobs")] + offline),
        ("offline_logprobs0.jsonl", "`SamplingParams(n=2, logprobs=0)`: each position holds "
         "only the sampled token, so no token has a top list of 2 and mte is null.", offline),
        ("completions_echo.jsonl", "`/v1/completions` with `echo=true, logprobs=2, n=2`: each "
         "choice's legacy `logprobs` starts with the 16 prompt tokens (first entry null), "
         "then the output's; the choice also carries vLLM's `prompt_logprobs`. Only the "
         "tokens after the prompt (`usage.prompt_tokens`) are the completion's.",
         completion_server),
        ("chat_n2.jsonl", "`/v1/chat/completions` with `n=2, logprobs=true, top_logprobs=2`.",
         chat_server),
        ("chat_stream.sse", "The same streamed (`n=1`, `stream_options.include_usage`), as "
         "the server writes it.", chat_server + stream),
        ("run_batch_output.jsonl", "`vllm run-batch` output: two chat completions, a request "
         "the server refused (status 400, the `ErrorResponse` in `error`) and one that could "
         "not run (status 400, an error string). The last two are not traces.",
         batch + chat_server),
    ])


def main():
    wheel = sys.argv[1]
    version = wheel.split("/")[-1].split("-")[1]
    print(f"vllm {version} (from source: {wheel})")
    source = SourceModules(wheel, MODULES)
    offline_files(source)
    completions_echo_file(source)
    chat_files(source)
    chat_stream_file(source)
    run_batch_file(source)
    write_sources(source, version)


if __name__ == "__main__":
    main()
