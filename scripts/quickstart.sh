#!/usr/bin/env bash
# The TorchServe first hour, with servekit, on the bundled DenseNet-161 example:
# archive it, serve it, classify a real photo, print the answer, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
work=build/quickstart
mkdir -p "$work" model_store

echo "== 1. Weights: locally initialised DenseNet-161 (no downloads; see examples/image_classifier/README.md)"
[ -f "$work/densenet161.pth" ] || python examples/image_classifier/densenet_161/make_weights.py "$work/densenet161.pth"

echo "== 2. Archive: model_store/densenet161.mar"
servekit-archiver --model-name densenet161 --version 1.0 \
  --model-file examples/image_classifier/densenet_161/model.py \
  --serialized-file "$work/densenet161.pth" --export-path model_store \
  --extra-files examples/image_classifier/index_to_name.json --handler image_classifier --force

echo "== 3. Serve"
servekit --stop >/dev/null 2>&1 || true
servekit --start --ncs --model-store model_store --models densenet161.mar > "$work/server.log" 2>&1
trap 'servekit --stop' EXIT

echo "== 4. Classify a real photo (scikit-learn's bundled china.jpg)"
python examples/image_classifier/sample_photo.py "$work/photo.jpg"
python examples/image_classifier/classify.py http://127.0.0.1:8080/predictions/densenet161 "$work/photo.jpg"
