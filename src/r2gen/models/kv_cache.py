"""A key/value cache for beam search that computes the prompt once per study and never copies it again.

Hugging Face ``generate`` repeats every prompt ``num_beams`` times before the first forward pass, so
the prompt is encoded once per beam, and its ``DynamicCache`` concatenates and reorders the whole
cache at every step. Here the prompt (all but its last position) is encoded once per study, and
the cache is then repeated for the beams. Each layer keeps a preallocated buffer that grows in
place. Beam reordering copies only the generated positions, because beam search reorders beams
within one study and all beams of a study share the same prompt positions.

The generated token ids equal those of plain ``generate`` up to floating-point rounding: the
prompt is encoded in a batch of ``studies`` rather than ``studies * num_beams`` rows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers.cache_utils import Cache, DynamicLayer


class SharedPromptLayer(DynamicLayer):
    """One layer's keys and values in buffers of ``capacity`` positions; the first ``shared_length``
    positions are the same for every beam of a study, so ``reorder_cache`` skips them."""

    def __init__(self, capacity: int, shared_length: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.shared_length = shared_length
        self.length = 0
        self._key_buffer: Tensor | None = None
        self._value_buffer: Tensor | None = None

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        self.device = key_states.device
        batch, heads, _, head_dim = key_states.shape
        self._key_buffer = key_states.new_empty(batch, heads, self.capacity, head_dim)
        self._value_buffer = value_states.new_empty(batch, value_states.shape[1], self.capacity,
                                                    value_states.shape[3])
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self._grow(max(end, 2 * self.capacity))
        self._key_buffer[:, :, self.length : end] = key_states
        self._value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self._refresh_views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.length <= self.shared_length:
            return
        beam_idx = beam_idx.to(self.device)
        for buffer in (self._key_buffer, self._value_buffer):
            generated = buffer[:, :, self.shared_length : self.length]
            generated.copy_(generated.index_select(0, beam_idx))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if not self.is_initialized:
            return
        self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
        self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
        self._refresh_views()

    def batch_select_indices(self, indices: Tensor) -> None:
        if not self.is_initialized:
            return
        self._key_buffer = self._key_buffer[indices]
        self._value_buffer = self._value_buffer[indices]
        self._refresh_views()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a negative count of positions to remove, got {tokens_to_remove}")
        self.length = max(0, self.length + tokens_to_remove)
        if self.is_initialized:
            self._refresh_views()

    def reset(self) -> None:
        self.length = 0
        self.keys = self.values = self._key_buffer = self._value_buffer = None
        self.is_initialized = False

    def _grow(self, capacity: int) -> None:
        for name in ("_key_buffer", "_value_buffer"):
            old = getattr(self, name)
            new = old.new_empty(old.shape[0], old.shape[1], capacity, old.shape[3])
            new[:, :, : self.length] = old[:, :, : self.length]
            setattr(self, name, new)
        self.capacity = capacity

    def _refresh_views(self) -> None:
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]


def supports_shared_prompt_cache(llm: nn.Module) -> bool:
    """Return whether every layer of ``llm`` uses full causal attention (no sliding window or linear layers)."""
    config = llm.config
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "sliding_window", None):
        return False
    layer_types = getattr(config, "layer_types", None)
    return layer_types is None or all(kind == "full_attention" for kind in layer_types)


@torch.no_grad()
def prefill_shared_prompt(llm: nn.Module, prompt: Tensor, num_beams: int, max_new_tokens: int) -> Cache:
    """Encode ``prompt[:, :-1]`` once per study and return its cache repeated for ``num_beams`` beams.

    Pass the result as ``cache`` to ``llm.generate`` together with the full ``prompt`` as
    ``inputs_embeds``: generate then runs only the last prompt position, once per beam.
    """
    length = prompt.shape[1]
    if length < 2:
        raise ValueError(f"the prompt must have at least 2 positions to share a cache, got {length}")
    layers = [SharedPromptLayer(capacity=length + max_new_tokens, shared_length=length - 1)
              for _ in range(llm.config.num_hidden_layers)]
    cache = Cache(layers=layers)
    mask = torch.ones(prompt.shape[0], length - 1, dtype=torch.long, device=prompt.device)
    llm.get_decoder()(inputs_embeds=prompt[:, :-1], attention_mask=mask, cache=cache, use_cache=True)
    for layer in cache.layers:
        layer.batch_repeat_interleave(num_beams)
    return cache
