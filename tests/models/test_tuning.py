"""Tuning on tiny models: LoRA placement, trainable counts, eval mode of frozen parts, config errors."""

from __future__ import annotations

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from model_helpers import Composite
from peft.tuners.tuners_utils import BaseTunerLayer

from r2gen.models.aligner import MLPAligner
from r2gen.models.encoders import EfficientNetLite0Encoder
from r2gen.models.tiny import tiny_llm, tiny_swin_encoder
from r2gen.models.tuning import (
    LoraSettings,
    TuningConfig,
    apply_tuning,
    enable_gradient_checkpointing,
    format_parameter_table,
    frozen_modules,
    parameter_table,
    set_frozen_eval,
)

# Tiny Swin has widths 16/32/64 with one block per stage. Tiny Llama has hidden size 64 and 2 layers.
SWIN_QV_LORA_PER_RANK = 2 * (2 * 16 + 2 * 32 + 2 * 64)
LLAMA_QV_LORA_PER_RANK = 2 * 2 * (64 + 64)
ALIGNER = 64 * 64 + 64 + 2 * 64


def trainable(model, child: str) -> int:
    return sum(p.numel() for p in model.get_submodule(child).parameters() if p.requires_grad)


def lora_layer_names(module) -> set[str]:
    return {name for name, layer in module.named_modules() if isinstance(layer, BaseTunerLayer)}


def tuning_from_yaml(compose_config, option: str, *overrides: str) -> TuningConfig:
    return instantiate(compose_config([f"+tuning={option}", *overrides]).tuning)


# Trainable counts per option


@pytest.mark.parametrize(
    ("option", "encoder_lora", "encoder_full", "llm_lora"),
    [("shallow", 0, False, 0), ("lora", 16, False, 0), ("deep", 0, True, 0), ("llm_lora", 0, False, 16)],
)
def test_tiny_trainable_counts(compose_config, tiny_composite, option, encoder_lora, encoder_full, llm_lora) -> None:
    encoder_total = sum(p.numel() for p in tiny_composite.encoder.parameters())

    apply_tuning(tiny_composite, tuning_from_yaml(compose_config, option))

    expected_encoder = encoder_total if encoder_full else encoder_lora * SWIN_QV_LORA_PER_RANK
    assert trainable(tiny_composite, "encoder") == expected_encoder
    assert trainable(tiny_composite, "aligner") == ALIGNER
    assert trainable(tiny_composite, "llm") == llm_lora * LLAMA_QV_LORA_PER_RANK


def test_lora_rank_sweep_override(compose_config, smollm2_folder) -> None:
    [override] = OverridesParser.create().parse_overrides(["tuning.lora.rank=4,8,16"])
    ranks = list(override.sweep_string_iterator())
    assert ranks == ["4", "8", "16"]

    for rank in ranks:
        encoder = tiny_swin_encoder()
        model = Composite(encoder, MLPAligner(64, 64), tiny_llm()[0])
        apply_tuning(model, tuning_from_yaml(compose_config, "lora", f"tuning.lora.rank={rank}"))
        assert trainable(model, "encoder") == int(rank) * SWIN_QV_LORA_PER_RANK


# Where LoRA goes


def test_encoder_lora_exactly_on_query_value(tiny_composite) -> None:
    expected = {
        name for name, _ in tiny_composite.encoder.named_modules() if name.endswith((".q_proj", ".v_proj"))
    }

    apply_tuning(tiny_composite, TuningConfig(encoder="lora"))

    assert len(expected) == 6
    assert lora_layer_names(tiny_composite.encoder) == expected
    assert lora_layer_names(tiny_composite.llm) == set()
    trainable_names = {n for n, p in tiny_composite.encoder.named_parameters() if p.requires_grad}
    assert all(".lora_A." in name or ".lora_B." in name for name in trainable_names)


def test_llm_lora_exactly_on_query_value(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(llm="lora"))

    assert lora_layer_names(tiny_composite.llm) == {
        f"model.layers.{i}.self_attn.{proj}" for i in range(2) for proj in ("q_proj", "v_proj")
    }
    assert lora_layer_names(tiny_composite.encoder) == set()
    lora_b = tiny_composite.llm.model.layers[0].self_attn.q_proj.lora_B["default"]
    assert lora_b.weight.shape == (64, 16)


def test_custom_target_modules(compose_config, tiny_composite) -> None:
    config = tuning_from_yaml(compose_config, "lora", "tuning.lora.target_modules=[q_proj]")

    apply_tuning(tiny_composite, config)

    names = lora_layer_names(tiny_composite.encoder)
    assert len(names) == 3
    assert all(name.endswith(".q_proj") for name in names)


def test_missing_target_module_raises(tiny_composite) -> None:
    config = TuningConfig(encoder="lora", lora=LoraSettings(target_modules=["no_such_linear"]))

    with pytest.raises(ValueError, match="no_such_linear"):
        apply_tuning(tiny_composite, config)


def test_lora_keeps_forward_and_keys(tiny_composite) -> None:
    images = torch.randn(2, 3, 64, 64)
    encoder = tiny_composite.encoder.eval()
    with torch.no_grad():
        before = encoder(images)
    keys_before = set(tiny_composite.state_dict())

    apply_tuning(tiny_composite, TuningConfig(encoder="lora", llm="lora"))

    with torch.no_grad():
        after = tiny_composite.encoder.eval()(images)
    # lora_B starts at zero, so the adapted encoder computes the same tokens.
    assert torch.equal(after, before)
    keys_after = {key for key in tiny_composite.state_dict() if ".lora_" not in key}
    assert {key.replace(".base_layer", "") for key in keys_after} == keys_before
    assert type(tiny_composite.llm).__name__ == "LlamaForCausalLM"


def test_llm_lora_still_generates(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(llm="lora"))

    output = tiny_composite.llm.generate(
        input_ids=torch.tensor([[1, 504, 3575]]), max_new_tokens=3, do_sample=False, min_new_tokens=3
    )

    assert output.shape == (1, 6)


def test_gradients_reach_only_trainable(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(encoder="lora", llm="lora"))
    tokens = tiny_composite.encoder(torch.randn(1, 3, 64, 64))

    tiny_composite.llm(inputs_embeds=tiny_composite.aligner(tokens)).logits.square().mean().backward()

    llm_lora_b = tiny_composite.llm.model.layers[1].self_attn.v_proj.lora_B["default"].weight
    assert llm_lora_b.grad is not None and llm_lora_b.grad.abs().sum() > 0
    assert tiny_composite.aligner.layers[0].weight.grad is not None
    encoder_lora_a = tiny_composite.encoder.backbone.encoder.layers[0].blocks[0].attention.q_proj.lora_A
    assert encoder_lora_a["default"].weight.requires_grad
    frozen = [n for n, p in tiny_composite.named_parameters() if not p.requires_grad and p.grad is not None]
    assert frozen == []


# Eval mode of frozen parts


def test_frozen_encoder_stays_in_eval(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig())

    tiny_composite.train()
    set_frozen_eval(tiny_composite)

    assert frozen_modules(tiny_composite) == ["encoder", "llm"]
    assert not any(module.training for module in tiny_composite.encoder.modules())
    assert not tiny_composite.llm.training
    assert tiny_composite.aligner.training


def test_lora_encoder_trains_its_adapters(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(encoder="lora"))

    tiny_composite.train()
    set_frozen_eval(tiny_composite)

    assert frozen_modules(tiny_composite) == ["llm"]
    assert tiny_composite.encoder.training


def test_checkpointed_frozen_llm_stays_in_train(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig())
    enable_gradient_checkpointing(tiny_composite, llm=True, encoder=True)

    tiny_composite.train()
    set_frozen_eval(tiny_composite)

    # transformers skips checkpointing in eval mode, so the frozen LLM must stay in training mode.
    assert tiny_composite.llm.is_activation_checkpointing
    assert tiny_composite.llm.training
    assert frozen_modules(tiny_composite) == ["encoder"]
    assert not tiny_composite.encoder.backbone.is_activation_checkpointing


def test_gradient_checkpointing_on_trainable_encoder(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(encoder="full"))

    enable_gradient_checkpointing(tiny_composite, llm=False, encoder=True)

    assert tiny_composite.encoder.backbone.is_activation_checkpointing
    assert not tiny_composite.llm.is_activation_checkpointing


def test_efficientnet_lora_freezes_batchnorm(smollm2_folder) -> None:
    encoder = EfficientNetLite0Encoder()
    model = Composite(encoder, MLPAligner(1280, 64), tiny_llm()[0])
    apply_tuning(model, TuningConfig(encoder="lora"))
    running_mean = encoder.backbone._bn0.running_mean.clone()

    model.train()
    set_frozen_eval(model)
    with torch.no_grad():
        encoder(torch.randn(2, 3, 224, 224))

    assert len(lora_layer_names(encoder)) == 31
    assert "encoder.backbone._bn0" in frozen_modules(model)
    assert not encoder.backbone._bn0.training
    assert torch.equal(encoder.backbone._bn0.running_mean, running_mean)


# Parameter table


def test_parameter_table_rows(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(encoder="lora"))

    rows = parameter_table(tiny_composite)

    assert [row["module"] for row in rows] == ["encoder", "aligner", "llm"]
    assert [row["mode"] for row in rows] == ["lora", "full", "frozen"]
    assert rows[0]["trainable"] == 16 * SWIN_QV_LORA_PER_RANK
    assert rows[1]["trainable"] == rows[1]["total"] == ALIGNER
    text = format_parameter_table(rows)
    total_line = text.splitlines()[-1].split()
    assert total_line[0] == "total"
    assert total_line[1] == f"{16 * SWIN_QV_LORA_PER_RANK + ALIGNER:,}"


def test_parameter_table_partial_mode(tiny_composite) -> None:
    tiny_composite.encoder.requires_grad_(False)
    tiny_composite.encoder.backbone.layernorm.requires_grad_(True)

    rows = {row["module"]: row for row in parameter_table(tiny_composite)}

    assert rows["encoder"]["mode"] == "partial"
    assert rows["encoder"]["trainable"] == 2 * 64


# Config validation


def test_unknown_tuning_key_raises(compose_config) -> None:
    with pytest.raises(InstantiationException, match="learning_rate"):
        tuning_from_yaml(compose_config, "lora", "+tuning.learning_rate=1")


def test_unknown_lora_key_raises(compose_config) -> None:
    with pytest.raises(InstantiationException, match="rnak"):
        tuning_from_yaml(compose_config, "lora", "+tuning.lora.rnak=4")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder": "partial"}, "tuning.encoder='partial'"),
        ({"llm": "full"}, "tuning.llm='full'"),
        ({"aligner": "lora"}, "tuning.aligner='lora'"),
    ],
)
def test_invalid_mode_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TuningConfig(**kwargs)


def test_invalid_lora_settings_raise() -> None:
    with pytest.raises(ValueError, match="rank 0"):
        LoraSettings(rank=0)
    with pytest.raises(ValueError, match="dropout 1.0"):
        LoraSettings(dropout=1.0)
    with pytest.raises(ValueError, match="empty"):
        LoraSettings(target_modules=[])


def test_yaml_lora_settings_are_dataclasses(compose_config) -> None:
    config = tuning_from_yaml(compose_config, "llm_lora")

    assert isinstance(config.lora, LoraSettings)
    assert config.llm_lora == LoraSettings(rank=16, alpha=16, dropout=0.1, target_modules=["q_proj", "v_proj"])
    assert type(config.llm_lora.target_modules) is list


def test_apply_twice_raises(tiny_composite) -> None:
    apply_tuning(tiny_composite, TuningConfig(encoder="lora"))

    with pytest.raises(RuntimeError, match="already applied"):
        apply_tuning(tiny_composite, TuningConfig(encoder="lora"))


def test_missing_children_raise(tiny_composite) -> None:
    del tiny_composite.aligner

    with pytest.raises(ValueError, match="aligner"):
        apply_tuning(tiny_composite, TuningConfig())
