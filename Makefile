# Two entry points on a fresh machine:
#   make demo   set up .venv and run the main job (examples/sms_spam.yaml) on the embedded model
#   make test   set up .venv and run the whole test suite
# `make setup` alone builds the environment.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synthloom-setup

# llama.cpp must not tune itself to the build machine's CPU: on virtual
# machines that crashes at the first generation. No multimodal models are
# used, so the llava/mtmd library is not built, and neither is llama.cpp's
# `common` library, which llama-cpp-python forces on but never loads
# (scripts/llamacpp_no_common.cmake): the build takes half the time
# (benchmarks/setup_time.py: 119 s against 224 s on 2 cores).
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_INCLUDE=$(CURDIR)/scripts/llamacpp_no_common.cmake

.PHONY: setup browser gguf demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch (a plain `torch` would pull a multi-GB CUDA build).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# Built from source without the wheel cache, so no CPU-tuned build is ever reused.
	$(BIN)/python -m pip install --quiet --no-cache-dir "llama-cpp-python[server]>=0.3.2"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/synthloom run examples/sms_spam.yaml --out runs/sms_spam

# The browser tests (the report, the review app) drive Debian's chromium; no browser is ever downloaded.
browser:
	bash scripts/ensure_chromium.sh

# llama.cpp's GGUF converter (for `finetune --gguf`) from the installed llama-cpp-python's source, about
# 30 s; not part of `setup`, so the first demo does not wait for it. Offline it says so and goes on.
gguf: setup
	$(BIN)/python scripts/gguf_converter.py $(VENV)/share/llama.cpp

test: setup browser gguf
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/embedded.py
	$(BIN)/python benchmarks/demo.py
	$(BIN)/python benchmarks/novelty.py
	$(BIN)/python benchmarks/near_dedup.py
	$(BIN)/python benchmarks/label_noise.py
	$(BIN)/python benchmarks/diversity_speed.py
	$(BIN)/python benchmarks/judge_calibration.py
	$(BIN)/python benchmarks/sandbox.py --breakdown
	$(BIN)/python benchmarks/headline.py
	$(BIN)/python benchmarks/selective.py
	$(BIN)/python benchmarks/soak.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/documents.py

clean:
	rm -rf $(VENV) runs
