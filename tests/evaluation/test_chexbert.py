"""CheXbert labeler: real loading code on a small random checkpoint in the released format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from r2gen.evaluation import EvaluationConfig, score_reports
from r2gen.evaluation.chexbert import (
    CHEXBERT_CONDITIONS,
    ChexbertCheckpointError,
    ChexbertLabeler,
    ChexbertModel,
    _config_from_state,
    load_chexbert_model,
)
from r2gen.evaluation.labels import OBSERVATIONS

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "pleural", "effusion", "heart", "is", "normal",
              "mild", "cardio", "##megaly", "."]
SMALL_CONFIG = BertConfig(vocab_size=len(VOCABULARY), hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                          intermediate_size=128, max_position_embeddings=512)


def save_checkpoint(path: Path, state: dict[str, torch.Tensor]) -> Path:
    # The released file wraps the weights of an nn.DataParallel model, hence the "module." prefix.
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ChexbertModel(SMALL_CONFIG)
    # BERT's 0.02 initialisation gives nearly the same [CLS] state for every input, so larger
    # weights are used to make the labels depend on the report.
    for name, parameter in model.named_parameters():
        if name.endswith("weight") and parameter.dim() == 2:
            torch.nn.init.normal_(parameter, std=0.5)
    return model.state_dict()


@pytest.fixture
def tokenizer_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    return folder


def expected_labels(state: dict[str, torch.Tensor], input_ids: list[int]) -> dict[str, int | None]:
    """Label one tokenized report with a separately built BERT and the heads applied by hand."""
    bert = BertModel(SMALL_CONFIG).eval()
    bert.load_state_dict({k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")})
    with torch.no_grad():
        cls_state = bert(input_ids=torch.tensor([input_ids])).last_hidden_state[0, 0]
    mapping = (None, 1, 0, -1)
    labels = {}
    for index, name in enumerate(CHEXBERT_CONDITIONS):
        logits = state[f"linear_heads.{index}.weight"] @ cls_state + state[f"linear_heads.{index}.bias"]
        labels[name] = mapping[int(logits.argmax())]
    return labels


def test_labels_match_manual_forward(tmp_path, random_state, tokenizer_dir):
    checkpoint = save_checkpoint(tmp_path / "chexbert.pth", random_state)
    labeler = ChexbertLabeler(checkpoint, tokenizer_dir)
    reports = ["No pleural effusion.", "Heart is normal.", "Mild cardiomegaly.", ""]
    results = labeler.label_reports(reports)

    # Token ids: [CLS]=2, words from VOCABULARY, [SEP]=3 ("cardiomegaly" splits into cardio ##megaly).
    token_ids = [[2, 5, 6, 7, 14, 3], [2, 8, 9, 10, 14, 3], [2, 11, 12, 13, 14, 3], [2, 3]]
    for result, ids in zip(results, token_ids):
        assert set(result) == set(OBSERVATIONS)
        assert result == expected_labels(random_state, ids)
    assert results[0]["No Finding"] in (None, 1)
    assert len({tuple(result.values()) for result in results}) > 1


def test_bert_base_shapes_give_bert_base_config():
    shapes = {
        "bert.embeddings.word_embeddings.weight": (30522, 768),
        "bert.embeddings.position_embeddings.weight": (512, 768),
        "bert.embeddings.token_type_embeddings.weight": (2, 768),
        "bert.encoder.layer.0.intermediate.dense.weight": (3072, 768),
        **{f"bert.encoder.layer.{i}.output.dense.bias": (768,) for i in range(12)},
    }
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    config = _config_from_state(state, Path("chexbert.pth"))
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (30522, 768, 12)
    assert (config.num_attention_heads, config.intermediate_size, config.max_position_embeddings) == (12, 3072, 512)


def test_missing_head_rejected(tmp_path, random_state):
    state = dict(random_state)
    del state["linear_heads.13.weight"]
    with pytest.raises(ChexbertCheckpointError, match=r"missing \['linear_heads.13.weight'\]"):
        load_chexbert_model(save_checkpoint(tmp_path / "broken.pth", state))


def test_wrong_head_shape_rejected(tmp_path, random_state):
    state = dict(random_state)
    state["linear_heads.0.weight"] = torch.zeros(3, 64)
    with pytest.raises(ChexbertCheckpointError, match=r"linear_heads.0.weight \(3, 64\) != \(4, 64\)"):
        load_chexbert_model(save_checkpoint(tmp_path / "broken.pth", state))


def test_extra_key_rejected(tmp_path, random_state):
    state = {**random_state, "classifier.weight": torch.zeros(2, 64)}
    with pytest.raises(ChexbertCheckpointError, match=r"unexpected \['classifier.weight'\]"):
        load_chexbert_model(save_checkpoint(tmp_path / "broken.pth", state))


def test_foreign_files_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="CheXbert checkpoint not found"):
        load_chexbert_model(tmp_path / "absent.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ChexbertCheckpointError, match="not a CheXbert checkpoint"):
        load_chexbert_model(tmp_path / "tensor.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ChexbertCheckpointError, match="failed to read CheXbert checkpoint"):
        load_chexbert_model(tmp_path / "text.pth")
    torch.save({"model_state_dict": {"linear_heads.0.weight": torch.zeros(4, 8)}}, tmp_path / "heads.pth")
    with pytest.raises(ChexbertCheckpointError, match="lacks the BERT tensor"):
        load_chexbert_model(tmp_path / "heads.pth")


def test_missing_vocabulary_rejected(tmp_path, random_state):
    checkpoint = save_checkpoint(tmp_path / "chexbert.pth", random_state)
    with pytest.raises(FileNotFoundError, match="no vocab.txt"):
        ChexbertLabeler(checkpoint, tmp_path)


def test_score_reports_uses_chexbert(tmp_path, random_state, tokenizer_dir):
    checkpoint = save_checkpoint(tmp_path / "chexbert.pth", random_state)
    config = EvaluationConfig(nlg=False, labeler="chexbert", chexbert_checkpoint=str(checkpoint),
                              chexbert_tokenizer=str(tokenizer_dir), bootstrap_samples=0)
    records = [{"id": "a", "reference": "Mild cardiomegaly.", "hypothesis": "No pleural effusion."}]
    result = score_reports(records, config)

    assert result["clinical_config"]["labeler"] == "chexbert"
    assert result["clinical_config"]["chexbert_checkpoint"] == str(checkpoint)
    reference = expected_labels(random_state, [2, 11, 12, 13, 14, 3])
    positives = sum(value in (1, -1) for value in reference.values())
    assert result["clinical_per_observation"]["Cardiomegaly"]["support"] == int(reference["Cardiomegaly"] in (1, -1))
    assert sum(row["support"] for row in result["clinical_per_observation"].values()) == positives
