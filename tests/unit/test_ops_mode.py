"""ops/lib.sh claim_mode: components started side by side never see a half-written mode record."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "ops" / "lib.sh"
CLAIMS = 24


def claim_in_parallel(state: Path, secure: str) -> subprocess.CompletedProcess[str]:
    script = (
        f'source "{LIB}"\n'
        f"pids=(); for _ in $(seq {CLAIMS}); do ( claim_mode ) & pids+=($!); done\n"
        "failed=0\n"
        'for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done\n'
        'echo "failed=$failed mode=$(stack_mode)"\n'
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(state),
        "FLYWHEEL_STATE": str(state),
        "FLYWHEEL_SECURE": secure,
    }
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_parallel_claims_of_a_fresh_secure_state_all_agree(tmp_path: Path) -> None:
    for round_no in range(5):
        state = tmp_path / f"s{round_no}"
        done = claim_in_parallel(state, "1")
        assert done.stdout.strip() == "failed=0 mode=secure", done.stderr
        assert (state / "mode").read_text() == "secure\n"
        assert sorted(p.name for p in state.iterdir()) == ["mode"]


def test_a_claim_for_the_other_kind_still_fails(tmp_path: Path) -> None:
    assert claim_in_parallel(tmp_path, "0").stdout.strip() == "failed=0 mode=plain"
    done = claim_in_parallel(tmp_path, "1")
    assert done.stdout.strip() == f"failed={CLAIMS} mode=plain"
    assert "holds a plain stack, not a secure one" in done.stderr
