"""compute_baselines and its cache on small R2Gen-layout trees of real images (IU X-ray, covid_cxr, MIMIC-like)."""

from __future__ import annotations

import json
import logging

import pytest

import r2gen.training.baselines as baselines
from baseline_helpers import DIAGNOSTICS_ONLY, NLG_ONLY, TINY_ENCODER, covid_images, data_config, write_tree
from r2gen.evaluation import EvaluationConfig, NLGScorer
from r2gen.training.baselines import BaselineDataError, BaselineSettings, cached_baselines, compute_baselines

IU = "iu_xray/images"
IU_FRONTAL, IU_LATERAL = f"{IU}/CXR1005_IM-0006/0.png", f"{IU}/CXR1005_IM-0006/1.png"
IU_OTHER_LATERAL, IU_OTHER_FRONTAL = f"{IU}/CXR1004_IM-0005/1.png", f"{IU}/CXR1006_IM-0007/0.png"


@pytest.fixture
def iu_tree(tmp_path, data_root):
    """Two-view studies: the test study's exact view pair is in train under 'pair', and 'same first'
    shares only its first view."""
    splits = {
        "train": [("same-first", "Heart size normal. Left effusion.", [IU_FRONTAL, IU_OTHER_LATERAL]),
                  ("pair", "The lungs are clear. No effusion.", [IU_FRONTAL, IU_LATERAL]),
                  ("other", "Small right pneumothorax.", [IU_OTHER_FRONTAL, IU_OTHER_LATERAL]),
                  ("again", "Small right pneumothorax.", [IU_OTHER_LATERAL, IU_OTHER_FRONTAL])],
        "val": [("v", "No acute disease.", [IU_OTHER_FRONTAL, IU_LATERAL])],
        "test": [("CXR1005_IM-0006", "The lungs are clear bilaterally. No effusion.", [IU_FRONTAL, IU_LATERAL])],
    }
    return write_tree(tmp_path / "iu", data_root, splits)


def test_iu_tree_nearest_neighbour_uses_fused_views(iu_tree):
    data = data_config(iu_tree)
    mean = compute_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings(view_fusion="mean"))
    assert mean["systems"]["nearest_neighbour"]["hypotheses"] == ["the lungs are clear . no effusion ."]
    # With the first view only, 'same first' and 'pair' tie at similarity 1; the earlier one wins.
    first = compute_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings(view_fusion="first"))
    assert first["systems"]["nearest_neighbour"]["hypotheses"] == ["heart size normal . left effusion ."]


def test_iu_tree_picks_and_diagnostics(iu_tree):
    document = compute_baselines(data_config(iu_tree), TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings())
    assert document["ids"] == ["CXR1005_IM-0006"]
    assert document["references"] == ["the lungs are clear bilaterally . no effusion ."]
    assert document["training_reports"] == 4
    assert document["systems"]["most_frequent"]["hypotheses"] == ["small right pneumothorax ."]
    assert document["systems"]["random"]["hypotheses"][0] in {"heart size normal . left effusion .",
                                                              "the lungs are clear . no effusion .",
                                                              "small right pneumothorax ."}
    for name, entry in document["systems"].items():
        diagnostics = entry["metrics"]["diagnostics"]
        assert diagnostics["training_copy_rate"] == 1.0, name
        assert diagnostics["empty_generation_rate"] == 0.0, name
        assert diagnostics["mean_reference_words"] == 7, name


def test_scores_match_direct_metrics(tmp_path, data_root):
    """Scores come from score_reports with the given config; compare with r2gen's pycocoevalcap scorer."""
    splits = {"train": [(f"tr{i}", report, [IU_FRONTAL]) for i, report in enumerate(
                  ["No effusion. Clear lungs.", "Small left effusion.", "Heart size is normal.", "Clear lungs."])],
              "test": [("t0", "Clear lungs. No effusion.", [IU_FRONTAL]), ("t1", "Left effusion.", [IU_LATERAL]),
                       ("t2", "Normal heart size. Clear lungs.", [IU_OTHER_FRONTAL])]}
    root = write_tree(tmp_path / "three", data_root, splits)
    settings = BaselineSettings(systems=["random"], seed=5)
    document = compute_baselines(data_config(root), TINY_ENCODER, NLG_ONLY, settings)
    hypotheses = document["systems"]["random"]["hypotheses"]
    with NLGScorer(document["references"], hypotheses, meteor=False) as scorer:
        expected = scorer.score()
    metrics = document["systems"]["random"]["metrics"]
    for key in ("BLEU_1", "BLEU_2", "BLEU_4", "ROUGE_L", "CIDEr"):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert metrics["BLEU_1"] > 0
    assert 0 < metrics["METEOR"] <= 1  # the JVM ran; a missing Java would give None


def test_val_split_can_be_scored(iu_tree):
    document = compute_baselines(data_config(iu_tree), TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings(split="val"))
    assert document["split"] == "val"
    assert document["ids"] == ["v"]


def test_train_without_images_allows_text_baselines(tmp_path, data_root):
    root = write_tree(tmp_path / "iu", data_root, {
        "train": [("a", "No effusion.", []), ("b", "Clear lungs.", []), ("c", "No effusion.", [])],
        "val": [("v", "Clear.", [IU_FRONTAL])], "test": [("t", "No effusion seen.", [IU_FRONTAL, IU_LATERAL])]})
    annotation = json.loads((root / "annotation.json").read_text())
    for entry in annotation["train"]:
        entry["image_path"] = [f"{entry['id']}/0.png"]  # listed but absent, as in the reports-only IU file
    (root / "annotation.json").write_text(json.dumps(annotation))

    text_only = BaselineSettings(systems=["most_frequent", "random"])
    document = compute_baselines(data_config(root), TINY_ENCODER, DIAGNOSTICS_ONLY, text_only)
    assert sorted(document["systems"]) == ["most_frequent", "random"]
    assert document["systems"]["most_frequent"]["hypotheses"] == ["no effusion ."]

    with pytest.raises(BaselineDataError) as error:
        compute_baselines(data_config(root), TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings())
    assert "a/0.png" in str(error.value)
    assert "systems=[most_frequent,random]" in str(error.value)


def test_real_iu_annotation_fails_naming_train(data_root):
    data = data_config(data_root / "iu_xray", name="iu_xray")
    with pytest.raises(BaselineDataError) as error:
        compute_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings())
    message = str(error.value)
    assert "split(s) ['train'] have no studies" in message
    assert "python -m r2gen.data.prepare iu_xray" in message


def test_missing_annotation_names_path(tmp_path):
    with pytest.raises(BaselineDataError, match="annotation.json .* not found"):
        compute_baselines(data_config(tmp_path), TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings())


def test_report_empty_after_cleaning_is_named(tmp_path, data_root):
    root = write_tree(tmp_path / "t", data_root, {
        "train": [("a", "No effusion.", [IU_FRONTAL]), ("bad", "???", [IU_FRONTAL])],
        "test": [("t", "Clear.", [IU_FRONTAL])]})
    with pytest.raises(BaselineDataError, match="'bad'"):
        compute_baselines(data_config(root), TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings(systems=["random"]))


def test_mimic_like_tree(tmp_path, data_root):
    """MIMIC-CXR layout (patient/study folders, JPEG views, MIMIC cleaning) built from covid_cxr JPEGs."""
    jpegs = [path for path in covid_images(data_root, 60) if path.endswith(".jpg")][:5]
    reports = ["Lungs are clear. No pneumothorax.", "Mild cardiomegaly. No edema.", "Lungs are clear. No pneumothorax."]
    root = tmp_path / "mimic_cxr"
    splits = {"train": [(f"p10/p1000{i}/s5{i}", reports[i], [jpegs[i]]) for i in range(3)],
              "val": [("p11/p1100/s60", "No acute process.", [jpegs[3]])],
              "test": [("p12/p1200/s70", "No pneumothorax. Lungs clear.", [jpegs[0], jpegs[4]])]}
    write_tree(root, data_root, splits)
    document = compute_baselines(data_config(root, name="mimic_cxr", cleaning="mimic_cxr"), TINY_ENCODER,
                                 DIAGNOSTICS_ONLY, BaselineSettings())
    assert document["ids"] == ["p12/p1200/s70"]
    assert document["systems"]["most_frequent"]["hypotheses"] == ["lungs are clear . no pneumothorax ."]
    assert document["systems"]["nearest_neighbour"]["hypotheses"][0] in {"lungs are clear . no pneumothorax .",
                                                                          "mild cardiomegaly . no edema ."}


def test_cache_hit_miss_and_corruption(iu_tree, baseline_cache, monkeypatch, caplog):
    data, settings = data_config(iu_tree), BaselineSettings(systems=["most_frequent", "random"])
    first = cached_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, settings)
    cached = list((baseline_cache / "baselines").glob("tiny-test-*.json"))
    assert [str(path) for path in cached] == [first["cache_path"]]

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although the cache has the result")

    with monkeypatch.context() as patch:
        patch.setattr(baselines, "compute_baselines", fail)
        again = cached_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, settings)
    assert again["systems"] == first["systems"]

    # A different seed, evaluation config or annotation is a different key.
    cached_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, BaselineSettings(systems=["most_frequent", "random"], seed=1))
    cached_baselines(data, TINY_ENCODER, EvaluationConfig(nlg=False, clinical=False, bootstrap_samples=5), settings)
    assert len(list((baseline_cache / "baselines").glob("*.json"))) == 3

    cached[0].write_text("{not json")
    with caplog.at_level(logging.WARNING):
        recomputed = cached_baselines(data, TINY_ENCODER, DIAGNOSTICS_ONLY, settings)
    assert "unreadable baseline cache" in caplog.text
    assert recomputed["systems"] == first["systems"]
    assert json.loads(cached[0].read_text())["key"] == first["key"]


def test_cache_key_follows_annotation(iu_tree):
    settings = BaselineSettings(systems=["most_frequent"])
    before = cached_baselines(data_config(iu_tree), TINY_ENCODER, DIAGNOSTICS_ONLY, settings)
    annotation = json.loads((iu_tree / "annotation.json").read_text())
    annotation["train"][0]["report"] = "Small right pneumothorax."
    annotation["train"][1]["report"] = "Small right pneumothorax."
    (iu_tree / "annotation.json").write_text(json.dumps(annotation))
    after = cached_baselines(data_config(iu_tree), TINY_ENCODER, DIAGNOSTICS_ONLY, settings)
    assert after["key"]["fingerprint"] != before["key"]["fingerprint"]
    assert after["cache_path"] != before["cache_path"]
