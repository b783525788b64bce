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
        ('<View><Text name="t" value="plain"/><Choices name="c" toName="t"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "value=\"$text\""),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/>'
         '</Choices><Choices name="c" toName="t"><Choice value="x"/><Choice value="y"/></Choices></View>',
         "share the name 'c'"),
        ('<View><Text name="t" value="$text"/><Labels name="ner" toName="t"><Label value="PER"/></Labels>'
         '<Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>', "NER"),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="t" perRegion="true"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "perRegion"),
        ('<View><Text name="t" value="$text"/><Text name="u" value="$other"/><Choices name="c" toName="t">'
         '<Choice value="a"/><Choice value="b"/></Choices><Choices name="d" toName="u"><Choice value="a"/>'
         '<Choice value="b"/></Choices></View>', "several texts per task"),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="t" choice="multiple"></Choices></View>',
         "at least 1 choices"),
        ('<View><Text name="t" value="$text"/><Taxonomy name="tax" toName="t"><Choice value="A"><Choice value="A1"/>'
         '</Choice><Choice value="B"/></Taxonomy></View>', '<Taxonomy name="tax"> is not supported'),
    ],
)
def test_unservable_configs_name_the_problem(config, message):
    with pytest.raises(SchemaError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_label_config(config)


MULTI = (
    '<View><Text name="t" value="$text"/>'
    '<Choices name="topic" toName="t" choice="multiple"><Choice value="billing"/><Choice value="travel" hint="trips"/>'
    '<Choice value="card"/></Choices>'
    '<Choices name="tone" toName="t" choice="single-radio"><Choice value="calm"/><Choice value="angry"/></Choices>'
    '<Choices name="urgent" toName="t" choice="multiple" visibleWhen="choice-selected" whenTagName="tone" '
    'whenChoiceValue="angry"><Choice value="yes"/></Choices>'
    '<View visibleWhen="region-selected"><Choices name="odd" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>'
    '<TextArea name="note" toName="t"/><Rating name="stars" toName="t"/></View>'
)


def test_several_questions_multi_label_and_conditions(caplog):
    caplog.set_level("INFO")
    s = parse_label_config(MULTI)
    topic, tone, urgent, odd = s.questions
    assert (topic.from_name, topic.multiple, topic.labels, topic.descriptions) == (
        "topic", True, ("billing", "travel", "card"), ((), ("trips",), ()))
    assert (tone.multiple, tone.shown_when, tone.conditional) == (False, None, False)
    assert urgent.multiple and urgent.labels == ("yes",) and not urgent.conditional
    assert urgent.shown_when.holds({"tone": ("angry",)}) and not urgent.shown_when.holds({"tone": ("calm",)})
    assert odd.conditional and odd.shown_when is None  # a condition on its <View>: not evaluated
    assert (s.from_name, s.labels, s.simple) == ("topic", topic.labels, False)
    assert s.only(tone).questions == (tone,) and s.only(tone).simple
    assert 'note' in caplog.text and 'stars' in caplog.text and "get no prediction" in caplog.text


def test_a_condition_on_a_tag_not_read_is_not_evaluated():
    cfg = ('<View><Image name="i" value="$img"/><Choices name="kind" toName="i"><Choice value="x"/></Choices>'
           '<Text name="t" value="$text"/><Choices name="c" toName="t" visibleWhen="choice-selected" '
           'whenTagName="kind"><Choice value="a"/><Choice value="b"/></Choices></View>')
    (only,) = parse_label_config(cfg).questions
    assert only.conditional and only.shown_when is None
