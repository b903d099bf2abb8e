"""R2GenGPT composite: prompt layout, label masking with EOS, view fusion, loss and generation."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from r2gen.data.collate import ReportCollator
from r2gen.models.aligner import MLPAligner
from r2gen.models.r2gengpt import IGNORE_INDEX, GenerationConfig, PromptConfig, R2GenGPT, fuse_views
from r2gen.models.tiny import tiny_llm, tiny_swin_encoder

REPORTS = ["the lungs are clear .", "no pleural effusion or pneumothorax . heart size is normal .",
           "mild cardiomegaly ."]


def llama2_style_tokenizer() -> PreTrainedTokenizerFast:
    """A small trained BPE tokenizer with Llama-2's conventions: unk 0, bos 1, eos 2, no pad token."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"])
    corpus = REPORTS + ["Human: <Img></Img> Generate a comprehensive and detailed diagnosis report for "
                        "this chest xray image. \nAssistant:"]
    backend.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def build_model(tokenizer, prompt=None, view_fusion="mean") -> R2GenGPT:
    encoder = tiny_swin_encoder()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    llm = LlamaForCausalLM(config).eval()
    aligner = MLPAligner(encoder.num_features, config.hidden_size)
    return R2GenGPT(encoder, aligner, llm, tokenizer, prompt=prompt, view_fusion=view_fusion)


@pytest.fixture(scope="module")
def llama2_tokenizer():
    tokenizer = llama2_style_tokenizer()
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.pad_token_id is None
    return tokenizer


def test_prompt_layout_llama2_conventions(llama2_tokenizer):
    model = build_model(llama2_tokenizer)
    before = llama2_tokenizer("Human: <Img>", add_special_tokens=False)["input_ids"]
    after = llama2_tokenizer("</Img> Generate a comprehensive and detailed diagnosis report for this chest "
                             "xray image. \nAssistant:", add_special_tokens=False)["input_ids"]
    assert model.prefix_ids.tolist() == [1] + before
    assert model.suffix_ids.tolist() == after
    assert model.prompt_length == 1 + len(before) + 16 + len(after)

    visual = torch.randn(2, 16, 32)
    embeddings = model.build_prompt_embeddings(visual)
    bos_embedding = model.llm.get_input_embeddings().weight[1]
    assert embeddings.shape == (2, model.prompt_length, 32)
    assert torch.equal(embeddings[0, 0], bos_embedding)
    assert torch.equal(embeddings[1, len(model.prefix_ids): len(model.prefix_ids) + 16], visual[1])


def test_labels_mask_prompt_and_padding_keep_eos(llama2_tokenizer):
    model = build_model(llama2_tokenizer)
    collator = ReportCollator(llama2_tokenizer, max_target_tokens=60)
    target_ids, target_mask = collator.encode_targets(REPORTS[:2])
    labels = model.build_labels(target_ids, target_mask)
    lengths = target_mask.sum(1).tolist()

    assert labels.shape == (2, model.prompt_length + target_ids.shape[1])
    assert (labels[:, : model.prompt_length] == IGNORE_INDEX).all()
    for row, length in enumerate(lengths):
        targets = labels[row, model.prompt_length:]
        assert targets[length - 1].item() == 2  # EOS is a target
        assert (targets[length:] == IGNORE_INDEX).all()  # padding is not
        assert (targets[:length] != IGNORE_INDEX).all()
    # The shorter report is right-padded; its pad positions carry the EOS id but are masked.
    assert lengths[0] < lengths[1]
    assert target_mask[0, lengths[0]:].sum() == 0


def test_truncation_keeps_eos(llama2_tokenizer):
    collator = ReportCollator(llama2_tokenizer, max_target_tokens=5)
    target_ids, target_mask = collator.encode_targets([REPORTS[1]])
    assert target_ids.shape == (1, 5)
    assert target_ids[0, -1].item() == 2
    assert target_mask.sum().item() == 5


def test_smollm2_tokenizer_layout():
    llm, tokenizer = tiny_llm()
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    encoder = tiny_swin_encoder()
    model = R2GenGPT(encoder, MLPAligner(encoder.num_features, 64), llm, tokenizer)
    assert model.prefix_ids.tolist() == [1] + tokenizer("Human: <Img>", add_special_tokens=False)["input_ids"]
    collator = ReportCollator(tokenizer, max_target_tokens=60)
    target_ids, target_mask = collator.encode_targets(REPORTS[:2])
    labels = model.build_labels(target_ids, target_mask)
    short = target_mask[0].sum().item()
    # pad id == eos id for SmolLM2: masking must come from the attention mask, not from the id.
    assert labels[0, model.prompt_length + short - 1].item() == 2
    assert (labels[0, model.prompt_length + short:] == IGNORE_INDEX).all()


def test_chat_template_prompt_has_no_extra_bos():
    llm, tokenizer = tiny_llm()
    encoder = tiny_swin_encoder()
    model = R2GenGPT(encoder, MLPAligner(encoder.num_features, 64), llm, tokenizer,
                     prompt=PromptConfig(use_chat_template=True))
    text = tokenizer.decode(model.prefix_ids)
    assert text.startswith("<|im_start|>system")
    assert tokenizer.decode(model.suffix_ids).endswith("<|im_start|>assistant\n")


def test_view_fusion_mixed_view_counts():
    tokens = torch.arange(5 * 2 * 3, dtype=torch.float32).view(5, 2, 3)
    counts = torch.tensor([2, 1, 2])
    fused = fuse_views(tokens, counts, "mean")
    assert fused.shape == (3, 2, 3)
    assert torch.equal(fused[0], (tokens[0] + tokens[1]) / 2)
    assert torch.equal(fused[1], tokens[2])
    assert torch.equal(fused[2], (tokens[3] + tokens[4]) / 2)
    first = fuse_views(tokens, counts, "first")
    assert torch.equal(first, tokens[[0, 2, 3]])
    with pytest.raises(ValueError, match="unknown view_fusion"):
        fuse_views(tokens, counts, "max")


def test_mixed_views_use_one_encoder_pass(llama2_tokenizer):
    model = build_model(llama2_tokenizer)
    calls = []
    model.encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    pixel_values = torch.randn(3, 3, 64, 64)
    visual = model.encode_images(pixel_values, torch.tensor([2, 1]))
    assert calls == [3]
    assert visual.shape == (2, 16, 32)


def test_loss_equals_hf_shifted_loss(llama2_tokenizer):
    model = build_model(llama2_tokenizer).eval()  # eval: the tiny Swin has stochastic depth
    collator = ReportCollator(llama2_tokenizer, max_target_tokens=60)
    target_ids, target_mask = collator.encode_targets(REPORTS)
    pixel_values, counts = torch.randn(4, 3, 64, 64), torch.tensor([1, 2, 1])
    loss = model(pixel_values, counts, target_ids, target_mask)

    prompt = model.build_prompt_embeddings(model.encode_images(pixel_values, counts))
    inputs = torch.cat([prompt, model.llm.get_input_embeddings()(target_ids)], dim=1)
    mask = torch.cat([torch.ones(prompt.shape[:2], dtype=torch.long), target_mask], dim=1)
    reference = model.llm(inputs_embeds=inputs, attention_mask=mask,
                          labels=model.build_labels(target_ids, target_mask)).loss
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    loss.backward()
    assert model.aligner.layers[0].weight.grad.abs().sum() > 0


def test_generate_returns_one_string_per_study(llama2_tokenizer):
    model = build_model(llama2_tokenizer).eval()
    config = GenerationConfig(num_beams=2, min_new_tokens=3, max_new_tokens=6)
    texts = model.generate(torch.randn(3, 3, 64, 64), torch.tensor([2, 1]), config)
    assert len(texts) == 2
    assert all(isinstance(text, str) for text in texts)
    assert all("<s>" not in text and "</s>" not in text for text in texts)
