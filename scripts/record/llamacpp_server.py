"""Records a real llama.cpp server (`llama-server`, built from the llama.cpp that the
llama-cpp-python sdist vendors) answering real requests on a tiny random-weight model
(make_model.py). Every file is the HTTP response body exactly as the server sent it.

usage: python llamacpp_server.py LLAMA_SERVER MODEL.gguf LLAMA_CPP_SOURCE_DIR VERSION
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import common

PROVIDER = "llamacpp-server"
QUESTION = common.QUESTIONS[0][1]
SEED = 1234


def chatml(question):
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, binary, model, log_path):
        self.port = free_port()
        self.log = open(log_path, "w")
        # Bound to 127.0.0.1 only; one thread per slot, the machine is shared.
        self.process = subprocess.Popen(
            [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
             "-c", "2048", "-np", "2", "-t", "1", "--no-webui", "--jinja",
             "--alias", "tiny-random-llama"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"llama-server exited ({self.process.returncode}); see {log_path}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise SystemExit(f"llama-server did not become healthy; see {log_path}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path, body):
        """The raw response body (bytes) and its status."""
        request = urllib.request.Request(self.url(path), data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def record(server, name, path, body, files, how):
    status, raw = server.post(path, body)
    if status != 200:
        print(f"  {name}: {path} answered {status}: {raw[:300]!r}")
        return None
    text = raw.decode("utf-8")
    if not text.endswith("\n"):
        text += "\n"
    common.write_text(PROVIDER, name, text)
    files.append((name, f"`POST {path}` with `{json.dumps(body)}`. " + how + counts(text)))
    return text


def counts(text):
    """What the recording shows: generated tokens against probability entries."""
    try:
        results = json.loads(text)
    except json.JSONDecodeError:
        return ""
    results = results if isinstance(results, list) else [results]
    shown = [f"{r['tokens_predicted']} tokens predicted, "
             f"{len(r.get('completion_probabilities', []))} entries"
             for r in results if isinstance(r, dict) and "tokens_predicted" in r]
    return f" Recorded: {'; '.join(shown)}." if shown else ""


def main():
    binary, model, source_dir, version = sys.argv[1:5]
    log_path = os.path.join(os.path.dirname(model), "llama-server.log")
    server = Server(binary, model, log_path)
    files = []
    probed = []
    try:
        sample = {"temperature": 0.8, "top_k": 40, "seed": SEED, "n_predict": 8}
        prompts = [chatml(q) for _, q in common.QUESTIONS]

        # /completion: several requests saved one body per line.
        lines = []
        for number, prompt in enumerate(prompts):
            status, raw = server.post("/completion",
                                      {"prompt": prompt, "n_probs": 3, **sample,
                                       "seed": SEED + number})
            assert status == 200, raw
            lines.append(raw.decode())
        common.write_text(PROVIDER, "completion.jsonl", "".join(l + "\n" for l in lines))
        files.append(("completion.jsonl", "Two `POST /completion` bodies (one prompt each, "
                      "`n_probs: 3`, `temperature: 0.8`, `n_predict: 8`), one per line: "
                      "`completion_probabilities[]` with `logprob` and `top_logprobs`."))

        record(server, "completion_post_sampling.json", "/completion",
               {"prompt": prompts[0], "n_probs": 3, "post_sampling_probs": True, **sample},
               files, "Probabilities after the sampler chain: `prob` and `top_probs[].prob` "
               "(not log-probs); tokens outside the kept candidates are left out.")
        record(server, "completion_greedy_post_sampling.json", "/completion",
               {"prompt": prompts[0], "n_probs": 3, "post_sampling_probs": True,
                "temperature": 0, "n_predict": 8},
               files, "Greedy with `post_sampling_probs`: one candidate is left after "
               "sampling, so each `top_probs` has one entry and every probability is 1 by "
               "construction: nothing here measures the model's uncertainty, so no token is "
               "scored.")
        record(server, "completion_multi_prompt.json", "/completion",
               {"prompt": prompts, "n_probs": 2, **sample}, files,
               "Several prompts in one request: the body is a JSON array with one result per "
               "prompt (`index`, `prompt`); each result is its own question.")
        record(server, "completion_stream.sse", "/completion",
               {"prompt": prompts[0], "n_probs": 2, "stream": True, **sample}, files,
               "Streamed: `data: ` events, one per token with `\"stop\": false` and that "
               "token's `completion_probabilities`, then a `\"stop\": true` event without "
               "probabilities. The generation is all the events together.")

        # A stop word: the tokens that form it are cut from the text; their entries too.
        status, raw = server.post("/completion", {"prompt": prompts[1], "n_probs": 2,
                                                  "temperature": 0, "n_predict": 10})
        greedy = json.loads(raw)
        pieces = [p["token"] for p in greedy.get("completion_probabilities", [])]
        stop_word = next((p.strip() for p in pieces[3:] if len(p.strip()) >= 2), None)
        if stop_word:
            record(server, "completion_stop_word.json", "/completion",
                   {"prompt": prompts[1], "n_probs": 2, "temperature": 0, "n_predict": 10,
                    "stop": [stop_word]}, files,
                   f"Greedy, stopped by the stop word `{stop_word}` (taken from the greedy "
                   "output of the same request without it): the text ends before it; "
                   "`completion_probabilities` may hold fewer entries than `tokens_predicted`.")
        else:
            probed.append("no stop word found in the greedy output")

        # Byte tokens pushed up: multi-byte UTF-8 built from single-byte pieces.
        byte_bias = [[5 + 0xE2, 6.0], [5 + 0x80, 6.0], [5 + 0x93, 6.0]]
        record(server, "completion_utf8_pieces.json", "/completion",
               {"prompt": prompts[0], "n_probs": 2, **sample, "n_predict": 12,
                "logit_bias": byte_bias}, files,
               "`logit_bias` raises three byte tokens (0xE2 0x80 0x93, the UTF-8 of an en "
               "dash), so the output holds byte pieces; a piece that is not complete UTF-8 "
               "is sent as U+FFFD with its raw `bytes`, or held back and sent with the next "
               "token in one entry, so `completion_probabilities` can be shorter than "
               "`tokens_predicted`.")

        messages = [{"role": "system", "content": common.SYSTEM},
                    {"role": "user", "content": QUESTION}]
        chat = {"messages": messages, "max_tokens": 8, "temperature": 0.8, "seed": SEED}
        record(server, "v1_completions.json", "/v1/completions",
               {"prompt": prompts[0], "logprobs": 3, "max_tokens": 8, "temperature": 0.8,
                "seed": SEED}, files,
               "OpenAI-compatible completions: llama.cpp answers `logprobs` with the chat "
               "shape (`choices[].logprobs.content[]`), not the legacy one.")
        record(server, "v1_completions_echo.json", "/v1/completions",
               {"prompt": prompts[0], "logprobs": 2, "echo": True, "max_tokens": 6,
                "temperature": 0.8, "seed": SEED + 1}, files,
               "`echo: true` is accepted and ignored (the function that would refuse it, "
               "`oaicompat_completion_params_parse`, is not called by any route): the text "
               "and log-probs are the completion's only.")
        record(server, "v1_chat.json", "/v1/chat/completions",
               {**chat, "logprobs": True, "top_logprobs": 3}, files,
               "`logprobs: true, top_logprobs: 3`.")
        record(server, "v1_chat_top0.json", "/v1/chat/completions",
               {**chat, "logprobs": True, "top_logprobs": 0}, files,
               "`top_logprobs: 0` sets `n_probs` to 0: the response has no log-probs at "
               "all, so the trace has no scores.")
        record(server, "v1_chat_post_sampling.json", "/v1/chat/completions",
               {**chat, "logprobs": True, "top_logprobs": 3, "post_sampling_probs": True},
               files, "`post_sampling_probs: true`: `logprobs.content[]` entries carry "
               "`prob` and `top_probs` instead of `logprob` and `top_logprobs`.")
        record(server, "v1_chat_stream.sse", "/v1/chat/completions",
               {**chat, "logprobs": True, "top_logprobs": 2, "stream": True}, files,
               "Streamed: `data: ` chunks with `logprobs.content` per token, a finish chunk, "
               "then `data: [DONE]`.")
        status, raw = server.post("/v1/chat/completions",
                                  {**chat, "logprobs": True, "top_logprobs": 2, "n": 2})
        n_choices = len(json.loads(raw).get("choices", [])) if status == 200 else 0
        if n_choices > 1:
            record(server, "v1_chat_n2.json", "/v1/chat/completions",
                   {**chat, "logprobs": True, "top_logprobs": 2, "n": 2}, files, "`n: 2`.")
        else:
            probed.append(f"`/v1/chat/completions` with `n: 2` answers {status} with "
                          f"{n_choices} choice(s): `n` is not supported")
    finally:
        server.close()
    write_sources(files, probed, source_dir, version)


def write_sources(files, probed, source_dir, version):
    def cite(path, needle, label=None):
        return common.cite_text(source_dir, path, needle, label)
    task = "tools/server/server-task.cpp"
    shapes = {
        "completion": [cite(task, "json server_task_result_cmpl_final::to_json_non_oaicompat",
                            "final result"),
                       cite(task, "json completion_token_output::probs_vector_to_json",
                            "each entry: `logprob`/`top_logprobs` or `prob`/`top_probs`"),
                       cite(task, "float completion_token_output::logarithm",
                            "ln of a probability, 0 written as the lowest float")],
        "stream": [cite(task, 'res["completion_probabilities"] = completion_token_output::'
                              'probs_vector_to_json({prob_output}', "partial result")],
        "post": [cite("tools/server/server-context.cpp", "void populate_token_probs",
                      "post-sampling candidates; zero probabilities left out")],
        "oai": [cite(task, "json server_task_result_cmpl_final::to_json_oaicompat()",
                     "/v1/completions"),
                cite("tools/server/server-common.cpp", "Only no echo is supported",
                     "echo refused")],
        "chat": [cite(task, "json server_task_result_cmpl_final::to_json_oaicompat_chat()",
                      "/v1/chat/completions"),
                 cite("tools/server/server-common.cpp",
                      'llama_params["n_probs"] = json_value(body, "top_logprobs", 20)',
                      "`top_logprobs` becomes `n_probs`")],
        "chat_stream": [cite(task, "json server_task_result_cmpl_final::to_json_oaicompat_chat"
                                   "_stream", "final chunk")],
    }
    kinds = {"completion.jsonl": ["completion"],
             "completion_post_sampling.json": ["completion", "post"],
             "completion_greedy_post_sampling.json": ["completion", "post"],
             "completion_multi_prompt.json": ["completion"],
             "completion_stream.sse": ["completion", "stream"],
             "completion_stop_word.json": ["completion"],
             "completion_utf8_pieces.json": ["completion"],
             "v1_completions.json": ["oai", "completion"],
             "v1_completions_echo.json": ["oai", "completion"],
             "v1_chat.json": ["chat", "completion"],
             "v1_chat_top0.json": ["chat"],
             "v1_chat_post_sampling.json": ["chat", "completion", "post"],
             "v1_chat_stream.sse": ["chat_stream", "chat", "completion"],
             "v1_chat_n2.json": ["chat", "completion"]}
    entries = [(name, how, [c for kind in kinds.get(name, []) for c in shapes[kind]])
               for name, how in files]
    probes = "".join(f"\n- {p}" for p in probed)
    common.write_sources(PROVIDER, "llama.cpp server: recorded", f"""
**Recorded** from a real `llama-server` built from the llama.cpp that llama-cpp-python
{version} vendors (its PyPI sdist), serving a tiny random-weight llama model written by
scripts/record/make_model.py (2 layers, dim 64, an SPM vocab with byte fallback, a ChatML
template), bound to 127.0.0.1. Each file is a response body exactly as the server sent it
(scripts/record/llamacpp_server.py). The model's text is nonsense; the JSON is the server's.
Line numbers are in the vendored llama.cpp of llama-cpp-python {version}.

Also probed, not saved:{probes or " nothing"}
""", entries)


if __name__ == "__main__":
    main()
