"""A learning worker's start-up recovery waits for the database instead of giving up."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from workers import tasks


def test_recovery_keeps_asking_until_the_database_answers(monkeypatch):
    answers = iter([OperationalError("SELECT", {}, Exception("refused"))] * 3 + [([4], [7])])

    def unfinished_work(_engine):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    queued = []
    waits = []
    monkeypatch.setattr(tasks, "_engine", lambda: None)
    monkeypatch.setattr(tasks.campaign, "unfinished_work", unfinished_work)
    monkeypatch.setattr(tasks.time, "sleep", waits.append)
    monkeypatch.setattr(tasks.retrain, "apply_async", lambda **kw: queued.append(("retrain", kw)))
    monkeypatch.setattr(
        tasks.propose_batch, "apply_async", lambda **kw: queued.append(("propose", kw))
    )
    tasks.requeue_unfinished_work(first_wait=1.0, longest_wait=3.0)
    assert waits == [1.0, 2.0, 3.0]  # backed off, capped, and never gave up
    assert [(name, kw["args"]) for name, kw in queued] == [("retrain", [4]), ("propose", [7])]
