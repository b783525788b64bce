"""Label config -> what a text classifier needs: from_name, to_name, the task data key, labels."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Tuple


#: Object tags whose content is text the classifier can read.
SOURCES = ("text", "hypertext", "paragraphs")

#: A label config is refused above this size (UTF-8): 1000 choices with a 300-character hint
#: each are some 350 KB. Every annotation webhook re-parses the stored config.
MAX_CONFIG_KB = 512


class SchemaError(ValueError):
    """The label config cannot be served by a single-label text classifier."""


@dataclass(frozen=True)
class Schema:
    """A `Choices` tag bound to a `Text` tag.

    Attributes
    ----------
    from_name, to_name : the tag names Label Studio expects in a result.
    text_key : key of the task's `data` holding the text (`$text` -> `text`).
    labels : the choices, in config order; this order is the model's class order.
    source : the object tag: "text", "hypertext" (HTML, read as its visible text) or
        "paragraphs" (a list of utterances, read as "name: text" lines).
    name_key, item_key : for "paragraphs", the keys of an utterance's speaker and text.
    descriptions : per label, its `hint` when the config gives one (the label-name prior embeds
        it with the value). Not its `alias`: Label Studio writes the alias into results in place
        of the value, a short code rather than words.
    """

    from_name: str
    to_name: str
    text_key: str
    labels: Tuple[str, ...]
    source: str = "text"
    name_key: str = "author"
    item_key: str = "text"
    descriptions: Tuple[Tuple[str, ...], ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.labels)


def parse_label_config(config: str) -> Schema:
    """Find the one Choices/Text pair of a label config, or raise `SchemaError` saying why not."""
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
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise SchemaError(f"the label config is not valid XML: {exc}") from None

    texts = {el.get("name"): el for el in root.iter() if el.tag.lower() in SOURCES and el.get("name")}
    pairs = [
        el for el in root.iter() if el.tag.lower() == "choices" and el.get("toName") in texts
    ]
    if not pairs:
        raise SchemaError("the label config has no <Choices> tag bound (toName) to a <Text>, <HyperText> or <Paragraphs> tag")
    if len(pairs) > 1:
        names = ", ".join(el.get("name", "?") for el in pairs)
        raise SchemaError(f"the label config has several Choices/Text pairs ({names}); one is supported")

    choices = pairs[0]
    from_name, to_name = choices.get("name"), choices.get("toName")
    if not from_name:
        raise SchemaError("the <Choices> tag has no name attribute")
    if (choices.get("choice") or "single").lower() == "multiple":
        raise SchemaError(f'<Choices name="{from_name}"> has choice="multiple"; multi-label is not supported yet')

    source = texts[to_name]
    value = source.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise SchemaError(f'<{source.tag} name="{to_name}"> must read its text from task data, like value="$text"')

    elements = [el for el in choices.iter() if el.tag.lower() == "choice"]
    labels = [el.get("value") for el in elements]
    if any(not label for label in labels):
        raise SchemaError(f'a <Choice> in "{from_name}" has no value')
    if len(set(labels)) != len(labels):
        raise SchemaError(f'<Choices name="{from_name}"> lists a choice twice')
    if len(labels) < 2:
        raise SchemaError(f'<Choices name="{from_name}"> needs at least 2 choices, found {len(labels)}')
    return Schema(
        from_name, to_name, value[1:], tuple(labels), source=source.tag.lower(),
        name_key=source.get("nameKey") or "author", item_key=source.get("textKey") or "text",
        descriptions=tuple((el.get("hint").strip(),) if (el.get("hint") or "").strip() else () for el in elements),
    )
