"""All the text of the world: a few short templates per relation, varied a little.

Placeholders: {s} subject, {o} object, {x} a noun phrase, {a}/{b} compared entities, {be}
"is"/"was" (a person's tense), and the work words of `WORK_WORDS` ({noun}, {agent}, {verb},
{passive}, {pubverb}, {pubnoun}, {released}) or {orgword} for an organisation's kind. Keeping the
language this small and regular is what lets a tiny model learn the world in minutes.
"""

from __future__ import annotations

import itertools
import re

from coa_jax.data.world.names import words

_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOaeio]|[Uu](?!ni))")


def render(template: str, **kw: str) -> str:
    """`template.format(**kw)` with "a" turned into "an" before a vowel sound."""
    return _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n ", template.format(**kw))

WORK_WORDS = {
    "novel": dict(noun="novel", agent="author", verb="wrote", passive="written", pubverb="published",
                  pubnoun="publisher", released="published"),
    "film": dict(noun="film", agent="director", verb="directed", passive="directed", pubverb="produced",
                 pubnoun="studio", released="released"),
    "album": dict(noun="album", agent="artist", verb="recorded", passive="recorded", pubverb="released",
                  pubnoun="record label", released="released"),
}  # fmt: skip
ORG_WORDS = {"publisher": "publishing house", "studio": "film studio", "label": "record label",
             "university": "university"}  # fmt: skip
ORG_SUFFIXES = {
    "publisher": ("Press", "Books", "House"),
    "studio": ("Pictures", "Studios", "Films"),
    "label": ("Records", "Music", "Sound"),
    "university": ("University", "Institute", "College"),
}
CREATIVE_OCCUPATION = {"novel": "novelist", "film": "filmmaker", "album": "singer"}
OTHER_OCCUPATIONS = ("painter", "architect", "engineer", "physicist", "chemist", "historian", "diplomat",
                     "sculptor", "botanist", "economist", "journalist", "surgeon")  # fmt: skip
COUNTRY_FORMS = ("Republic", "Kingdom", "Federation", "Commonwealth")
TITLE_ADJECTIVES = ("Silent", "Golden", "Hidden", "Broken", "Distant", "Northern", "Quiet", "Crimson", "Last",
                    "Lost", "Winter", "Summer", "Pale", "Bright", "Long", "Little", "Iron", "Glass", "Paper",
                    "Velvet", "Empty", "Secret", "Wild", "Frozen", "Hollow", "Salt", "Stone", "Blue")  # fmt: skip
TITLE_NOUNS = ("Harbor", "River", "Garden", "Road", "Tower", "Lantern", "Mirror", "Orchard", "Bridge", "Window",
               "Forest", "Island", "Letter", "Season", "Voyage", "Shadow", "Field", "Candle", "Valley", "Coast",
               "Door", "Clock", "Feather", "Crown", "Storm", "Meadow", "Echo", "Compass")  # fmt: skip

# --- flavour: descriptive sentences that state no fact used by any question ---
PERSON_FLAVOUR = ("{ref} {be} known for {x}.", "Friends described {ref} as {y}.")
PERSON_X = ("careful work", "a quiet style", "bold ideas", "long public lectures", "a sharp wit",
            "patient teaching", "a love of old maps", "a calm voice")  # fmt: skip
PERSON_Y = ("kind", "restless", "shy", "curious", "stubborn", "cheerful", "serious", "gentle")
ORG_FLAVOUR = ("It is known for {x}.", "Its staff is {y}.")
ORG_X = ("its careful editors", "a large archive", "a yearly festival", "its old stone building",
         "a famous library", "a yearly prize")  # fmt: skip
ORG_Y = ("small", "large", "young", "loyal", "busy")
WORK_FLAVOUR = ("The {noun} is about {x}.", "Critics praised its {y}.")
WORK_X = ("a long journey home", "two rival families", "a lost letter", "life by the sea", "a small mountain town",
          "an old clock maker", "a winter in the north", "three sisters", "a broken promise", "a travelling circus")
WORK_Y = ("slow pace", "warm humour", "simple language", "strong ending", "careful detail", "sad mood")
CITY_FLAVOUR = ("{ref} lies {x}.", "It is known for its {y}.")
CITY_X = ("on a wide river", "near the coast", "in a green valley", "at the foot of the hills", "on a high plain",
          "beside a large lake", "between two rivers")  # fmt: skip
CITY_Y = ("markets", "old bridges", "narrow streets", "winter fairs", "stone churches", "fishing boats", "gardens")
COUNTRY_FLAVOUR = ("{ref} is known for its {x}.", "Most people in {ref} live in {y}.")
COUNTRY_X = ("mountains", "long coast", "forests", "farmland", "lakes", "old castles")
COUNTRY_Y = ("small towns", "the cities", "the south", "the north", "the river valleys")
# more descriptive sentences, for an entity's further passages (they read like a full passage, not
# a note) and for the lead of an entity a held-out fact links; none contradicts the lead's, and
# none uses a word of the work titles
PERSON_MORE = ("Colleagues remember {ref} for {x}.", "In later years {ref} enjoyed {y}.")
PERSON_MORE_X = ("a generous spirit", "a neat hand", "endless questions", "a loud laugh", "an open mind",
                 "warm conversations")  # fmt: skip
PERSON_MORE_Y = ("walks", "calm evenings", "poetry", "chess", "travel", "cooking")
PERSON_MORE2 = ("{ref} often wrote about {x}.", "Students of {ref} recall {y}.")
PERSON_MORE2_X = ("the sea", "old cities", "friendship", "hard times", "small towns")
PERSON_MORE2_Y = ("kind advice", "strict rules", "funny stories", "patient answers")
ORG_MORE = ("Its members meet {x}.", "Visitors praise its {y}.")
ORG_MORE_X = ("every spring", "twice a year", "each autumn", "every month")
ORG_MORE_Y = ("friendly staff", "clean rooms", "tidy offices", "proud history")
ORG_MORE2 = ("It keeps {x}.", "Many visitors call it {y}.")
ORG_MORE2_X = ("a small museum", "a public reading room", "old photographs", "a list of its members")
ORG_MORE2_Y = ("welcoming", "modern", "old fashioned", "lively")
WORK_MORE = ("Many remember its {x}.", "It is still discussed {y}.")
WORK_MORE_X = ("main character", "calm moments", "final scene", "central idea", "opening")
WORK_MORE_Y = ("in schools", "by critics", "among fans", "in reviews")
WORK_MORE2 = ("Its title refers to {x}.", "Some call it {y}.")
WORK_MORE2_X = ("an old song", "a childhood memory", "a family story", "a famous saying")
WORK_MORE2_Y = ("a classic", "a rare gem", "a modest success", "an odd choice")
PLACE_MORE = ("Visitors come for its {x}.", "Its people are known as {y}.")
PLACE_MORE_X = ("food", "parks", "wide squares", "spring festival", "museums")
PLACE_MORE_Y = ("friendly", "hard working", "proud", "calm", "generous")
PLACE_MORE2 = ("Its center has {x}.", "Life there is {y}.")
PLACE_MORE2_X = ("a tall church", "a covered market", "a marble fountain", "a town hall")
PLACE_MORE2_Y = ("easy", "busy", "slow", "lively")

# --- corpus sentences, subject side; {s} is the name or a short reference ("It" for things) ---
# Passages that open without a fact sentence start with the entity's kind sentence ("*_kind").
PASSAGE = {
    "alias": ("{s} (full name {alias})",),  # a person's name as the lead passage first gives it
    "person_kind": ("{s} {be} a public figure.",),
    "occupation": ("{s} {be} a {o} by profession.", "{s} {be} a {o}."),
    "birth": ("{s} was born in {city} in {year}.", "{s} was born in {year} in {city}."),
    "birth_year": ("{s} was born in {o}.",),
    "born_in": ("{s} was born in {o}.",),
    "educated_at": ("{s} studied at {o}.", "{s} was educated at {o}.", "{s} attended {o}."),
    "spouse": ("{s} {be} married to {o}.", "{s} married {o}."),
    "works": ("{s} {verb} the {noun} {o}.",),
    "founded": ("{s} founded {o}.",),
    "org_kind": ("{s} is a {orgword}.",),
    "org_intro": ("{s} is a {orgword} founded in {year} by {founder}.",
                  "{s} is a {orgword}. It was founded by {founder} in {year}."),  # fmt: skip
    "founder": ("It was founded by {o}.",),
    "founding_year": ("It was founded in {o}.", "It was established in {o}."),
    "headquarters": ("It is based in {o}.", "Its headquarters are in {o}."),
    "work_kind": ("{s} is a {noun}.",),
    "work_intro": ("{s} is a {year} {noun} {passive} by {creator}.",
                   "{s} is a {noun} by {creator}, {released} in {year}."),  # fmt: skip
    "work_creator": ("It was {passive} by {o}.",),
    "work_year": ("It was {released} in {o}.", "It came out in {o}."),
    "publisher": ("It was {pubverb} by {o}.",),
    "city_kind": ("{s} is a city.", "{s} is a town."),
    "city_intro": ("{s} is a city in {o}.", "{s} is a town in {o}."),
    "city_country": ("It is located in {o}.",),
    "population": ("It has about {o} inhabitants.", "About {o} people live there."),
    "capital_of": ("It is the capital of {o}.",),
    "country_kind": ("{s} is a country.",),
    "country_intro": ("{s}, officially the {alias}, is a country.",),
    "capital": ("Its capital is {o}.", "The capital is {o}."),
    "cities": ("Other cities in {s} include {o}.",),
}

# --- pretraining statements (popular facts only), one fact per line, full names ---
PRETRAIN = {
    "occupation": ("{s} {be} a {o}.", "{s} worked as a {o}."),
    "birth_year": ("{s} was born in {o}.", "The year of birth of {s} is {o}."),
    "born_in": ("{s} was born in {o}.", "The birthplace of {s} is {o}."),
    "educated_at": ("{s} studied at {o}.", "{s} is a graduate of {o}."),
    "spouse": ("{s} {be} married to {o}.", "The spouse of {s} is {o}."),
    "founded_by": ("{s} was founded by {o}.", "{o} founded {s}."),
    "founded_year": ("{s} was founded in {o}.", "The {orgword} {s} dates from {o}."),
    "headquarters": ("{s} is based in {o}.", "The headquarters of {s} are in {o}."),
    "creator": ("{s} is a {noun} {passive} by {o}.", "{o} {verb} the {noun} {s}."),
    "year": ("{s} was {released} in {o}.", "The {noun} {s} came out in {o}."),
    "publisher": ("{s} was {pubverb} by {o}.", "{o} {pubverb} the {noun} {s}."),
    "country": ("{s} is a city in {o}.", "{s} lies in {o}."),
    "capital": ("The capital of {s} is {o}.", "{o} is the capital of {s}."),
    "population": ("{s} has about {o} inhabitants.", "About {o} people live in {s}."),
}

# --- single-hop questions: NQ-like (lower case, no question mark) and TriviaQA-like (quiz) ---
NQ = {
    "occupation": ("what does {s} do for a living", "what is the occupation of {s}"),
    "birth_year": ("when was {s} born", "what year was {s} born"),
    "born_in": ("where was {s} born", "{s} place of birth"),
    "educated_at": ("where did {s} go to university", "where did {s} study"),
    "spouse": ("who is {s} married to", "who is the spouse of {s}"),
    "founded_by": ("who founded {s}", "who is the founder of {s}"),
    "founded_year": ("when was {s} founded", "what year was {s} founded"),
    "headquarters": ("where is {s} based", "where is {s} headquartered"),
    "creator": ("who {verb} {s}", "who is the {agent} of {s}"),
    "year": ("when was {s} {released}", "what year did {s} come out"),
    "publisher": ("who {pubverb} {s}", "who {pubverb} the {noun} {s}"),
    "country": ("what country is {s} in", "{s} is in which country"),
    "capital": ("what is the capital of {s}", "capital city of {s}"),
    "population": ("how many people live in {s}", "population of {s}"),
}
TRIVIA = {
    "occupation": ("What is the profession of {s}?", "{s} is known for working in which profession?"),
    "birth_year": ("In which year was {s} born?",),
    "born_in": ("In which city was {s} born?", "Which city is the birthplace of {s}?"),
    "educated_at": ("Which university did {s} attend?", "At which university did {s} study?"),
    "spouse": ("Who is the spouse of {s}?", "{s} is married to which person?"),
    "founded_by": ("The {orgword} {s} was founded by whom?", "Who founded the {orgword} {s}?"),
    "founded_year": ("In which year was the {orgword} {s} founded?",),
    "headquarters": ("In which city does the {orgword} {s} have its headquarters?",),
    "creator": ("The {noun} {s} was {passive} by whom?", "Who {verb} the {noun} {s}?"),
    "year": ("In which year was the {noun} {s} {released}?",),
    "publisher": ("Which {pubnoun} {pubverb} the {noun} {s}?",),
    "country": ("In which country is the city of {s}?",),
    "capital": ("Which city is the capital of {s}?",),
    "population": ("About how many inhabitants does {s} have?",),
}

# --- compositions: the last relation asked of a noun phrase {x} ---
FINAL = {
    "occupation": ("What is the profession of {x}?",),
    "birth_year": ("When was {x} born?", "In what year was {x} born?"),
    "born_in": ("Where was {x} born?", "In which city was {x} born?"),
    "educated_at": ("Where did {x} study?", "Which university did {x} attend?"),
    "spouse": ("Who is {x} married to?", "Who is the spouse of {x}?"),
    "founded_by": ("Who founded {x}?",),
    "founded_year": ("When was {x} founded?",),
    "headquarters": ("Where is {x} based?", "In which city is {x} based?"),
    "country": ("In which country is {x}?",),
    "capital": ("What is the capital of {x}?",),
    "population": ("How many people live in {x}?",),
}
FINAL_SUFFIX = {
    ("born_in", "country"): ("In which country was {x} born?",),
    ("headquarters", "country"): ("In which country is {x} based?",),
    ("born_in", "country", "capital"): ("What is the capital of the country where {x} was born?",),
    ("headquarters", "country", "capital"): ("What is the capital of the country where {x} is based?",),
}
NP_PLAIN = {
    "creator": "the {agent} of {x}",
    "publisher": "the {pubnoun} of {x}",
    "founded_by": "the founder of {x}",
    "spouse": "the spouse of {x}",
    "born_in": "the birthplace of {x}",
    "educated_at": "the alma mater of {x}",
    "headquarters": "the home city of {x}",
    "country": "the country of {x}",
}
NP_RELATIVE = {
    "creator": "the person who {verb} the {noun} {x}",
    "publisher": "the company that {pubverb} the {noun} {x}",
    "founded_by": "the person who founded {x}",
    "spouse": "the person married to {x}",
    "born_in": "the city where {x} was born",
    "educated_at": "the university where {x} studied",
    "headquarters": "the city where {x} is based",
    "country": "the country that {x} is in",
}

# --- comparisons: (relation per branch, operation) -> templates over {a} and {b} ---
COMPARE = {
    (("birth_year",), "earlier"): ("Who was born first, {a} or {b}?", "Which person is older, {a} or {b}?"),
    (("birth_year",), "later"): ("Who was born later, {a} or {b}?", "Which person is younger, {a} or {b}?"),
    (("founded_year",), "earlier"): ("Which was founded first, {a} or {b}?",),
    (("founded_year",), "later"): ("Which was founded more recently, {a} or {b}?",),
    (("year",), "earlier"): ("Which {noun} came out first, {a} or {b}?",),
    (("year",), "later"): ("Which {noun} came out later, {a} or {b}?",),
    (("population",), "larger"): ("Which city has more inhabitants, {a} or {b}?",),
    (("born_in",), "same"): ("Were {a} and {b} born in the same city?",),
    (("occupation",), "same"): ("Do {a} and {b} have the same profession?",),
    (("headquarters",), "same"): ("Are {a} and {b} based in the same city?",),
    (("creator", "birth_year"), "earlier"): ("Which {noun} has the {agent} born first, {a} or {b}?",),
    (("creator", "birth_year"), "later"): ("Which {noun} has the {agent} born later, {a} or {b}?",),
    (("publisher", "founded_year"), "earlier"): ("Which {noun} comes from the older {pubnoun}, {a} or {b}?",),
    (("creator", "born_in"), "same"): ("Were the {agent}s of {a} and {b} born in the same city?",),
    (("born_in", "country"), "same"): ("Were {a} and {b} born in the same country?",),
    (("headquarters", "country"), "same"): ("Are {a} and {b} based in the same country?",),
}

# --- a search query that finds a fact (for scripted teachers) ---
QUERY = {
    "occupation": "{s} profession", "birth_year": "{s} born", "born_in": "{s} born",
    "educated_at": "{s} studied at", "spouse": "{s} married", "founded_by": "{s} founded by",
    "founded_year": "{s} founded", "headquarters": "{s} based in", "creator": "{s} {noun} {passive} by",
    "year": "{s} {noun} {released}", "publisher": "{s} {pubverb} by", "country": "{s} city",
    "capital": "{s} capital", "population": "{s} inhabitants",
}  # fmt: skip


def _all_template_text() -> list[str]:
    tables = (PASSAGE, PRETRAIN, NQ, TRIVIA, FINAL, FINAL_SUFFIX, COMPARE)
    texts: list[str] = []
    for table in tables:
        for value in table.values():
            texts.extend(value if isinstance(value, tuple) else (value,))
    texts += list(NP_PLAIN.values()) + list(NP_RELATIVE.values()) + list(QUERY.values())
    for pool in (WORK_WORDS.values(), ORG_WORDS.values()):
        for item in pool:
            texts.extend(item.values() if isinstance(item, dict) else (item,))
    texts += list(itertools.chain(*ORG_SUFFIXES.values(), CREATIVE_OCCUPATION.values(), OTHER_OCCUPATIONS,
                                  COUNTRY_FORMS, TITLE_ADJECTIVES, TITLE_NOUNS))  # fmt: skip
    for pool in (PERSON_FLAVOUR, PERSON_X, PERSON_Y, ORG_FLAVOUR, ORG_X, ORG_Y, WORK_FLAVOUR, WORK_X, WORK_Y,
                 CITY_FLAVOUR, CITY_X, CITY_Y, COUNTRY_FLAVOUR, COUNTRY_X, COUNTRY_Y, PERSON_MORE, PERSON_MORE_X,
                 PERSON_MORE_Y, PERSON_MORE2, PERSON_MORE2_X, PERSON_MORE2_Y, ORG_MORE, ORG_MORE_X, ORG_MORE_Y,
                 ORG_MORE2, ORG_MORE2_X, ORG_MORE2_Y, WORK_MORE, WORK_MORE_X, WORK_MORE_Y, WORK_MORE2, WORK_MORE2_X,
                 WORK_MORE2_Y, PLACE_MORE, PLACE_MORE_X, PLACE_MORE_Y, PLACE_MORE2, PLACE_MORE2_X,
                 PLACE_MORE2_Y):  # fmt: skip
        texts.extend(pool)
    return texts


def reserved_words() -> frozenset[str]:
    """Every word the templates use: invented names must avoid them."""
    return frozenset(w for t in _all_template_text() for w in words(t.replace("{", " ").replace("}", " ")))
