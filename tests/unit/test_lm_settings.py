"""FLYWHEEL_LM selection, model resolution and the hosted-LM counters (no model loaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dspy_flywheel.lm import (
    KNOWN_MODELS,
    CountingLM,
    LMSettings,
    ModelNotFoundError,
    UnknownModelError,
    build_lm,
    engine_stats,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_LM") or name in ("FLYWHEEL_HOME", "FLYWHEEL_STATE"):
            monkeypatch.delenv(name)


def install_fake_model(home: Path, name: str, *, stamp: bool = True) -> Path:
    """A sparse file of the pinned size, as ops/model.sh leaves it (no real weights)."""
    known = KNOWN_MODELS[name]
    path = home / "model" / known.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(known.size)
    if stamp:
        path.with_name(path.name + ".sha256").write_text("stamp\n")
    return path


def test_defaults_select_the_embedded_qwen_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home")  # must not leak into FLYWHEEL_HOME
    settings = LMSettings()
    assert settings.is_embedded
    assert settings.model == "qwen1.5b"
    assert settings.temperature == 0.0
    assert settings.threads >= 1
    assert settings.home == Path("/nonexistent-home/.cache/dspy-flywheel")


def test_environment_selects_a_hosted_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LM", "openai/gpt-4o-mini")
    monkeypatch.setenv("FLYWHEEL_LM_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("FLYWHEEL_LM_API_KEY", "sk-test")
    monkeypatch.setenv("FLYWHEEL_LM_MAX_TOKENS", "256")
    settings = LMSettings()
    assert not settings.is_embedded
    assert settings.api_key is not None
    assert "sk-test" not in repr(settings)
    lm = build_lm(settings)
    assert isinstance(lm, CountingLM)
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.kwargs["api_base"] == "http://127.0.0.1:9/v1"
    assert lm.kwargs["max_tokens"] == 256
    assert engine_stats(lm).calls == 0


def test_hosted_lm_counts_completed_calls_from_history_and_shares_counters() -> None:
    lm = build_lm(LMSettings(backend="ollama_chat/llama3", api_base="http://127.0.0.1:9"))
    copy = lm.copy()
    copy.update_history({"usage": {"prompt_tokens": 30, "completion_tokens": 4}})
    lm.update_history({"usage": {}})
    stats = engine_stats(lm)
    assert (stats.calls, stats.prompt_tokens, stats.completion_tokens) == (2, 30, 4)


def test_environment_selects_model_threads_and_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLYWHEEL_LM_MODEL", "smollm2")
    monkeypatch.setenv("FLYWHEEL_LM_THREADS", "3")
    monkeypatch.setenv("FLYWHEEL_LM_CTX", "2048")
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = LMSettings()
    assert (settings.model, settings.threads, settings.ctx) == ("smollm2", 3, 2048)
    expected = install_fake_model(tmp_path, "smollm2")
    assert settings.model_path() == expected


@pytest.mark.parametrize(
    ("model", "fix"), [("qwen1.5b", r"ops/model\.sh fetch"), ("smollm2", "--small")]
)
def test_missing_model_names_the_fetch_command(tmp_path: Path, model: str, fix: str) -> None:
    settings = LMSettings(model=model, home=tmp_path)
    with pytest.raises(ModelNotFoundError, match=fix):
        settings.model_path()
    with pytest.raises(ModelNotFoundError, match=r"ops/model\.sh fetch"):
        build_lm(settings)


def test_unverified_or_truncated_model_is_refused(tmp_path: Path) -> None:
    path = install_fake_model(tmp_path, "smollm2", stamp=False)
    settings = LMSettings(model="smollm2", home=tmp_path)
    with pytest.raises(ModelNotFoundError, match="not verified"):
        settings.model_path()
    install_fake_model(tmp_path, "smollm2")
    with path.open("r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ModelNotFoundError):
        settings.model_path()


def test_a_gguf_path_is_taken_as_is(tmp_path: Path) -> None:
    gguf = tmp_path / "custom.gguf"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        LMSettings(model=str(gguf)).model_path()
    gguf.write_bytes(b"GGUF")
    assert LMSettings(model=str(gguf)).model_path() == gguf


def test_unknown_model_name_is_refused() -> None:
    with pytest.raises(UnknownModelError, match=r"qwen1\.5b"):
        LMSettings(model="llama-70b").model_path()


def test_blank_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="embedded"):
        LMSettings(backend="  ")


def test_embedded_model_uses_the_shared_server_unless_inprocess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LMSettings().is_shared
    monkeypatch.setenv("FLYWHEEL_LM_SERVER", "inprocess")
    assert not LMSettings().is_shared
    monkeypatch.setenv("FLYWHEEL_LM_SERVER", "remote")
    with pytest.raises(ValueError, match="shared"):
        LMSettings()
    monkeypatch.setenv("FLYWHEEL_LM_SERVER", "shared")
    monkeypatch.setenv("FLYWHEEL_LM", "openai/gpt-4o-mini")
    assert not LMSettings().is_shared  # a hosted model: no local server


def test_server_idle_reading_from_llama_cpp_metrics() -> None:
    from dspy_flywheel.lm.server import activity

    text = (
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
        "llamacpp:prompt_tokens_total 120\n"
        "llamacpp:tokens_predicted_total 30\n"
        "llamacpp:requests_processing 2\n"
        "llamacpp:requests_deferred 1\n"
    )
    assert activity(text) == (3.0, 150.0)
    assert activity("llamacpp:tokens_predicted_total 3\n") is None  # unknown: never idle


def test_identical_calls_in_a_job_reach_the_engine_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import dspy

    monkeypatch.setattr(dspy, "cache", dspy.cache)  # restored after the test

    from dspy_flywheel.lm import make_lm, reuse_identical_calls
    from tests.fixtures.fake_lm import FakeEngine

    engine = FakeEngine(lambda messages: {"answer": str(len(messages[-1]["content"]))})
    lm = reuse_identical_calls(make_lm(engine))
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        first = program(question="a").answer
        assert program(question="a").answer == first
        program(question="b")
    assert engine_stats(lm).calls == 2  # the repeated question came from memory


def test_the_server_state_lives_in_the_runtime_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    assert LMSettings().run_dir == tmp_path / "home" / "run" / "lm"  # ops/lib.sh's default
    monkeypatch.setenv("FLYWHEEL_STATE", " ")
    assert LMSettings().run_dir == tmp_path / "home" / "run" / "lm"
    monkeypatch.setenv("FLYWHEEL_STATE", str(tmp_path / "ci"))  # .ci/run's own state dir
    assert LMSettings().state_dir == tmp_path / "ci"
    assert LMSettings().run_dir == tmp_path / "ci" / "lm"
    monkeypatch.setenv("FLYWHEEL_LM_SERVER_DIR", str(tmp_path / "elsewhere"))
    assert LMSettings().run_dir == tmp_path / "elsewhere"
