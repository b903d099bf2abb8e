"""The three baseline systems and their settings, on hand-made inputs and real images."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from baseline_helpers import TINY_ENCODER, covid_images
from r2gen.data.annotation import Study
from r2gen.data.cleaning import clean_report
from r2gen.data.dataset import ReportDataset, build_image_transform
from r2gen.training.baselines import (BaselineSettings, most_frequent_report, nearest_neighbour_indices,
                                      random_reports, study_features)


def test_most_frequent_counts_reports():
    reports = ["b .", "a .", "c .", "a .", "b .", "a ."]
    assert most_frequent_report(reports) == "a ."


def test_most_frequent_tie_goes_to_first():
    assert most_frequent_report(["x .", "y .", "y .", "x ."]) == "x ."
    assert most_frequent_report(["y .", "x .", "x .", "y ."]) == "y ."


def test_most_frequent_rejects_empty_pool():
    with pytest.raises(ValueError, match="at least one training report"):
        most_frequent_report([])


def test_random_reports_seeded():
    pool = [f"report {i} ." for i in range(50)]
    first = random_reports(pool, 20, seed=3)
    assert first == random_reports(pool, 20, seed=3)
    assert first != random_reports(pool, 20, seed=4)
    assert len(first) == 20
    assert set(first) <= set(pool)
    # Drawn with replacement and spread over the pool, not the first entries repeated.
    assert len(set(random_reports(pool, 500, seed=0))) == 50


def test_nearest_neighbour_uses_cosine():
    train = torch.tensor([[1.0, 0.0], [10.0, 10.0], [0.0, 1.0]])
    # By Euclidean distance row 0 is nearest to [2, 2.2], but by angle row 1 is.
    queries = torch.tensor([[2.0, 2.2], [0.1, 5.0], [3.0, -0.2]])
    assert nearest_neighbour_indices(train, queries).tolist() == [1, 2, 0]


def test_nearest_neighbour_chunks_agree():
    generator = torch.Generator().manual_seed(0)
    train, queries = torch.randn(40, 8, generator=generator), torch.randn(25, 8, generator=generator)
    expected = nearest_neighbour_indices(train, queries)
    assert torch.equal(nearest_neighbour_indices(train, queries, chunk_size=1), expected)
    assert torch.equal(nearest_neighbour_indices(train, queries, chunk_size=7), expected)
    assert expected.unique().numel() > 5


def test_nearest_neighbour_tie_goes_to_lowest_index():
    train = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
    assert nearest_neighbour_indices(train, torch.tensor([[3.0, 0.0]])).tolist() == [1]


def _studies(paths_per_study: list[list[str]]) -> list[Study]:
    return [Study(id=f"s{i}", report="clear lungs .", image_paths=tuple(paths), split="test")
            for i, paths in enumerate(paths_per_study)]


def test_study_features_fuse_views(data_root):
    encoder = instantiate(TINY_ENCODER)
    transform = build_image_transform(encoder.image_size, encoder.image_mean, encoder.image_std)
    images = [path.removeprefix("covid_cxr_notes/images/") for path in covid_images(data_root, 3)]
    studies = _studies([[images[0]], [images[1]], [images[0], images[1]], [images[2], images[0]]])
    dataset = ReportDataset(studies, data_root / "covid_cxr_notes" / "images", transform,
                            lambda text: clean_report(text, "mimic_cxr"))

    mean = study_features(encoder, dataset, "mean", batch_size=3)
    first = study_features(encoder, dataset, "first", batch_size=2)
    assert mean.shape == (4, encoder.num_features)
    with torch.no_grad():
        single = encoder(torch.stack([dataset[i]["images"][0] for i in range(2)])).mean(dim=1)
    torch.testing.assert_close(mean[0], single[0])
    torch.testing.assert_close(mean[1], single[1])
    # Mean fusion averages the token grids; averaging over tokens commutes with it.
    torch.testing.assert_close(mean[2], (single[0] + single[1]) / 2)
    torch.testing.assert_close(first[2], single[0])
    assert not torch.allclose(mean[3], first[3])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"systems": ["oracle"]}, "invalid"),
    ({"systems": []}, "invalid"),
    ({"view_fusion": "max"}, "view_fusion"),
    ({"split": "train"}, "split=train"),
    ({"batch_size": 0}, "batch_size"),
    ({"num_workers": -1}, "num_workers"),
])
def test_settings_reject_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        BaselineSettings(**overrides)


def test_settings_key_ignores_speed_options():
    assert BaselineSettings(batch_size=2, num_workers=3).key() == BaselineSettings().key()
    assert BaselineSettings(seed=1).key() != BaselineSettings().key()
    assert BaselineSettings(systems=["random", "most_frequent"]).key() == \
        BaselineSettings(systems=["most_frequent", "random"]).key()


def test_settings_need_images_only_for_nearest_neighbour():
    assert BaselineSettings().needs_images
    assert not BaselineSettings(systems=["random", "most_frequent"]).needs_images
