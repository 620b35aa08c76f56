"""Create the pipeline comment once, then update it in place — also when jobs race.

Neither GitHub's nor GitLab's comment API can create-if-absent or update-if-unchanged, so two
jobs finishing together could both find no comment and both create one, or both rewrite the
same comment from the same old text. The scheme, run by every reporter:

1. list the thread's comments; if none carries our marker, create one;
2. keep the OLDEST marked comment, merge every marked comment's stages and ours into it,
   and delete the younger duplicates (their content is in the kept one now);
3. wait a moment (``settle``, jittered) for a concurrent writer to land, list again, and
   check that exactly one marked comment remains and it says what we have; otherwise go
   back to 2.

Every reporter picks the same survivor (the oldest), so duplicates converge to one; the
check after the pause repairs an update another job overwrote with older text. What is
left is the case where another job reads before our write and writes after our check,
which takes a writer slower than ``settle`` between its own read and write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mlcicd.comments import CommentApiError
from mlcicd.comments.body import PipelineComment, is_ours, merge, parse, render


@dataclass
class Note:
    id: int
    body: str
    url: str | None = None


class Thread(Protocol):
    """The comments of one pull request / merge request, oldest first."""

    def list(self) -> list[Note]: ...

    def create(self, body: str) -> Note: ...

    def update(self, note_id: int, body: str) -> Note: ...

    def delete(self, note_id: int) -> None: ...


@dataclass
class Outcome:
    note: Note
    created: bool
    rounds: int
    removed: int


def upsert(thread: Thread, ours: PipelineComment, *, settle: float = 1.0, rounds: int = 4,
           sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = lambda _: None) -> Outcome:
    """Make the thread hold exactly one comment for ``ours.key`` that covers ``ours`` (see module doc)."""
    key = ours.key
    created = False
    removed = 0
    marked = [n for n in thread.list() if is_ours(n.body, key)]
    for attempt in range(1, rounds + 1):
        if not marked:
            note = thread.create(render(ours))
            created = True
            # Re-list: another reporter may have created its own at the same moment.
            marked = [n for n in thread.list() if is_ours(n.body, key)]
            if all(n.id != note.id for n in marked):  # a list that lags the create
                marked.append(note)
        marked.sort(key=lambda n: n.id)
        keep = marked[0]
        combined: PipelineComment | None = None
        for note in marked:
            combined = merge(combined, parse(note.body, key) or ours)
        combined = merge(combined, ours)
        body = render(combined)
        if keep.body != body:
            keep = thread.update(keep.id, body)
        for duplicate in marked[1:]:
            thread.delete(duplicate.id)
            removed += 1
        sleep(settle * (0.5 + random.random()))
        marked = [n for n in thread.list() if is_ours(n.body, key)]
        current = parse(marked[0].body, key) if len(marked) == 1 else None
        if current is not None and current.covers(ours):
            return Outcome(marked[0], created, attempt, removed)
        log(f"comment: {len(marked)} marked comment(s) after round {attempt}; merging again")
    if not marked:
        raise CommentApiError("the pipeline comment vanished while it was being updated; re-running is safe")
    return Outcome(sorted(marked, key=lambda n: n.id)[0], created, rounds, removed)
