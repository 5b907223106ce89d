"""A tiny T5 model with random weights, in Hugging Face layout, for the seq2seq path of
`kaizen summarize --method abstractive`. No T5 weights ship in any package registry, so the test
makes its own: the architecture and the file layout are T5's (the tensor names of
transformers' T5ForConditionalGeneration, a word-level tokenizer.json that appends `</s>` as T5's
does), the numbers are seeded noise. Its output is meaningless; what the tests check is that the
path runs end to end: loading, encoding, greedy decoding with the cache, chunking long inputs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def make_tiny_t5(out: Path, corpus: str, *, n_positions: int = 64, d_model: int = 32, num_heads: int = 4,
                 d_kv: int = 8, d_ff: int = 64, num_layers: int = 2, max_length: int = 24, seed: int = 7) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(["summarize: " + corpus], trainers.WordLevelTrainer(special_tokens=[PAD, EOS, UNK]))
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    tokenizer.save(str(out / "tokenizer.json"))
    vocab = tokenizer.get_vocab_size()

    config = {
        "model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True,
        "vocab_size": vocab, "d_model": d_model, "d_kv": d_kv, "d_ff": d_ff, "num_layers": num_layers,
        "num_decoder_layers": num_layers, "num_heads": num_heads, "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128, "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0, "feed_forward_proj": "relu", "tie_word_embeddings": True,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0, "n_positions": n_positions,
        "task_specific_params": {"summarization": {"prefix": "summarize: ", "max_length": max_length}},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))

    rng = np.random.default_rng(seed)
    inner = num_heads * d_kv

    def w(*shape):
        return rng.normal(0.0, 0.3, size=shape).astype(np.float32)

    tensors = {"shared.weight": w(vocab, d_model)}
    for stack in ("encoder", "decoder"):
        for i in range(num_layers):
            p = f"{stack}.block.{i}.layer"
            attn = [("0", "SelfAttention")] + ([("1", "EncDecAttention")] if stack == "decoder" else [])
            for layer, name in attn:
                for proj in "qkv":
                    tensors[f"{p}.{layer}.{name}.{proj}.weight"] = w(inner, d_model)
                tensors[f"{p}.{layer}.{name}.o.weight"] = w(d_model, inner)
                tensors[f"{p}.{layer}.layer_norm.weight"] = np.ones(d_model, np.float32)
            if i == 0:
                tensors[f"{p}.0.SelfAttention.relative_attention_bias.weight"] = w(32, num_heads)
            ff = "2" if stack == "decoder" else "1"
            tensors[f"{p}.{ff}.DenseReluDense.wi.weight"] = w(d_ff, d_model)
            tensors[f"{p}.{ff}.DenseReluDense.wo.weight"] = w(d_model, d_ff)
            tensors[f"{p}.{ff}.layer_norm.weight"] = np.ones(d_model, np.float32)
        tensors[f"{stack}.final_layer_norm.weight"] = np.ones(d_model, np.float32)
    write_safetensors(out / "model.safetensors", tensors)
    return out
