# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
# Everything is idempotent: a second run only redoes what changed.
#
# requirements.lock pins what Sanyu runs with (pyproject.toml's dependencies and its batch,
# serve, s3 and eval extras); requirements-dev.lock adds the test tools, at the same versions.
# `make lock` recompiles both from pyproject.toml (uv; the CPU torch from /opt/wheels).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := ffmpeg espeak-ng sox
PYTEST_ARGS ?=
WHEELS := --find-links /opt/wheels

# Without cached bytecode every new Python process (Ray workers, CLI runs) spends ~30 s importing.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test setup setup-dev system-deps models lock clean

demo: setup models
	$(VENV)/bin/sanyu transcribe --diarize --format txt,srt,vtt,json,rttm,docx -o transcripts "$$($(PY) -m sanyu.demo_audio)"

test: setup-dev models
	$(PY) -m pytest $(PYTEST_ARGS)

setup: system-deps $(RUNTIME)

setup-dev: system-deps $(DEV)

system-deps:
	@missing=""; for p in ffmpeg espeak-ng sox; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(UV):
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)

$(RUNTIME): requirements.lock pyproject.toml | $(UV)
	$(UV) pip install --python $(PY) $(WHEELS) -r requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	@# torchaudio 2.11 on PyPI is a CUDA build; against CPU torch its compiled extension cannot load.
	@# Without it torchaudio falls back to pure Python, which covers what pyannote uses (fbank, resample).
	$(PY) -c "import torchaudio" 2>/dev/null || rm -f $(VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	$(PY) -c "import torchaudio, pyannote.audio, faster_whisper, ray"
	touch $@

$(DEV): requirements-dev.lock $(RUNTIME)
	$(UV) pip install --python $(PY) $(WHEELS) -r requirements-dev.lock
	touch $@

models: $(RUNTIME)
	$(VENV)/bin/sanyu models fetch base diarization

lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra batch --extra serve --extra s3 --extra eval $(WHEELS) \
		--python-version 3.11 -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev -c requirements.lock $(WHEELS) \
		--python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) transcripts .pytest_cache
