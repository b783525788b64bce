"""What an annotation answered, per question, and how it is kept in the label store.

A project with one single-choice question stores the plain choice (every release before
multi-question configs did). Any other project stores its answers as a marked JSON object,
`{"from_name": [choices...]}`, so one row per annotation still holds everything it said.

Each question's model line learns from the annotations that count for it (`for_question`): the
ones that answered it, and for a multi-label question also the ones that were shown it and ticked
nothing (all its labels are negatives there). A conditional question (`visibleWhen`) whose
condition did not hold was never shown: that annotation says nothing about it.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .labels import Label
from .schema import Question, Schema

Answers = Dict[str, Tuple[str, ...]]

#: Starts a stored multi-question answer (an ASCII record separator: no choice value starts with one).
MARK = "\x1e"


def encode(schema: Schema, answers: Mapping[str, Sequence[str]]) -> str:
    """The label store's text for `answers` (a plain choice for a simple schema)."""
    if schema.simple:
        (choice,) = answers[schema.from_name]
        return choice
    return MARK + json.dumps({name: list(values) for name, values in sorted(answers.items())}, ensure_ascii=False)


def decode(schema: Schema, stored: str) -> Optional[Answers]:
    """The answers a stored label text holds (`{}`: a multi-label question left blank), or None
    when it answers nothing this config asks. A plain choice (stored while the project had one
    single-choice question) answers the first question that offers it, single-choice first."""
    if stored.startswith(MARK):
        try:
            raw = json.loads(stored[len(MARK):])
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        return {name: tuple(v for v in values if isinstance(v, str)) for name, values in raw.items()
                if isinstance(name, str) and isinstance(values, list)}
    for question in sorted(schema.questions, key=lambda q: q.multiple):
        if stored in question.labels:
            return {question.from_name: (stored,)}
    return None


def blank_teaches(schema: Schema) -> bool:
    """Whether an annotation that ticked nothing says something: a multi-label question always
    shown was left blank on purpose (none of its labels applies)."""
    return not schema.simple and any(q.multiple and q.shown_when is None and not q.conditional for q in schema.questions)


def counts_for(question: Question, answers: Answers) -> bool:
    """Whether an annotation with `answers` teaches `question`'s model line anything."""
    if question.from_name in answers:
        return True
    if not question.multiple or question.conditional:
        return False  # an unanswered single choice, or a hidden condition we cannot evaluate
    return question.shown_when is None or question.shown_when.holds(answers)


def for_question(labels: Sequence[Label], schema: Schema, question: Question) -> List[Tuple[Label, Tuple[str, ...]]]:
    """The labels that count for `question`, each with its choices there (in config order; empty:
    a multi-label question shown and left blank)."""
    out = []
    for label in labels:
        answers = decode(schema, label.label)
        if answers is None or not counts_for(question, answers):
            continue
        chosen = set(answers.get(question.from_name, ()))
        choices = tuple(c for c in question.labels if c in chosen)
        if question.multiple or len(choices) == 1:
            out.append((label, choices))
    return out


def single_labels(labels: Sequence[Label], schema: Schema, question: Question) -> List[Label]:
    """A single-choice question's labels with `label` set to its choice: the form the
    single-label trainer, the prior and the report read."""
    assert not question.multiple
    return [replace(label, label=choices[0]) for label, choices in for_question(labels, schema, question)]
