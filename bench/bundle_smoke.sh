#!/usr/bin/env bash
# Build the one-folder bundle (aladin.spec) from a clean clone and check that it works.
#
#   bench/bundle_smoke.sh [--keep] [CLONE_DIR]
#
# Clones the committed HEAD of this repository (uncommitted work is not in it) into CLONE_DIR
# (default: a new folder under ${TMPDIR:-/tmp}), makes a venv there with python3.11
# (PYTHON=... to change) and `pip install -e '.[bundle]'`, builds dist/aladin with PyInstaller,
# then checks the bundle against the package installed in that venv:
#   version       dist/aladin/aladin --version is the package's
#   embed         `aladin embed` on generated images gives the installed package's vectors
#                 (max abs difference < 1e-5, or every row's cosine > 0.99999)
#   default-model embed without --model uses the bundled default model (no "untrained" warning),
#                 and the library records _internal/resources/models/default.safetensors
#   embed-L       an ALADIN-L network (torchvision's VGG-16) builds and embeds the same
#   index         `aladin index --workers 2` (spawned decoder processes in the frozen app)
#   search        `aladin search` answers from that library
#   gui           `aladin gui` (offscreen) is still up after 15 s, ends on SIGTERM, leaves no process
#   cuda-linkage  every library NEEDED by torch's, torchvision's and NVIDIA's libraries is in the
#                 bundle (glibc and the driver's libcuda.so.1 excepted): the bundle can load CUDA
#   cuda          on a machine with a GPU only: `embed --device cuda` matches the CPU vectors
#                 (cosine > 0.999), and the NVIDIA libraries it loaded are listed
#   size          total size under BUNDLE_MAX_MIB (default 4096), and a breakdown by part
# Prints a table of check -> pass/fail, exits 1 if any check failed, and deletes CLONE_DIR
# unless --keep. Takes about 10 minutes on 2 cores (the build is about 5) and ~12 GB of disk;
# too slow for every CI run: run it before a release-like change and paste its output.
set -uo pipefail

KEEP=0
DIR=""
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bundle_smoke.sh: unknown option $arg" >&2; exit 2 ;;
        *) [[ -z "$DIR" ]] || { echo "bundle_smoke.sh: one CLONE_DIR only" >&2; exit 2; }; DIR="$arg" ;;
    esac
done

REPO="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit 2
PYTHON="${PYTHON:-python3.11}"
MAX_MIB="${BUNDLE_MAX_MIB:-4096}"
if [[ -z "$DIR" ]]; then
    DIR="$(mktemp -d "${TMPDIR:-/tmp}/aladin-bundle.XXXXXX")"
elif [[ -e "$DIR" && -n "$(ls -A "$DIR" 2>/dev/null)" ]]; then
    echo "bundle_smoke.sh: $DIR is not empty" >&2
    exit 2
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
SRC="$DIR/src" VENV="$DIR/venv" DIST="$DIR/dist" WORK="$DIR/work"
GUI_PID=""

cleanup() {
    if [[ -n "$GUI_PID" ]] && kill -0 "$GUI_PID" 2>/dev/null; then kill -KILL "$GUI_PID" 2>/dev/null; fi
    if [[ "$KEEP" == 1 ]]; then
        echo "kept: $DIR (source src/, venv venv/, bundle dist/aladin, logs *.log)"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT

NAMES=() RESULTS=() DETAILS=()
record() {  # record CHECK pass|fail|skip DETAIL
    NAMES+=("$1") RESULTS+=("$2") DETAILS+=("$3")
    printf '  %-14s %-4s %s\n' "$1" "$2" "$3"
}
report() {
    echo
    echo "== bundle_smoke.sh: results (commit $COMMIT)"
    printf '%-14s %-6s %s\n' check result detail
    local i failed=0
    for i in "${!NAMES[@]}"; do
        printf '%-14s %-6s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"
        [[ "${RESULTS[$i]}" == fail ]] && failed=$((failed + 1))
    done
    if ((failed)); then echo "FAILED: $failed check(s)"; exit 1; fi
    echo "all checks passed"
    exit 0
}
secs() { echo $(( $(date +%s) - $1 ))s; }

COMMIT="?"
echo "== clone $REPO (HEAD) into $SRC"
if ! git clone --quiet "$REPO" "$SRC"; then record clone fail "git clone failed"; report; fi
COMMIT="$(git -C "$SRC" log -1 --format='%h %s' | cut -c1-72)"
echo "   $COMMIT"

echo "== venv: $PYTHON -m venv; pip install -e '.[bundle]' (log: venv.log)"
t0=$(date +%s)
if ! { "$PYTHON" -m venv "$VENV" && "$VENV/bin/pip" install -e "$SRC[bundle]"; } >"$DIR/venv.log" 2>&1; then
    tail -20 "$DIR/venv.log"
    record venv fail "pip install failed, see venv.log"
    report
fi
PY="$VENV/bin/python"
echo "   $(secs "$t0"); $("$PY" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("torch", "torchvision", "PySide6-Essentials", "pyinstaller")))')"

echo "== build: pyinstaller aladin.spec (log: build.log)"
t0=$(date +%s)
# Own PyInstaller cache too, so the build is clean and the cache goes with the clone.
if ! (cd "$SRC" && PYINSTALLER_CONFIG_DIR="$DIR/pyinstaller-cache" nice -n 10 "$VENV/bin/pyinstaller" \
        --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" aladin.spec) >"$DIR/build.log" 2>&1; then
    tail -30 "$DIR/build.log"
    record build fail "pyinstaller failed after $(secs "$t0"), see build.log"
    report
fi
record build pass "$(secs "$t0")"
grep -E '^aladin\.spec:' "$DIR/build.log" | cut -c1-300 | sed 's/^/   /'
rm -rf "$WORK" "$DIR/pyinstaller-cache"  # gigabytes of intermediate copies

BUNDLE="$DIST/aladin"
APP="$BUNDLE/aladin"
T="$DIR/t"
mkdir -p "$T/images" "$T/tmp" "$T/xdg/config" "$T/xdg/data" "$T/xdg/cache"
# Nothing here touches the user's own library, settings, logs or cache, nor a running app.
export ALADIN_LIBRARY="$T/library" ALADIN_LOG_DIR="$T/logs" ALADIN_CACHE_DIR="$T/cache" \
    XDG_CONFIG_HOME="$T/xdg/config" XDG_DATA_HOME="$T/xdg/data" XDG_CACHE_HOME="$T/xdg/cache" TMPDIR="$T/tmp"

echo "== checks"
want="$("$VENV/bin/aladin" --version 2>&1)"
got="$("$APP" --version 2>&1)"
if [[ $? == 0 && "$got" == "$want" ]]; then record version pass "$got"
else record version fail "bundle says '$got', package says '$want'"; fi

# A few images in the formats the app reads, of different sizes and modes.
"$PY" - "$T/images" >"$T/paths.txt" <<'EOF'
import random
import sys
from PIL import Image, ImageDraw

rng = random.Random(15)
for i, (ext, size, mode) in enumerate([("jpg", (320, 240), "RGB"), ("png", (96, 96), "RGBA"), ("webp", (200, 300), "RGB"),
                                      ("gif", (150, 150), "P"), ("bmp", (257, 129), "RGB"), ("png", (64, 512), "L")]):
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + rng.randrange(4, 80), y + rng.randrange(4, 80)], fill=tuple(rng.randrange(256) for _ in range(3)))
    img = img.convert(mode) if mode != "P" else img.convert("P", palette=Image.Palette.ADAPTIVE)
    path = f"{sys.argv[1]}/img{i}.{ext}"
    img.save(path)
    print(path)
EOF

compare() {  # compare REF.npy GOT.npy MIN_COSINE [MAX_ABS]: prints the numbers, fails on a mismatch
    "$PY" - "$@" <<'EOF'
import sys
import numpy as np

ref, got = np.load(sys.argv[1]), np.load(sys.argv[2])
min_cos, max_abs = float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
if ref.shape != got.shape:
    print(f"shape {got.shape} != {ref.shape}")
    sys.exit(1)
diff = float(np.abs(ref.astype(np.float64) - got).max())
cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-12)
print(f"{ref.shape[0]}x{ref.shape[1]}, max |diff| {diff:.2e}, min cosine {cos.min():.7f}")
sys.exit(0 if diff < max_abs or cos.min() > min_cos else 1)
EOF
}

"$VENV/bin/aladin" embed --paths-from "$T/paths.txt" --out "$T/ref.npy" 2>"$T/ref.err"
"$APP" embed --paths-from "$T/paths.txt" --out "$T/bundle.npy" 2>"$T/bundle.err"
rc=$?
if [[ $rc != 0 ]]; then record embed fail "exit $rc: $(tail -1 "$T/bundle.err")"
elif out="$(compare "$T/ref.npy" "$T/bundle.npy" 0.99999 1e-5)"; then record embed pass "$out"
else record embed fail "$out"; fi

"$VENV/bin/aladin" embed --model untrained-l --paths-from "$T/paths.txt" --out "$T/ref-l.npy" 2>/dev/null
"$APP" embed --model untrained-l --paths-from "$T/paths.txt" --out "$T/bundle-l.npy" 2>"$T/bundle-l.err"
rc=$?
if [[ $rc != 0 ]]; then record embed-L fail "exit $rc: $(grep -v '^\s' "$T/bundle-l.err" | tail -1)"
elif out="$(compare "$T/ref-l.npy" "$T/bundle-l.npy" 0.99999 1e-5)"; then record embed-L pass "$out"
else record embed-L fail "$out"; fi

t0=$(date +%s)
"$APP" index --library "$T/library" --workers 2 "$T/images" >"$T/index.out" 2>&1
rc=$?
"$APP" status --library "$T/library" --json >"$T/status.json" 2>"$T/status.err"
summary="$("$PY" - "$T/status.json" <<'EOF'
import json
import sys
try:
    s = json.load(open(sys.argv[1]))
except ValueError:
    print("no status"); sys.exit(0)
m = s.get("model") or {}
print(s.get("indexed"), s.get("failed"), m.get("source"), m.get("checksum"), m.get("name"), sep="\t")
EOF
)"
IFS=$'\t' read -r indexed failed source checksum model_name <<<"$summary"
if [[ $rc == 0 && "$indexed" == 6 && "$failed" == 0 ]]; then record index pass "6 images with 2 decoder processes in $(secs "$t0")"
else record index fail "exit $rc, indexed ${indexed:-?}, failed ${failed:-?}: $(tail -1 "$T/index.out")"; fi

want_sum="$(sha256sum "$SRC/resources/models/default.safetensors" | cut -d' ' -f1)"
if grep -qi -e untrained -e "no trained model" "$T/bundle.err"; then
    record default-model fail "embed without --model: $(grep -i -m1 -e untrained -e 'no trained model' "$T/bundle.err")"
elif [[ "$source" == "$BUNDLE/_internal/resources/models/default.safetensors" && "$checksum" == "$want_sum" ]]; then
    record default-model pass "$model_name, ${source#"$DIR"/}, sha256 ${checksum:0:12}"
else
    record default-model fail "library records '${source:-none}' (sha256 ${checksum:-none}), want the bundled one"
fi

"$APP" search --library "$T/library" -k 3 --json "$T/images/img0.jpg" >"$T/search.json" 2>"$T/search.err"
rc=$?
hits="$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["results"]))' "$T/search.json" 2>/dev/null)"
if [[ $rc == 0 && "$hits" == 3 ]]; then record search pass "3 results"
else record search fail "exit $rc, ${hits:-no} results: $(tail -1 "$T/search.err")"; fi

# The GUI in its own session, so whatever it starts can be found (pgrep -s) and must be gone.
QT_QPA_PLATFORM=offscreen setsid "$APP" gui --library "$T/library" >"$T/gui.log" 2>&1 &
GUI_PID=$!
sleep 15
if ! kill -0 "$GUI_PID" 2>/dev/null; then
    wait "$GUI_PID"
    record gui fail "exited with $? within 15 s: $(grep -v '^\s' "$T/gui.log" | tail -1)"
else
    kill -TERM "$GUI_PID"
    for _ in $(seq 40); do kill -0 "$GUI_PID" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$GUI_PID" 2>/dev/null; then
        kill -KILL "$GUI_PID"
        record gui fail "still running 10 s after SIGTERM (killed)"
    else
        wait "$GUI_PID"
        rc=$?
        sleep 1
        # Zombies are dead: after the app they are orphans that init reaps (a container's may not); only
        # processes still running count as left behind.
        left="$(for pid in $(pgrep -s "$GUI_PID"); do
                    state="$(ps -o stat= -p "$pid")"; [[ -n "$state" && "$state" != Z* ]] && echo "$pid"
                done | tr '\n' ' ')"
        if [[ -n "$left" ]]; then
            for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
            record gui fail "processes left after it ended: $left"
        elif grep -q -e Traceback -e 'Fatal Python' "$T/gui.log"; then
            record gui fail "$(grep -m1 -A3 -e Traceback -e 'Fatal Python' "$T/gui.log" | tr '\n' ' ' | cut -c1-200)"
        else
            record gui pass "up 15 s offscreen; ended on SIGTERM (status $rc), no process left"
        fi
    fi
fi
GUI_PID=""

# Every NEEDED soname of torch's, torchvision's and NVIDIA's libraries must be in the bundle:
# a missing one stops torch from loading libtorch_cuda.so on a GPU machine (on this one too).
linkage="$("$PY" - "$BUNDLE/_internal" <<'EOF'
import os
import subprocess
import sys

root = sys.argv[1]
files, names = [], set()
for folder, _, fs in os.walk(root):
    for f in fs:
        names.add(f)
        rel = os.path.relpath(os.path.join(folder, f), root)
        if ".so" in f and rel.split(os.sep)[0] in ("torch", "torchvision", "nvidia"):
            files.append(os.path.join(folder, f))
# glibc, and the NVIDIA driver's own library, which comes with the driver, never with an app.
system = {"libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libutil.so.1",
          "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libcuda.so.1"}
missing = {}
for path in files:
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "(NEEDED)" in line:
            need = line.split("[", 1)[1].split("]", 1)[0]
            if need not in names and need not in system:
                missing.setdefault(need, []).append(os.path.relpath(path, root))
cudnn = sorted(n for n in names if n.startswith("libcudnn"))
print(len(files), len(cudnn), "libnvrtc-builtins.so.13.0" in names or any(n.startswith("libnvrtc-builtins") for n in names),
      "; ".join(f"{k} (for {', '.join(v)})" for k, v in sorted(missing.items())) or "-", sep="\t")
EOF
)"
IFS=$'\t' read -r nfiles ncudnn builtins missing <<<"$linkage"
if [[ "$missing" == "-" && "${ncudnn:-0}" -ge 2 && "$builtins" == True ]]; then
    record cuda-linkage pass "$nfiles torch/torchvision/NVIDIA libraries: every NEEDED library bundled; $ncudnn cuDNN libraries; nvrtc-builtins"
else
    record cuda-linkage fail "missing: ${missing:-?}; cuDNN libraries: ${ncudnn:-?}; nvrtc-builtins: ${builtins:-?}"
fi

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    rm -f "$T"/ld.*
    LD_DEBUG=files LD_DEBUG_OUTPUT="$T/ld" "$APP" embed --device cuda --paths-from "$T/paths.txt" \
        --out "$T/cuda.npy" 2>"$T/cuda.err"
    rc=$?
    loaded="$(cat "$T"/ld.* 2>/dev/null | grep -o 'file=[^ ]*' | sed 's/^file=//; s/ *$//' | grep -E 'cudnn|nvidia|libcu|libnv|nccl' \
        | xargs -r -n1 basename | sort -u | tr '\n' ' ')"
    rm -f "$T"/ld.*
    if [[ $rc != 0 ]]; then record cuda fail "exit $rc: $(grep -v '^\s' "$T/cuda.err" | tail -1)"
    elif out="$(compare "$T/bundle.npy" "$T/cuda.npy" 0.999)"; then record cuda pass "$out; loaded: $loaded"
    else record cuda fail "$out"; fi
else
    record cuda skip "no GPU here (nvidia-smi -L)"
fi

echo
echo "== size: du -sh $BUNDLE"
du -sh "$BUNDLE"
"$PY" - "$BUNDLE" <<'EOF'
import os
import sys

bundle = sys.argv[1]
root = os.path.join(bundle, "_internal")
sizes = {}
for folder, _, files in os.walk(bundle):
    for f in files:
        path = os.path.join(folder, f)
        if not os.path.islink(path):
            sizes[os.path.relpath(path, root)] = os.path.getsize(path)
total = sum(sizes.values())
parts = [  # (label, test on the path under _internal); the first that matches takes the file
    ("torch/lib libtorch_cuda.so", lambda p: p == "torch/lib/libtorch_cuda.so"),
    ("torch/lib libtorch_cpu.so", lambda p: p == "torch/lib/libtorch_cpu.so"),
    ("torch/lib other", lambda p: p.startswith("torch/lib/")),
    ("torch python + data", lambda p: p.startswith("torch/")),
    ("triton", lambda p: p.startswith("triton/")),
]
nvidia = sorted({p.split("/")[1] for p in sizes if p.startswith("nvidia/")})
parts += [(f"nvidia/{d}", lambda p, d=d: p.startswith(f"nvidia/{d}/")) for d in nvidia]
parts += [
    ("cuda-bindings (cuda/)", lambda p: p.startswith("cuda/")),
    ("torchvision", lambda p: p.startswith("torchvision")),
    ("Qt libraries", lambda p: p.startswith("PySide6/Qt/lib/")),
    ("Qt plugins", lambda p: p.startswith("PySide6/Qt/plugins/")),
    ("Qt translations", lambda p: p.startswith("PySide6/Qt/translations/")),
    ("PySide6 + shiboken6 modules", lambda p: p.startswith(("PySide6/", "shiboken6/"))),
    ("numpy + numpy.libs", lambda p: p.startswith("numpy")),
    ("Pillow + pillow.libs", lambda p: p.startswith(("PIL/", "pillow.libs/"))),
    ("Python (libpython, stdlib)", lambda p: p.startswith(("python3", "libpython", "base_library.zip"))),
    ("resources (model, icons)", lambda p: p.startswith("resources/")),
    ("executable (bootloader + PYZ)", lambda p: p.startswith("..")),
    ("other shared libraries", lambda p: "/" not in p and ".so" in p),
    ("everything else", lambda p: True),
]
sums = dict.fromkeys(label for label, _ in parts)
for path, size in sizes.items():
    for label, test in parts:
        if test(path):
            sums[label] = (sums[label] or 0) + size
            break
print(f"{'part':<32} {'MiB':>8} {'share':>6}")
for label, _ in parts:
    if sums[label]:
        print(f"{label:<32} {sums[label] / 2**20:8.1f} {100 * sums[label] / total:5.1f}%")
print(f"{'total (files, links not counted)':<32} {total / 2**20:8.1f}")
print("\nlargest files:")
for path, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:15]:
    print(f"  {size / 2**20:8.1f} MiB  {path}")
with open(os.path.join(os.path.dirname(bundle), "total_mib"), "w") as f:
    f.write(str(round(total / 2**20)))
EOF
total_mib="$(cat "$DIST/total_mib" 2>/dev/null || echo 0)"
if ((total_mib > 0 && total_mib <= MAX_MIB)); then record size pass "$total_mib MiB (limit $MAX_MIB MiB, BUNDLE_MAX_MIB)"
else record size fail "$total_mib MiB, over the $MAX_MIB MiB limit (BUNDLE_MAX_MIB)"; fi

report
