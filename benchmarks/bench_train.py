"""Measure R2GenGPT training throughput on CPU at the fixed benchmark configuration (see bench_model.py).

    python benchmarks/bench_train.py --setting shallow --variant optimized --steps 30 --warmup 5

A step is what the trainer does per batch: fetch the batch from the project's DataLoader (collator
tokenization included), ``R2GenGPT.forward``, backward, gradient clipping at norm 1.0 and an AdamW
step built by ``build_optimizer``. The defaults are fp32 and 2 torch threads.

Variants:
- ``optimized``: r2gen's path with the options given (in shallow the encoder feature cache is filled
  once before timing, as the first epoch of a run fills it, and its fill time is printed).
- ``reference``: R2GenGPT's original work pattern on the same model shapes, always fp32: targets
  padded to ``--max-target-tokens``, logits and loss at every position, eager attention, the encoder
  run every step.
- ``ab``: both, each with its own model built from the same seed, alternating step by step on the
  same batches, so machine load affects both alike. It prints the speed-up and the loss difference.
Peak RSS is the whole process, so measure it with a single-variant run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import bench_model as bench
from r2gen.models.r2gengpt import R2GenGPT, fuse_views
from r2gen.training.config import TrainerConfig
from r2gen.training.io import write_json_atomic
from r2gen.training.optim import build_optimizer

logger = logging.getLogger(__name__)


@dataclass
class Runner:
    """One variant: its model, optimizer and precision, and what its timed steps recorded."""

    variant: str
    model: R2GenGPT
    optimizer: torch.optim.Optimizer
    precision: str
    seconds: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def reference_loss(model: R2GenGPT, batch: dict[str, Any], max_target_tokens: int) -> torch.Tensor:
    """Loss with R2GenGPT's original work pattern: fixed-length targets, full logits, encoder every step."""
    target_ids, target_mask = batch["target_ids"], batch["target_mask"]
    pad = max_target_tokens - target_ids.shape[1]
    target_ids = F.pad(target_ids, (0, pad), value=0)
    target_mask = F.pad(target_mask, (0, pad), value=0)
    tokens = model.encoder(batch["pixel_values"])  # bypasses the feature cache on purpose
    visual = model.aligner(fuse_views(tokens, batch["view_counts"], model.view_fusion))
    prompt = model.build_prompt_embeddings(visual)
    inputs = torch.cat([prompt, model.llm.get_input_embeddings()(target_ids).to(prompt.dtype)], dim=1)
    mask = torch.cat([target_mask.new_ones(prompt.shape[:2]), target_mask], dim=1)
    return model.llm(inputs_embeds=inputs, attention_mask=mask, labels=model.build_labels(target_ids, target_mask)).loss


def compute_loss(runner: Runner, batch: dict[str, Any], max_target_tokens: int) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=runner.precision == "bf16"):
        if runner.variant == "reference":
            return reference_loss(runner.model, batch, max_target_tokens)
        return runner.model(batch["pixel_values"], batch["view_counts"], batch["target_ids"], batch["target_mask"])


def train_step(runner: Runner, batch: dict[str, Any], max_target_tokens: int) -> float:
    """Run forward, backward, clipping at norm 1.0 and the optimizer step; return the loss."""
    loss = compute_loss(runner, batch, max_target_tokens)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in runner.model.parameters() if p.requires_grad], 1.0)
    runner.optimizer.step()
    runner.optimizer.zero_grad(set_to_none=True)
    return loss.item()


def build_runner(variant: str, args: argparse.Namespace, tokenizer: Any) -> Runner:
    if variant == "reference":
        model = bench.build_model(args.setting, tokenizer, args.seed, torch.float32, attention="eager")
        precision = "fp32"
    else:
        model = bench.build_model(args.setting, tokenizer, args.seed, bench.DTYPES[args.llm_dtype], args.attention)
        precision = args.precision
    model.train()
    return Runner(variant, model, build_optimizer(model, TrainerConfig(lr=1e-4)), precision)


def fill_feature_cache(model: R2GenGPT, loader: torch.utils.data.DataLoader) -> float:
    """Encode every training image once, as the first epoch of a run does; return the seconds taken."""
    started = time.perf_counter()
    with torch.no_grad():
        for batch in loader:
            model.encode_images(batch["pixel_values"], batch["view_counts"])
    return time.perf_counter() - started


def run_steps(runners: list[Runner], loader: torch.utils.data.DataLoader, args: argparse.Namespace) -> None:
    """Time ``args.steps`` steps per runner after ``args.warmup`` untimed ones; every runner gets the same batch."""
    batches = bench.endless(loader)
    for step in range(args.warmup + args.steps):
        fetch_started = time.perf_counter()
        batch = next(batches)
        fetch_seconds = time.perf_counter() - fetch_started
        for runner in runners:
            # The same seed per step gives every variant the same dropout and drop-path masks.
            torch.manual_seed(args.seed + step)
            started = time.perf_counter()
            loss = train_step(runner, batch, args.max_target_tokens)
            # Every runner is charged the batch fetch, as a training loop pays it once per step.
            elapsed = time.perf_counter() - started + fetch_seconds
            if step < args.warmup:
                continue
            runner.seconds.append(elapsed)
            runner.samples.append(len(batch["ids"]))
            runner.tokens.append(int(batch["target_mask"].sum()))
            runner.loads.append(os.getloadavg()[0])
            runner.losses.append(loss)
        logger.info("step %d done: %s", step, {r.variant: r.seconds[-1] if r.seconds else None for r in runners})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--setting", choices=sorted(bench.SETTINGS), default="shallow",
                        help="shallow (encoder frozen), lora (LoRA on the encoder) or deep (encoder trained)")
    parser.add_argument("--variant", choices=["optimized", "reference", "ab"], default="optimized",
                        help="which path to time (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="optimized variant: bf16 runs the forward under CPU autocast, as trainer.precision=bf16")
    parser.add_argument("--llm-dtype", choices=sorted(bench.DTYPES), default="float32",
                        help="optimized variant: storage dtype of the frozen LLM; bfloat16 needs --precision bf16")
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa",
                        help="optimized variant: LLM attention implementation (default: %(default)s)")
    parser.add_argument("--no-feature-cache", action="store_true", help="optimized shallow: encode images every step")
    parser.add_argument("--image-cache", action="store_true",
                        help="read decoded images from the project's image cache instead of decoding every step")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="studies per batch (default: %(default)s)")
    parser.add_argument("--max-target-tokens", type=int, default=60, help="target length cap (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and the shuffle")
    parser.add_argument("--data-root", type=Path, default=bench.default_data_root(),
                        help="folder with covid_cxr_notes/ and iu_xray/ (default: $R2GEN_DATA_ROOT or ../shared/data)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="log every step")
    args = parser.parse_args()
    if args.llm_dtype == "bfloat16" and args.precision != "bf16":
        parser.error("--llm-dtype bfloat16 needs --precision bf16, because fp32 inputs cannot meet bf16 weights")
    return args


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    rss_after_imports = bench.current_rss_gb()

    tokenizer = bench.build_tokenizer(args.data_root)
    variants = ["reference", "optimized"] if args.variant == "ab" else [args.variant]
    runners = [build_runner(variant, args, tokenizer) for variant in variants]
    loader = bench.build_loader(args.data_root, "train", tokenizer, args.batch_size, args.max_target_tokens,
                                args.image_cache, args.seed)
    optimized = next((runner for runner in runners if runner.variant == "optimized"), None)
    fill_seconds = None
    if optimized is not None and args.setting == "shallow" and not args.no_feature_cache:
        optimized.model.enable_feature_cache()
        fill_seconds = fill_feature_cache(optimized.model, loader)
    run_steps(runners, loader, args)

    machine = bench.machine_description(args.threads)
    print(f"machine: {json.dumps(machine)}")
    print(f"load average (1/5/15 min) at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    print(f"training, setting {args.setting}: batch {args.batch_size}, max target tokens {args.max_target_tokens}, "
          f"optimized = precision {args.precision}, LLM weights {args.llm_dtype}, attention {args.attention}, "
          f"feature cache {optimized is not None and fill_seconds is not None}; image cache {args.image_cache}; "
          f"{len(loader)} batches per epoch")
    print(bench.describe_prompt(runners[0].model, tokenizer))
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine}
    for runner in runners:
        samples = bench.summarize(runner.seconds, runner.samples, runner.loads)
        tokens = bench.summarize(runner.seconds, runner.tokens, runner.loads)
        print(bench.format_result(f"{runner.variant} training", "samples", samples))
        print(f"  {tokens['rate_median']:.1f} target tokens/s at the median step; loss {runner.losses[0]:.4f} "
              f"at the first timed step, {runner.losses[-1]:.4f} at the last")
        results[runner.variant] = {"samples": samples, "tokens": tokens, "losses": runner.losses}
    if fill_seconds is not None:
        per_batch = fill_seconds / len(loader)
        print(f"feature cache: {len(optimized.model.feature_cache)} images encoded in {fill_seconds:.2f} s "
              f"({per_batch:.3f} s per batch, paid once, in the first epoch)")
        results["feature_cache_fill_s"] = fill_seconds
    if args.variant == "ab":
        reference, fast = runners
        print(bench.speedup_line(reference.seconds, fast.seconds))
        difference = max(abs(a - b) for a, b in zip(reference.losses, fast.losses))
        print(f"largest loss difference between the variants over {len(fast.losses)} identical steps: {difference:.2e}")
        results["max_loss_difference"] = difference
    results["peak_rss_gb"] = bench.peak_rss_gb()
    results["rss_after_imports_gb"] = rss_after_imports
    print(f"peak RSS of this process: {results['peak_rss_gb']:.2f} GB ({rss_after_imports:.2f} GB of it "
          f"after imports alone); load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
