#!/usr/bin/env bash
# CI for the plugins under plugins/: build each as a wheel, install the wheels (not editable) into the active
# environment, list what vatt now finds, run vatt's registry-driven contract tests (which build every
# registered component, plugins included), then each plugin's own tests, a few training steps of each of its
# configs that run on embedded data (configs/quickstart_*.yaml) and --summary of the paper-scale ones. Run it
# inside the environment vatt is installed in (see .ci/run); no network is needed when the plugins'
# dependencies are installed. VATT_PLUGIN_STEPS sets the training steps (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${VATT_PLUGIN_STEPS:-3}                          # training steps per plugin config
export VATT_CACHE=${VATT_CACHE:-$PWD/.cache/vatt}      # where the synthetic data is generated once
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Configs that fine-tune the quickstart's checkpoint (model.init: runs/quickstart) get one from a short
# quickstart run, made once.
quickstart_checkpoint() {
  [ -d "$work/runs/quickstart/checkpoints" ] && return
  echo "== $STEPS steps of configs/quickstart.yaml, for the configs that start from its checkpoint"
  python -m vatt.run configs/quickstart.yaml "run.steps=$STEPS" "run.dir=$work/runs/quickstart" run.log_every=1 \
    evaluators=[] data.eval=null
}

plugins=()
for dir in plugins/*/; do
  [ -f "$dir/pyproject.toml" ] && plugins+=("${dir%/}")
done
[ ${#plugins[@]} -gt 0 ] || { echo "no plugins under plugins/" >&2; exit 1; }

for plugin in "${plugins[@]}"; do
  echo "== build $plugin"
  # from a clean copy: setuptools reuses an old build/ folder, which can carry files deleted since
  mkdir -p "$work/src"
  cp -r "$plugin" "$work/src/"
  copy="$work/src/$(basename "$plugin")"
  rm -rf "$copy/build" "$copy"/src/*.egg-info "$copy"/*.egg-info
  python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --wheel-dir "$work/wheels" "$copy"
done
# Not editable, and never --force-reinstall (that would reinstall vatt itself from the index): remove any
# earlier build of these plugins, then install; their dependencies resolve against what is installed.
names=()
for wheel in "$work"/wheels/*.whl; do
  name=$(basename "$wheel"); names+=("${name%%-*}")
done
python -m pip uninstall --quiet --disable-pip-version-check --yes "${names[@]}" 2>/dev/null || true
python -m pip install --quiet --disable-pip-version-check --no-build-isolation "$work"/wheels/*.whl

echo "== python -m vatt.run --list"
python -m vatt.run --list | tee "$work/list.txt"
if grep -q "^plugin " "$work/list.txt"; then
  echo "a plugin failed to load (see above)" >&2
  exit 1
fi

echo "== vatt's contract tests of the plugins' components"
selected=$(python -c "from vatt.registry import all_entries
print(' or '.join(sorted({e.name for es in all_entries().values() for e in es if e.provider != 'vatt'})))")
python -m pytest -q -p no:cacheprovider tests/test_contracts.py -k "$selected"

for plugin in "${plugins[@]}"; do
  echo "== tests of $plugin"
  python -m pytest -q -p no:cacheprovider "$plugin/tests"
  for config in "$plugin"/configs/*.yaml; do
    [ -f "$config" ] || continue
    name=$(basename "$config" .yaml)
    if [[ $name == quickstart_* ]]; then  # runs on the embedded data: train a few steps
      echo "== $STEPS training steps of $config"
      extra=()
      if grep -qE '^ *init: *runs/quickstart *(#|$)' "$config"; then  # fine-tunes the quickstart's checkpoint
        quickstart_checkpoint
        extra=("model.init=$work/runs/quickstart")
      fi
      python -m vatt.run "$config" "run.steps=$STEPS" "run.dir=$work/runs/$name" run.log_every=1 "${extra[@]}"
    else  # a paper-scale recipe that needs real data: build it
      echo "== summary of $config"
      python -m vatt.run "$config" --summary
    fi
  done
done
echo "plugins ok: ${plugins[*]}"
