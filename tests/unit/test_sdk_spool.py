"""The on-disk spool: order, prepend, commit, restart, torn tails, limits, sealing, modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dspy_flywheel.sdk.settings import WorkerSettings
from dspy_flywheel.sdk.spool import Message, Spool, decode, encode, frame
from dspy_flywheel.sdk.spool_crypto import SpoolSealer, load_or_create_key, spool_cipher
from dspy_flywheel.security.crypto import Cipher

SEALER = SpoolSealer(Cipher({"t": b"k" * 32}))


def msg(n: int, size: int = 10) -> Message:
    return Message(
        topic="t-executions",
        key=b"worker" if n % 3 else None,
        value=bytes([n % 256]) * size,
        headers=(("event_id", f"e{n}".encode()), ("traceparent", b"00-abc")),
        event_id=f"e{n}",
    )


def ids(records: list[tuple[Message, object]]) -> list[str]:
    return [m.event_id for m, _ in records]


def new_spool(path: Path, **kw: int) -> Spool:
    return Spool(
        path,
        max_bytes=kw.get("max_bytes", 10_000_000),
        segment_bytes=kw.get("segment_bytes", 4096),
        sealer=SEALER,
    )


def record(m: Message) -> bytes:
    """The bytes one message takes in a segment."""
    return frame(SEALER.seal(encode(m)))


def test_encode_roundtrip_keeps_every_field() -> None:
    m = msg(4)
    assert decode(SEALER.open(record(m)[8:])) == m


def test_reads_in_append_order_across_segments(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, segment_bytes=300)
    spool.append(msg(i) for i in range(50))
    assert len(list(tmp_path.glob("*.seg"))) > 3  # rolled over several segments
    records = spool.read(1000)
    assert ids(records) == [f"e{i}" for i in range(50)]
    assert spool.pending_records == 50


def test_commit_moves_the_cursor_and_drops_spent_segments(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, segment_bytes=300)
    spool.append(msg(i) for i in range(30))
    first = spool.read(12)
    spool.commit(first[-1][1], len(first))
    assert spool.pending_records == 18
    assert ids(spool.read(100)) == [f"e{i}" for i in range(12, 30)]
    rest = spool.read(100)
    spool.commit(rest[-1][1], len(rest))
    assert not spool.has_pending()
    assert spool.read(10) == []
    assert spool.pending_bytes() == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1  # one empty active segment left


def test_prepend_goes_before_everything_pending(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    spool.append(msg(i) for i in range(10, 15))
    head = spool.read(2)
    spool.commit(head[-1][1], 2)  # e10, e11 delivered
    spool.prepend([msg(1), msg(2)])  # were in flight when the broker went away
    assert ids(spool.read(100)) == ["e1", "e2", "e12", "e13", "e14"]
    chunk = spool.read(3)
    spool.commit(chunk[-1][1], 3)
    assert ids(spool.read(100)) == ["e13", "e14"]


def test_restart_resumes_after_the_last_commit(tmp_path: Path) -> None:
    spool = new_spool(tmp_path, segment_bytes=500)
    spool.append(msg(i) for i in range(40))
    done = spool.read(25)
    spool.commit(done[-1][1], 25)
    spool.prepend([msg(99)])
    spool.close()

    reopened = new_spool(tmp_path, segment_bytes=500)
    assert reopened.pending_records == 16
    assert ids(reopened.read(100)) == ["e99", *[f"e{i}" for i in range(25, 40)]]
    reopened.append([msg(40)])
    assert ids(reopened.read(100))[-1] == "e40"


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    spool.append(msg(i) for i in range(5))
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    with open(segment, "ab") as f:
        f.write(record(msg(5))[:-3])  # a crash in the middle of a write
    reopened = new_spool(tmp_path)
    assert ids(reopened.read(100)) == [f"e{i}" for i in range(5)]
    reopened.append([msg(6)])
    assert ids(reopened.read(100)) == ["e0", "e1", "e2", "e3", "e4", "e6"]


def test_limit_refuses_and_reports(tmp_path: Path) -> None:
    three = sum(len(record(msg(i))) for i in range(3))
    spool = new_spool(tmp_path, max_bytes=three + 1)
    written, refused = spool.append(msg(i) for i in range(5))
    assert (written, refused) == (3, 2)
    assert spool.pending_records == 3


def test_corrupt_record_in_the_middle_raises(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    spool.append(msg(i) for i in range(3))
    spool.sync()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(segment.read_bytes())
    data[12] ^= 0xFF  # flip a payload byte of the first record
    segment.write_bytes(bytes(data))
    with pytest.raises(OSError, match="corrupt"):
        spool.read(10)


def test_a_live_spool_directory_is_never_shared(tmp_path: Path) -> None:
    import os

    from dspy_flywheel.sdk.runtime import open_spool

    base = tmp_path / "worker"
    settings = WorkerSettings(
        spool_dir=base, spool_key_file=tmp_path / "spool.key", spool_max_bytes=10_000
    )
    first, first_lock = open_spool(settings, "w")
    second, second_lock = open_spool(settings, "w")
    assert first.directory == base
    assert second.directory == tmp_path / "worker.1"  # another live instance, same worker id
    first.close()
    os.close(first_lock)  # the first process is gone: a restart gets its directory back
    again, again_lock = open_spool(settings, "w")
    assert again.directory == base
    for spool, lock in ((second, second_lock), (again, again_lock)):
        spool.close()
        os.close(lock)


def test_records_are_sealed_and_files_owner_only(tmp_path: Path) -> None:
    """Issue 15: the spool held raw inputs in 0644 files."""
    directory = tmp_path / "spool"
    spool = new_spool(directory)
    secret = b"ana.lima@example-mail.com"
    value = b'{"inputs": {"text": "' + secret + b'"}}'
    spool.append(
        Message("t", None, value, (("event_id", f"e{i}".encode()),), f"e{i}") for i in range(3)
    )
    spool.commit(spool.read(1)[0][1], 1)  # writes the cursor too
    spool.sync()
    assert ids(spool.read(10)) == ["e1", "e2"]
    assert directory.stat().st_mode & 0o777 == 0o700
    files = [p for p in directory.iterdir() if p.is_file()]
    assert "cursor" in {p.name for p in files}
    assert any(p.suffix == ".seg" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path.name
        assert secret not in path.read_bytes(), path.name
    spool.close()


def test_a_record_sealed_with_another_key_is_skipped_not_sent(tmp_path: Path) -> None:
    spool = new_spool(tmp_path)
    spool.append([msg(1)])
    spool.close()
    other = Spool(
        tmp_path, max_bytes=10**6, segment_bytes=4096, sealer=SpoolSealer(Cipher({"t": b"x" * 32}))
    )
    other.append([msg(2)])
    assert ids(other.read(10)) == ["e2"]
    assert other.unreadable == 1


def test_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "w1.spool.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_or_create_key(path) == key
    sealed = SpoolSealer(spool_cipher(None, path)).seal(b"payload")
    assert SpoolSealer(spool_cipher(None, path)).open(sealed) == b"payload"


def test_world_readable_files_of_an_older_spool_become_owner_only(tmp_path: Path) -> None:
    import os

    tmp_path.chmod(0o755)
    (tmp_path / "cursor").write_text("")
    os.chmod(tmp_path / "cursor", 0o644)
    new_spool(tmp_path).close()
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "cursor").stat().st_mode & 0o777 == 0o600
