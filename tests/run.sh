#!/usr/bin/env bash
# The whole test suite, set-up included:   bash tests/run.sh
#
# 1. a training environment (TensorFlow, tf2onnx: requirements-train.txt): data, training,
#    resume, train -> export -> parity -> generate on the real fixture in tests/data;
# 2. a runtime-only environment (the ganlite wheel + test tools, no TensorFlow): the
#    runtime tests, against the installed wheel, including generating from the models
#    that step 1 exported;
# 3. the ray extra (ganlite[ray]) in a venv of its own: tests/test_ray.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 TF_CPP_MIN_LOG_LEVEL=2
export GANLITE_CI_EXPORT="$PWD/runs/ci-export"
rm -rf "$GANLITE_CI_EXPORT"

echo "== training environment (.venv-train)"
[ -x .venv-train/bin/python ] || "$PYTHON" -m venv .venv-train
.venv-train/bin/pip install -q -r requirements-train.txt
PYTHONPATH="$PWD" .venv-train/bin/python -m pytest -m train -p no:cacheprovider -q tests

echo "== the web page's onnxruntime-web (web/package-lock.json)"
if command -v npm >/dev/null; then
    npm ci --prefix web --no-audit --no-fund --loglevel=error
else
    echo "no npm: tests/test_web.py needs web/node_modules (npm ci --prefix web)"
fi

echo "== runtime-only environment (.venv-runtime, no TensorFlow)"
rm -rf .venv-runtime
"$PYTHON" -m venv .venv-runtime
.venv-runtime/bin/pip install -q ".[dev,openvino,serve]"
echo "== lint (ruff) and types (mypy, on ganlite/)"
.venv-runtime/bin/ruff check .
.venv-runtime/bin/mypy
# The pytest script, not `python -m pytest`: the checkout must not shadow the wheel.
GANLITE_RUNTIME_ONLY=1 .venv-runtime/bin/pytest -m "not train" -p no:cacheprovider -q tests

# The ray extra in its own venv (Ray is ~600 MB): the main runtime venv stays as it is.
# tests/test_ray.py starts a local Ray instance (2 CPUs); about 3 minutes with the install.
echo "== the ray extra (.venv-ray: ganlite[ray], tests/test_ray.py)"
rm -rf .venv-ray
"$PYTHON" -m venv .venv-ray
.venv-ray/bin/pip install -q ".[dev,ray]"
GANLITE_RUNTIME_ONLY=1 .venv-ray/bin/pytest -p no:cacheprovider -q tests/test_ray.py
