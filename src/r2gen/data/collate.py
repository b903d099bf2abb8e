"""Batch collation: views of all studies in one tensor, report targets tokenized and right-padded.

Tokenization happens here, in the DataLoader workers, so the training step only runs the model.
"""

from __future__ import annotations

from typing import Any

import torch


class ReportCollator:
    """Collate ``ReportDataset`` items into one batch.

    Views of every study are concatenated into ``pixel_values`` [total_views, 3, H, W] with
    ``view_counts`` [batch], so a batch may mix studies with different numbers of views and the
    encoder sees all of them in one forward pass.

    Targets are the report's tokens (no special tokens) truncated to ``max_target_tokens - 1``, then the
    tokenizer's EOS id. The EOS is appended as an id, not as the string "</s>", because a fast
    tokenizer may split that string into several pieces; and truncation happens before the EOS, so
    every sample learns to stop (R2GenGPT truncates after appending, which drops the EOS of long
    reports). Padding is dynamic (to the longest target in the batch) and on the right;
    ``target_mask`` marks the real tokens, so the pad id never has to differ from EOS or UNK.
    """

    def __init__(self, tokenizer: Any, max_target_tokens: int, with_targets: bool = True) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; set one before training")
        if max_target_tokens < 2:
            raise ValueError(f"max_target_tokens must be at least 2, got {max_target_tokens}")
        self.tokenizer = tokenizer
        self.max_target_tokens = max_target_tokens
        self.with_targets = with_targets
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode_targets(self, reports: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return right-padded ``target_ids`` and ``target_mask`` [batch, longest target]."""
        encoded = self.tokenizer(reports, add_special_tokens=False)["input_ids"]
        sequences = [ids[: self.max_target_tokens - 1] + [self.tokenizer.eos_token_id] for ids in encoded]
        length = max(len(ids) for ids in sequences)
        target_ids = torch.full((len(sequences), length), self.pad_id, dtype=torch.long)
        target_mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            target_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            target_mask[row, : len(ids)] = 1
        return target_ids, target_mask

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "ids": [item["id"] for item in items],
            "references": [item["report"] for item in items],
            "pixel_values": torch.cat([item["images"] for item in items]),
            "view_counts": torch.tensor([item["images"].shape[0] for item in items], dtype=torch.long),
        }
        if self.with_targets:
            batch["target_ids"], batch["target_mask"] = self.encode_targets(batch["references"])
        return batch
