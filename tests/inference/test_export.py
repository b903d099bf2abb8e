"""Export round trip: an exported folder loads without the run and predicts what the run predicts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

from r2gen.training.inference import (EXPORT_MANIFEST, ModelSourceError, generation_settings, load_generator,
                                      locate_model)
from r2gen.training.model_export import export_model, merge_lora_layers
from r2gen.training.study_inputs import StudyInput


@pytest.fixture(scope="module")
def studies(dataset_root: Path) -> list[StudyInput]:
    images = dataset_root / "images"
    return [StudyInput("test-a", (images / "test-a" / "0.png", images / "test-a" / "1.jpg")),
            StudyInput("test-b", (images / "test-b" / "0.png",))]


@pytest.fixture(scope="module")
def run_reports(tiny_run: Path, studies: list[StudyInput]) -> list[str]:
    generator = load_generator(tiny_run, device="cpu")
    return generator.generate(studies, generation_settings(generator.source.config), progress=False)


def moved_copy(folder: Path, destination: Path) -> Path:
    """Move an exported folder elsewhere, so a load cannot depend on the run directory's layout."""
    shutil.copytree(folder, destination)
    shutil.rmtree(folder)
    return destination


def test_export_without_merge_round_trip(tiny_run: Path, tmp_path: Path, studies, run_reports) -> None:
    exported = moved_copy(export_model(tiny_run, tmp_path / "model"), tmp_path / "elsewhere")
    assert sorted(path.name for path in exported.iterdir()) == [
        "config.yaml", EXPORT_MANIFEST, "trainable.safetensors"]
    run_weights = load_file(str(tiny_run / "checkpoints" / "best.safetensors"))
    exported_weights = load_file(str(exported / "trainable.safetensors"))
    assert sorted(exported_weights) == sorted(run_weights)

    generator = load_generator(exported, device="cpu")
    assert generator.source.kind == "export"
    reports = generator.generate(studies, generation_settings(generator.source.config), progress=False)
    assert reports == run_reports


def test_export_readable_by_others(tiny_run: Path, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        exported = export_model(tiny_run, tmp_path / "model")
    finally:
        os.umask(old_umask)
    assert exported.stat().st_mode & 0o777 == 0o755
    for path in exported.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_export_config_keeps_model_part_only(tiny_run: Path, tmp_path: Path) -> None:
    config = OmegaConf.load(export_model(tiny_run, tmp_path / "model") / "config.yaml")
    run_config = OmegaConf.load(tiny_run / "config.yaml")
    assert sorted(config) == ["aligner", "encoder", "generation", "llm", "model", "trainer", "tuning"]
    assert config.trainer.precision == run_config.trainer.precision
    assert config.generation == run_config.generation
    assert config.tuning.encoder == "lora"


def test_manifest_records_source_and_tokenizer(tiny_run: Path, tmp_path: Path) -> None:
    manifest = json.loads((export_model(tiny_run, tmp_path / "model") / EXPORT_MANIFEST).read_text())
    assert manifest["format_version"] == 1
    assert manifest["source_run"] == str(tiny_run.resolve())
    assert manifest["source_checkpoint_metadata"] == {"epoch": 1, "step": 2, "score": 0.1}
    assert manifest["merged_lora_layers"] == 0
    assert manifest["tokenizer"]["eos_token_id"] == 2
    assert len(manifest["tokenizer"]["vocab_sha256"]) == 64


def test_merged_export_round_trip(tiny_run: Path, tmp_path: Path, studies, run_reports) -> None:
    exported = export_model(tiny_run, tmp_path / "merged", merge_lora=True)
    config = OmegaConf.load(exported / "config.yaml")
    weights = load_file(str(exported / "trainable.safetensors"))
    manifest = json.loads((exported / EXPORT_MANIFEST).read_text())
    assert config.tuning.encoder == "full"
    assert manifest["merged_lora_layers"] == 6
    assert not [name for name in weights if "lora_" in name or "base_layer" in name]
    assert any(name.endswith("q_proj.weight") for name in weights)

    generator = load_generator(exported, device="cpu")
    assert not any(isinstance(module, BaseTunerLayer) for module in generator.model.modules())
    reports = generator.generate(studies, generation_settings(generator.source.config), progress=False)
    assert reports == run_reports


def test_merged_encoder_matches_lora_encoder(tiny_run: Path, studies) -> None:
    generator = load_generator(tiny_run, device="cpu")
    pixels = generator.load_views(studies[0])
    encoder = generator.model.encoder
    with torch.no_grad():
        before = encoder(pixels)
        merged = merge_lora_layers(encoder)
        after = encoder(pixels)
    assert merged == 6
    assert torch.allclose(before, after, atol=1e-5)
    # The fixture's LoRA weights are non-zero, so the merge changed the base weights.
    base = load_generator(tiny_run, device="cpu").model.encoder
    for module in base.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(False)
    with torch.no_grad():
        assert not torch.allclose(base(pixels), after, atol=1e-3)


def test_merge_without_lora_warns_and_keeps_keys(tmp_path: Path, dataset_root: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from inference_helpers import make_run

    run = make_run(tmp_path / "shallow", dataset_root, tuning="shallow")
    exported = export_model(run, tmp_path / "model", merge_lora=True)
    assert "nothing to merge" in caplog.text
    assert OmegaConf.load(exported / "config.yaml").tuning.encoder == "frozen"
    assert sorted(load_file(str(exported / "trainable.safetensors"))) == sorted(
        load_file(str(run / "checkpoints" / "best.safetensors")))


def test_existing_output_needs_overwrite(tiny_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "model"
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(tiny_run, output)
    export_model(tiny_run, output, overwrite=True)
    assert not (output / "old.txt").exists()
    assert (output / "trainable.safetensors").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_exported_folder_cannot_be_exported_again(tiny_run: Path, tmp_path: Path) -> None:
    exported = export_model(tiny_run, tmp_path / "model")
    with pytest.raises(ModelSourceError, match="already an exported model folder"):
        export_model(exported, tmp_path / "again")


def test_tokenizer_mismatch_rejected(tiny_run: Path, tmp_path: Path) -> None:
    exported = export_model(tiny_run, tmp_path / "model")
    manifest = json.loads((exported / EXPORT_MANIFEST).read_text())
    manifest["tokenizer"]["vocab_size"] += 1
    (exported / EXPORT_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelSourceError, match="tokenizer"):
        load_generator(exported, device="cpu")


def test_exported_folder_without_weights_rejected(tiny_run: Path, tmp_path: Path) -> None:
    exported = export_model(tiny_run, tmp_path / "model")
    (exported / "trainable.safetensors").unlink()
    with pytest.raises(ModelSourceError, match="trainable.safetensors"):
        locate_model(exported)
