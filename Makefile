# One-command setup + run. Every target creates the virtual environment first if needed.
VENV    ?= .venv
PY      := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
ARGS    ?=
PORT    ?= 5001
# the MLflow experiment of the verbs' runs (as hwr.mlflow.runs.DEFAULT_EXPERIMENT for direct runs)
EXPERIMENT ?= hwr

.PHONY: venv venv-gpu venv-spark venv-server venv-tools fonts train tune finetune pretrain promote predict test test-fast docs ui serve dockerfile bench server server-stop spark spark-stop clean

venv: $(VENV)/.installed

# Installs go through uv (pinned in requirements.txt): the requirements install in seconds where
# pip took one to three minutes. Each environment is a plain venv (pip stays in it) with uv inside.
# uv leaves sources uncompiled; where PYTHONDONTWRITEBYTECODE is set (as on CI's machines) every
# process would then compile what it imports anew: 22 s to import TensorFlow instead of 11 on the
# AVX2-only host. --compile-bytecode compiles once, at install.
UV_PIN := $(shell grep -E '^uv==' requirements.txt)
# $(call uv_env,DIR,REQUIREMENTS): a venv in DIR with uv in it, then REQUIREMENTS installed by uv
uv_env = python3 -m venv $(1) && $(1)/bin/pip install -q $(UV_PIN) && $(1)/bin/uv pip install -q --compile-bytecode --python $(1)/bin/python -r $(2)
# $(call uv_add,REQUIREMENTS): REQUIREMENTS (pip arguments) installed into $(VENV) by its uv
uv_add = $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) $(1)

$(VENV)/.installed: requirements.txt pyproject.toml
	$(call uv_env,$(VENV),requirements.txt)
	$(call uv_add,--no-deps -e .)
	touch $@

venv-gpu: $(VENV)/.gpu  ## optional extra: TensorFlow with CUDA instead of tensorflow-cpu; training and prediction then use the GPU without flags

$(VENV)/.gpu: $(VENV)/.installed requirements-gpu.txt
	$(VENV)/bin/uv pip uninstall -q --python $(PY) tensorflow-cpu
	$(call uv_add,-r requirements-gpu.txt)
	$(VENV)/bin/python -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))"
	touch $@

venv-spark: $(VENV)/.spark  ## optional extra: pyspark for `tune -P backend=spark`

$(VENV)/.spark: $(VENV)/.installed requirements-spark.txt
	$(call uv_add,-r requirements-spark.txt)
	touch $@

venv-server: $(VENV)/.server  ## optional extra: PostgreSQL driver + MLflow basic auth, for `make server`

$(VENV)/.server: $(VENV)/.installed requirements-server.txt
	$(call uv_add,-r requirements-server.txt)
	touch $@

venv-tools: .venv-tools/.installed  ## test tools in their own environment: OCR-D's page-to-alto (PAGE -> ALTO)

.venv-tools/.installed: requirements-tools.txt
	$(call uv_env,.venv-tools,requirements-tools.txt)
	touch $@

# handwriting-like fonts from Debian for `pretrain` (its synthetic lines); tests use matplotlib's DejaVu fonts
# (the files used are hwr.data.synthetic.DEBIAN_FONTS)
FONT_PACKAGES = fonts-dkg-handwriting fonts-breip fonts-dancingscript fonts-kristi fonts-ecolier-court \
	fonts-comic-neue fonts-kaushanscript fonts-joscelyn

fonts:               ## optional: Debian's handwriting-like fonts for `make pretrain` (needs root: apt-get)
	apt-get install -y -q --no-install-recommends $(FONT_PACKAGES)

train: venv          ## make train ARGS="-P lr=0.001 -P epochs=30"
	mlflow run . -e train --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

tune: venv           ## make tune ARGS="-P max_evals=12 -P trial_epochs=3"
	mlflow run . -e tune --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

pretrain: venv       ## make pretrain ARGS="-P data=../shared/data/hooker": synthetic lines -> a registered base model
	mlflow run . -e pretrain --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

finetune: venv       ## make finetune ARGS="-P base_model=models:/hwr-crnn-full@champion -P data=..."
	mlflow run . -e finetune --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

promote: venv        ## make promote ARGS="-P split=test": @challenger replaces @champion only when clearly better
	mlflow run . -e promote --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

predict: venv        ## make predict ARGS="-P model=models:/hwr-crnn@champion -P split=test"
	mlflow run . -e predict --env-manager local --experiment-name $(EXPERIMENT) $(ARGS)

# Two workers, a file at a time, in the order tests/conftest.py gives (the longest files first);
# --no-loadscope-reorder keeps that order (xdist would sort files by their number of tests, which
# put the 4-test team file, 12 minutes on the AVX2-only host, last). TensorFlow keeps its default
# thread pools: one thread per process made two concurrent tiny trainings faster (87 s against 104)
# but the suite no faster (25 min 51 s against 25 min 10 s; the Spark tune test 157 s against 78).
test: venv-spark venv-server venv-tools  ## the whole test suite (what .ci/run runs; includes the extras and the tools)
	$(PY) -m pytest tests -n 2 --dist loadfile --no-loadscope-reorder --durations=15

test-fast: venv venv-tools  ## the fast layer, while editing (no training): pytest -m "not slow"
	$(PY) -m pytest tests -m "not slow"

docs: venv           ## rewrite the README's parameter tables from the parameter declarations
	$(PY) -m hwr.cli readme README.md

ui: venv             ## MLflow UI on the local store: http://127.0.0.1:5000
	mlflow ui --backend-store-uri sqlite:///mlflow.db -h 127.0.0.1 -p 5000

serve: venv          ## serve models:/hwr-crnn@champion on http://127.0.0.1:$(PORT)
	mlflow models serve -m models:/hwr-crnn@champion --env-manager local -h 127.0.0.1 -p $(PORT)

dockerfile: venv     ## output/docker/: a Dockerfile + the champion model, to build a serving image anywhere
	mlflow models generate-dockerfile -m models:/hwr-crnn@champion -d output/docker

bench: venv          ## throughput and memory figures of the default model
	$(PY) bench/train_throughput.py

server: venv-server  ## team tracking server on 127.0.0.1: PostgreSQL + Ceph S3 + mlflow server (basic auth); prints the exports
	bash stack/server.sh start

server-stop:         ## stop what `make server` started (the data stays in .stack/)
	bash stack/server.sh stop

spark: venv-spark    ## Spark standalone cluster: master spark://127.0.0.1:7077 + two 1-core workers
	bash stack/spark.sh start

spark-stop:          ## stop the Spark master and workers
	bash stack/spark.sh stop

clean:
	rm -rf $(VENV)
