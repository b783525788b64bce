"""Label Studio's JSON <-> our domain objects: project ids, task texts, labels, predictions.

The adapter (`label_studio_baal_hf.py`) and the Label Studio link (`studio_link`) share this
parsing; the REST client is `studio_client`.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .answers import Answers, blank_teaches, encode
from .labels import Label
from .schema import Schema

log = logging.getLogger(__name__)


MAX_ID = 2**63 - 1  # SQLite's INTEGER, and Label Studio's bigint


class RequestError(ValueError):
    """A request from Label Studio lacks something the backend needs."""


#: A project as Label Studio names it: `1`, or `"1.1795516926"` (id and creation time) in /setup
#: and /predict. Ids are positive and below 2**63.
_PROJECT = re.compile(r"([1-9][0-9]{0,17})(\.[0-9]{1,20})?")


def project_id(value: Any) -> str:
    """The project id of `"1.1795516926"` (/setup, /predict), `1`, `"1"` or `{"id": 1}`."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        raise RequestError("the request names no project")
    match = _PROJECT.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return str(value)
    if match is None:
        raise RequestError(f"project {value!r:.40} is not a Label Studio project id")
    return match.group(1)


def project_created(value: Any) -> Optional[int]:
    """When Label Studio created the project, in whole epoch seconds, from `"1.1795516926"`
    (/setup, /predict) or a webhook's project object (`created_at`); None when not given."""
    if isinstance(value, dict):
        try:
            return int(source_time(value.get("created_at"), "the project's created_at")) or None
        except RequestError:
            return None
    match = _PROJECT.fullmatch(value.strip()) if isinstance(value, str) else None
    return int(match.group(2)[1:]) if match and match.group(2) else None


def task_text(task: Any, schema: Schema) -> str:
    """The task's text, or `RequestError` saying why it has none.

    HyperText is read as its visible text; Paragraphs as one "speaker: utterance" line each.
    """
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise RequestError("the task has no data object")
    value = task["data"].get(schema.text_key)
    if value is None:
        raise RequestError(f"the task's data has no {schema.text_key!r} field")
    if schema.source == "paragraphs":
        text = _utterances(value, schema)
    elif not isinstance(value, str):
        raise RequestError(f"the task's {schema.text_key!r} is a {type(value).__name__}, not text")
    else:
        text = html_text(value[: 20 * MAX_TEXT_CHARS]) if schema.source == "hypertext" else value
    if not text.strip():
        raise RequestError(f"the task's {schema.text_key!r} is empty")
    return _LONE_SURROGATE.sub("\ufffd", text[:MAX_TEXT_CHARS])


#: A task's text is cut here when read (and stored): far more than any model reads (MAX_LENGTH
#: tokens, 128 by default, are some 600 characters), and a 10 MB text costs nothing downstream.
MAX_TEXT_CHARS = 50_000


#: JSON can escape a lone UTF-16 surrogate ("\ud800"); no UTF-8 store or tokenizer takes one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _utterances(value: Any, schema: Schema) -> str:
    if not isinstance(value, list):
        raise RequestError(f"the task's {schema.text_key!r} is a {type(value).__name__}, not a list of utterances")
    lines, size = [], 0
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get(schema.item_key), str):
            raise RequestError(f"an utterance in {schema.text_key!r} has no {schema.item_key!r} text")
        name = item.get(schema.name_key)
        lines.append(f"{name}: {item[schema.item_key]}" if isinstance(name, str) and name else item[schema.item_key])
        size += len(lines[-1]) + 1
        if size > MAX_TEXT_CHARS:  # the rest would be cut anyway
            break
    return "\n".join(lines)


class _VisibleText(HTMLParser):
    _HIDDEN = {"script", "style", "head", "title", "noscript", "template"}
    _BREAKS = {"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The visible text of an HTML fragment, whitespace collapsed."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    return re.sub(r"\s+", " ", "".join(parser.parts)).strip()


def object_id(value: Any, what: str) -> int:
    """A Label Studio object id (an int, or a string of digits), or `RequestError` naming `what`."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return value
    raise RequestError(f"{what} must be an integer id between 0 and 2**63-1, got {value!r:.40}")


def source_time(value: Any, what: str) -> float:
    """Label Studio's time of an object (`"2025-01-01T12:00:00.123456Z"`, its `updated_at`) as
    epoch seconds; 0.0 when it sends none (then the order of arrival decides)."""
    if value is None or value == "":
        return 0.0
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        raise RequestError(f"{what} must be an ISO-8601 time like '2025-01-01T12:00:00.123456Z', got {value!r:.40}")
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def dicts(value: Any) -> List[Dict]:
    """The dicts of a list (or a single dict) from a payload; anything else gives none."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def annotation_answers(annotation: Dict, schema: Schema) -> Optional[Answers]:
    """The choices an annotation gives per question, or None when it answers none we serve
    (cancelled, other tags only, choices the config does not list)."""
    if annotation.get("was_cancelled"):
        return None
    questions = {q.from_name: q for q in schema.questions}
    answers: Answers = {}
    for region in dicts(annotation.get("result")):
        question, value = questions.get(region.get("from_name")), region.get("value")
        if question is None or not isinstance(value, dict):
            continue
        choices = value.get("choices")
        known = [c for c in choices if c in question.labels] if isinstance(choices, list) else []
        if choices and len(known) < len(choices):
            log.warning("annotation %s: choice %r is not in the label config", annotation.get("id"), choices)
        elif known and (question.multiple or len(known) == 1):
            answers[question.from_name] = tuple(c for c in question.labels if c in known)
    if schema.simple and schema.from_name not in answers:
        return None
    return answers if answers or blank_teaches(schema) else None


def label_from(annotation: Dict, task: Dict, schema: Schema) -> Optional[Label]:
    """A `Label` from an annotation and its task, or None when it carries no usable label."""
    answers = annotation_answers(annotation, schema)
    if answers is None:
        return None
    annotation_id = object_id(annotation.get("id"), "the annotation's id")
    task_id = object_id(annotation.get("task") or task.get("id"), f"annotation {annotation_id}'s task id")
    try:
        text = task_text(task, schema)
    except RequestError as exc:
        log.warning("annotation %s not stored: %s", annotation_id, exc)
        return None
    return Label(annotation_id=annotation_id, task_id=task_id, text=text, label=encode(schema, answers),
                 source_updated_at=source_time(annotation.get("updated_at"), f"annotation {annotation_id}'s updated_at"))


def texts_of(tasks: Sequence[Any], schema: Schema, project: str) -> Tuple[List[int], List[str]]:
    """(indices, texts) of the tasks that have usable text; the others are logged with the reason."""
    indices: List[int] = []
    texts: List[str] = []
    for i, task in enumerate(tasks):
        try:
            texts.append(task_text(task, schema))
            indices.append(i)
        except RequestError as exc:
            task_id = task.get("id") if isinstance(task, dict) else None
            log.warning("project %s, task %s: no prediction: %s", project, task_id, exc)
    return indices, texts


def studio_version(version: str, instance: str) -> str:
    """The name Label Studio stores a version's predictions under: the version and this
    backend's instance (`Engine.instance`), so two backends on one project never share a name
    (both have a `v0000`), and each touches only the predictions it made."""
    return f"{version}@{instance}"


def predictions_json(schema: Schema, preds: Any, instance: str) -> List[Dict]:
    """`predictor.Predictions` as Label Studio stores them: the score, the version and, when the
    model knows the classes (`preds.prefill`), the predicted choice with its probability; a
    version with a model line per question (`preds.questions`) gives one result item per question
    Label Studio shows there.
    Without a choice the result is empty: Label Studio stores and sorts by the score all the same,
    and the labeling view shows nothing pre-ticked."""
    out, name = [], studio_version(preds.version, instance)
    for row in range(len(preds.scores)):
        answers = [(schema.from_name, [preds.best(row)[0]], preds.best(row)[1])] if preds.prefill else []
        answers += [(q.from_name, list(q.choices[row]), float(q.confidence[row])) for q in preds.questions
                    if q.shown[row] and q.choices[row]]
        result = [{"from_name": from_name, "to_name": schema.to_name, "type": "choices",
                   "value": {"choices": choices}, "score": probability} for from_name, choices, probability in answers]
        out.append({"result": result, "score": float(preds.scores[row]), "model_version": name})
    return out
