"""What each task does and what it is about, in the words of the people waiting for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

INGEST_TASK = "labloop.ingest_file"
RETRAIN_TASK = "labloop.retrain"
PROPOSE_TASK = "labloop.propose_batch"

# the short kind stored with a failure, per Celery task name
TASK_KINDS = {INGEST_TASK: "ingest", RETRAIN_TASK: "retrain", PROPOSE_TASK: "propose"}

TASK_WORDS = {
    INGEST_TASK: "reading a file",
    RETRAIN_TASK: "retraining the model",
    PROPOSE_TASK: "writing the next recipe file",
}


def doing(task_name: str, args: Sequence[Any]) -> str:
    """'reading B001-S03.csv', 'retraining batch 3', 'writing the recipe file of model v4'."""
    argument = args[0] if args else None
    if task_name == INGEST_TASK and argument is not None:
        return f"reading {argument}"
    if task_name == RETRAIN_TASK and argument is not None:
        return f"retraining batch {argument}"
    if task_name == PROPOSE_TASK and argument is not None:
        return f"writing the recipe file of model v{argument}"
    return TASK_WORDS.get(task_name, task_name)
