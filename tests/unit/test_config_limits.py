"""A label config is refused, with its reason, when it declares a DTD or is too large: both made
the config cost far more than its size on every webhook that re-reads it."""
import tracemalloc

import pytest

from baal_backend.schema import MAX_CONFIG_KB, SchemaError, parse_label_config
from tests.helpers import label_config

CHOICES = '<Choices name="c" toName="t"><Choice value="a{}"/><Choice value="b"/></Choices>'


def entity_bomb(refs: int, pad: int = 0) -> str:
    """A config whose one choice expands to `refs` copies of a 5000-character entity (just under
    expat's own limit of 100 times the input when `pad` characters of comment make up the rest)."""
    return (f'<!-- {"p" * pad} --><!DOCTYPE View [<!ENTITY e "{"x" * 5000}">]><View><Text name="t" value="$text"/>'
            + CHOICES.format("&e;" * refs) + "</View>")


@pytest.mark.parametrize("config", [
    entity_bomb(9500, pad=480_000),  # 0.5 MB -> a 47.5 MB choice, when it was expanded
    '<!DOCTYPE View><View><Text name="t" value="$text"/>' + CHOICES.format("") + "</View>",
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE View SYSTEM "file:///etc/passwd"><View/>',
    '<!ENTITY e "x"><View/>',
])
def test_a_dtd_or_entity_is_refused_before_anything_is_expanded(config):
    tracemalloc.start()
    try:
        with pytest.raises(SchemaError, match=r"declares a DTD or an entity \(<!DOCTYPE, <!ENTITY\)"):
            parse_label_config(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # was 47.5 MB for the 0.5 MB config


def test_a_config_over_the_size_limit_is_refused_by_its_size():
    config = label_config(["a", "b"]).replace("<View>", "<View>" + "<Header value='x'/>" * (MAX_CONFIG_KB * 60))
    assert len(config) > MAX_CONFIG_KB * 1024
    with pytest.raises(SchemaError, match=f"over the {MAX_CONFIG_KB} KB this backend reads"):
        parse_label_config(config)
    # multi-byte characters count by their UTF-8 size
    wide = label_config(["a", "b"]).replace("<View>", "<View><Header value='" + "é" * (MAX_CONFIG_KB * 520) + "'/>")
    assert len(wide) < MAX_CONFIG_KB * 1024 < len(wide.encode())
    with pytest.raises(SchemaError, match="KB this backend reads"):
        parse_label_config(wide)


def test_a_thousand_choices_with_long_hints_fit():
    choices = "".join(f'<Choice value="intent number {i}" hint="{"a description of the class " * 11}"/>'
                      for i in range(1000))
    config = f'<View><Text name="t" value="$text"/><Choices name="c" toName="t">{choices}</Choices></View>'
    assert len(config) > 300 * 1024
    assert parse_label_config(config).n_classes == 1000


def test_setup_answers_422_naming_the_dtd(make_app):
    client = make_app()
    resp = client.post("/setup", json={"project": "3.1", "schema": entity_bomb(10)})
    assert resp.status_code == 422 and "declares a DTD or an entity" in resp.json["error"]
