"""LLM loading: the converted SmolLM2 folder, local Llama folders, dtypes and the tiny LLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from transformers import LlamaConfig, LlamaForCausalLM

from r2gen.models import llm as llm_module
from r2gen.models.llm import load_llm, load_smollm2, resolve_dtype, smollm2_gguf_path, smollm2_path
from r2gen.models.tiny import tiny_llm, tiny_tokenizer

# SmolLM2 converted from the packaged GGUF


@pytest.fixture(scope="module")
def smollm2(smollm2_folder: str):
    return load_smollm2(smollm2_folder)


def test_smollm2_folder_is_plain_checkpoint(smollm2_folder: str) -> None:
    folder = Path(smollm2_folder)

    assert folder.name == "smollm2-135m-instruct"
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()


def test_smollm2_architecture(smollm2) -> None:
    model, _ = smollm2
    config = model.config

    assert isinstance(model, LlamaForCausalLM)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (49152, 576, 30)
    assert model.dtype == torch.float32


def test_smollm2_tokenizer_ids(smollm2) -> None:
    _, tokenizer = smollm2

    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|im_start|>", 1)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 2)
    assert tokenizer.pad_token_id == 2
    assert tokenizer.unk_token_id == 0
    assert tokenizer.chat_template


def test_smollm2_greedy_generation_is_fixed(smollm2) -> None:
    model, tokenizer = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )

    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]

    assert new_tokens.tolist() == [504, 3575, 282, 4649, 314, 7042, 30, 2]
    assert tokenizer.decode(new_tokens, skip_special_tokens=True) == "The capital of France is Paris."


def test_smollm2_path_reuses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / "smollm2-135m-instruct"
    cached.mkdir()
    (cached / "config.json").write_text("{}")
    monkeypatch.setenv("R2GEN_CACHE_DIR", str(tmp_path))

    def fail_conversion(*_args) -> None:
        raise AssertionError("a cached folder must not be converted again")

    monkeypatch.setattr(llm_module, "_convert_gguf", fail_conversion)

    assert smollm2_path() == str(cached)


def test_smollm2_gguf_is_packaged() -> None:
    gguf = smollm2_gguf_path()

    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.stat().st_size > 50_000_000


# Local Llama folders through the same from_pretrained path as llama2_7b


@pytest.fixture
def saved_llama(tmp_path: Path, smollm2_folder: str) -> tuple[Path, LlamaForCausalLM]:
    """A tiny random Llama and a tokenizer without a pad token (as Llama-2's), saved to a folder."""
    model, tokenizer = tiny_llm(seed=5, drop_pad_token=True)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path, model


def test_load_llm_from_folder(saved_llama) -> None:
    folder, original = saved_llama

    model, tokenizer = load_llm(str(folder))

    loaded = model.state_dict()
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    assert tokenizer.pad_token is None
    assert len(tokenizer) == model.config.vocab_size


def test_llama2_yaml_path_override(compose_config, saved_llama) -> None:
    folder, _ = saved_llama
    config = compose_config(["+llm=llama2_7b", f"llm.path={folder}", "llm.dtype=bfloat16"])

    model, tokenizer = instantiate(config.llm)

    assert isinstance(model, LlamaForCausalLM)
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "sdpa"
    assert tokenizer.eos_token_id == 2


def test_load_llm_missing_path_names_override(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="llm.path"):
        load_llm(str(tmp_path / "absent"))


def test_resolve_dtype_names() -> None:
    assert resolve_dtype("float32") == torch.float32
    assert resolve_dtype("bfloat16") == torch.bfloat16
    assert resolve_dtype("float16") == torch.float16
    expected_auto = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    assert resolve_dtype("auto") == expected_auto
    with pytest.raises(ValueError, match="bf16"):
        resolve_dtype("bf16")


# Tiny LLM


def test_tiny_llm_shape_and_tokenizer(smollm2_folder: str) -> None:
    model, tokenizer = tiny_llm()
    config = model.config

    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (49152, 64, 2)
    assert config.num_attention_heads == 4
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 2)
    logits = model(input_ids=torch.tensor([[1, 504, 3575]])).logits
    assert logits.shape == (1, 3, 49152)


def test_tiny_llm_is_seeded(smollm2_folder: str) -> None:
    first, _ = tiny_llm(seed=1)
    second, _ = tiny_llm(seed=1)
    other, _ = tiny_llm(seed=2)

    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(first.state_dict()[weight], second.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])


def test_tiny_tokenizer_without_pad(smollm2_folder: str) -> None:
    tokenizer = tiny_tokenizer(drop_pad_token=True)

    assert tokenizer.pad_token is None
    assert tokenizer.eos_token_id == 2


@pytest.mark.parametrize(("option", "hidden"), [("tiny", 64), ("smollm2_135m", 576)])
def test_llm_options_instantiate(compose_config, smollm2_folder: str, option: str, hidden: int) -> None:
    model, tokenizer = instantiate(compose_config([f"+llm={option}"]).llm)

    assert isinstance(model, LlamaForCausalLM)
    assert model.config.hidden_size == hidden
    assert tokenizer.bos_token_id == 1


def test_meta_llama2_config_counts() -> None:
    config = LlamaConfig(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008, vocab_size=32000
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)

    assert model.num_parameters() == 6_738_415_616
