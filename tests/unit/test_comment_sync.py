"""The upsert scheme on an in-memory thread: duplicates converge, an overwritten update is repaired."""

from __future__ import annotations

from mlcicd.comments.body import PipelineComment, StageEntry, parse, render
from mlcicd.comments.sync import Note, upsert


class MemoryThread:
    def __init__(self) -> None:
        self.notes: dict[int, str] = {}
        self.next_id = 1
        self.calls: list[str] = []
        self.on_update = None

    def list(self) -> list[Note]:
        self.calls.append("list")
        return [Note(i, b) for i, b in sorted(self.notes.items())]

    def create(self, body: str) -> Note:
        self.calls.append("create")
        note = Note(self.next_id, body)
        self.notes[note.id] = body
        self.next_id += 1
        return note

    def update(self, note_id: int, body: str) -> Note:
        self.calls.append("update")
        self.notes[note_id] = body
        if self.on_update is not None:
            hook, self.on_update = self.on_update, None
            hook(note_id)
        return Note(note_id, body)

    def delete(self, note_id: int) -> None:
        self.calls.append("delete")
        self.notes.pop(note_id, None)


def ours(*stages: str, run: str = "5") -> PipelineComment:
    return PipelineComment("k", run, None, {s: StageEntry(s, "pass", f"{s} ok", run) for s in stages})


def test_first_report_creates_and_an_unchanged_second_writes_nothing():
    thread = MemoryThread()
    thread.notes[1] = "someone: LGTM"
    thread.next_id = 2
    first = upsert(thread, ours("gate"), settle=0, sleep=lambda s: None)
    assert first.created and thread.calls.count("create") == 1
    thread.calls.clear()
    again = upsert(thread, ours("gate"), settle=0, sleep=lambda s: None)
    assert not again.created and thread.calls == ["list", "list"]
    assert len(thread.notes) == 2


def test_younger_duplicates_are_merged_into_the_oldest_and_deleted():
    thread = MemoryThread()
    thread.create(render(ours("validate-data")))
    thread.create(render(ours("train")))
    outcome = upsert(thread, ours("gate"), settle=0, sleep=lambda s: None)
    assert outcome.note.id == 1 and outcome.removed == 1 and list(thread.notes) == [1]
    state = parse(thread.notes[1], "k")
    assert state is not None and set(state.stages) == {"validate-data", "train", "gate"}


def test_an_update_overwritten_with_older_text_is_repaired():
    thread = MemoryThread()
    thread.create(render(ours("validate-data")))
    stale = thread.notes[1]

    def racer(note_id: int) -> None:
        # Another job read the comment before our update and writes its old text after it.
        thread.notes[note_id] = stale

    thread.on_update = racer
    outcome = upsert(thread, ours("gate"), settle=0, sleep=lambda s: None)
    assert outcome.rounds == 2
    state = parse(thread.notes[1], "k")
    assert state is not None and set(state.stages) == {"validate-data", "gate"}
