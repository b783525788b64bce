"""The non-English project check: real sentences, the packaged MiniLM's own model card."""
import logging

import pytest

from baal_backend.language import LanguageWatch, english_only, survey, text_language
from baal_backend.settings import default_model_path

SPANISH = [
    "¿Dónde está la estación de tren más cercana?",
    "El pedido llegó tarde y la caja estaba rota.",
    "Me encanta este restaurante, la comida es muy buena.",
    "No puedo entrar en mi cuenta desde ayer por la tarde.",
    "Quiero cancelar la suscripción porque ya no la uso.",
    "La aplicación se cierra cada vez que intento pagar con la tarjeta.",
    "Gracias por la ayuda, todo funciona bien ahora.",
    "¿Cuánto tiempo tarda el envío a Valencia?",
    "El producto no es como en las fotos de la web.",
    "Necesito cambiar la dirección de entrega del pedido.",
    "Hoy hace un día precioso para ir a la playa con los niños.",
    "Llevo una hora esperando y nadie contesta el teléfono.",
]
ENGLISH = [
    "Where is the nearest train station?",
    "The order arrived late and the box was broken.",
    "I love this restaurant, the food is really good.",
    "I can't log in to my account since yesterday afternoon.",
    "I want to cancel the subscription because I don't use it any more.",
    "The app crashes every time I try to pay with my card.",
    "Thanks for the help, everything works fine now.",
    "How long does shipping to Boston take?",
    "The product is not what the photos on the website show.",
    "I need to change the delivery address of my order.",
    "It is a lovely day to go to the beach with the kids.",
    "I have been waiting for an hour and nobody answers the phone.",
]


@pytest.mark.parametrize("text, lang", [
    ("Le train est en retard et il n'y a pas de place pour s'asseoir.", "fr"),
    ("Der Zug hat heute wieder Verspätung und ich bin nicht pünktlich.", "de"),
    ("Não consigo acessar a minha conta desde ontem.", "pt"),
    ("Поезд опять опаздывает, и мест нет.", "cyrillic"),
    ("这家餐厅的菜很好吃。", "cjk"),
    ("OK 👍 #2024", None),  # nothing that tells
])
def test_other_languages_and_scripts(text, lang):
    assert text_language(text) == lang


def test_each_sentence_is_told_right():
    assert [text_language(t) for t in SPANISH] == ["es"] * len(SPANISH)
    assert [text_language(t) for t in ENGLISH] == ["en"] * len(ENGLISH)


def test_survey_needs_most_texts_foreign_and_enough_of_them():
    spanish = survey(SPANISH * 3 + ENGLISH[:4])
    assert spanish.mostly_foreign and spanish.language == "es" and spanish.told == 40
    assert not survey(SPANISH + ENGLISH).mostly_foreign  # half and half: no verdict
    assert not survey(SPANISH[:5]).mostly_foreign  # too few texts to tell


def test_encoder_languages_come_from_the_model_card(tmp_path):
    assert english_only(default_model_path())  # the packaged MiniLM's card says `language: en`
    multilingual = tmp_path / "multi"
    multilingual.mkdir()
    (multilingual / "README.md").write_text("---\nlanguage:\n- multilingual\n- es\nlicense: mit\n---\n# e5\n")
    inline = tmp_path / "inline"
    inline.mkdir()
    (inline / "README.md").write_text("---\nlicense: mit\nlanguage: [en, es]\n---\n")
    english = tmp_path / "english"
    english.mkdir()
    (english / "README.md").write_text("---\nlanguage: 'en'\ntags:\n- language: fr\n---\n")
    assert not english_only(str(multilingual)) and not english_only(str(inline))
    assert english_only(str(english))
    assert not english_only(str(tmp_path))  # no card: unknown, never warned about


def test_the_warning_names_the_setting_only_for_foreign_texts_on_an_english_encoder(tmp_path):
    minilm = default_model_path()
    warning = LanguageWatch(minilm).observe("1", SPANISH * 2)
    assert warning and "Spanish" in warning and "all-MiniLM-L6-v2" in warning
    assert "BASELINE_MODEL_NAME=multilingual" in warning and "\n" not in warning
    assert LanguageWatch(minilm).observe("1", ENGLISH * 2) is None
    multilingual = tmp_path / "multi"
    multilingual.mkdir()
    (multilingual / "README.md").write_text("---\nlanguage:\n- multilingual\n---\n")
    assert LanguageWatch(str(multilingual)).observe("1", SPANISH * 2) is None


def test_the_watch_decides_once_per_project_and_logs_once(caplog):
    watch = LanguageWatch(default_model_path())
    with caplog.at_level(logging.WARNING, logger="baal_backend.language"):
        assert watch.observe("1", SPANISH[:3]) is None  # too few texts: no verdict yet
        first = watch.observe("1", SPANISH)
        again = watch.observe("1", ENGLISH)  # decided: not checked again
        assert watch.observe("2", ENGLISH) is None
    assert first and again == first
    watch.forget("1")
    assert watch.observe("1", ENGLISH) is None  # a new project 1, in English
    assert [r.getMessage() for r in caplog.records] == [f"project 1: {first}"]
