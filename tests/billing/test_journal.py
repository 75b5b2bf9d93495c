from pathlib import Path

from tollway.billing.journal import Journal


def test_rotate_read_discard(tmp_path: Path) -> None:
    journal = Journal(tmp_path, name="w0")
    journal.append({"n": 1})
    journal.append({"n": 2})
    first = journal.rotate()
    journal.append({"n": 3})
    assert first is not None and Journal.read(first) == [{"n": 1}, {"n": 2}]
    assert journal.rotate() is not None
    assert journal.rotate() is None  # nothing new since
    assert len(journal.segments()) == 2
    Journal.discard(first)
    assert [Journal.read(s) for s in journal.segments()] == [[{"n": 3}]]


def test_a_torn_last_line_is_skipped_and_numbering_continues(tmp_path: Path) -> None:
    journal = Journal(tmp_path, name="w0")
    journal.append({"n": 1})
    segment = journal.rotate()
    assert segment is not None
    with segment.open("ab") as handle:
        handle.write(b'{"n": 2, "tru')  # killed mid-write
    assert Journal.read(segment) == [{"n": 1}]
    reopened = Journal(tmp_path, name="w0")
    reopened.append({"n": 3})
    newest = reopened.rotate()
    assert newest is not None and newest != segment
    assert reopened.segments() == [segment, newest]


def test_close_keeps_segments_that_were_not_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, name="w0")
    journal.append({"n": 1})
    journal.rotate()
    journal.close()
    assert len(journal.segments()) == 1
