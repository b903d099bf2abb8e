"""Measure R2GenGPT report generation throughput on CPU at the fixed benchmark configuration (see bench_model.py).

    python benchmarks/bench_generate.py --variant optimized --steps 30 --warmup 2

A step generates the reports of one batch of 4 covid_cxr validation studies, data loading and the
encoder included: beam 3, 40 to 100 new tokens, repetition penalty 2.0, length penalty 2.0. With
random weights no beam emits EOS, so every report runs to 100 tokens. Tokens/s counts the ids
generated up to and including the first EOS. The defaults are fp32 and 2 torch threads.

Variants:
- ``optimized``: ``R2GenGPT.generate_ids`` as the trainer calls it (prompt encoded once per study).
- ``reference``: plain Hugging Face ``generate`` on the beam-expanded prompt with eager attention and
  the default dynamic cache, always fp32, as R2GenGPT's code generates.
- ``ab``: both, each with its own model built from the same seed, alternating batch by batch. It
  prints the speed-up and how far the generated ids agree.
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

import bench_model as bench
from r2gen.models.llm import load_smollm2
from r2gen.models.r2gengpt import GenerationConfig, R2GenGPT
from r2gen.training.io import write_json_atomic

logger = logging.getLogger(__name__)


@dataclass
class Generator:
    """One variant: its model and precision, and what its timed batches recorded."""

    variant: str
    model: R2GenGPT
    precision: str
    seconds: list[float] = field(default_factory=list)
    reports: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)


def count_generated(ids: torch.Tensor, eos_id: int) -> int:
    """Count the generated ids of every row up to and including its first EOS (all of them without one)."""
    total = 0
    for row in ids.tolist():
        total += row.index(eos_id) + 1 if eos_id in row else len(row)
    return total


def generate(generator: Generator, batch: dict[str, Any], config: GenerationConfig) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=generator.precision == "bf16"):
        return generator.model.generate_ids(batch["pixel_values"], batch["view_counts"], config)


def build_generator(variant: str, args: argparse.Namespace, tokenizer: Any) -> Generator:
    reference = variant == "reference"
    dtype = torch.float32 if reference else bench.DTYPES[args.llm_dtype]
    llm = None
    if args.llm_weights == "smollm2":
        llm, tokenizer = load_smollm2(dtype=str(dtype).removeprefix("torch."))
    attention = "eager" if reference else args.attention
    model = bench.build_model("shallow", tokenizer, args.seed, dtype, attention, llm=llm)
    precision = "fp32" if reference else args.precision
    if reference:
        model.share_prompt_cache = False
        model.cache_prefix = False
    model.eval()
    return Generator(variant, model, precision)


def run_batches(generators: list[Generator], loader: torch.utils.data.DataLoader, config: GenerationConfig,
                args: argparse.Namespace) -> None:
    """Time ``args.steps`` batches per variant after ``args.warmup`` untimed ones; all variants get the same batch."""
    batches = bench.endless(loader)
    eos_id = generators[0].model.tokenizer.eos_token_id
    for step in range(args.warmup + args.steps):
        fetch_started = time.perf_counter()
        batch = next(batches)
        fetch_seconds = time.perf_counter() - fetch_started
        for generator in generators:
            started = time.perf_counter()
            ids = generate(generator, batch, config)
            elapsed = time.perf_counter() - started + fetch_seconds
            if step < args.warmup:
                continue
            generator.seconds.append(elapsed)
            generator.reports.append(ids.shape[0])
            generator.tokens.append(count_generated(ids, eos_id))
            generator.loads.append(os.getloadavg()[0])
            generator.outputs.append(ids)
        logger.info("batch %d done: %s", step, {g.variant: g.seconds[-1] if g.seconds else None for g in generators})


def common_prefix_length(first: list[int], second: list[int]) -> int:
    length = 0
    for a, b in zip(first, second):
        if a != b:
            break
        length += 1
    return length


def compare_outputs(reference: Generator, optimized: Generator) -> str:
    """Describe how far the two variants' generated ids agree (beam search diverges for good at the first change)."""
    same = sum(torch.equal(a, b) for a, b in zip(reference.outputs, optimized.outputs))
    rows = [(a, b) for first, second in zip(reference.outputs, optimized.outputs)
            for a, b in zip(first.tolist(), second.tolist())]
    prefixes = [common_prefix_length(a, b) for a, b in rows]
    identical = sum(a == b for a, b in rows)
    return (f"generated ids identical in {same} of {len(reference.outputs)} batches and {identical} of "
            f"{len(rows)} reports; the first {sum(prefixes) / len(rows):.1f} ids agree on average "
            f"(min {min(prefixes)})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--variant", choices=["optimized", "reference", "ab"], default="optimized",
                        help="which path to time (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="timed batches per variant (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first (default: %(default)s)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="optimized variant: bf16 runs generation under CPU autocast")
    parser.add_argument("--llm-dtype", choices=sorted(bench.DTYPES), default="float32",
                        help="optimized variant: storage dtype of the frozen LLM; bfloat16 needs --precision bf16")
    parser.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa",
                        help="optimized variant: LLM attention implementation (default: %(default)s)")
    parser.add_argument("--llm-weights", choices=["random", "smollm2"], default="random",
                        help="random benchmark LLM, or trained SmolLM2-135M-Instruct with its own tokenizer and "
                             "49152-token vocabulary (to see how bf16 changes real generations)")
    parser.add_argument("--split", default="val", help="covid_cxr split to generate for (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="studies per batch (default: %(default)s)")
    parser.add_argument("--num-beams", type=int, default=3, help="beam width (default: %(default)s)")
    parser.add_argument("--min-new-tokens", type=int, default=40,
                        help="minimum new tokens per report (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=100,
                        help="maximum new tokens per report (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--data-root", type=Path, default=bench.default_data_root(),
                        help="folder with covid_cxr_notes/ and iu_xray/ (default: $R2GEN_DATA_ROOT or ../shared/data)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="log every batch")
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
    generators = [build_generator(variant, args, tokenizer) for variant in variants]
    loader = bench.build_loader(args.data_root, args.split, tokenizer, args.batch_size, 60, False, args.seed,
                                with_targets=False)
    config = GenerationConfig(num_beams=args.num_beams, min_new_tokens=args.min_new_tokens,
                              max_new_tokens=args.max_new_tokens, repetition_penalty=2.0, length_penalty=2.0)
    run_batches(generators, loader, config, args)

    machine = bench.machine_description(args.threads)
    print(f"machine: {json.dumps(machine)}")
    print(f"load average (1/5/15 min) at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    print(f"generation on covid_cxr {args.split}: batch {args.batch_size}, beams {args.num_beams}, new tokens "
          f"{args.min_new_tokens}-{args.max_new_tokens}, repetition penalty 2.0, length penalty 2.0; optimized = "
          f"precision {args.precision}, LLM weights {args.llm_dtype}, attention {args.attention}; "
          f"{len(loader)} distinct batches, reused in turn")
    print(bench.describe_prompt(generators[0].model, generators[0].model.tokenizer))
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine}
    for generator in generators:
        reports = bench.summarize(generator.seconds, generator.reports, generator.loads)
        tokens = bench.summarize(generator.seconds, generator.tokens, generator.loads)
        print(bench.format_result(f"{generator.variant} generation", "reports", reports))
        print(f"  {tokens['rate_median']:.1f} generated tokens/s at the median step "
              f"({tokens['rate_best']:.1f} at the fastest, {tokens['rate_worst']:.1f} at the slowest)")
        results[generator.variant] = {"reports": reports, "tokens": tokens}
    if args.variant == "ab":
        reference, optimized = generators
        print(bench.speedup_line(reference.seconds, optimized.seconds))
        print(compare_outputs(reference, optimized))
    results["peak_rss_gb"] = bench.peak_rss_gb()
    results["rss_after_imports_gb"] = rss_after_imports
    print(f"peak RSS of this process: {results['peak_rss_gb']:.2f} GB ({rss_after_imports:.2f} GB of it "
          f"after imports alone); load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    main()
