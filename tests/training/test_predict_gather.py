"""Prediction gathering on one process, deduplication, and the selection score."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from torch.utils.data import DataLoader

from r2gen.data.annotation import Study
from r2gen.training.predict import order_and_check, predict_loader, scoring_records, selection_score


class EchoModel(torch.nn.Module):
    """Stands in for R2GenGPT: its "report" for a study is the mean pixel value, so it depends on the input."""

    def generate(self, pixel_values, view_counts, generation):
        return [f"mean {float(pixel_values[i].mean()):.1f}" for i in range(len(view_counts))]


class StudyDataset(torch.utils.data.Dataset):
    def __init__(self, count: int) -> None:
        self.studies = [Study(f"s{i}", f"report {i}", (f"s{i}/0.png", f"s{i}/1.png"), "test") for i in range(count)]
        self.image_root = Path("/data/images")

    def __len__(self) -> int:
        return len(self.studies)

    def __getitem__(self, index: int) -> dict:
        return {"id": self.studies[index].id, "report": self.studies[index].report, "value": float(index)}


def collate(items: list[dict]) -> dict:
    return {"ids": [item["id"] for item in items], "references": [item["report"] for item in items],
            "pixel_values": torch.tensor([[item["value"]] for item in items]),
            "view_counts": torch.ones(len(items), dtype=torch.long)}


@pytest.fixture
def accelerator():
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def test_predict_loader_records_in_dataset_order(accelerator):
    loader = accelerator.prepare_data_loader(DataLoader(StudyDataset(5), batch_size=2, collate_fn=collate))
    records = predict_loader(accelerator, EchoModel(), loader, generation=None)
    assert [record["id"] for record in records] == ["s0", "s1", "s2", "s3", "s4"]
    assert records[3] == {"id": "s3", "reference": "report 3", "hypothesis": "mean 3.0",
                          "image_path": "/data/images/s3/0.png"}
    assert scoring_records(records)[3] == {"id": "s3", "reference": "report 3", "hypothesis": "mean 3.0"}


def test_order_and_check_drops_duplicates():
    records = [{"id": "b", "hypothesis": "x"}, {"id": "a", "hypothesis": "y"}, {"id": "b", "hypothesis": "z"}]
    ordered = order_and_check(records, expected_ids=["a", "b"])
    assert ordered == [{"id": "a", "hypothesis": "y"}, {"id": "b", "hypothesis": "x"}]


def test_order_and_check_missing_id():
    with pytest.raises(RuntimeError, match=r"missing ids \['c'\]"):
        order_and_check([{"id": "a"}, {"id": "b"}], expected_ids=["a", "b", "c"])


def test_order_and_check_unexpected_id():
    with pytest.raises(RuntimeError, match=r"unexpected ids \['z'\]"):
        order_and_check([{"id": "a"}, {"id": "z"}], expected_ids=["a"])


def test_selection_score_weights():
    assert selection_score({"BLEU_4": 0.2, "CIDEr": 0.6}, {"BLEU_4": 0.5, "CIDEr": 0.5}) == pytest.approx(0.4)
    with pytest.raises(KeyError, match="'METEOR' is not among the computed metrics"):
        selection_score({"BLEU_4": 0.2}, {"METEOR": 1.0})
