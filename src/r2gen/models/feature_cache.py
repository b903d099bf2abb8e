"""Memoized outputs of a frozen vision encoder, keyed by the content of each image.

With the encoder frozen, in eval mode and without augmentation, every epoch feeds the same pixels
through the same weights, so the encoder's tokens can be computed once per image and reused. The key
is a BLAKE2b hash of each view's pixel tensor, so callers need no image ids and a changed transform
gives new keys. Entries are dropped when the encoder's parameters or buffers change in place
(``load_state_dict`` and optimizer steps bump ``Tensor._version``) or are replaced.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass
class FeatureCacheStats:
    """Lookups since the cache was created: views served from the cache and views encoded."""

    hits: int = 0
    misses: int = 0


def encoder_is_frozen(encoder: nn.Module) -> bool:
    """Return whether ``encoder`` gives the same output for the same input: no trainable weight, eval mode."""
    if any(parameter.requires_grad for parameter in encoder.parameters()):
        return False
    return not any(module.training for module in encoder.modules())


class EncoderFeatureCache:
    """Per-view encoder outputs, stored on the device they were computed on, up to ``max_bytes``.

    Once full, new views are encoded but not stored, which keeps the first ``max_bytes`` worth of
    images cached. That keeps the hit rate at the cached share of the dataset in epoch-order scans,
    where evicting the oldest entry would miss every time.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"invalid feature cache max_bytes {max_bytes}: it must be positive")
        self.max_bytes = max_bytes
        self.stored_bytes = 0
        self.stats = FeatureCacheStats()
        self._entries: dict[tuple, Tensor] = {}
        self._weights_signature: tuple | None = None
        self._warned_full = False

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.stored_bytes = 0

    def encode(self, encoder: nn.Module, pixel_values: Tensor) -> Tensor:
        """Return ``encoder(pixel_values)``, running the encoder only on views not cached yet.

        ``encoder`` must be frozen (see ``encoder_is_frozen``). Each row equals the encoder's output for
        that view up to floating-point rounding, which may differ with the size of the batch it was
        encoded in.
        """
        if not encoder_is_frozen(encoder):
            raise ValueError("the feature cache needs a frozen encoder in eval mode; call the encoder directly")
        self._check_weights(encoder)
        context = _autocast_context(pixel_values.device.type)
        keys = [(_hash_view(view), *context) for view in pixel_values]
        missing = [index for index, key in enumerate(keys) if key not in self._entries]
        self.stats.hits += len(keys) - len(missing)
        self.stats.misses += len(missing)
        if len(missing) == len(keys):
            tokens = encoder(pixel_values)
            self._store(keys, tokens)
            return tokens
        computed = encoder(pixel_values[missing]) if missing else None
        position = {index: row for row, index in enumerate(missing)}
        rows = [computed[position[index]] if index in position else self._entries[key]
                for index, key in enumerate(keys)]
        if computed is not None:
            self._store([keys[index] for index in missing], computed)
        return torch.stack(rows)

    def _store(self, keys: list[tuple], tokens: Tensor) -> None:
        for key, row in zip(keys, tokens):
            if key in self._entries:  # the same image twice in one batch
                continue
            size = row.numel() * row.element_size()
            if self.stored_bytes + size > self.max_bytes:
                if not self._warned_full:
                    logger.warning("Encoder feature cache is full at %d views (%.1f MiB); later views are "
                                   "encoded every time. Raise max_bytes to cache more.",
                                   len(self._entries), self.stored_bytes / 2**20)
                    self._warned_full = True
                return
            # clone() detaches the row from the batch tensor, so the batch's memory can be freed.
            self._entries[key] = row.detach().clone()
            self.stored_bytes += size

    def _check_weights(self, encoder: nn.Module) -> None:
        signature = tuple((id(tensor), tensor._version) for tensor in [*encoder.parameters(), *encoder.buffers()])
        if signature != self._weights_signature:
            if self._entries:
                logger.info("Encoder weights changed, so %d cached feature rows were dropped", len(self._entries))
            self.clear()
            self._weights_signature = signature


def _hash_view(view: Tensor) -> tuple:
    data = view.detach().contiguous().cpu()
    digest = hashlib.blake2b(data.view(torch.uint8).numpy(), digest_size=16).hexdigest()
    return digest, tuple(view.shape), str(view.dtype)


def _autocast_context(device_type: str) -> tuple:
    # Autocast changes the encoder's output, so a bf16 result must not serve an fp32 call.
    if not torch.is_autocast_enabled(device_type):
        return (device_type, None)
    return (device_type, str(torch.get_autocast_dtype(device_type)))
