"""Writes a tiny random-weight llama GGUF that llama.cpp loads and serves.

Nothing about the model is meant to be good: it exists so that a real llama.cpp server (and
llama-cpp-python) answer real requests with their real JSON. 2 layers, dim 64, an SPM vocab
of a few hundred tokens with byte fallback, and a ChatML chat template.

One embedding dimension is a large constant, so after the final RMS norm it acts as a
per-token output bias: word pieces are likely, byte tokens and end-of-generation tokens
rare but possible. The rest of the weights are seeded random, so the model's log-probs
are varied and the same on every run.

usage: python make_model.py OUT.gguf
"""

import sys

import numpy as np
import gguf

SEED = 9
N_EMBD = 64
N_FF = 128
N_LAYER = 2
N_HEAD = 4
N_CTX = 1024

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Words of the reasoning traces this project scores; every prefix becomes a token so the
# SPM merges reach the whole word.
WORDS = (
    "the gene expression of in cells does knock down knockdown change up down none "
    "answer Final Answer : is a an to and or not because so therefore regulated "
    "upregulated downregulated increase decrease K562 CRISPRi PDIA6 SLC35B1 think "
    "step first then protein pathway effect likely unlikely no yes . , ? ! ( ) - "
    "café naïve → – ≥"
).split()


def vocab():
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types = [
        gguf.TokenType.UNKNOWN,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
        gguf.TokenType.CONTROL,
    ]
    scores = [0.0] * 5
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>")
        types.append(gguf.TokenType.BYTE)
        scores.append(0.0)
    pieces = []
    for char in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n":
        pieces.append(char)
    pieces.append("▁")
    for word in WORDS:
        for spaced in (word, "▁" + word):
            for end in range(1, len(spaced) + 1):
                pieces.append(spaced[:end])
    seen = set(tokens)
    for piece in pieces:
        if piece in seen:
            continue
        seen.add(piece)
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
        # SPM merges the highest-scoring pair first: longer pieces win.
        scores.append(float(len(piece)) - 100.0)
    return tokens, scores, types


def main():
    out_path = sys.argv[1]
    rng = np.random.default_rng(SEED)
    tokens, scores, types = vocab()
    n_vocab = len(tokens)

    writer = gguf.GGUFWriter(out_path, "llama")
    writer.add_name("tracesift-tiny-random")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_eot_token_id(4)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHATML)

    def random(*shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    # ggml's ne is the reverse of numpy's shape: numpy (rows = outputs, cols = inputs).
    embedding = random(n_vocab, N_EMBD, std=1.0)
    embedding[:, 0] = 8.0
    writer.add_tensor("token_embd.weight", embedding)
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{prefix}.{name}.weight", random(N_EMBD, N_EMBD, std=0.3))
        writer.add_tensor(f"{prefix}.attn_output.weight", random(N_EMBD, N_EMBD, std=0.05))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", random(N_FF, N_EMBD, std=0.3))
        writer.add_tensor(f"{prefix}.ffn_up.weight", random(N_FF, N_EMBD, std=0.3))
        writer.add_tensor(f"{prefix}.ffn_down.weight", random(N_EMBD, N_FF, std=0.05))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    output = random(n_vocab, N_EMBD, std=0.25)
    # After the norm dimension 0 is about 8 / sqrt((64 + 63) / 64) ≈ 5.7: its column is a bias.
    bias = np.where(np.array(types) == gguf.TokenType.NORMAL, 1.0, -4.0)
    bias[2] = -2.0  # </s>: some generations stop on their own
    bias[4] = -2.0  # <|im_end|>
    output[:, 0] = (bias / 5.7).astype(np.float32)
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{out_path}: {n_vocab} tokens, {N_LAYER} layers, dim {N_EMBD}")


if __name__ == "__main__":
    main()
