"""Records llama-cpp-python in-process (`Llama(model_path=…)`) on the tiny random-weight
model: its own completion and chat dicts, saved with `json.dumps` as a user saves them.

The Python package is the one in the llama-cpp-python sdist; its native library is the
libllama.so that the llama-server build of the same sdist's vendored llama.cpp produced
(LLAMA_CPP_LIB_PATH), so llama.cpp is compiled once for both recordings.

usage: python llama_cpp_python.py SDIST_DIR MODEL.gguf
"""

import inspect
import json
import sys

import common

PROVIDER = "llama-cpp-python"
# `model=`: the name the results carry (by default the local model path).
NAME = "tiny-random-llama"


def main():
    sdist_dir, model = sys.argv[1:3]
    sys.path.insert(0, sdist_dir)
    import llama_cpp
    from llama_cpp import Llama
    from llama_cpp import llama_chat_format

    llm = Llama(model_path=model, n_ctx=512, logits_all=True,
                seed=1234, n_threads=1,
                verbose=False)
    question = common.QUESTIONS[0][1]
    prompt = f"Q: {question}\nA:"
    messages = [{"role": "system", "content": common.SYSTEM},
                {"role": "user", "content": question}]
    files = []

    def save(name, objects, how, citations):
        # The log-probs are numpy float32 values, which `json.dumps` refuses: saved with
        # `default=float`, as users do.
        common.write_text(PROVIDER, name,
                          "".join(json.dumps(o, default=float) + "\n" for o in objects))
        files.append((name, how, citations))

    def cite(obj, needle=None, label=None):
        lines, start = inspect.getsourcelines(obj)
        path = inspect.getsourcefile(obj).split(sdist_dir.rstrip("/") + "/", 1)[-1]
        if needle is None:
            return f"`{path}:{start}` ({label or obj.__qualname__})"
        for offset, line in enumerate(lines):
            if needle in line:
                return f"`{path}:{start + offset}` ({label or needle})"
        raise SystemExit(f"{needle!r} is no longer in {obj.__qualname__}: update the recorder")

    completion = [cite(Llama._create_completion, "if logprobs is not None:",
                       "legacy logprobs"),
                  cite(Llama._create_completion, "token_logprobs[0] = None",
                       "with echo the first entry is null"),
                  cite(Llama._create_completion, "prompt_tokens[1 if prompt_tokens[0] == "
                       "self.token_bos() else 0 :]", "the echoed prompt leaves out BOS"),
                  cite(Llama._create_completion, "top_logprob.update({token_str:",
                       "the sampled token is added to its top list")]
    chat = [cite(llama_chat_format._convert_text_completion_logprobs_to_chat),
            cite(llama_chat_format.Jinja2ChatFormatter, label="the GGUF's chat template")]

    save("completion_echo.jsonl", [
        llm.create_completion(prompt, max_tokens=8, echo=True, logprobs=3, seed=1234, model=NAME),
        llm.create_completion(prompt, max_tokens=6, echo=True, logprobs=2, seed=99, model=NAME),
    ], "`create_completion(prompt, echo=True, logprobs=3 | 2)`: `choices[0].logprobs` lists "
       "the prompt's tokens (BOS left out, the first with `null` log-prob and top list) "
       "then the completion's; `usage.prompt_tokens` counts BOS, so it is one more than "
       "the echoed prompt entries. Only the last `usage.completion_tokens` entries are "
       "the completion's.", completion)
    save("completion.jsonl", [
        llm.create_completion(prompt, max_tokens=8, logprobs=3, seed=7, model=NAME),
    ], "`create_completion(prompt, logprobs=3)`: the legacy shape; each top list has the "
       "top 3 and the sampled token (3 or 4 entries).", completion)
    save("chat.jsonl", [
        llm.create_chat_completion(messages, max_tokens=8, logprobs=True, top_logprobs=3,
                                   seed=11, model=NAME),
    ], "`create_chat_completion(messages, logprobs=True, top_logprobs=3)`: the chat shape "
       "(`logprobs.content[]`), converted from the legacy one.", chat + completion[:1])
    save("chat_top0.jsonl", [
        llm.create_chat_completion(messages, max_tokens=8, logprobs=True, top_logprobs=0,
                                   seed=12, model=NAME),
    ], "`top_logprobs=0`: each token's `top_logprobs` holds only the sampled token, one "
       "entry: no entropy, mte null.", chat + completion[3:])
    save("chat_stream.jsonl", list(llm.create_chat_completion(
        messages, max_tokens=8, logprobs=True, top_logprobs=2, seed=13, stream=True, model=NAME)),
       "`create_chat_completion(…, stream=True)`: every chunk dict, one per line, as "
       "`for chunk in stream: f.write(json.dumps(chunk))` saves them.", chat)

    common.write_sources(PROVIDER, "llama-cpp-python: recorded", f"""
**Recorded** in-process with llama-cpp-python {llama_cpp.__version__} (its PyPI sdist's
Python package over the native library built from the llama.cpp it vendors) on the tiny
random-weight model of scripts/record/make_model.py (scripts/record/llama_cpp_python.py).
Each file is what the call returned, saved with `json.dumps(…, default=float)` (the
log-probs are numpy float32 values, which plain `json.dumps` refuses), one object per line. Line
numbers are in llama-cpp-python {llama_cpp.__version__}.
""", files)


if __name__ == "__main__":
    main()
