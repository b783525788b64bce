"""What an annotation answered, per question: parsing Label Studio's results, the stored form, and
which annotations teach each question."""
from baal_backend.answers import MARK, decode, encode, for_question, single_labels
from baal_backend.labels import Label
from baal_backend.schema import parse_label_config
from baal_backend.studio import label_from
from tests.helpers import SENTIMENT
from tests.unit.test_schema import MULTI


def _result(name, *choices):
    return {"from_name": name, "to_name": "t", "type": "choices", "value": {"choices": list(choices)}}


def _label(annotation_id, *results, cancelled=False):
    task = {"id": 10 + annotation_id, "data": {"text": f"text {annotation_id}"}}
    return label_from({"id": annotation_id, "result": list(results), "was_cancelled": cancelled}, task,
                      parse_label_config(MULTI))


def test_a_simple_project_stores_the_plain_choice():
    schema = parse_label_config(SENTIMENT)
    assert encode(schema, {schema.from_name: ("Positive",)}) == "Positive"
    assert decode(schema, "Positive") == {schema.from_name: ("Positive",)}
    assert decode(schema, "Neutral") is None


def test_answers_of_several_questions_round_trip_in_config_order():
    label = _label(1, _result("topic", "card", "billing"), _result("tone", "angry"), _result("note", "x"))
    assert label.label.startswith(MARK)
    assert decode(parse_label_config(MULTI), label.label) == {"topic": ("billing", "card"), "tone": ("angry",)}


def test_unusable_answers_are_left_out():
    assert _label(2, _result("topic", "billing"), cancelled=True) is None
    two = _label(4, _result("tone", "calm", "angry"))  # two choices in a single-choice question: no tone
    assert decode(parse_label_config(MULTI), two.label) == {}  # (topic was shown and left blank)
    unknown = _label(5, _result("topic", "billing", "nonsense"), _result("tone", "calm"))
    assert decode(parse_label_config(MULTI), unknown.label) == {"tone": ("calm",)}


def test_each_question_learns_where_it_was_answered_or_shown():
    schema = parse_label_config(MULTI)
    topic, tone, urgent, odd = schema.questions
    labels = [
        _label(1, _result("topic", "billing"), _result("tone", "angry"), _result("urgent", "yes")),
        _label(2, _result("tone", "angry")),  # urgent shown (tone angry) and left blank: a negative
        _label(3, _result("tone", "calm")),  # urgent hidden: says nothing about it
        _label(4, _result("odd", "a")),
    ]
    ids = lambda rows: [lb.annotation_id for lb, _ in rows]  # noqa: E731
    assert ids(for_question(labels, schema, urgent)) == [1, 2]
    assert [c for _, c in for_question(labels, schema, urgent)] == [("yes",), ()]
    assert ids(for_question(labels, schema, topic)) == [1, 2, 3, 4]  # always shown: blank = no topic applies
    assert ids(for_question(labels, schema, odd)) == [4]  # a condition we cannot evaluate: answered only
    assert [(lb.annotation_id, lb.label) for lb in single_labels(labels, schema, tone)] == [
        (1, "angry"), (2, "angry"), (3, "calm")]


def test_a_plain_stored_choice_answers_the_question_that_offers_it():
    """Labels stored before the config grew a second question keep teaching the first."""
    schema = parse_label_config(MULTI)
    old = Label(1, 11, "text", "calm")
    assert single_labels([old], schema, schema.questions[1]) == [Label(1, 11, "text", "calm")]


def test_answers_survive_a_config_that_changes_shape():
    """Back to one single-choice question: the answers stored while it had several still teach it;
    a single choice turned multi-label keeps its plain labels as one-label rows."""
    multi = parse_label_config(MULTI)
    stored = _label(1, _result("topic", "card"), _result("tone", "angry"))
    tone_only = parse_label_config('<View><Text name="t" value="$text"/><Choices name="tone" toName="t">'
                                   '<Choice value="calm"/><Choice value="angry"/></Choices></View>')
    assert [lb.label for lb in single_labels([stored], tone_only, tone_only.first)] == ["angry"]
    assert decode(multi, "card") == {"topic": ("card",)}  # "card" was once a single choice of "topic"


def test_a_blank_annotation_teaches_an_always_shown_multi_label_question():
    blank = _label(7, _result("note", "nothing applies"))
    assert blank is not None and decode(parse_label_config(MULTI), blank.label) == {}
    topic = parse_label_config(MULTI).questions[0]
    assert for_question([blank], parse_label_config(MULTI), topic)[0][1] == ()
    assert _label(8, cancelled=True) is None
