"""The CPU benchmark configuration shared by bench_train.py and bench_generate.py, and their report helpers.

Configuration (fixed shapes, random weights, real data):
- encoder: Hugging Face Swin with the Swin-Tiny shape (embed 96, depths 2/2/6/2, heads 3/6/12/24,
  window 7, 224 px), random weights from the seed;
- LLM: ``LlamaForCausalLM`` with the SmolLM2-135M shape (hidden 576, 30 layers, 9 heads, 3 key/value
  heads, intermediate 1536, tied embeddings, rope_theta 100000) and a 32000-token vocabulary;
- tokenizer: BPE trained here on the covid_cxr and IU X-ray report texts, with Llama-2's ids
  (unk 0, bos 1, eos 2, no pad token);
- data: covid_cxr through the project's ReportDataset, ReportCollator and DataLoader, batch 4,
  at most 60 target tokens.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import statistics
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, SwinConfig, SwinModel

from r2gen.data.annotation import load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.collate import ReportCollator
from r2gen.data.dataset import ReportDataset, build_image_transform, transform_fingerprint
from r2gen.models.aligner import MLPAligner
from r2gen.models.encoders import IMAGENET_MEAN, IMAGENET_STD, SwinEncoder
from r2gen.models.r2gengpt import PromptConfig, R2GenGPT
from r2gen.models.tuning import TuningConfig, apply_tuning, frozen_modules

VOCAB_SIZE = 32000
IMAGE_SIZE = 224
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

    The corpus is too small to fill 32000 entries, so the trained vocabulary is smaller. The LLM's
    embedding and LM head still have ``VOCAB_SIZE`` rows, and those set their cost.
    """
    covid = data_root / "covid_cxr_notes" / "annotation.json"
    texts = [clean_report(study.report, "mimic_cxr") for split in load_annotation(covid).values() for study in split]
    iu_path = data_root / "iu_xray" / "extras" / "annotation_r2gen_full_reports_only.json"
    if iu_path.is_file():
        texts += [clean_report(study.report, "iu_xray") for split in load_annotation(iu_path).values()
                  for study in split]
    prompt = PromptConfig()
    texts.append(prompt.template.format(instruction=prompt.instruction).replace(prompt.placeholder, ""))

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    # Splitting punctuation off keeps the prompt close to its Llama-2 length (7 + 23 ids there).
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
    config = SwinConfig(image_size=IMAGE_SIZE, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
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


def build_model(setting: str, tokenizer: Any, seed: int, llm_dtype: torch.dtype = torch.float32,
                attention: str = "sdpa", llm: LlamaForCausalLM | None = None) -> R2GenGPT:
    """Assemble Swin-Tiny, a linear aligner and the LLM, then apply the tuning ``setting`` as the runner does.

    ``llm`` replaces the random benchmark LLM, for example with trained weights (``tokenizer`` must match it).
    """
    encoder = build_swin_tiny(seed)
    llm = llm if llm is not None else build_llm(seed + 1, llm_dtype)
    llm.config._attn_implementation = attention
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        aligner = MLPAligner(encoder.num_features, llm.config.hidden_size)
    model = R2GenGPT(encoder, aligner, llm, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)  # LoRA initialises its A matrices from the global generator
        apply_tuning(model, SETTINGS[setting])
    model.frozen_modules = frozen_modules(model)
    return model


def build_loader(data_root: Path, split: str, tokenizer: Any, batch_size: int, max_target_tokens: int,
                 image_cache: bool, seed: int, with_targets: bool = True) -> DataLoader:
    """DataLoader over one covid_cxr split, built as ``r2gen.training.build.build_loaders`` builds it.

    ``drop_last`` keeps every timed batch at ``batch_size``; the runner keeps the short last batch.
    """
    root = data_root / "covid_cxr_notes"
    if not (root / "annotation.json").is_file():
        raise FileNotFoundError(f"covid_cxr not found at {root}: set R2GEN_DATA_ROOT or pass --data-root")
    studies = load_annotation(root / "annotation.json", splits=[split])[split]
    transform = build_image_transform(IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD)
    cache = None
    if image_cache:
        # Imported here because the datasets/pyarrow import adds to the peak RSS this script reports.
        from r2gen.data.cache import DecodedImageCache
        from r2gen.data.manifest import dataset_fingerprint

        cache = DecodedImageCache.open_or_build(
            root / "images", [path for study in studies for path in study.image_paths], transform,
            dataset_fingerprint(root / "annotation.json"),
            transform_fingerprint(IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD))
    clean = functools.partial(clean_report, rules="mimic_cxr")
    dataset = ReportDataset(studies, root / "images", transform, clean, image_cache=cache)
    collator = ReportCollator(tokenizer, max_target_tokens, with_targets=with_targets)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=with_targets, drop_last=True,
                      collate_fn=collator, generator=generator)


def endless(loader: DataLoader):
    while True:
        yield from loader


# ----- report helpers --------------------------------------------------------------------------------
def machine_description(threads: int) -> dict[str, Any]:
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpuinfo = handle.read()
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {"cpu": names[0] if names else platform.machine(), "cpus": os.cpu_count(), "torch_threads": threads,
            "avx512_bf16": "avx512_bf16" in cpuinfo, "amx": "amx_tile" in cpuinfo, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def current_rss_gb() -> float:
    with open("/proc/self/statm", encoding="utf-8") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3


def peak_rss_gb() -> float:
    # Linux reports ru_maxrss in KiB; this is the peak of the whole process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def summarize(seconds: list[float], units: list[float], loads: list[float]) -> dict[str, float]:
    """Median, min and max step time, and the rate of ``units`` per second at each of them."""
    median = statistics.median(seconds)
    per_step = statistics.mean(units)
    return {"steps": len(seconds), "median_s": median, "min_s": min(seconds), "max_s": max(seconds),
            "rate_median": per_step / median, "rate_best": per_step / min(seconds),
            "rate_worst": per_step / max(seconds), "load_median": statistics.median(loads)}


def format_result(name: str, unit: str, result: dict[str, float]) -> str:
    return (f"{name}: {result['rate_median']:.3f} {unit}/s at the median step of {result['median_s']:.3f} s "
            f"(min {result['min_s']:.3f} s = {result['rate_best']:.3f} {unit}/s, max {result['max_s']:.3f} s = "
            f"{result['rate_worst']:.3f} {unit}/s) over {result['steps']} steps; median load avg "
            f"{result['load_median']:.2f}")


def describe_prompt(model: R2GenGPT, tokenizer: Any) -> str:
    return (f"tokenizer: {len(tokenizer)} entries (LLM vocabulary {model.llm.config.vocab_size}); prompt = "
            f"{len(model.prefix_ids)} prefix ids (BOS included) + {model.encoder.num_tokens} visual tokens + "
            f"{len(model.suffix_ids)} suffix ids = {model.prompt_length} positions")


def speedup_line(reference: list[float], optimized: list[float]) -> str:
    pairs = [slow / fast for slow, fast in zip(reference, optimized)]
    return (f"speed-up of optimized over reference: {statistics.median(reference) / statistics.median(optimized):.2f}x "
            f"(ratio of median step times), {statistics.median(pairs):.2f}x (median of per-step ratios)")
