"""Tiny random-weight Hugging Face models built from configs, with tiny word-level tokenizers.

``make_model(kind, folder)`` saves a model (safetensors) and a fast tokenizer to ``folder``.
Tokenizers: ``digits`` splits every digit (like SmolLM2), ``whole`` keeps 0..99 as single
tokens (like BERT's WordPiece for small numbers), ``nodigits`` has no digits at all.
"""

from __future__ import annotations

from pathlib import Path

WORDS = ["The", "number", "I", "counted", "apples", ".", "x", "=", "word", "thought",
         "about", "the", "today", "cat", "dog", "red", "blue", "Paris", "is", "a"]
VOCAB = 64
ARCHS = ("llama", "gpt2", "gpt_neox", "mamba", "mamba2", "bert")
#: The paper's families (and a few more) that transformers builds from a config, offline.
FAMILIES = ("gpt_oss", "llama4", "llama4_text", "deepseek_v3", "falcon_mamba", "xlstm",
            "kimi_linear", "olmoe", "rwkv", "bloom", "opt")


def make_tokenizer(style: str = "digits"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]
    if style == "digits":
        tokens += [str(d) for d in range(10)]
    elif style == "whole":
        tokens += [str(d) for d in range(100)]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    splits = [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    if style == "digits":
        splits.append(pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]"), len(tokens)


def make_config(arch: str, vocab: int):
    import transformers as tf

    small = dict(vocab_size=vocab, hidden_size=16, num_hidden_layers=3)
    if arch == "llama":
        return tf.LlamaConfig(**small, intermediate_size=32, num_attention_heads=2,
                              num_key_value_heads=1, tie_word_embeddings=False,
                              pad_token_id=0, bos_token_id=None, eos_token_id=None)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab, n_embd=16, n_layer=3, n_head=2, n_positions=64,
                             bos_token_id=None, eos_token_id=None)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(**small, intermediate_size=32, num_attention_heads=2,
                                bos_token_id=None, eos_token_id=None)
    if arch == "mamba":
        return tf.MambaConfig(**small, state_size=4, bos_token_id=None, eos_token_id=None,
                              pad_token_id=0)
    if arch == "mamba2":
        return tf.Mamba2Config(**small, num_heads=4, head_dim=8, state_size=4, n_groups=1,
                               expand=2, chunk_size=8, bos_token_id=None, eos_token_id=None,
                               pad_token_id=0)
    if arch == "bert":
        return tf.BertConfig(**small, num_attention_heads=2, intermediate_size=32,
                             max_position_embeddings=64, pad_token_id=0)
    return family_config(arch, vocab)


def family_config(arch: str, vocab: int):
    """Tiny configs of the paper's families (and a few more), all with untied heads."""
    import transformers as tf

    base = dict(vocab_size=vocab, hidden_size=16, num_hidden_layers=3, pad_token_id=0,
                bos_token_id=None, eos_token_id=None, tie_word_embeddings=False)
    attn = dict(base, num_attention_heads=2, num_key_value_heads=1, intermediate_size=32,
                head_dim=8)
    moe = dict(attn, moe_intermediate_size=8, num_experts_per_tok=2)
    if arch == "gpt_oss":
        layers = ["sliding_attention", "full_attention", "sliding_attention"]
        return tf.GptOssConfig(**{**attn, "intermediate_size": 16}, num_local_experts=2,
                               num_experts_per_tok=1, layer_types=layers)
    if arch in ("llama4", "llama4_text"):
        text = tf.Llama4TextConfig(**{**attn, "intermediate_size": 16},
                                   intermediate_size_mlp=32, num_local_experts=2)
        if arch == "llama4_text":
            return text
        vision = tf.Llama4VisionConfig(hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=16,
                                       image_size=28, patch_size=14, vision_output_dim=16,
                                       projector_input_dim=16, projector_output_dim=16)
        return tf.Llama4Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                               tie_word_embeddings=False)
    if arch == "deepseek_v3":
        return tf.DeepseekV3Config(**{**moe, "num_key_value_heads": 2, "head_dim": 4},
                                   n_routed_experts=4,
                                   n_group=1, topk_group=1, first_k_dense_replace=1,
                                   q_lora_rank=8, kv_lora_rank=8, qk_rope_head_dim=4,
                                   qk_nope_head_dim=4, v_head_dim=4)
    if arch == "falcon_mamba":
        return tf.FalconMambaConfig(**base, state_size=4)
    if arch == "xlstm":
        return tf.xLSTMConfig(**base, embedding_dim=16, num_blocks=3, num_heads=2)
    if arch == "kimi_linear":
        linear = {"kda_layers": [1, 3], "full_attn_layers": [2], "num_heads": 2, "head_dim": 8,
                  "short_conv_kernel_size": 4}
        return tf.KimiLinearConfig(**{**moe, "num_key_value_heads": 2}, num_experts=4,
                                   linear_attn_config=linear)
    if arch == "olmoe":
        return tf.OlmoeConfig(**moe, num_experts=4)
    if arch == "rwkv":
        return tf.RwkvConfig(**base, attention_hidden_size=16, intermediate_size=32)
    if arch == "bloom":
        return tf.BloomConfig(**base, n_head=2)
    if arch == "opt":
        return tf.OPTConfig(**base, num_attention_heads=2, ffn_dim=32, word_embed_proj_dim=16)
    raise ValueError(arch)


def make_model(arch: str, folder: Path, style: str = "digits", seed: int = 0,
               max_shard_size: str | None = None) -> Path:
    """Save a random-weight ``arch`` model with a ``style`` tokenizer into ``folder``
    (sharded, with ``model.safetensors.index.json``, if ``max_shard_size`` is given)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    tokenizer, n_tokens = make_tokenizer(style)
    torch.manual_seed(seed)
    config = make_config(arch, max(VOCAB, n_tokens))
    if arch == "llama4":
        from transformers import Llama4ForConditionalGeneration

        model = Llama4ForConditionalGeneration(config).eval()
    else:
        cls = AutoModel if arch == "bert" else AutoModelForCausalLM
        model = cls.from_config(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    if max_shard_size is None:
        model.save_pretrained(folder)
    else:
        model.save_pretrained(folder, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(folder)
    return folder


def quiet_and_isolated(tmp_path_factory):
    """Module fixture body: one torch thread (tiny models, shared machine) and a private
    ``$CONVERGENT_CACHE``, so tests never write to the user's cache."""
    import pytest
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVERGENT_CACHE", str(tmp_path_factory.mktemp("convergent-cache")))
        yield
    torch.set_num_threads(before)
