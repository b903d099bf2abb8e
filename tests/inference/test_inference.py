"""Loading a saved run on CPU and generating reports for new studies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from inference_helpers import write_image

from r2gen.data.dataset import build_image_transform
from r2gen.data.images import load_image
from r2gen.training.build import build_model
from r2gen.training.checkpoint import CheckpointError, load_trainable
from r2gen.training.inference import (ModelSourceError, apply_config_overrides, generation_settings,
                                      load_generator, locate_model, prediction_rows, resolve_precision,
                                      write_prediction_rows)
from r2gen.training.study_inputs import StudyInput, studies_from_folder


@pytest.fixture(scope="module")
def generator(tiny_run: Path):
    return load_generator(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def sample_studies(dataset_root: Path) -> list[StudyInput]:
    images = dataset_root / "images"
    return [StudyInput("test-a", (images / "test-a" / "0.png", images / "test-a" / "1.jpg")),
            StudyInput("test-b", (images / "test-b" / "0.png",)),
            StudyInput("test-c", (images / "test-c" / "0.png",))]


def reference_reports(run_dir: Path, studies: list[StudyInput]) -> list[str]:
    """Generate with the model built and loaded by hand, one study per call."""
    config = OmegaConf.load(run_dir / "config.yaml")
    model = build_model(config)
    load_trainable(model, run_dir / "checkpoints" / "best.safetensors")
    model.eval()
    encoder = model.encoder
    transform = build_image_transform(encoder.image_size, encoder.image_mean, encoder.image_std)
    settings = generation_settings(config)
    reports = []
    for study in studies:
        pixels = torch.stack([transform(load_image(path)) for path in study.image_paths])
        reports.extend(model.generate(pixels, torch.tensor([len(study.image_paths)]), settings))
    return reports


def test_loads_run_checkpoint_weights(generator, tiny_run: Path) -> None:
    saved = load_file(str(tiny_run / "checkpoints" / "best.safetensors"))
    parameters = dict(generator.model.named_parameters())
    assert generator.source.kind == "run"
    assert generator.device == torch.device("cpu")
    assert not generator.model.training
    for name, tensor in saved.items():
        assert torch.equal(parameters[name].detach(), tensor), name


def test_generate_matches_manual_model(generator, tiny_run: Path, sample_studies: list[StudyInput]) -> None:
    settings = generation_settings(generator.source.config)
    reports = generator.generate(sample_studies, settings, batch_size=2, progress=False)
    assert reports == reference_reports(tiny_run, sample_studies)
    assert all(reports)


def test_batch_size_does_not_change_reports(generator, sample_studies: list[StudyInput]) -> None:
    settings = generation_settings(generator.source.config)
    unbatched = generator.generate(sample_studies, settings, batch_size=1, progress=False)
    batched = generator.generate(sample_studies, settings, batch_size=3, progress=False)
    assert unbatched == batched


def test_views_change_the_report_input(generator, sample_studies: list[StudyInput]) -> None:
    # The two-view study is fused by mean, so dropping a view must change the visual tokens.
    model = generator.model
    both = generator.load_views(sample_studies[0])
    with torch.no_grad():
        fused = model.encode_images(both, torch.tensor([2]))
        single = model.encode_images(both[:1], torch.tensor([1]))
    assert both.shape == (2, 3, model.encoder.image_size, model.encoder.image_size)
    assert not torch.allclose(fused, single)


def test_generation_overrides_apply(generator) -> None:
    base = generation_settings(generator.source.config)
    changed = generation_settings(generator.source.config, {"num_beams": 2, "max_new_tokens": 3, "top_p": None})
    assert base.num_beams == 1
    assert base.max_new_tokens == 6
    assert changed.num_beams == 2
    assert changed.max_new_tokens == 3
    assert changed.top_p == base.top_p
    with pytest.raises(ValueError, match="unknown generation setting"):
        generation_settings(generator.source.config, {"beams": 2})


def test_max_new_tokens_override_limits_length(generator, sample_studies: list[StudyInput]) -> None:
    settings = generation_settings(generator.source.config, {"min_new_tokens": 1, "max_new_tokens": 1})
    reports = generator.generate(sample_studies, settings, progress=False)
    tokenizer = generator.model.tokenizer
    assert all(len(tokenizer(report, add_special_tokens=False)["input_ids"]) <= 1 for report in reports)


def test_prediction_rows_record_settings(generator, sample_studies: list[StudyInput], tmp_path: Path) -> None:
    settings = generation_settings(generator.source.config, {"num_beams": 2})
    rows = prediction_rows(sample_studies[:2], ["first", "second"], settings, generator.source)
    write_prediction_rows(tmp_path / "out.jsonl", rows)
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in written] == ["test-a", "test-b"]
    assert written[0]["image_paths"] == [str(path) for path in sample_studies[0].image_paths]
    assert written[1]["report"] == "second"
    assert written[0]["generation"]["num_beams"] == 2
    assert written[0]["generation"]["max_new_tokens"] == 6
    assert written[0]["checkpoint"] == str(generator.source.checkpoint)


def test_folder_studies_generate_in_order(generator, dataset_root: Path) -> None:
    studies = studies_from_folder(dataset_root / "images" / "test-a")
    settings = generation_settings(generator.source.config)
    reports = generator.generate(studies, settings, progress=False)
    assert [study.id for study in studies] == ["0", "1"]
    assert len(reports) == 2


def test_run_without_best_checkpoint_rejected(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "config.yaml", run / "config.yaml")
    with pytest.raises(ModelSourceError) as caught:
        locate_model(run)
    assert str(run / "checkpoints" / "best.safetensors") in str(caught.value)
    assert "checkpoint=" in str(caught.value)


def test_explicit_checkpoint_used(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "config.yaml", run / "config.yaml")
    last = run / "checkpoints" / "last" / "trainable.safetensors"
    last.parent.mkdir(parents=True)
    shutil.copy(tiny_run / "checkpoints" / "best.safetensors", last)
    assert locate_model(run, last).checkpoint == last
    with pytest.raises(ModelSourceError, match="checkpoint file not found"):
        locate_model(run, run / "nope.safetensors")


def test_folder_without_config_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="config.yaml"):
        locate_model(tmp_path)
    with pytest.raises(ModelSourceError, match="model folder not found"):
        locate_model(tmp_path / "missing")


def test_mismatched_tuning_fails_strict_load(tiny_run: Path, tmp_path: Path) -> None:
    # The checkpoint contains LoRA weights, so a config with a frozen encoder must reject it.
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = OmegaConf.load(run / "config.yaml")
    config.tuning.encoder = "frozen"
    (run / "config.yaml").write_text(OmegaConf.to_yaml(config))
    with pytest.raises(CheckpointError) as caught:
        load_generator(run, device="cpu")
    assert str(run / "checkpoints" / "best.safetensors") in str(caught.value)
    assert "unexpected keys" in str(caught.value)


def test_config_overrides_change_existing_keys(tiny_run: Path) -> None:
    config = OmegaConf.load(tiny_run / "config.yaml")
    changed = apply_config_overrides(config, ["llm.seed=5", "model.view_fusion=first"])
    assert changed.llm.seed == 5
    assert changed.model.view_fusion == "first"
    assert config.llm.seed == 0
    with pytest.raises(ModelSourceError, match="invalid config override"):
        apply_config_overrides(config, ["llm.not_a_key=1"])
    with pytest.raises(ModelSourceError, match="invalid config override"):
        apply_config_overrides(config, ["llm.seed"])


def test_precision_follows_device(tiny_run: Path) -> None:
    config = OmegaConf.create({"trainer": {"precision": "bf16"}})
    assert resolve_precision(config, torch.device("cpu"), None) == "fp32"
    assert resolve_precision(config, torch.device("cuda"), None) == "bf16"
    assert resolve_precision(config, torch.device("cpu"), "bf16") == "bf16"
    with pytest.raises(ValueError, match="invalid precision"):
        resolve_precision(config, torch.device("cpu"), "fp16")


def test_bad_image_in_batch_names_file(generator, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(write_image(tmp_path / "ok.png", 0).read_bytes()[:100])
    settings = generation_settings(generator.source.config)
    with pytest.raises(ValueError, match=str(broken)):
        generator.generate([StudyInput("x", (broken,))], settings, progress=False)
