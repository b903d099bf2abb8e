"""Tiny random models with the real architectures, for fast tests on CPU.

Weights are random (seeded, without touching the global RNG). The tiny LLM uses the real SmolLM2
tokenizer from the r2gen cache (see ``llm.smollm2_path``), so tokenization is realistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    SwinConfig,
    SwinModel,
)

from r2gen.models.encoders import SwinEncoder
from r2gen.models.llm import smollm2_path


def tiny_swin_config(
    image_size: int = 64,
    patch_size: int = 4,
    embed_dim: int = 16,
    depths: Sequence[int] = (1, 1, 1),
    num_heads: Sequence[int] = (1, 2, 4),
    window_size: int = 4,
) -> SwinConfig:
    """Return a Swin config. The defaults give 16 tokens of width 64 from a 64 px image."""
    return SwinConfig(
        image_size=image_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=window_size,
    )


def tiny_swin_encoder(
    image_size: int = 64,
    patch_size: int = 4,
    embed_dim: int = 16,
    depths: Sequence[int] = (1, 1, 1),
    num_heads: Sequence[int] = (1, 2, 4),
    window_size: int = 4,
    seed: int = 0,
) -> SwinEncoder:
    """Build a random Hugging Face Swin encoder (the same class as the real ``swin`` option)."""
    config = tiny_swin_config(image_size, patch_size, embed_dim, depths, num_heads, window_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = SwinModel(config, add_pooling_layer=False)
    return SwinEncoder(backbone)


def tiny_tokenizer(path: str | None = None, drop_pad_token: bool = False) -> PreTrainedTokenizerBase:
    """Load a real tokenizer, SmolLM2's by default (bos 1, eos 2, pad 2, unk 0, with a chat template).

    ``drop_pad_token=True`` removes the pad token, as Llama-2's tokenizer has none.
    """
    tokenizer = AutoTokenizer.from_pretrained(path or smollm2_path())
    if drop_pad_token:
        tokenizer.pad_token = None
    return tokenizer


def tiny_llm(
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    tokenizer_path: str | None = None,
    drop_pad_token: bool = False,
    seed: int = 0,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build a random ``LlamaForCausalLM`` sized to the tokenizer's vocabulary, with its tokenizer."""
    tokenizer = tiny_tokenizer(tokenizer_path, drop_pad_token)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer
