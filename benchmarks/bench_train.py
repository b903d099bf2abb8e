"""Measure R2GenGPT training throughput on CPU at the fixed benchmark shapes, with real covid_cxr data.

    python benchmarks/bench_train.py --setting shallow --steps 30 --warmup 5

Configuration (the same work as the R2GenGPT comparison numbers in docs/benchmarks.md):
- encoder: Hugging Face Swin with the Swin-Tiny shape (embed 96, depths 2/2/6/2, heads 3/6/12/24,
  window 7, 224 px), random weights from ``--seed``;
- LLM: ``LlamaForCausalLM`` with the SmolLM2-135M shape (hidden 576, 30 layers, 9 heads, 3 key/value
  heads, intermediate 1536, tied embeddings, rope_theta 100000) and a 32000-token vocabulary;
- tokenizer: BPE trained here on the covid_cxr and IU X-ray report texts, with Llama-2's ids
  (unk 0, bos 1, eos 2, no pad token);
- data: covid_cxr train split through the project's ReportDataset, ReportCollator and DataLoader,
  batch 4, at most 60 target tokens; fp32 and 2 torch threads unless the options say otherwise.

A step is what the trainer does per batch: fetch the batch, ``R2GenGPT.forward``, backward, gradient
clipping at norm 1.0 and an AdamW step built by ``build_optimizer``. ``--variant reference`` runs the
same model with R2GenGPT's original work pattern instead (targets padded to 60 tokens, logits at every
position, eager attention, the encoder every step). ``--variant ab`` alternates the two step by step
in one process, so machine load affects both alike, and prints their ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, SwinConfig, SwinModel

from r2gen.data.annotation import load_annotation
from r2gen.data.cache import DecodedImageCache
from r2gen.data.cleaning import clean_report
from r2gen.data.collate import ReportCollator
from r2gen.data.dataset import ReportDataset, build_image_transform, transform_fingerprint
from r2gen.data.manifest import dataset_fingerprint
from r2gen.models.aligner import MLPAligner
from r2gen.models.encoders import SwinEncoder
from r2gen.models.r2gengpt import PromptConfig, R2GenGPT, fuse_views
from r2gen.models.tuning import TuningConfig, apply_tuning, frozen_modules
from r2gen.training.config import TrainerConfig
from r2gen.training.optim import build_optimizer

logger = logging.getLogger(__name__)

VOCAB_SIZE = 32000
SETTINGS = {
    "shallow": TuningConfig(encoder="frozen"),
    "lora": TuningConfig(encoder="lora"),
    "deep": TuningConfig(encoder="full"),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def default_data_root() -> Path:
    return Path(os.environ.get("R2GEN_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data"))


def build_tokenizer(data_root: Path) -> PreTrainedTokenizerFast:
    """Train a BPE tokenizer on the covid_cxr and IU X-ray report texts with Llama-2's special-token ids.

    The corpus is too small to fill 32000 entries, so the trained vocabulary is smaller; the LLM's
    embedding and LM head still have ``VOCAB_SIZE`` rows, which is what sets their cost.
    """
    texts = [clean_report(study.report, "mimic_cxr")
             for split in load_annotation(data_root / "covid_cxr_notes" / "annotation.json").values()
             for study in split]
    iu_path = data_root / "iu_xray" / "extras" / "annotation_r2gen_full_reports_only.json"
    if iu_path.is_file():
        texts += [clean_report(study.report, "iu_xray") for split in load_annotation(iu_path).values()
                  for study in split]
    prompt = PromptConfig()
    texts.append(prompt.template.format(instruction=prompt.instruction).replace(prompt.placeholder, ""))

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(behavior="isolated")])
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=["<unk>", "<s>", "</s>"])
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>")
    ids = (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    if ids != (0, 1, 2):
        raise RuntimeError(f"trained tokenizer has unk/bos/eos ids {ids}, expected (0, 1, 2)")
    return tokenizer


def build_swin_tiny(seed: int) -> SwinEncoder:
    """Build a Hugging Face Swin with the Swin-Tiny shape and random weights (49 tokens of width 768)."""
    config = SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                        num_heads=[3, 6, 12, 24], window_size=7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = SwinModel(config, add_pooling_layer=False)
    return SwinEncoder(backbone)


def build_llm(seed: int, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """Build a ``LlamaForCausalLM`` with the SmolLM2-135M shape, a 32000-token vocabulary and random weights."""
    config = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=1536, tie_word_embeddings=True,
                         rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
                         bos_token_id=1, eos_token_id=2, pad_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        llm = LlamaForCausalLM(config)
    return llm.to(dtype).eval()


def build_model(setting: str, tokenizer: Any, seed: int, llm_dtype: torch.dtype = torch.float32) -> R2GenGPT:
    """Assemble Swin-Tiny, a linear aligner and the LLM, then apply the tuning ``setting`` as the runner does."""
    encoder = build_swin_tiny(seed)
    llm = build_llm(seed + 1, llm_dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        aligner = MLPAligner(encoder.num_features, llm.config.hidden_size)
    model = R2GenGPT(encoder, aligner, llm, tokenizer)
    apply_tuning(model, SETTINGS[setting])
    model.frozen_modules = frozen_modules(model)
    return model


def build_loader(data_root: Path, split: str, tokenizer: Any, batch_size: int, max_target_tokens: int,
                 image_cache: bool, seed: int, with_targets: bool = True) -> DataLoader:
    """DataLoader over one covid_cxr split, as ``r2gen.training.build.build_loaders`` makes it.

    ``drop_last`` keeps every timed batch at ``batch_size``; the runner keeps the short last batch.
    """
    root = data_root / "covid_cxr_notes"
    if not (root / "annotation.json").is_file():
        raise FileNotFoundError(f"covid_cxr not found at {root}: set R2GEN_DATA_ROOT or pass --data-root")
    studies = load_annotation(root / "annotation.json", splits=[split])[split]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    transform = build_image_transform(224, mean, std)
    cache = None
    if image_cache:
        cache = DecodedImageCache.open_or_build(
            root / "images", [path for study in studies for path in study.image_paths], transform,
            dataset_fingerprint(root / "annotation.json"), transform_fingerprint(224, mean, std))
    clean = functools.partial(clean_report, rules="mimic_cxr")
    dataset = ReportDataset(studies, root / "images", transform, clean, image_cache=cache)
    collator = ReportCollator(tokenizer, max_target_tokens, with_targets=with_targets)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=with_targets, drop_last=True,
                      collate_fn=collator, generator=generator)


def endless(loader: DataLoader):
    while True:
        yield from loader


def reference_loss(model: R2GenGPT, batch: dict[str, Any], max_target_tokens: int) -> torch.Tensor:
    """Loss with R2GenGPT's original work pattern: fixed-length targets, full logits, eager attention."""
    target_ids, target_mask = batch["target_ids"], batch["target_mask"]
    pad = max_target_tokens - target_ids.shape[1]
    target_ids = F.pad(target_ids, (0, pad), value=0)
    target_mask = F.pad(target_mask, (0, pad), value=0)
    tokens = model.encoder(batch["pixel_values"])  # bypasses the feature cache on purpose
    prompt = model.build_prompt_embeddings(model.aligner(fuse_views(tokens, batch["view_counts"], model.view_fusion)))
    inputs = torch.cat([prompt, model.llm.get_input_embeddings()(target_ids).to(prompt.dtype)], dim=1)
    mask = torch.cat([target_mask.new_ones(prompt.shape[:2]), target_mask], dim=1)
    labels = model.build_labels(target_ids, target_mask)
    implementation = model.llm.config._attn_implementation
    model.llm.config._attn_implementation = "eager"
    try:
        return model.llm(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss
    finally:
        model.llm.config._attn_implementation = implementation


def train_step(model: R2GenGPT, optimizer: torch.optim.Optimizer, batch: dict[str, Any], variant: str,
               max_target_tokens: int, precision: str) -> float:
    """Run forward, backward, clipping at norm 1.0 and the optimizer step; return the loss."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        if variant == "reference":
            loss = reference_loss(model, batch, max_target_tokens)
        else:
            loss = model(batch["pixel_values"], batch["view_counts"], batch["target_ids"], batch["target_mask"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
