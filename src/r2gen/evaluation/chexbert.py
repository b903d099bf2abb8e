"""Optional CheXbert labeler (Smit et al., EMNLP 2020) from a user-supplied checkpoint.

The checkpoint is the released ``chexbert.pth``: a dict whose ``model_state_dict`` holds a BERT
encoder under ``bert.`` and 14 linear heads under ``linear_heads.<i>.``, usually with the
``module.`` prefix that ``nn.DataParallel`` adds. The heads read the [CLS] state. Heads 0-12 give
(blank, positive, negative, uncertain) and head 13, No Finding, gives (blank, positive). The
encoder size is read from the weights, so a bert-base checkpoint builds a bert-base encoder.
The tokenizer folder must hold bert-base-uncased's ``vocab.txt``; nothing is downloaded.

Every key and shape is checked before loading: a missing, extra or mis-shaped tensor raises
``ChexbertCheckpointError`` and nothing falls back to the rule-based labeler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from r2gen.evaluation.labels import NEGATIVE, OBSERVATIONS, POSITIVE, UNCERTAIN, ReportLabels

logger = logging.getLogger(__name__)

# Head order of the released CheXbert model: the CheXpert observations with No Finding moved last.
CHEXBERT_CONDITIONS = OBSERVATIONS[1:] + OBSERVATIONS[:1]
_CLASS_TO_LABEL = (None, POSITIVE, NEGATIVE, UNCERTAIN)
MAX_TOKENS = 512
# Buffers that transformers versions save or not; they are rebuilt from the config either way.
_OPTIONAL_KEYS = {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}


class ChexbertCheckpointError(ValueError):
    """Raised when a CheXbert checkpoint does not contain the expected tensors."""


class ChexbertModel(nn.Module):
    """BERT encoder with 13 four-class heads and one two-class head on the [CLS] state."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(0.1)
        heads = [nn.Linear(config.hidden_size, 4) for _ in range(13)]
        self.linear_heads = nn.ModuleList([*heads, nn.Linear(config.hidden_size, 2)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        cls_state = self.dropout(hidden[:, 0, :])
        return [head(cls_state) for head in self.linear_heads]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"CheXbert checkpoint not found: {path}; set evaluation.chexbert_checkpoint")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise ChexbertCheckpointError(f"failed to read CheXbert checkpoint {path}: {error}") from error
    state = raw.get("model_state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ChexbertCheckpointError(
            f"{path} is not a CheXbert checkpoint: expected a dict with 'model_state_dict' of tensors"
        )
    return {key.removeprefix("module."): value for key, value in state.items()}


def _config_from_state(state: dict[str, torch.Tensor], path: Path) -> BertConfig:
    try:
        vocab_size, hidden_size = state["bert.embeddings.word_embeddings.weight"].shape
        max_positions = state["bert.embeddings.position_embeddings.weight"].shape[0]
        type_vocab_size = state["bert.embeddings.token_type_embeddings.weight"].shape[0]
        intermediate_size = state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]
    except KeyError as error:
        raise ChexbertCheckpointError(f"{path} lacks the BERT tensor {error}; is it a CheXbert checkpoint?") from None
    layers = {int(m.group(1)) for key in state if (m := re.match(r"bert\.encoder\.layer\.(\d+)\.", key))}
    # NOTE: head count is not stored in the weights; BERT models use 64-dimensional heads.
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=max(layers) + 1,
        num_attention_heads=max(hidden_size // 64, 1),
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        type_vocab_size=type_vocab_size,
    )


def load_chexbert_model(path: str | Path) -> ChexbertModel:
    """Build the CheXbert model sized from the checkpoint and load it with every key checked."""
    path = Path(path)
    state = _read_state_dict(path)
    model = ChexbertModel(_config_from_state(state, path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - _OPTIONAL_KEYS)
    unexpected = sorted(set(state) - set(expected) - _OPTIONAL_KEYS)
    mismatched = [
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise ChexbertCheckpointError(
            f"CheXbert checkpoint {path} does not match the CheXbert architecture: "
            f"missing {missing[:5]} ({len(missing)} in all), unexpected {unexpected[:5]} "
            f"({len(unexpected)} in all), wrong shape {mismatched[:5]}; use the released chexbert.pth"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.eval()


class ChexbertLabeler:
    """Labels reports with a CheXbert checkpoint on CPU or a given torch device."""

    name = "chexbert"

    def __init__(
        self, checkpoint: str | Path, tokenizer: str | Path, device: str = "cpu", batch_size: int = 16
    ) -> None:
        tokenizer_path = Path(tokenizer)
        if not (tokenizer_path / "vocab.txt").is_file():
            raise FileNotFoundError(
                f"no vocab.txt in {tokenizer_path}; set evaluation.chexbert_tokenizer to a folder "
                "with the bert-base-uncased tokenizer files"
            )
        self._tokenizer = BertTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
        self._model = load_chexbert_model(checkpoint).to(device)
        self._device = device
        self._batch_size = batch_size
        logger.info("Loaded CheXbert labeler from %s", checkpoint)

    @torch.no_grad()
    def label_reports(self, reports: Sequence[str]) -> list[ReportLabels]:
        """Label each report; text is whitespace-normalised and cut at 512 tokens, as CheXbert does."""
        results: list[ReportLabels] = []
        for start in range(0, len(reports), self._batch_size):
            texts = [" ".join(text.split()) for text in reports[start : start + self._batch_size]]
            batch = self._tokenizer(
                texts, truncation=True, max_length=MAX_TOKENS, padding=True, return_tensors="pt"
            ).to(self._device)
            logits = self._model(batch["input_ids"], batch["attention_mask"])
            classes = torch.stack([head.argmax(dim=1) for head in logits], dim=1).tolist()
            for row in classes:
                results.append({name: _CLASS_TO_LABEL[c] for name, c in zip(CHEXBERT_CONDITIONS, row)})
        return results
