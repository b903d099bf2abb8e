"""ReportDataset and ReportCollator on real covid_cxr images: views, cleaning, image ablations."""

from __future__ import annotations

import functools

import pytest
import torch

from r2gen.data.annotation import Study, load_annotation
from r2gen.data.cleaning import clean_report
from r2gen.data.collate import ReportCollator
from r2gen.data.dataset import ReportDataset, _derangement, build_image_transform

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture
def studies(covid_root) -> list[Study]:
    return load_annotation(covid_root / "annotation.json")["val"][:4]


def make_dataset(studies, covid_root, **kwargs) -> ReportDataset:
    transform = build_image_transform(64, MEAN, STD)
    clean = functools.partial(clean_report, rules="mimic_cxr")
    return ReportDataset(studies, covid_root / "images", transform, clean, **kwargs)


def test_item_has_views_and_cleaned_report(studies, covid_root):
    item = make_dataset(studies, covid_root)[0]
    assert item["id"] == studies[0].id
    assert item["images"].shape == (1, 3, 64, 64)
    assert item["report"] == clean_report(studies[0].report, "mimic_cxr")
    assert item["report"].endswith(" .")


def test_collator_mixes_view_counts(studies, covid_root):
    dataset = make_dataset(studies, covid_root)
    two_views = dict(dataset[1], images=torch.cat([dataset[1]["images"], dataset[2]["images"]]))

    class Tokenizer:
        eos_token_id, pad_token_id = 2, None

        def __call__(self, texts, add_special_tokens):
            return {"input_ids": [[5] * len(text.split()) for text in texts]}

    batch = ReportCollator(Tokenizer(), max_target_tokens=8)([dataset[0], two_views])
    assert batch["pixel_values"].shape == (3, 3, 64, 64)
    assert batch["view_counts"].tolist() == [1, 2]
    assert batch["target_ids"].shape[1] == 8
    assert batch["target_ids"][:, -1].tolist() == [2, 2]


def test_blank_ablation_keeps_reports(studies, covid_root):
    normal = make_dataset(studies, covid_root)
    blank = make_dataset(studies, covid_root, image_ablation="blank")
    assert blank[0]["report"] == normal[0]["report"]
    black = (torch.zeros(3) - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(blank[0]["images"][0, :, 10, 10], black)
    assert not torch.equal(blank[0]["images"], normal[0]["images"])


def test_shuffled_ablation_moves_every_image(studies, covid_root):
    normal = make_dataset(studies, covid_root)
    shuffled = make_dataset(studies, covid_root, image_ablation="shuffled", ablation_seed=3)
    sources = shuffled.image_source_index
    assert sorted(sources) == list(range(len(studies)))
    for index, source in enumerate(sources):
        assert source != index
        assert shuffled[index]["id"] == normal[index]["id"]
        assert torch.equal(shuffled[index]["images"], normal[source]["images"])


def test_derangement_has_no_fixed_point():
    for size in (2, 3, 10, 51):
        for seed in range(5):
            order = _derangement(size, seed)
            assert sorted(order) == list(range(size))
            assert all(source != index for index, source in enumerate(order))


def test_unknown_ablation_rejected(studies, covid_root):
    with pytest.raises(ValueError, match="unknown image_ablation 'noise'"):
        make_dataset(studies, covid_root, image_ablation="noise")
