"""Resume after SIGKILL: the resumed run repeats the uninterrupted run's losses step for step.

Run A trains 8 steps without a break. Run B saves every 2 steps and is killed with SIGKILL after step 5,
so its last saved state is step 4, in the middle of the second epoch (3 steps per epoch). B then resumes
with ``resume=true`` and must reproduce A's loss, learning rate and gradient norm at every step: this
needs the weights, optimizer, scheduler, sampler position and RNG states (LoRA dropout, stochastic
depth) to be restored exactly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from training_helpers import REPO_ROOT, TINY, read_jsonl, run_command, run_env, run_r2gen
from r2gen.training.state import HANG_AFTER_STEP_ENV

pytestmark = pytest.mark.slow

KILL_AFTER_STEP = 5


def overrides(data: Path, run_dir: Path) -> list[str]:
    return TINY + ["tuning=lora", f"data.root={data}", "trainer.batch_size=2", "trainer.eval_batch_size=3",
                   "trainer.max_steps=8", "trainer.save_every_steps=2", "trainer.eval_every_epochs=100",
                   f"hydra.run.dir={run_dir}"]


def start_and_kill(data_root: Path, data: Path, run_dir: Path) -> None:
    """Start run B, wait until it has logged step KILL_AFTER_STEP, and SIGKILL it."""
    env = {**run_env(data_root), HANG_AFTER_STEP_ENV: str(KILL_AFTER_STEP)}
    process = subprocess.Popen(run_command(overrides(data, run_dir)), env=env, cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log_path = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 600
    try:
        while not (log_path.is_file() and any(row["step"] == KILL_AFTER_STEP for row in read_jsonl(log_path))):
            if process.poll() is not None:
                raise AssertionError(f"run B ended before step {KILL_AFTER_STEP}: {process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"run B did not reach step {KILL_AFTER_STEP} within 600 s")
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


def test_resume_after_sigkill_matches_uninterrupted(data_root, small_covid, tmp_path):
    uninterrupted = run_r2gen(overrides(small_covid, tmp_path / "A"), data_root)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    resumed_dir = tmp_path / "B"
    start_and_kill(data_root, small_covid, resumed_dir)
    saved = json.loads((resumed_dir / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert saved["step"] == 4
    assert saved["epoch"] == 1
    assert saved["batches_in_epoch"] == 1
    assert not (resumed_dir / "metrics.json").exists()

    resumed = run_r2gen(overrides(small_covid, resumed_dir) + ["resume=true"], data_root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout

    expected = read_jsonl(tmp_path / "A" / "train_log.jsonl")
    actual = read_jsonl(resumed_dir / "train_log.jsonl")
    assert [row["step"] for row in actual] == list(range(1, 9))
    assert [row["epoch"] for row in actual] == [0, 0, 0, 1, 1, 1, 2, 2]
    for before, after in zip(expected, actual):
        assert after["loss"] == before["loss"], f"loss differs at step {before['step']}"
        assert after["lr"] == before["lr"], f"learning rate differs at step {before['step']}"
        assert after["grad_norm"] == before["grad_norm"], f"gradient norm differs at step {before['step']}"

    best_a = load_file(tmp_path / "A" / "checkpoints" / "best.safetensors")
    best_b = load_file(resumed_dir / "checkpoints" / "best.safetensors")
    assert best_a.keys() == best_b.keys()
    assert any("lora_" in name for name in best_a)
    for name, tensor in best_a.items():
        assert tensor.equal(best_b[name]), name
    metrics_a = json.loads((tmp_path / "A" / "metrics.json").read_text())
    metrics_b = json.loads((resumed_dir / "metrics.json").read_text())
    assert metrics_b["train"]["steps"] == 8
    assert metrics_b["test"]["BLEU_4"] == metrics_a["test"]["BLEU_4"]
    assert metrics_b["test"]["CIDEr"] == metrics_a["test"]["CIDEr"]


def test_resume_rejects_other_process_count(data_root, small_covid, tmp_path):
    run_dir = tmp_path / "run"
    state_dir = run_dir / "checkpoints" / "last"
    state_dir.mkdir(parents=True)
    (state_dir / "trainer_state.json").write_text(json.dumps({"epoch": 0, "step": 2, "world_size": 2}))
    result = run_r2gen(overrides(small_covid, run_dir) + ["resume=true"], data_root, timeout=300)
    assert result.returncode != 0
    assert "was saved by 2 process(es) but this run has 1" in result.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"
