"""Is a project's text mostly not English while its base encoder is English-only?

An English-only encoder (the default all-MiniLM-L6-v2) still embeds Spanish or Chinese, badly,
and nothing fails: the project just learns slower. So the backend says it, once per project,
naming the setting that fixes it. No dependency: a text's language is told by its commonest
function words (or its script), which is enough to separate English from the rest on a
sample of a project's texts; the encoder's languages come from its model card (`language:`
in README.md's front matter, as the Hugging Face hub writes it), not from a list of names.
"""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, FrozenSet, Optional, Sequence

log = logging.getLogger(__name__)

#: Frequent function words; a word in several lists counts for each.
STOPWORDS: Dict[str, FrozenSet[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to is in that it for was with you this are on be have not but at they from what his "
              "her by an or my we can will would there their been has your which do does did if me i'm it's don't "
              "just so about how when who all get please want need i no",
        "es": "el la los las de del que y en un una es por con para no se lo su al como más pero sus le ya este "
              "esta está son muy también hay fue ser cuando sin sobre mi te qué porque todo hasta desde nos yo "
              "tiene eso bien",
        "pt": "o os as de do da dos das e que em um uma é não para com por no na se mais mas ao foi são muito "
              "também ele ela eu você isso está tem como seu sua já nos pelo pela ou",
        "fr": "le la les de des du et un une est que qui dans pour pas sur au aux avec ce cette il elle ne se "
              "sont ou mais je vous nous tout plus par été avoir être c'est j'ai très aussi comme leur",
        "it": "il lo la gli le di del della che e è un una per non con in sono si da ma anche come questo "
              "questa più molto ho ha mi ti ci nel nella alla dei delle perché cosa sei",
        "de": "der die das und ist nicht ein eine zu den dem mit von sich auf für auch es im ich sie wir aber "
              "wie oder sind war noch nur bei aus nach wenn kann wird dass sehr einen einer hat haben",
        "nl": "de het een en van is niet dat op te zijn met voor ik je die er maar ook om aan als bij nog wat "
              "hij zij heeft naar wordt kan dit wel geen zo worden",
    }.items()
}
NAMES = {"en": "English", "es": "Spanish", "pt": "Portuguese", "fr": "French", "it": "Italian", "de": "German",
         "nl": "Dutch"}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
#: How many texts a check reads (evenly spread over what it is given).
SAMPLE = 500
#: Texts whose language could be told, below which no verdict is given.
MIN_DECIDED = 10
#: Share of the told texts that must be non-English.
MOSTLY = 0.6
SETTING_HINT = "BASELINE_MODEL_NAME=multilingual (`make install-multilingual`; README, \"Other languages\")"


def text_language(text: str) -> Optional[str]:
    """"en", another code of `STOPWORDS`, a script ("cyrillic", "cjk", ...) for text mostly in a
    non-Latin script, or None when the text does not tell (too short, no function word, a tie)."""
    letters = [c for c in text if c.isalpha()]
    foreign = [c for c in letters if ord(c) > 0x24F]  # past Latin Extended-B
    if letters and len(foreign) * 2 > len(letters):
        script = Counter(unicodedata.name(c, "OTHER ?").split()[0] for c in foreign).most_common(1)[0][0]
        return script.lower()
    scores: Counter = Counter()
    for word in _WORD.findall(text.lower()):
        for lang, words in STOPWORDS.items():
            if word in words:
                scores[lang] += 1
    if not scores:
        return None
    (best, top), *rest = scores.most_common()
    english = scores.get("en", 0)
    if best == "en" or top == english:
        return "en" if english > max((n for lang, n in scores.items() if lang != "en"), default=0) else None
    return best


#: Of each sampled text, the start is read: enough words to tell, and 500 long texts cost milliseconds.
TEXT_CHARS = 2_000


def _sample(texts: Sequence[str], limit: int) -> Sequence[str]:
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


@dataclass(frozen=True)
class Survey:
    """What a sample of texts says about their language."""

    told: int  # texts whose language could be told
    foreign: float  # the share of those that are not English
    language: Optional[str]  # the commonest language that is not English
    share: float  # its share of the told texts

    @property
    def mostly_foreign(self) -> bool:
        return self.told >= MIN_DECIDED and self.foreign >= MOSTLY


def survey(texts: Sequence[str]) -> Survey:
    """The languages of up to `SAMPLE` of `texts`, evenly spread."""
    told = [lang for lang in (text_language(text[:TEXT_CHARS]) for text in _sample(texts, SAMPLE)) if lang is not None]
    foreign = Counter(lang for lang in told if lang != "en")
    if not foreign:
        return Survey(len(told), 0.0, None, 0.0)
    lang, count = foreign.most_common(1)[0]
    return Survey(len(told), sum(foreign.values()) / len(told), lang, count / len(told))


def _front_matter(card: str) -> Dict[str, object]:
    """The `language` key and a title from a model card; enough YAML for what the hub writes."""
    found: Dict[str, object] = {}
    lines = card.splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), len(lines))
        for i in range(1, end):
            key, _, value = lines[i].partition(":")
            if key.strip() != "language" or lines[i][:1].isspace():
                continue
            value = value.strip()
            if value:
                found["language"] = [v.strip(" '\"") for v in value.strip("[]").split(",") if v.strip(" '\"")]
            else:
                items = []
                for line in lines[i + 1 : end]:
                    if not line.lstrip().startswith("-"):
                        break
                    items.append(line.lstrip()[1:].strip(" '\""))
                found["language"] = items
        lines = lines[end + 1 :]
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), None)
    if title:
        found["title"] = title
    return found


def _card(name_or_path: str) -> Optional[str]:
    """The model card of a local directory, or of a hub id already in the local cache."""
    path = Path(name_or_path)
    if path.is_dir():
        card = path / "README.md"
        return card.read_text(encoding="utf-8", errors="replace") if card.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "README.md")
    except Exception:  # not a valid hub id: no card to read
        return None
    return Path(cached).read_text(encoding="utf-8", errors="replace") if isinstance(cached, str) else None


@lru_cache(maxsize=32)
def encoder_card(name_or_path: str) -> Dict[str, object]:
    """{"language": [...], "title": ...} as far as the encoder's model card says (maybe {})."""
    card = _card(name_or_path)
    return _front_matter(card) if card else {}


def english_only(name_or_path: str) -> bool:
    """True when the encoder's model card lists English and nothing else; False when it lists
    other languages ("multilingual" included) or says nothing (no card: no warning)."""
    languages = {str(lang).strip().lower() for lang in encoder_card(name_or_path).get("language", [])}
    return languages == {"en"}


def _warning(found: Survey, model_name: str) -> Optional[str]:
    if not found.mostly_foreign:
        return None
    title = encoder_card(model_name).get("title") or Path(model_name).name
    return (f"{found.foreign:.0%} of this project's texts are not English (mostly "
            f"{NAMES.get(found.language, found.language)}: {found.share:.0%} of {found.told} sampled) but the base "
            f"model {title} is English-only, so its predictions are weaker than they could be: set {SETTING_HINT} "
            f"and restart")


class LanguageWatch:
    """Per project, the verdict of the first check whose texts tell their language (a warning is
    logged then, once); until then each `observe` looks again. Thread-safe; a check reads at most
    `SAMPLE` texts, and none at all when the encoder is not English-only."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self._english_only = english_only(model_name)
        self._verdicts: Dict[str, Optional[str]] = {}
        self._lock = threading.Lock()

    def observe(self, project: str, texts: Sequence[str]) -> Optional[str]:
        """Check `texts` (the project's) unless the project has its verdict; the warning or None."""
        with self._lock:
            if project in self._verdicts or not self._english_only:
                return self._verdicts.get(project)
        found = survey(texts)
        if found.told < MIN_DECIDED:
            return None  # too few texts tell their language yet: look again next time
        warning = _warning(found, self.model_name)
        with self._lock:
            if project in self._verdicts:
                return self._verdicts[project]
            self._verdicts[project] = warning
        if warning:
            log.warning("project %s: %s", project, warning)
        return warning

    def forget(self, project: str) -> None:
        """A deleted project: a new one under its id is looked at afresh."""
        with self._lock:
            self._verdicts.pop(project, None)
