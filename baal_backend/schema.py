"""Label config -> what a text classifier needs: the text (its object tag and task data key) and
the questions asked about it (each `<Choices>` tag: its name, its choices, single or multiple, and
when it is shown)."""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

log = logging.getLogger(__name__)

#: Object tags whose content is text the classifier can read.
SOURCES = ("text", "hypertext", "paragraphs")

#: Control tags that label regions of a text (NER and kin): a classifier of whole texts cannot serve them.
REGION_TAGS = ("labels", "hypertextlabels", "paragraphlabels", "relations")

#: A label config is refused above this size (UTF-8): 1000 choices with a 300-character hint
#: each are some 350 KB. Every annotation webhook re-parses the stored config.
MAX_CONFIG_KB = 512


class SchemaError(ValueError):
    """The label config cannot be served by this text classifier."""


@dataclass(frozen=True)
class Condition:
    """`visibleWhen="choice-selected"` (or `choice-unselected`): the question is shown when
    `tag`'s answer holds one of `values` (any choice at all when `values` is empty)."""

    tag: str
    values: Tuple[str, ...] = ()
    selected: bool = True

    def holds(self, answers: Dict[str, Tuple[str, ...]]) -> bool:
        given = answers.get(self.tag, ())
        hit = bool(set(given) & set(self.values)) if self.values else bool(given)
        return hit if self.selected else not hit


@dataclass(frozen=True)
class Question:
    """One `<Choices>` tag about the text.

    labels : the choices, in config order; this order is the model's class order.
    multiple : `choice="multiple"`: any number of labels per text (multi-label).
    descriptions : per label, its `hint` when the config gives one (the label-name prior embeds it
        with the value). Not its `alias`: Label Studio writes the alias into results in place of
        the value, a short code rather than words.
    shown_when : the `Condition` under which Label Studio shows it; None: always shown.
    conditional : shown under a condition this backend cannot evaluate (a `visibleWhen` other than
        choice-(un)selected, or one on an enclosing `<View>`): it learns only from the annotations
        that answered it.
    """

    from_name: str
    labels: Tuple[str, ...]
    multiple: bool = False
    descriptions: Tuple[Tuple[str, ...], ...] = ()
    shown_when: Optional[Condition] = None
    conditional: bool = False


@dataclass(frozen=True)
class Schema:
    """The questions (`Choices` tags) bound to one text (`Text`, `HyperText` or `Paragraphs` tag).

    Attributes
    ----------
    to_name : the object tag's name, which every result names.
    text_key : key of the task's `data` holding the text (`$text` -> `text`).
    questions : the `Question`s, in config order. `from_name`, `labels` and `descriptions` are the
        first one's: a project with one single-choice question (the common case) reads as before.
    source : the object tag: "text", "hypertext" (HTML, read as its visible text) or
        "paragraphs" (a list of utterances, read as "name: text" lines).
    name_key, item_key : for "paragraphs", the keys of an utterance's speaker and text.
    """

    to_name: str
    text_key: str
    questions: Tuple[Question, ...]
    source: str = "text"
    name_key: str = "author"
    item_key: str = "text"

    @property
    def first(self) -> Question:
        return self.questions[0]

    @property
    def from_name(self) -> str:
        return self.first.from_name

    @property
    def labels(self) -> Tuple[str, ...]:
        return self.first.labels

    @property
    def descriptions(self) -> Tuple[Tuple[str, ...], ...]:
        return self.first.descriptions

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def simple(self) -> bool:
        """One single-choice question: labels are stored as the plain choice, and a version is one
        classifier (the layout of every release before multi-question configs)."""
        return len(self.questions) == 1 and not self.first.multiple

    @property
    def classes(self) -> Tuple[tuple, ...]:
        """What a version depends on: per question, its name, kind, choices and when it is shown
        (which blank answers count as negatives)."""
        return tuple((q.from_name, q.multiple, q.labels, q.shown_when, q.conditional) for q in self.questions)

    def only(self, question: Question) -> "Schema":
        """This schema asking `question` alone: the view each question's model line is trained
        and served through."""
        return replace(self, questions=(question,))


def parse_label_config(config: str) -> Schema:
    """The text and the `<Choices>` questions of a label config, or `SchemaError` saying why this
    backend cannot serve it."""
    root = _parse_xml(config)
    texts = {el.get("name"): el for el in root.iter() if el.tag.lower() in SOURCES and el.get("name")}
    region = sorted({el.tag for el in root.iter() if el.tag.lower() in REGION_TAGS})
    if region:
        raise SchemaError(f"the label config has <{'>, <'.join(region)}>: labelling spans of a text (NER) is not "
                          "text classification, and this backend predicts whole-text <Choices> only")
    parents = {child: parent for parent in root.iter() for child in parent}
    bound = [el for el in root.iter() if el.tag.lower() == "choices" and el.get("toName") in texts]
    if not bound:
        taxonomy = next((el for el in root.iter() if el.tag.lower() == "taxonomy" and el.get("toName") in texts), None)
        if taxonomy is not None:
            raise SchemaError(
                f'<Taxonomy name="{taxonomy.get("name", "?")}"> is not supported: this backend predicts <Choices> only '
                "(a taxonomy answer is a set of paths in its tree, inner nodes included; README, \"Several questions, "
                "multi-label\"). Ask it as <Choices choice=\"multiple\"> with one <Choice> per leaf "
                "(next to a <Choices>, a <Taxonomy> is left unpredicted)")
        raise SchemaError("the label config has no <Choices> tag bound (toName) to a <Text>, <HyperText> or <Paragraphs> tag")
    per_region = [el.get("name", "?") for el in bound if (el.get("perRegion") or "").lower() == "true"]
    if per_region:
        raise SchemaError(f'<Choices name="{per_region[0]}"> has perRegion="true": it labels regions, and this '
                          "backend classifies whole texts")
    objects = sorted({el.get("toName") for el in bound})
    if len(objects) > 1:
        raise SchemaError(f"the label config asks about several texts per task ({', '.join(objects)}); "
                          "every <Choices> must be bound to the same one")
    to_name = objects[0]
    questions = tuple(_question(el, parents) for el in bound)
    names = [q.from_name for q in questions]
    if len(set(names)) != len(names):
        raise SchemaError(f"two <Choices> tags share the name {next(n for n in names if names.count(n) > 1)!r}")
    # a condition on a tag this backend does not read (choices about an image) cannot be evaluated
    questions = tuple(replace(q, shown_when=None, conditional=True) if q.shown_when and q.shown_when.tag not in names
                      else q for q in questions)
    _log_ignored(root, to_name, names)
    source = texts[to_name]
    value = source.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise SchemaError(f'<{source.tag} name="{to_name}"> must read its text from task data, like value="$text"')
    return Schema(to_name, value[1:], questions, source=source.tag.lower(),
                  name_key=source.get("nameKey") or "author", item_key=source.get("textKey") or "text")


def _parse_xml(config: str) -> ET.Element:
    if not isinstance(config, str) or not config.strip():
        raise SchemaError("the label config is empty")
    limit = MAX_CONFIG_KB * 1024
    if len(config) > limit or len(config.encode("utf-8", "surrogatepass")) > limit:  # no copy of a huge one
        raise SchemaError(f"the label config has {len(config):,} characters, over the {MAX_CONFIG_KB} KB this backend reads")
    if "<!DOCTYPE" in config or "<!ENTITY" in config:
        # before parsing: expat expands entities even when a handler stops at the DOCTYPE
        raise SchemaError("the label config declares a DTD or an entity (<!DOCTYPE, <!ENTITY); Label Studio "
                          "configs need neither, and entity expansion is refused")
    try:
        return ET.fromstring(config)
    except ET.ParseError as exc:
        raise SchemaError(f"the label config is not valid XML: {exc}") from None


def _question(choices: ET.Element, parents: Dict[ET.Element, ET.Element]) -> Question:
    from_name = choices.get("name")
    if not from_name:
        raise SchemaError("a <Choices> tag has no name attribute")
    elements = [el for el in choices.iter() if el.tag.lower() == "choice"]
    labels = [el.get("value") for el in elements]
    if any(not label for label in labels):
        raise SchemaError(f'a <Choice> in "{from_name}" has no value')
    if len(set(labels)) != len(labels):
        raise SchemaError(f'<Choices name="{from_name}"> lists a choice twice')
    multiple = (choices.get("choice") or "single").lower() == "multiple"
    if len(labels) < (1 if multiple else 2):
        raise SchemaError(f'<Choices name="{from_name}"> needs at least {1 if multiple else 2} choices, found {len(labels)}')
    shown_when, conditional = _condition(choices), False
    if shown_when is None and choices.get("visibleWhen"):
        conditional = True
    node = choices
    while node in parents:
        node = parents[node]
        conditional = conditional or bool(node.get("visibleWhen"))
    return Question(
        from_name, tuple(labels), multiple=multiple,
        descriptions=tuple((el.get("hint").strip(),) if (el.get("hint") or "").strip() else () for el in elements),
        shown_when=shown_when, conditional=conditional,
    )


def _condition(choices: ET.Element) -> Optional[Condition]:
    kind = (choices.get("visibleWhen") or "").lower()
    tag = choices.get("whenTagName")
    if kind not in ("choice-selected", "choice-unselected") or not tag:
        return None
    values = tuple(v.strip() for v in (choices.get("whenChoiceValue") or "").split(",") if v.strip())
    return Condition(tag, values, selected=kind == "choice-selected")


def _log_ignored(root: ET.Element, to_name: str, questions: list) -> None:
    """Say which control tags (a comment box, a rating, choices about an image) get no prediction."""
    ignored = sorted({f"<{el.tag} name=\"{el.get('name')}\">" for el in root.iter()
                      if el.get("toName") and el.get("name") not in questions})
    if ignored:
        log.info("label config: %s get no prediction; this backend predicts the <Choices> about %r (%s)",
                 ", ".join(ignored), to_name, ", ".join(questions))
