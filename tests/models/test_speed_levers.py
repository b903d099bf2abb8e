"""Speed levers of R2GenGPT: encoder feature cache, target-only logits and the shared-prompt beam cache.

Each lever must leave the loss and the generated ids unchanged. These tests check that on tiny real
models (HF Swin, HF Llama, a trained BPE tokenizer), and they check the cache bookkeeping directly.
"""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from r2gen.data.collate import ReportCollator
from r2gen.models.aligner import MLPAligner
from r2gen.models.feature_cache import EncoderFeatureCache, encoder_is_frozen
from r2gen.models.kv_cache import SharedPromptLayer, prefill_shared_prompt, supports_shared_prompt_cache
from r2gen.models.r2gengpt import GenerationConfig, R2GenGPT
from r2gen.models.tiny import tiny_swin_encoder
from r2gen.models.tuning import TuningConfig, apply_tuning, enable_gradient_checkpointing, frozen_modules

REPORTS = ["the lungs are clear .", "no pleural effusion or pneumothorax . heart size is normal .",
           "mild cardiomegaly .", "patchy opacity in the left lower lobe ."]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
    backend.train_from_iterator(REPORTS + ["Human: <Img></Img> Generate a comprehensive and detailed "
                                           "diagnosis report for this chest xray image. \nAssistant:"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def build_model(tokenizer, setting: str = "frozen", seed: int = 0) -> R2GenGPT:
    encoder = tiny_swin_encoder(seed=seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(config).eval()
    model = R2GenGPT(encoder, MLPAligner(encoder.num_features, 32), llm, tokenizer)
    apply_tuning(model, TuningConfig(encoder=setting))
    model.frozen_modules = frozen_modules(model)
    return model.train()


def images(count: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, 64, 64, generator=generator)


def test_feature_cache_matches_encoder(tokenizer):
    model = build_model(tokenizer)
    pixels = images(3)
    counts = torch.tensor([1, 2])
    expected = model.encode_images(pixels, counts)
    cache = model.enable_feature_cache()
    first = model.encode_images(pixels, counts)
    second = model.encode_images(pixels, counts)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
    assert len(cache) == 3
    assert (cache.stats.hits, cache.stats.misses) == (3, 3)


def test_feature_cache_partial_hit_encodes_missing_only(tokenizer):
    model = build_model(tokenizer)
    cache = model.enable_feature_cache()
    pixels = images(4)
    model.encode_images(pixels[:2], torch.tensor([1, 1]))
    calls = []
    model.encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    mixed = torch.stack([pixels[3], pixels[0], pixels[2], pixels[1]])
    result = model.encode_images(mixed, torch.tensor([1, 1, 1, 1]))
    assert calls == [2]  # only the two new views went through the encoder
    reference = model.aligner(model.encoder(mixed))
    torch.testing.assert_close(result, reference, rtol=1e-5, atol=1e-6)
    assert (cache.stats.hits, cache.stats.misses) == (2, 4)


def test_feature_cache_bypassed_when_encoder_trains(tokenizer):
    for setting in ("lora", "full"):
        model = build_model(tokenizer, setting)
        cache = model.enable_feature_cache()
        assert not encoder_is_frozen(model.encoder)
        visual = model.encode_images(images(2), torch.tensor([1, 1]))
        assert len(cache) == 0, setting
        assert visual.requires_grad, setting


def test_feature_cache_bypassed_in_train_mode(tokenizer):
    model = build_model(tokenizer)
    model.frozen_modules = []  # without this the frozen encoder would follow model.train()
    model.train()
    cache = model.enable_feature_cache()
    model.encode_images(images(2), torch.tensor([1, 1]))
    assert len(cache) == 0


def test_feature_cache_dropped_after_weight_load(tokenizer):
    model = build_model(tokenizer)
    cache = model.enable_feature_cache()
    pixels, counts = images(2), torch.tensor([1, 1])
    model.encode_images(pixels, counts)
    other = build_model(tokenizer, seed=5)
    model.encoder.load_state_dict(other.encoder.state_dict())
    result = model.encode_images(pixels, counts)
    torch.testing.assert_close(result, model.aligner(other.encoder(pixels)), rtol=1e-5, atol=1e-6)
    assert cache.stats.hits == 0


def test_feature_cache_keys_autocast_separately(tokenizer):
    model = build_model(tokenizer)
    cache = model.enable_feature_cache()
    pixels, counts = images(2), torch.tensor([1, 1])
    full = model.encode_images(pixels, counts)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reduced = model.encode_images(pixels, counts)
    assert cache.stats.hits == 0
    assert len(cache) == 4
    assert full.dtype == torch.float32
    assert not torch.equal(full, reduced.float())


def test_feature_cache_stops_storing_when_full(tokenizer):
    model = build_model(tokenizer)
    row_bytes = model.encoder.num_tokens * model.encoder.num_features * 4
    cache = model.enable_feature_cache(max_bytes=2 * row_bytes)
    model.encode_images(images(3), torch.tensor([1, 1, 1]))
    assert len(cache) == 2
    assert cache.stored_bytes == 2 * row_bytes
    with pytest.raises(ValueError, match="max_bytes"):
        EncoderFeatureCache(max_bytes=0)


def test_loss_unchanged_by_feature_cache(tokenizer):
    model = build_model(tokenizer)
    target_ids, target_mask = ReportCollator(tokenizer, max_target_tokens=60).encode_targets(REPORTS[:3])
    pixels, counts = images(3), torch.tensor([1, 1, 1])
    plain = model(pixels, counts, target_ids, target_mask)
    model.enable_feature_cache()
    model(pixels, counts, target_ids, target_mask)
    cached = model(pixels, counts, target_ids, target_mask)
    assert model.feature_cache.stats.hits == 3
    torch.testing.assert_close(cached, plain, rtol=0, atol=0)


def test_loss_ignores_padded_targets(tokenizer):
    model = build_model(tokenizer).eval()
    collator = ReportCollator(tokenizer, max_target_tokens=60)
    target_ids, target_mask = collator.encode_targets(REPORTS[:2])
    pixels, counts = images(2), torch.tensor([1, 1])
    batch_loss = model(pixels, counts, target_ids, target_mask)
    # Per-sample losses, weighted by target count, must give the batch loss: padding adds nothing.
    total, tokens = 0.0, 0
    for row in range(2):
        length = int(target_mask[row].sum())
        single = model(pixels[row : row + 1], counts[row : row + 1], target_ids[row : row + 1, :length],
                       target_mask[row : row + 1, :length])
        total += single.item() * length
        tokens += length
    assert target_mask.sum() < target_mask.numel()
    assert batch_loss.item() == pytest.approx(total / tokens, rel=1e-5)


def test_shared_prompt_generation_same_ids(tokenizer):
    model = build_model(tokenizer).eval()
    config = GenerationConfig(num_beams=3, min_new_tokens=4, max_new_tokens=12, repetition_penalty=2.0,
                              length_penalty=2.0)
    pixels, counts = images(3), torch.tensor([2, 1])
    shared = model.generate_ids(pixels, counts, config)
    model.share_prompt_cache = False
    plain = model.generate_ids(pixels, counts, config)
    assert shared.shape == plain.shape
    assert shared.shape[0] == 2
    assert torch.equal(shared, plain)


def test_shared_prompt_cache_prefill_shapes(tokenizer):
    model = build_model(tokenizer).eval()
    prompt = model.build_prompt_embeddings(model.encode_images(images(2), torch.tensor([1, 1])))
    cache = prefill_shared_prompt(model.llm, prompt, num_beams=3, max_new_tokens=5)
    layer = cache.layers[0]
    assert cache.get_seq_length() == prompt.shape[1] - 1
    assert layer.keys.shape == (6, 2, prompt.shape[1] - 1, 8)
    assert torch.equal(layer.keys[0], layer.keys[2])  # beams of one study share the prompt
    assert not torch.equal(layer.keys[0], layer.keys[3])  # studies differ


def test_shared_prompt_layer_reorders_generated_only():
    layer = SharedPromptLayer(capacity=4, shared_length=2)
    prompt = torch.arange(2.0).view(1, 1, 2, 1).expand(4, 1, 2, 1)
    layer.update(prompt, prompt)
    generated = torch.tensor([10.0, 11.0, 12.0, 13.0]).view(4, 1, 1, 1)
    layer.update(generated, generated)
    layer.update(generated + 10, generated + 10)  # grows the buffer past its capacity of 4
    assert layer.capacity >= 4
    layer.reorder_cache(torch.tensor([1, 1, 3, 2]))
    assert layer.get_seq_length() == 4
    assert layer.keys[:, 0, :, 0].tolist() == [[0, 1, 11, 21], [0, 1, 11, 21], [0, 1, 13, 23], [0, 1, 12, 22]]
    layer.crop(-1)
    assert layer.values.shape[2] == 3
    with pytest.raises(ValueError, match="negative"):
        layer.crop(2)


def test_shared_prompt_cache_rejects_sliding_window(tokenizer):
    model = build_model(tokenizer)
    assert supports_shared_prompt_cache(model.llm)
    model.llm.config.sliding_window = 16
    assert not supports_shared_prompt_cache(model.llm)


def loss_and_aligner_grad(model, pixels, counts, target_ids, target_mask):
    model.zero_grad(set_to_none=True)
    loss = model(pixels, counts, target_ids, target_mask)
    loss.backward()
    return loss.detach(), model.aligner.layers[0].weight.grad.clone()


def test_prefix_cache_keeps_loss_and_gradient(tokenizer):
    model = build_model(tokenizer)
    target_ids, target_mask = ReportCollator(tokenizer, max_target_tokens=60).encode_targets(REPORTS[:3])
    pixels, counts = images(3), torch.tensor([1, 1, 1])
    assert model.prefix_key_values(torch.float32) is not None
    cached_loss, cached_grad = loss_and_aligner_grad(model, pixels, counts, target_ids, target_mask)
    model.cache_prefix = False
    plain_loss, plain_grad = loss_and_aligner_grad(model, pixels, counts, target_ids, target_mask)
    torch.testing.assert_close(cached_loss, plain_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached_grad, plain_grad, rtol=1e-4, atol=1e-7)

    # Both equal Hugging Face's own shifted causal-LM loss over the full sequence.
    prompt = model.build_prompt_embeddings(model.encode_images(pixels, counts))
    inputs = torch.cat([prompt, model.llm.get_input_embeddings()(target_ids)], dim=1)
    mask = torch.cat([torch.ones(prompt.shape[:2], dtype=torch.long), target_mask], dim=1)
    reference = model.llm(inputs_embeds=inputs, attention_mask=mask,
                          labels=model.build_labels(target_ids, target_mask)).loss
    torch.testing.assert_close(cached_loss, reference.detach(), rtol=1e-5, atol=1e-6)


def test_prefix_cache_recomputed_after_llm_load(tokenizer):
    model = build_model(tokenizer)
    before = model.prefix_key_values(torch.float32)[0][0].clone()
    other = build_model(tokenizer, seed=7)
    model.llm.load_state_dict(other.llm.state_dict())
    after = model.prefix_key_values(torch.float32)[0][0]
    expected = other.prefix_key_values(torch.float32)[0][0]
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_prefix_cache_off_when_llm_trains(tokenizer):
    lora_model = build_model(tokenizer)
    apply_tuning(lora_model, TuningConfig(encoder="frozen", llm="lora"))
    lora_model.frozen_modules = frozen_modules(lora_model)
    lora_model.train()
    assert lora_model.prefix_key_values(torch.float32) is None
    frozen = build_model(tokenizer)
    frozen.frozen_modules = []
    frozen.train()  # a frozen LLM in train mode (dropout on) must not reuse eval-mode values
    assert frozen.prefix_key_values(torch.float32) is None


def test_prefix_cache_off_with_checkpointing(tokenizer):
    model = build_model(tokenizer)
    enable_gradient_checkpointing(model, llm=True, encoder=False)
    model.frozen_modules = frozen_modules(model)
    model.train()
    assert "llm" not in model.frozen_modules
    assert model.prefix_key_values(torch.float32) is None
    target_ids, target_mask = ReportCollator(tokenizer, max_target_tokens=60).encode_targets(REPORTS[:2])
    loss = model(images(2), torch.tensor([1, 1]), target_ids, target_mask)
    assert torch.isfinite(loss)


def test_generation_levers_keep_ids(tokenizer):
    model = build_model(tokenizer).eval()
    config = GenerationConfig(num_beams=3, min_new_tokens=4, max_new_tokens=12, repetition_penalty=2.0,
                              length_penalty=2.0)
    pixels, counts = images(4), torch.tensor([1, 1, 2])
    fast = model.generate_ids(pixels, counts, config)
    model.cache_prefix = False
    model.share_prompt_cache = False
    plain = model.generate_ids(pixels, counts, config)
    assert fast.shape[0] == 3
    assert torch.equal(fast, plain)
