import pytest

from baal_backend.schema import SchemaError, parse_label_config
from tests.helpers import label_config


def test_choices_bound_to_text():
    s = parse_label_config(label_config(["A", "B", "C"], from_name="topic", to_name="doc", key="body"))
    assert (s.from_name, s.to_name, s.text_key, s.labels) == ("topic", "doc", "body", ("A", "B", "C"))


def test_labels_keep_config_order_and_150_classes():
    labels = [f"intent_{i:03d}" for i in range(150)][::-1]
    s = parse_label_config(label_config(labels))
    assert s.labels == tuple(labels) and s.n_classes == 150


def test_other_tags_are_ignored():
    cfg = (
        '<View><Header value="Pick one"/><Text name="t" value="$text"/>'
        '<Choices name="c" toName="t"><View><Choice value="x"/><Choice value="y"/></View></Choices>'
        '<TextArea name="note" toName="t"/></View>'
    )
    assert parse_label_config(cfg).labels == ("x", "y")


@pytest.mark.parametrize(
    "config, message",
    [
        ("", "empty"),
        ("<View><Text", "not valid XML"),
        ('<View><Text name="t" value="$text"/></View>', "no <Choices>"),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="other"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "no <Choices>"),
        ('<View><Image name="i" value="$img"/><Choices name="c" toName="i"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "no <Choices>"),
        (label_config(["only"]), "at least 2 choices"),
        (label_config(["a", "a"]), "twice"),
        (label_config(["a", "b"]).replace('choice="single"', 'choice="multiple"'), "multi-label"),
        ('<View><Text name="t" value="plain"/><Choices name="c" toName="t"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "value=\"$text\""),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/>'
         '</Choices><Choices name="d" toName="t"><Choice value="x"/><Choice value="y"/></Choices></View>',
         "several"),
    ],
)
def test_unservable_configs_name_the_problem(config, message):
    with pytest.raises(SchemaError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_label_config(config)
