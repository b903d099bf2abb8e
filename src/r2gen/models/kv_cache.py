"""Key/value caches that keep a frozen LLM from recomputing positions whose keys and values are known.

Two levers live here:
- ``PrefixKeyValues``: the prompt text before the image (BOS + "Human: <Img>") is the same for every
  study, so a frozen LLM's keys and values there are computed once and reused by every forward pass.
- ``prefill_shared_prompt``: Hugging Face ``generate`` repeats every prompt ``num_beams`` times before
  the first forward pass and its ``DynamicCache`` concatenates and reorders the whole cache at every
  step. Here the prompt (all but its last position) is encoded once per study, and the cache is then
  repeated for the beams. Each layer keeps a preallocated buffer that grows in place, and beam
  reordering copies only the generated positions: beam search reorders beams within one study, and
  all beams of a study share the same prompt positions.

Both change results only by floating-point rounding, because the same positions are computed in
batches of another size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers.cache_utils import Cache, DynamicLayer


class SharedPromptLayer(DynamicLayer):
    """One layer's keys and values in buffers that grow in place, ``capacity`` positions at first.

    The first ``shared_length`` positions are the same in every beam of a study, so ``reorder_cache``
    leaves them where they are.
    """

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


class PrefixKeyValues:
    """Per-layer keys and values of a fixed prefix in a frozen LLM, recomputed only when the weights change.

    NOTE: tested in single-process runs only. Under FSDP or DeepSpeed ZeRO-3 the parameter objects may
    change between steps, which would recompute the prefix every step (correct, but no saving).
    """

    def __init__(self) -> None:
        self._signature: tuple | None = None
        self._layers: list[tuple[Tensor, Tensor]] = []

    def get(self, llm: nn.Module, prefix_embeddings: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Return ``[(keys, values)]`` per layer, each [1, heads, prefix length, head dim]."""
        signature = (_weights_signature(llm), _autocast_dtype(prefix_embeddings.device.type),
                     prefix_embeddings.device, prefix_embeddings.dtype, tuple(prefix_embeddings.shape))
        if signature != self._signature:
            cache = Cache(layers=[DynamicLayer() for _ in range(llm.config.num_hidden_layers)])
            with torch.no_grad():
                llm.get_decoder()(inputs_embeds=prefix_embeddings.unsqueeze(0), cache=cache, use_cache=True)
            self._layers = [(layer.keys, layer.values) for layer in cache.layers]
            self._signature = signature
        return self._layers


def cache_with_prefix(layers: list[tuple[Tensor, Tensor]], batch_size: int) -> Cache:
    """Build a fresh ``Cache`` that starts with the prefix for ``batch_size`` rows (expanded, not copied)."""
    cache_layers = []
    for keys, values in layers:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)
        layer.keys = keys.expand(batch_size, -1, -1, -1)
        layer.values = values.expand(batch_size, -1, -1, -1)
        cache_layers.append(layer)
    return Cache(layers=cache_layers)


def can_cache_prefix(llm: nn.Module) -> bool:
    """Return whether ``llm`` is frozen, in eval mode, without gradient checkpointing and with full attention."""
    if any(parameter.requires_grad for parameter in llm.parameters()) or llm.training:
        return False
    # transformers 5 names the property is_activation_checkpointing (is_gradient_checkpointing warns).
    if getattr(llm, "is_activation_checkpointing", False):
        return False
    return supports_shared_prompt_cache(llm)


def _weights_signature(module: nn.Module) -> tuple:
    # load_state_dict and in-place updates bump Tensor._version; replaced tensors change id.
    return tuple((id(tensor), tensor._version) for tensor in [*module.parameters(), *module.buffers()])


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def supports_shared_prompt_cache(llm: nn.Module) -> bool:
    """Return whether every layer of ``llm`` uses full causal attention (no sliding window or linear layers)."""
    config = llm.config
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "sliding_window", None):
        return False
    layer_types = getattr(config, "layer_types", None)
    return layer_types is None or all(kind == "full_attention" for kind in layer_types)


@torch.no_grad()
def prefill_shared_prompt(llm: nn.Module, prompt: Tensor, num_beams: int, max_new_tokens: int,
                          prefix: list[tuple[Tensor, Tensor]] | None = None) -> Cache:
    """Encode ``prompt[:, :-1]`` once per study and return its cache repeated for ``num_beams`` beams.

    ``prefix`` contains known keys and values of the first prompt positions (from ``PrefixKeyValues``),
    which are then copied instead of computed. Pass the result as ``cache`` to ``llm.generate``
    together with the full ``prompt`` as ``inputs_embeds``: generate then runs only the last prompt
    position, once per beam.
    """
    batch, length = prompt.shape[:2]
    if length < 2:
        raise ValueError(f"the prompt must have at least 2 positions to share a cache, got {length}")
    known = prefix[0][0].shape[2] if prefix else 0
    if length < known + 2:
        prefix, known = None, 0  # nothing would be left to prefill after the known positions
    layers = [SharedPromptLayer(capacity=length + max_new_tokens, shared_length=length - 1)
              for _ in range(llm.config.num_hidden_layers)]
    for layer, (keys, values) in zip(layers, prefix or []):
        layer.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
    cache = Cache(layers=layers)
    mask = torch.ones(batch, length - 1, dtype=torch.long, device=prompt.device)
    llm.get_decoder()(inputs_embeds=prompt[:, known:-1], attention_mask=mask, cache=cache, use_cache=True)
    for layer in cache.layers:
        layer.batch_repeat_interleave(num_beams)
    return cache
