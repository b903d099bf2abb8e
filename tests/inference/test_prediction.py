"""``run_prediction`` with configs composed from conf/predict.yaml, in-process (the CLI tests run it as a user)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from inference_helpers import CONF_DIR, write_image

from r2gen.training.checkpoint import CheckpointError
from r2gen.training.inference import ModelSourceError
from r2gen.training.prediction import output_path, run_prediction, select_studies
from r2gen.training.study_inputs import StudyInputError


def predict_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="predict", overrides=["progress=false", *overrides])


def test_predict_config_defaults() -> None:
    config = predict_config()
    assert config.run_dir is None
    assert config.device == "auto"
    assert config.check_images is True
    assert all(value is None for value in config.generation.values())


def test_select_requires_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(StudyInputError, match="exactly one of"):
        select_studies(predict_config())
    with pytest.raises(StudyInputError, match="exactly one of"):
        select_studies(predict_config(f"images=[{tmp_path}/a.png]", f"input={tmp_path}"))
    single = select_studies(predict_config(f"images=[{tmp_path}/a.png]", "study_id=s7"))
    assert [(study.id, study.image_paths) for study in single] == [("s7", (tmp_path / "a.png",))]


def test_output_path_defaults(tmp_path: Path) -> None:
    assert output_path(predict_config(f"images=[{tmp_path}/a.png]")) is None
    assert output_path(predict_config(f"input={tmp_path}")) == Path("predictions.jsonl")
    assert output_path(predict_config(f"input={tmp_path}", f"output={tmp_path}/r.jsonl")) == tmp_path / "r.jsonl"


def test_folder_prediction_writes_rows(tiny_run: Path, dataset_root: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "reports.jsonl"
    rows, path = run_prediction(predict_config(f"run_dir={tiny_run}", f"input={dataset_root / 'images'}",
                                               f"output={output}", "device=cpu", "generation.max_new_tokens=2"))
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert path == output
    assert written == rows
    assert [row["id"] for row in written] == ["test-a/0", "test-a/1", "test-b/0", "test-c/0", "train-a/0", "val-a/0"]
    assert all(row["generation"]["max_new_tokens"] == 2 for row in written)
    assert written[0]["model"] == str(tiny_run)


def test_bad_files_fail_before_model_loads(tmp_path: Path) -> None:
    # run_dir does not exist, so reaching the model would raise ModelSourceError instead.
    text = tmp_path / "scan.png"
    text.write_text("plain text")
    with pytest.raises(StudyInputError) as caught:
        run_prediction(predict_config(f"run_dir={tmp_path / 'no-run'}", f"images=[{text},{tmp_path / 'b.png'}]"))
    assert f"{text}: cannot decode image" in str(caught.value)
    assert f"{tmp_path / 'b.png'}: image file not found" in str(caught.value)


def test_missing_run_dir_named(tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", seed=0)
    with pytest.raises(StudyInputError, match="run_dir is not set"):
        run_prediction(predict_config(f"images=[{image}]"))
    with pytest.raises(ModelSourceError, match=str(tmp_path / "no-run")):
        run_prediction(predict_config(f"run_dir={tmp_path / 'no-run'}", f"images=[{image}]"))


def test_wrong_checkpoint_rejected(tiny_run: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    import torch

    image = write_image(tmp_path / "a.png", seed=0)
    other = tmp_path / "other.safetensors"
    save_file({"aligner.layers.0.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(CheckpointError) as caught:
        run_prediction(predict_config(f"run_dir={tiny_run}", f"images=[{image}]", f"checkpoint={other}"))
    assert str(other) in str(caught.value)
    assert "missing keys" in str(caught.value)
