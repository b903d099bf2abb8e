"""Trainable parameter counts of each tuning option at full size: Swin-B into Llama-2-7B on the meta device.

The meta device allocates no weights, so the 7B model costs nothing. Expected numbers:
- aligner: Linear 1024 -> 4096 (4,198,400) + LayerNorm 4096 (8,192) = 4,206,592;
- encoder LoRA r=16 on query and value: 2 * 16 * (d + d) per block over 2/2/18/2 blocks of widths
  128/256/512/1024 = 770,048;
- Swin-B backbone: 86,743,224. HF SwinModel's pooler is a parameter-free average pool, and its final
  LayerNorm (2,048 parameters) is part of that count, so the number equals R2GenGPT's derived one;
- LLM LoRA r=16 on q_proj and v_proj: 32 layers * 2 * 16 * (4096 + 4096) = 8,388,608.
"""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from model_helpers import Composite
from transformers import LlamaConfig, LlamaForCausalLM, SwinConfig, SwinModel

from r2gen.models.aligner import MLPAligner
from r2gen.models.encoders import SwinEncoder
from r2gen.models.tuning import apply_tuning, parameter_table

ALIGNER = 4_206_592
SWIN_LORA = 770_048
SWIN_B = 86_743_224
LLAMA_LORA = 32 * 2 * 16 * (4096 + 4096)
LLAMA_2_7B = 6_738_415_616


def build_meta_composite():
    swin_config = SwinConfig(
        image_size=224, patch_size=4, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=7
    )
    llama_config = LlamaConfig(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008, vocab_size=32000
    )
    with torch.device("meta"):
        encoder = SwinEncoder(SwinModel(swin_config))
        llm = LlamaForCausalLM(llama_config)
        aligner = MLPAligner(encoder.num_features, llm.config.hidden_size)
    return Composite(encoder, aligner, llm)


def rows_by_module(model) -> dict[str, dict]:
    return {row["module"]: row for row in parameter_table(model)}


def test_meta_shapes_match_swin_b_and_llama() -> None:
    model = build_meta_composite()

    assert (model.encoder.num_tokens, model.encoder.num_features) == (49, 1024)
    rows = rows_by_module(model)
    assert rows["encoder"]["total"] == SWIN_B
    assert rows["aligner"]["total"] == ALIGNER
    assert rows["llm"]["total"] == LLAMA_2_7B
    assert LLAMA_LORA == 8_388_608


@pytest.mark.parametrize(
    ("option", "encoder", "llm", "total"),
    [
        ("shallow", 0, 0, 4_206_592),
        ("lora", SWIN_LORA, 0, 4_976_640),
        ("deep", SWIN_B, 0, 90_949_816),
        ("llm_lora", 0, LLAMA_LORA, 12_595_200),
    ],
)
def test_trainable_counts_per_option(compose_config, option: str, encoder: int, llm: int, total: int) -> None:
    model = build_meta_composite()
    config = instantiate(compose_config([f"+tuning={option}"]).tuning)

    apply_tuning(model, config)

    rows = rows_by_module(model)
    assert rows["encoder"]["trainable"] == encoder
    assert rows["aligner"]["trainable"] == ALIGNER
    assert rows["llm"]["trainable"] == llm
    assert sum(row["trainable"] for row in rows.values()) == total
