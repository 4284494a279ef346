"""SGLang `/generate` output shapes, produced by SGLang's own code taken from its wheel (from
source, not recorded: SGLang needs a GPU and torch).

The wheel is downloaded (`pip download --no-deps sglang==VERSION`) and the code that turns
the scheduler's log-prob lists into the response is executed from its source files by
source_loader.py: `ReqState`, `TokenizerManager.add_logprob_to_meta_info` and its
`detokenize_*` helpers, the flat top-logprobs builder, the incremental-stream slicer, the
finish reasons' `to_json`, and `dumps_json` (orjson with SGLang's options). The meta_info
and out-dict assembly of `_handle_batch_output` is an async method over scheduler
messages; it is mirrored here line for line (cited in SOURCES.md). Log-probs are seeded
random but valid, rounded to float32 as the sampler's tensors hold them.

usage: python sglang_shapes.py WHEEL
"""

import random
import struct
import sys
import types

import common
from source_loader import SourceModules

PROVIDER = "sglang"
TM = "sglang/srt/managers/tokenizer_manager.py"
MODULES = [
    TM,
    "sglang/srt/managers/io_struct.py",
    "sglang/srt/managers/schedule_batch.py",
    "sglang/srt/utils/json_response.py",
    "sglang/srt/entrypoints/http_server.py",
]
EOS_ID = 151645


def float32(value):
    return struct.unpack("f", struct.pack("f", value))[0]


class Tokenizer:
    def __init__(self):
        self.strings, self.ids = [], {}

    def id(self, text):
        if text not in self.ids:
            self.ids[text] = 2000 + 53 * len(self.strings)
            self.strings.append(text)
        return self.ids[text]

    def batch_decode(self, id_lists):
        return ["".join(self.strings[(i - 2000) // 53] for i in ids) for ids in id_lists]


class Manager:
    """A stand-in TokenizerManager `self` with SGLang's own methods bound to it."""

    def __init__(self, source):
        self.tokenizer = Tokenizer()
        self._functions = {name: source.method("TokenizerManager", name) for name in (
            "add_logprob_to_meta_info", "detokenize_logprob_tokens",
            "detokenize_top_logprobs_tokens")}

    def __getattr__(self, name):
        return types.MethodType(self._functions[name], self)


class Generator:
    def __init__(self, source, seed):
        self.source = source
        self.rng = random.Random(seed)
        self.manager = Manager(source)
        self.ReqState = source.define("ReqState")
        self.slice = source.define("_slice_streaming_output_meta_info")
        self.dumps_json = source.define("dumps_json")
        self.FINISH_MATCHED_TOKEN = source.define("FINISH_MATCHED_TOKEN")
        self.FINISH_LENGTH = source.define("FINISH_LENGTH")

    def steps(self, top_k, n_words):
        """The scheduler's per-token lists: (token id, text, log-prob, top ids, top values)."""
        tokens = common.generated_tokens(self.rng, n_words, self.rng.choice(common.ANSWERS))
        steps = []
        for position in common.token_positions(self.rng, tokens, top_k, greedy=False):
            top = [(self.manager.tokenizer.id(t), float32(lp)) for t, lp in position["top"]]
            steps.append((self.manager.tokenizer.id(position["token"]), position["token"],
                          float32(position["logprob"]), [i for i, _ in top],
                          [v for _, v in top]))
        return steps

    def state(self, flat_output=False, text_in_logprobs=True, top_k=2):
        obj = types.SimpleNamespace(
            return_logprob=True, top_logprobs_num=top_k, token_ids_logprob=None,
            return_text_in_logprobs=text_in_logprobs, return_flat_raw_top_logprobs=False,
            return_flat_raw_output_top_logprobs=flat_output,
            return_flat_raw_top_logprobs_b64=False, stream=False)
        return self.ReqState(out_list=[], finished=False, event=None, obj=obj,
                             time_stats=None)

    def out_dicts(self, rid, top_k, n_words, stream=None, stream_interval=1,
                  flat_output=False, text_in_logprobs=True, stop=True):
        """The out dicts `_handle_batch_output` yields for one request: one per scheduler
        message when streaming (`stream` = "cumulative" or "incremental"), else the
        finished one."""
        state = self.state(flat_output, text_in_logprobs, top_k)
        steps = self.steps(top_k, n_words)
        outs = []
        for start in range(0, len(steps), stream_interval):
            chunk = steps[start:start + stream_interval]
            finished = start + stream_interval >= len(steps)
            state.output_token_logprobs_val.extend(s[2] for s in chunk)
            state.output_token_logprobs_idx.extend(s[0] for s in chunk)
            state.output_top_logprobs_val.extend(s[4] for s in chunk)
            state.output_top_logprobs_idx.extend(s[3] for s in chunk)
            if finished:
                reason = (self.FINISH_MATCHED_TOKEN(matched=EOS_ID) if stop
                          else self.FINISH_LENGTH(length=len(steps))).to_json()
            else:
                reason = None
            # tokenizer_manager.py `_handle_batch_output`: meta_info.
            meta_info = {"id": rid, "finish_reason": reason, "prompt_tokens": 42,
                         "weight_version": "default", "num_retractions": 0}
            self.manager.add_logprob_to_meta_info(
                meta_info, state, top_k, None, text_in_logprobs, finished=finished)
            meta_info.update({"reasoning_tokens": 0,
                              "completion_tokens": len(state.output_token_logprobs_val),
                              "cached_tokens": 0})
            delta_text = "".join(s[1] for s in chunk)
            offset = state.last_output_offset
            state.append_text(delta_text)
            state.output_ids.extend(s[0] for s in chunk)
            if finished:
                meta_info["e2e_latency"] = round(0.05 + 0.01 * len(steps), 4)
            if stream == "incremental":
                self.slice(meta_info, offset, state.customized_info_accumulated.keys())
                state.last_output_offset = len(state.output_ids)
                outs.append({"text": delta_text, "output_ids": [s[0] for s in chunk],
                             "meta_info": meta_info})
            elif stream == "cumulative" or finished:
                outs.append({"text": state.get_text(), "output_ids": list(state.output_ids),
                             "meta_info": meta_info})
            if stream:
                # The HTTP layer serialises each out dict as it is yielded, while the
                # state's lists keep growing: freeze this one now.
                outs[-1] = self.dumps_json(outs[-1])
        return outs if stream else [self.dumps_json(outs[-1])]


def write_files(source):
    gen = Generator(source, "sglang/generate_n2_rid.json")
    # `"rid": "<id>", "sampling_params": {"n": 2}`: the rid becomes `<id>_0`, `<id>_1`
    # (io_struct.py `_normalize_rid`) and the response is a JSON array of both.
    rid = "SLC35B1|PDIA6|K562"
    bodies = [gen.out_dicts(f"{rid}_{i}", 2, 2 + i)[0] for i in range(2)]
    common.write_text(PROVIDER, "generate_n2_rid.json",
                      "[" + ",".join(b.decode() for b in bodies) + "]\n")

    gen = Generator(source, "sglang/generate.jsonl")
    lines = []
    for number in range(2):
        rid = f"{gen.rng.getrandbits(128):032x}"
        lines.append(gen.out_dicts(rid, 2, 3, text_in_logprobs=number == 0,
                                   stop=number == 0)[0].decode())
    common.write_text(PROVIDER, "generate.jsonl", "".join(l + "\n" for l in lines))

    gen = Generator(source, "sglang/generate_flat.json")
    rid = f"{gen.rng.getrandbits(128):032x}"
    common.write_text(PROVIDER, "generate_flat.json",
                      gen.out_dicts(rid, 3, 3, flat_output=True)[0].decode() + "\n")

    for mode in ("cumulative", "incremental"):
        gen = Generator(source, f"sglang/stream_{mode}.sse")
        rid = f"{gen.rng.getrandbits(128):032x}"
        chunks = gen.out_dicts(rid, 2, 2, stream=mode, stream_interval=2)
        text = "".join("data: " + c.decode() + "\n\n" for c in chunks) + "data: [DONE]\n\n"
        common.write_text(PROVIDER, f"stream_{mode}.sse", text)
    return gen


def write_sources(source, version):
    cite = source.cite
    line = source.line_of
    meta = [line(TM, "meta_info = {") + " (meta_info)",
            line(TM, '"completion_tokens": recv_obj.completion_tokens[i],'),
            cite("TokenizerManager.add_logprob_to_meta_info"),
            cite("TokenizerManager.detokenize_logprob_tokens"),
            cite("TokenizerManager.detokenize_top_logprobs_tokens"),
            cite("ReqState"), cite("FINISH_MATCHED_TOKEN"), cite("FINISH_LENGTH"),
            cite("dumps_json")]
    finished = [line(TM, "elif state.finished:") + " (the finished out dict)"]
    stream = [line("sglang/srt/entrypoints/http_server.py",
                   'yield b"data: " + dumps_json(out)'),
              line("sglang/srt/entrypoints/http_server.py", 'yield b"data: [DONE]')]
    stubbed = ", ".join(sorted(source.stubbed))
    common.write_sources(PROVIDER, "SGLang: shapes from source, not recorded", f"""
**From source, not recorded.** SGLang needs torch and a GPU, so no SGLang server ran. Each
file is produced by scripts/record/sglang_shapes.py running SGLang {version}'s own code,
taken out of its PyPI wheel (`pip download --no-deps sglang=={version}`) and executed
definition by definition (scripts/record/source_loader.py). The async
`_handle_batch_output`, which builds `meta_info` and the out dict from scheduler messages,
is mirrored line for line. The model is the only stand-in: its log-probs are seeded random,
valid, rounded to float32. Names the executed code refers to but the recording never uses
were left as `Any`: {stubbed}. Line numbers are in sglang {version}.
""", [
        ("generate_n2_rid.json", "`/generate` with `\"rid\": \"SLC35B1|PDIA6|K562\"`, "
         "`sampling_params.n = 2`, `return_logprob`, `top_logprobs_num = 2`, "
         "`return_text_in_logprobs`: a JSON array of two results whose ids are the rid with "
         "`_0`, `_1` appended (" + line("sglang/srt/managers/io_struct.py",
                                         'new_rids = [f"{self.rid}_{i}"') + "): two samples "
         "of one question.", meta + finished),
        ("generate.jsonl", "Two single `/generate` responses (no rid: a uuid each), one per "
         "line; the second without `return_text_in_logprobs` (token texts null) and stopped "
         "by length.", meta + finished),
        ("generate_flat.json", "`return_flat_raw_output_top_logprobs`: the output top "
         "log-probs as `output_top_logprobs_val_flat` / `_idx_flat`, `_shape` [rows, k] and "
         "`_null_prefix` instead of nested lists.", meta + finished +
         [cite("_build_flat_top_logprobs_fields"), cite("flat_top_logprobs_layout")]),
        ("stream_cumulative.sse", "`\"stream\": true` (default server flags), two tokens "
         "per chunk (`--stream-interval 2`): every chunk repeats the whole text and all "
         "log-probs so far; the last has `finish_reason`. Only the last chunk is the "
         "generation.", meta + stream + [line(TM, "# Non-incremental intermediate")]),
        ("stream_incremental.sse", "The same with `--incremental-streaming-output`: each "
         "chunk holds only its new text and log-probs; the generation is their "
         "concatenation.", meta + stream + [cite("_slice_streaming_output_meta_info")]),
    ])


def main():
    wheel = sys.argv[1]
    version = wheel.split("/")[-1].split("-")[1]
    print(f"sglang {version} (from source: {wheel})")
    source = SourceModules(wheel, MODULES)
    write_files(source)
    write_sources(source, version)


if __name__ == "__main__":
    main()
