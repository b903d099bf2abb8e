"""R2GenGPT: vision encoder -> view fusion -> aligner -> input embeddings of a causal LLM.

Sequence layout, in input-embedding space (every sample has the same prefix, so it is never padded):

    [BOS] prompt-before-image  <visual tokens>  prompt-after-image  report tokens  EOS  pad ...

Only the report tokens and the EOS are targets; BOS, prompt, visual tokens and padding are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from r2gen.models.feature_cache import DEFAULT_MAX_BYTES, EncoderFeatureCache, encoder_is_frozen
from r2gen.models.kv_cache import (PrefixKeyValues, can_cache_prefix, cache_with_prefix, prefill_shared_prompt,
                                   supports_shared_prompt_cache)

IGNORE_INDEX = -100
VIEW_FUSIONS = ("mean", "first")


@dataclass
class PromptConfig:
    """The text around the visual tokens. ``template`` must contain ``placeholder`` once."""

    # Note the space before the newline and none after "Assistant:": R2GenGPT's exact layout.
    template: str = "Human: <Img><ImageHere></Img> {instruction} \nAssistant:"
    instruction: str = "Generate a comprehensive and detailed diagnosis report for this chest xray image."
    placeholder: str = "<ImageHere>"
    # Wrap the prompt in the tokenizer's chat template (for chat LLMs); the template then supplies BOS.
    use_chat_template: bool = False


@dataclass
class GenerationConfig:
    """Decoding settings; the defaults are R2GenGPT's IU X-ray settings (beam search, no sampling)."""

    num_beams: int = 3
    min_new_tokens: int = 40
    max_new_tokens: int = 100
    repetition_penalty: float = 2.0
    length_penalty: float = 2.0
    no_repeat_ngram_size: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0


def split_prompt(prompt: PromptConfig, tokenizer: Any) -> tuple[str, str, bool]:
    """Return the text before and after the image placeholder and whether to prepend BOS."""
    text = prompt.template.format(instruction=prompt.instruction)
    if text.count(prompt.placeholder) != 1:
        raise ValueError(f"prompt template must contain {prompt.placeholder!r} exactly once: {text!r}")
    add_bos = True
    if prompt.use_chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt.use_chat_template is true but the tokenizer has no chat template")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        add_bos = False
    before, after = text.split(prompt.placeholder)
    return before, after, add_bos


def fuse_views(tokens: torch.Tensor, view_counts: torch.Tensor, fusion: str) -> torch.Tensor:
    """Fuse per-view tokens [total_views, T, D] into per-study tokens [studies, T, D].

    "mean" averages the views of a study element-wise (R2GenGPT), "first" keeps the first view.
    """
    starts = torch.cumsum(view_counts, 0) - view_counts
    if fusion == "first":
        return tokens[starts]
    if fusion != "mean":
        raise ValueError(f"unknown view_fusion {fusion!r}; expected one of {', '.join(VIEW_FUSIONS)}")
    study_index = torch.repeat_interleave(torch.arange(len(view_counts), device=tokens.device), view_counts)
    summed = tokens.new_zeros((len(view_counts),) + tokens.shape[1:]).index_add_(0, study_index, tokens)
    return summed / view_counts.to(tokens.dtype).view(-1, 1, 1)


class R2GenGPT(nn.Module):
    """The composite model. Children are named ``encoder``, ``aligner`` and ``llm``, which the tuning
    code relies on to declare what trains."""

    def __init__(
        self,
        encoder: nn.Module,
        aligner: nn.Module,
        llm: nn.Module,
        tokenizer: Any,
        prompt: PromptConfig | None = None,
        view_fusion: str = "mean",
    ) -> None:
        super().__init__()
        if view_fusion not in VIEW_FUSIONS:
            raise ValueError(f"unknown view_fusion {view_fusion!r}; expected one of {', '.join(VIEW_FUSIONS)}")
        self.encoder = encoder
        self.aligner = aligner
        self.llm = llm
        self.tokenizer = tokenizer
        self.view_fusion = view_fusion
        self.prompt = prompt or PromptConfig()
        before, after, add_bos = split_prompt(self.prompt, tokenizer)
        prefix = tokenizer(before, add_special_tokens=False)["input_ids"]
        if add_bos:
            if tokenizer.bos_token_id is None:
                raise ValueError("the tokenizer has no BOS token; use prompt.use_chat_template or set one")
            prefix = [tokenizer.bos_token_id] + prefix
        suffix = tokenizer(after, add_special_tokens=False)["input_ids"]
        self.register_buffer("prefix_ids", torch.tensor(prefix, dtype=torch.long), persistent=False)
        self.register_buffer("suffix_ids", torch.tensor(suffix, dtype=torch.long), persistent=False)
        self.frozen_modules: list[str] = []
        # Off until enable_feature_cache. A plain attribute, so state dicts do not change.
        self.feature_cache: EncoderFeatureCache | None = None
        # The speed levers of kv_cache.py are on by default, and False restores plain Hugging Face calls.
        # cache_prefix: a frozen LLM computes the prompt prefix's keys and values once, not per batch.
        # share_prompt_cache: generate encodes the prompt once per study, not once per beam.
        self.cache_prefix = True
        self.share_prompt_cache = True
        self._prefix_key_values = PrefixKeyValues()

    @property
    def prompt_length(self) -> int:
        """Positions before the first target token: prefix (BOS included), visual tokens, suffix."""
        return len(self.prefix_ids) + self.encoder.num_tokens + len(self.suffix_ids)

    def train(self, mode: bool = True) -> R2GenGPT:
        # A frozen module stays in eval mode, so no dropout, drop-path or batch-norm statistics change.
        super().train(mode)
        for name in self.frozen_modules:
            self.get_submodule(name).eval()
        return self

    def enable_feature_cache(self, max_bytes: int = DEFAULT_MAX_BYTES) -> EncoderFeatureCache:
        """Memoize the encoder's tokens per image while the encoder is frozen and in eval mode.

        Only valid without image augmentation, because views are matched by their pixel values. While
        the encoder trains (lora, full) or is in training mode, the cache is bypassed.
        """
        self.feature_cache = EncoderFeatureCache(max_bytes)
        return self.feature_cache

    def encode_images(self, pixel_values: torch.Tensor, view_counts: torch.Tensor) -> torch.Tensor:
        """Encode all views in one encoder pass and return aligned visual embeddings [studies, T, H]."""
        if self.feature_cache is not None and encoder_is_frozen(self.encoder):
            tokens = self.feature_cache.encode(self.encoder, pixel_values)
        else:
            tokens = self.encoder(pixel_values)
        return self.aligner(fuse_views(tokens, view_counts, self.view_fusion))

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def build_prompt_embeddings(self, visual: torch.Tensor, include_prefix: bool = True) -> torch.Tensor:
        """Concatenate prefix, visual tokens and suffix embeddings [studies, prompt_length, H].

        ``include_prefix=False`` leaves out the prefix, for a caller that has its keys and values.
        """
        batch = visual.shape[0]
        suffix = self._embed(self.suffix_ids).unsqueeze(0).expand(batch, -1, -1).to(visual.dtype)
        if not include_prefix:
            return torch.cat([visual, suffix], dim=1)
        prefix = self._embed(self.prefix_ids).unsqueeze(0).expand(batch, -1, -1)
        return torch.cat([prefix.to(visual.dtype), visual, suffix], dim=1)

    def prefix_key_values(self, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Return the frozen LLM's keys and values over the prompt prefix, or None where they cannot be reused.

        ``dtype`` is the dtype of the rest of the input embeddings, which the prefix is cast to as
        ``build_prompt_embeddings`` casts it.
        """
        if not self.cache_prefix or len(self.prefix_ids) == 0 or not can_cache_prefix(self.llm):
            return None
        return self._prefix_key_values.get(self.llm, self._embed(self.prefix_ids).to(dtype))

    def build_labels(self, target_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        """Return labels over the full sequence: IGNORE_INDEX on the prompt and padding, ids elsewhere."""
        prompt_labels = target_ids.new_full((target_ids.shape[0], self.prompt_length), IGNORE_INDEX)
        target_labels = target_ids.masked_fill(target_mask == 0, IGNORE_INDEX)
        return torch.cat([prompt_labels, target_labels], dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        view_counts: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Return the mean cross-entropy over all target tokens (report and EOS) in the batch.

        Logits are computed only at the positions that predict a real target, which skips the
        vocabulary-sized LM head on the prompt and the padding. The loss equals Hugging Face's shifted
        causal-LM loss with ``build_labels`` as labels.
        """
        visual = self.encode_images(pixel_values, view_counts)
        prefix = self.prefix_key_values(visual.dtype)
        # With the prefix's keys and values cached, its positions are left out of the input.
        prompt = self.build_prompt_embeddings(visual, include_prefix=prefix is None)
        inputs = torch.cat([prompt, self._embed(target_ids).to(prompt.dtype)], dim=1)
        batch = target_ids.shape[0]
        attention_mask = torch.cat([target_mask.new_ones(batch, self.prompt_length), target_mask], dim=1)
        cache = None if prefix is None else cache_with_prefix(prefix, batch)
        hidden = self.llm.get_decoder()(inputs_embeds=inputs, attention_mask=attention_mask, cache=cache,
                                        use_cache=cache is not None).last_hidden_state
        start = prompt.shape[1] - 1
        # Boolean indexing gives a contiguous [targets, H] matrix, so the LM head is one matrix multiply.
        # The strided [B, T, H] slice made F.linear fall back to a slower batched multiply on CPU.
        real = target_mask.bool()
        predicting = hidden[:, start : start + target_ids.shape[1]][real]
        logits = self.llm.get_output_embeddings()(predicting).float()
        return F.cross_entropy(logits, target_ids[real])

    @torch.no_grad()
    def generate(
        self, pixel_values: torch.Tensor, view_counts: torch.Tensor, config: GenerationConfig | None = None
    ) -> list[str]:
        """Generate one report per study; an empty generation is returned as "" (never dropped)."""
        output = self.generate_ids(pixel_values, view_counts, config)
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [text.strip() for text in texts]

    @torch.no_grad()
    def generate_ids(
        self, pixel_values: torch.Tensor, view_counts: torch.Tensor, config: GenerationConfig | None = None
    ) -> torch.Tensor:
        """Return the new token ids [studies, longest generation], padded after EOS with the pad id."""
        config = config or GenerationConfig()
        prompt = self.build_prompt_embeddings(self.encode_images(pixel_values, view_counts))
        attention_mask = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
        extra = {"temperature": config.temperature, "top_p": config.top_p} if config.do_sample else {}
        if self.share_prompt_cache and supports_shared_prompt_cache(self.llm) and prompt.shape[1] > 1:
            extra["cache"] = prefill_shared_prompt(self.llm, prompt, config.num_beams, config.max_new_tokens,
                                                   prefix=self.prefix_key_values(prompt.dtype))
        # With only inputs_embeds, generate() returns just the new tokens.
        return self.llm.generate(
            inputs_embeds=prompt,
            attention_mask=attention_mask,
            num_beams=config.num_beams,
            min_new_tokens=config.min_new_tokens,
            max_new_tokens=config.max_new_tokens,
            repetition_penalty=config.repetition_penalty,
            length_penalty=config.length_penalty,
            no_repeat_ngram_size=config.no_repeat_ngram_size,
            do_sample=config.do_sample,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self._pad_id(),
            **extra,
        )

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id
