"""A question version's training fingerprint follows what its run would really learn from: a
setting that the run does not use gives no twin version, one that it uses retrains."""
from baal_backend.answers import encode
from baal_backend.labels import Label
from baal_backend.schema import parse_label_config

TWO = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="multiple">'
       '<Choice value="a"/><Choice value="b"/></Choices><Choices name="mood" toName="text">'
       '<Choice value="happy"/><Choice value="sad"/></Choices></View>')
ONE_MULTI = ('<View><Text name="text" value="$text"/><Choices name="topic" toName="text" choice="multiple">'
             '<Choice value="a"/><Choice value="b"/></Choices></View>')


def _digest(make_app, config, **env):
    client = make_app(**env)
    schema = parse_label_config(config)
    labels = [Label(i, i, f"text {i}", encode(schema, {"topic": ("a",)}), 0.0) for i in range(1, 4)]
    return client.engine.publisher.fingerprint(schema, labels)


def test_train_mode_counts_only_where_it_changes_the_run(make_app):
    # several questions train in head mode whatever TRAIN_MODE says: switching it makes no twin
    assert _digest(make_app, TWO, TRAIN_MODE="head") == _digest(make_app, TWO, TRAIN_MODE="finetune")
    # one multi-label question is fine-tuned in fine-tune mode: switching retrains
    assert _digest(make_app, ONE_MULTI, TRAIN_MODE="head") != _digest(make_app, ONE_MULTI, TRAIN_MODE="finetune")


def test_min_labels_counts_for_questions(make_app):
    # which questions train depends on MIN_LABELS: lowering it must not be "nothing changed"
    assert _digest(make_app, TWO, MIN_LABELS="10") != _digest(make_app, TWO, MIN_LABELS="5")
