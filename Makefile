# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
# Everything is idempotent: a second run only redoes what changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
INSTALLED := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := ffmpeg espeak-ng sox
PYTEST_ARGS ?=

export PYANNOTE_METRICS_ENABLED := 0
export RAY_AUTH_MODE := disabled
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
# Without cached bytecode every new Python process (Ray workers, CLI runs) spends ~30 s importing.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test setup system-deps models lock clean

demo: setup models
	$(VENV)/bin/sanyu transcribe --diarize --format txt,srt,vtt,json,rttm,docx -o transcripts "$$($(PY) -m sanyu.demo_audio)"

test: setup models
	$(PY) -m pytest $(PYTEST_ARGS)

setup: system-deps $(INSTALLED)

system-deps:
	@missing=""; for p in ffmpeg espeak-ng sox; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(INSTALLED): requirements.lock setup.cfg
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==0.13.9
	$(UV) pip install --python $(PY) --find-links /opt/wheels -r requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	@# torchaudio 2.11 on PyPI is a CUDA build; against CPU torch its compiled extension cannot load.
	@# Without it torchaudio falls back to pure Python, which covers what pyannote uses (fbank, resample).
	$(PY) -c "import torchaudio" 2>/dev/null || rm -f $(VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	$(PY) -c "import torchaudio, pyannote.audio, faster_whisper, ray"
	touch $@

models: $(INSTALLED)
	$(VENV)/bin/sanyu models fetch base diarization

lock:
	$(UV) pip compile --find-links /opt/wheels --python-version 3.11 requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) transcripts .pytest_cache
