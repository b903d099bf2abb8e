"""python -m r2gen.evaluate: re-scoring a predictions file, malformed lines, ablations, MeSH table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2gen import evaluate as cli
from r2gen.evaluation import EvaluationConfig, read_predictions, score_reports
from tests.evaluation.conftest import simple_clean


@pytest.fixture(scope="module")
def predictions_file(iu_full_annotation: dict, tmp_path_factory) -> Path:
    """20 real IU X-ray reports, each paired with the next study's report as the hypothesis."""
    studies = iu_full_annotation["test"][160:180]
    path = tmp_path_factory.mktemp("predictions") / "predictions_test.jsonl"
    with path.open("w") as handle:
        for index, study in enumerate(studies):
            hypothesis = simple_clean(studies[(index + 1) % len(studies)]["report"])
            record = {"id": study["id"], "reference": simple_clean(study["report"]), "hypothesis": hypothesis}
            handle.write(json.dumps({**record, "split": "test"}) + "\n")
    return path


def test_rescoring_matches_score_reports(predictions_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "metrics.json"
    assert cli.main([str(predictions_file), "--bootstrap-samples", "30", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert isinstance(written["metrics"]["METEOR"], float)
    assert isinstance(written["metrics"]["bootstrap"]["METEOR"]["low"], float)

    # Scoring in-process again costs a second JVM start, so the comparison runs without Java
    # and covers every metric except METEOR, whose exactness test_nlg.py checks.
    monkeypatch.setenv("PATH", str(tmp_path))
    config = EvaluationConfig(bootstrap_samples=30)
    expected = json.loads(json.dumps(score_reports(read_predictions(predictions_file), config)))
    assert expected.pop("METEOR") is None
    assert "METEOR" not in expected["bootstrap"]
    written["metrics"].pop("METEOR")
    written["metrics"]["bootstrap"].pop("METEOR")
    assert written["studies"] == 20
    assert written["evaluation_config"] == config.to_dict()
    assert written["metrics"] == expected
    table = capsys.readouterr().out
    assert "BLEU_4" in table
    assert f"{expected['CIDEr']:.4f}" in table


def test_config_file_and_overrides(predictions_file, tmp_path, without_java):
    config_path = Path(cli.__file__).resolve().parents[2] / "conf" / "evaluation" / "fast.yaml"
    out = tmp_path / "fast.json"
    code = cli.main([str(predictions_file), "--config", str(config_path), "--clinical", "--uncertain-policy",
                     "ignore", "--out", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    assert written["evaluation_config"]["clinical"] is True
    assert written["evaluation_config"]["bootstrap_samples"] == 0
    assert written["metrics"]["clinical_config"]["uncertain_policy"] == "ignore"
    assert "bootstrap" not in written["metrics"]


def test_default_output_next_to_input(predictions_file, tmp_path, without_java):
    copy = tmp_path / "run_preds.jsonl"
    copy.write_text(predictions_file.read_text())
    assert cli.main([str(copy), "--bootstrap-samples", "0", "--no-clinical"]) == 0
    assert (tmp_path / "run_preds.metrics.json").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_malformed_lines_reported(tmp_path, caplog):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"id": "a", "reference": "x .", "hypothesis": "y ."}\n'
        "not json\n"
        "\n"
        "[1, 2]\n"
        '{"id": "a", "reference": "x .", "hypothesis": "y ."}\n'
        '{"id": "b", "reference": 3, "hypothesis": "y ."}\n'
        '{"id": "c", "hypothesis": "y ."}\n'
    )
    assert cli.main([str(path)]) == 1
    message = caplog.text
    assert "has 5 malformed line(s)" in message
    assert "line 2: invalid JSON" in message
    assert "line 4: expected a JSON object, got list" in message
    assert "line 5: duplicate id 'a' (first on line 1)" in message
    assert "line 6: field 'reference' is int, expected a string" in message
    assert "line 7: missing field 'reference'" in message
    assert not (tmp_path / "bad.metrics.json").exists()


def test_missing_file_and_argument(tmp_path, caplog):
    assert cli.main([str(tmp_path / "absent.jsonl")]) == 1
    assert "predictions file not found" in caplog.text
    assert cli.main([]) == 2


def test_ablation_comparison(predictions_file, tmp_path, without_java, capsys):
    records = read_predictions(predictions_file)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("".join(
        json.dumps({**record, "hypothesis": "the heart is normal . the lungs are clear ."}) + "\n" for record in records
    ))
    out = tmp_path / "with_ablation.json"
    code = cli.main([str(predictions_file), "--bootstrap-samples", "0", "--ablation", f"blank={blank}",
                     "--out", str(out)])
    assert code == 0

    written = json.loads(out.read_text())
    comparison = written["ablations"]["blank"]["comparison"]
    run_metrics = written["metrics"]
    for name in ("BLEU_4", "CIDEr", "ce_f1_micro_14"):
        row = comparison[name]
        assert row["run"] == run_metrics[name]
        assert row["difference"] == pytest.approx(row["run"] - row["ablation"])
    assert comparison["METEOR"]["difference"] is None
    assert "ablation blank" in capsys.readouterr().out


def test_ablation_with_other_ids_rejected(predictions_file, tmp_path, without_java, caplog):
    records = read_predictions(predictions_file)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(record) + "\n" for record in records[1:]))
    assert cli.main([str(predictions_file), "--bootstrap-samples", "0", "--ablation", str(other)]) == 1
    assert "ablation other must cover the same study ids" in caplog.text


def test_mesh_agreement_table(data_root, capsys):
    archive = data_root / "iu_xray" / "extras" / "NLMCXR_reports.tgz"
    if not archive.is_file():
        pytest.skip(f"Open-i reports not found at {archive}")
    assert cli.main(["--mesh-agreement", str(archive)]) == 0
    table = capsys.readouterr().out
    assert "| Cardiomegaly | 0.798 | 0.982 | 0.881 | 395 | 486 |" in table


def test_unknown_config_key_rejected(predictions_file, tmp_path, caplog):
    config_path = tmp_path / "typo.yaml"
    config_path.write_text("nlg: false\nbootstrap_sample: 10\n")
    assert cli.main([str(predictions_file), "--config", str(config_path)]) == 1
    assert "unknown evaluation config keys ['bootstrap_sample']" in caplog.text


def test_training_reports_copy_rate(predictions_file, tmp_path, without_java):
    records = read_predictions(predictions_file)
    training = tmp_path / "train.jsonl"
    training.write_text(json.dumps({"report": records[0]["hypothesis"]}) + "\n\n")
    out = tmp_path / "copies.json"
    code = cli.main([str(predictions_file), "--no-clinical", "--bootstrap-samples", "0",
                     "--training-reports", str(training), "--out", str(out)])
    assert code == 0
    # Normal IU X-ray reports repeat word for word, so other hypotheses may equal this one too.
    expected = sum(record["hypothesis"] == records[0]["hypothesis"] for record in records)
    assert expected >= 1
    assert json.loads(out.read_text())["metrics"]["diagnostics"]["training_copy_count"] == expected
    training.write_text('{"text": "x"}\n')
    assert cli.main([str(predictions_file), "--training-reports", str(training)]) == 1
