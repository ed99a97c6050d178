"""Renders the world as text: encyclopedia-style passages (the search corpus) and the
pretraining statements (popular facts only).

Passages. Every passage is about one entity and titled with its name. An entity's *lead* passage
gives its facts as subject, one sentence each (or an intro sentence giving two), plus a few
descriptive sentences; facts that do not fit go to further passages of the same entity (a
person's works and foundations, for instance), each opening with the entity's full name or its
kind ("X is a film studio."). Facts stated about an entity from the other side (the partner of a
marriage, a person's works, a country's cities, the capital a city is) are restated in that
entity's passages too.

Held-out facts. A tail fact that dev or test questions use (its *owner* split, see `splits`) is
stated only in passages of its own level: each passage has a *level* (train, dev or test) and
states no tail fact owned by a split ranked above its level. So the passages train questions
read (level train) never state a dev or test fact, and dev passages never state a test fact: an
entity's dev or test facts sit in further passages of the entity ("part 2"), never beside a
train-owned fact. This is checked on whole passages with `leakage.MentionIndex` (a passage
states a fact when it mentions both ends), so facts that merely co-occur are kept apart too:
sentences are packed first fit into the entity's passages of their level, starting a new passage
when adding one would make a passage state a fact above its level. A sentence's level is the
highest level of the facts it states.

Held-out passages read like any other (they end with a few descriptive sentences), and an
entity a dev or test fact links keeps a lead as long as the others; restatements that would name
such an entity in other entities' passages (a person's work whose publisher is held out) are
left out. Both keep search results for train questions from bringing held-out text up.

A fact's *primary* passage is the first passage of its subject that states it; the other
passages that state it on purpose follow it in `fact_passages`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

from coa_jax.data.world import templates as T
from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.schema import SPLITS, Entity, Fact, Passage, World

PASSAGE_MAX_WORDS = 60  # a sentence joins a passage while the passage stays within this length
LIST_SIZE = 4  # cities per "other cities" passage
LEVELS = SPLITS  # passage levels, lowest first: what a train / dev / test question may read


def be(world: World, entity: Entity) -> str:
    """The tense of a person's sentences: "was" for people born before 1935, else "is"."""
    born = world.lookup(entity.id, "birth_year")
    return "was" if born is not None and int(born.value) < 1935 else "is"


def words_for(world: World, entity: Entity) -> dict[str, str]:
    """Template words that depend on the subject (work words, org kind, tense)."""
    if entity.kind == "work":
        return dict(T.WORK_WORDS[entity.subkind])
    if entity.kind == "org":
        return {"orgword": T.ORG_WORDS[entity.subkind]}
    if entity.kind == "person":
        return {"be": be(world, entity)}
    return {}


@dataclasses.dataclass(frozen=True)
class Corpus:
    passages: tuple[Passage, ...]
    fact_passages: Mapping[str, tuple[str, ...]]  # fact id -> passage ids, primary first
    entity_passages: Mapping[str, tuple[str, ...]]  # entity id -> passage ids, lead first
    passage_level: Mapping[str, str] = dataclasses.field(default_factory=dict)  # passage id -> split


_Flavour = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # (sentences, xs, ys)


@dataclasses.dataclass(frozen=True)
class _Sentence:
    """A sentence stating `facts`: `first` opens a passage (names the subject), `rest` follows."""

    first: str
    rest: str
    facts: tuple[Fact, ...]


@dataclasses.dataclass
class _Draft:
    """A passage being filled: fixed opening sentences, packed sentences, closing flavour."""

    level: int
    head: list[str]
    body: list[_Sentence]
    tail: list[str]
    head_facts: tuple[Fact, ...] = ()

    def sentences(self, extra: _Sentence | None = None) -> list[str]:
        body = self.body + ([extra] if extra is not None else [])
        out = list(self.head)
        for s in body:
            out.append(s.rest if out else s.first)
        return out + self.tail


class _Writer:
    def __init__(self, world: World, rng: random.Random, owner: Mapping[str, str]):
        self.world, self.rng = world, rng
        self.index = MentionIndex(world)
        rank = {s: i for i, s in enumerate(LEVELS)}
        self.level = {f.id: rank[owner[f.id]] for f in world.facts if f.tier == "tail" and f.id in owner}
        self.held_out = {e for f in world.facts if self.level.get(f.id, 0) for e in (f.subject, f.object) if e}
        self.passages: list[Passage] = []
        self.passage_level: dict[str, str] = {}
        self.primary: dict[str, str] = {}  # fact id -> its subject's first passage stating it
        self.restating: dict[str, list[str]] = {}  # fact id -> other passages stating it
        self.entity_passages: dict[str, list[str]] = {}

    def say(self, options: tuple[str, ...], **kw: str) -> str:
        return T.render(self.rng.choice(options), **kw)

    def flavour(self, sentences: tuple[str, ...], xs: tuple[str, ...], ys: tuple[str, ...], **kw: str) -> list[str]:
        return [T.render(s, x=self.rng.choice(xs), y=self.rng.choice(ys), **kw) for s in sentences]

    def descriptions(self, entity: Entity, base: _Flavour, more: _Flavour, more2: _Flavour,
                     **kw: str) -> tuple[list[str], Callable[[], list[str]]]:  # fmt: skip
        """(the lead's descriptive sentences, a maker of those that end the entity's passages above
        the train level: four, none restating the lead's). An entity a dev or test fact links gets
        two more in its lead: its held-out facts left the lead, which must not end up shorter than
        the others (short passages come up for any search sharing a word with them)."""
        lead = self.flavour(*base, **kw) + (self.flavour(*more, **kw) if entity.id in self.held_out else [])
        return lead, lambda: self.flavour(*more, **kw) + self.flavour(*more2, **kw)

    def sentence(self, options: tuple[str, ...], facts: list[Fact], first_s: str = "It", rest_s: str = "It",
                 **kw: str) -> _Sentence:  # fmt: skip
        """One sentence in two forms (opening a passage / following); one template for both."""
        template = self.rng.choice(options)
        return _Sentence(T.render(template, s=first_s, **kw), T.render(template, s=rest_s, **kw), tuple(facts))

    # ---- levels ----
    def above(self, entity: Entity, sentences: list[str]) -> int:
        """The highest level of the tail facts a passage of `entity` with these sentences states."""
        stated = self.index.stated_facts(f'"{entity.name}"\n' + " ".join(sentences))
        return max((self.level.get(f, 0) for f in stated), default=0)

    def level_of(self, entity: Entity, s: _Sentence) -> int:
        """The level of the passages a sentence of `entity` goes to: the highest level of the facts
        it states."""
        return max([self.above(entity, [s.first]), *(self.level.get(f.id, 0) for f in s.facts)])

    def restates(self, entity: Entity, s: _Sentence) -> bool:
        """Whether a sentence restating a fact about another entity (a person's works, a country's
        cities, the country a city is the capital of) is said: only at the train level, and only
        about entities no dev or test fact links (what text names them, co-occurring with other
        text, could give their held-out facts away)."""
        return self.level_of(entity, s) == 0 and not any(f.subject in self.held_out for f in s.facts)

    # ---- packing ----
    def pack(self, entity: Entity, lead: _Draft, sentences: list[_Sentence], opener: list[str],
             flavour: Callable[[], list[str]]) -> None:  # fmt: skip
        """Places `sentences` first fit into `lead` and further passages of their level; new
        passages start with `opener` (the kind sentence; [] when the first sentence names the
        subject), and those above the train level end with `flavour()`, so that they read like
        any passage about the entity; emits the lead, then the others by level."""
        drafts = [lead]
        for s in sentences:
            level = self.level_of(entity, s)
            for d in drafts:
                if d.level != level:
                    continue
                text = d.sentences(s)
                if len(" ".join(text).split()) <= PASSAGE_MAX_WORDS and self.above(entity, text) <= level:
                    d.body.append(s)
                    break
            else:
                drafts.append(_Draft(level, list(opener), [s], flavour() if level else []))
        for d in (lead, *sorted(drafts[1:], key=lambda d: d.level)):
            self.emit(entity, d)

    def emit(self, entity: Entity, draft: _Draft) -> None:
        sentences = draft.sentences()
        if self.above(entity, sentences) > draft.level:
            raise RuntimeError(f"a passage of {entity.name} states a fact above its level: {sentences}")
        passage_id = str(len(self.passages))
        self.passages.append(Passage(passage_id, entity.name, " ".join(sentences), entity.id))
        self.passage_level[passage_id] = LEVELS[draft.level]
        self.entity_passages.setdefault(entity.id, []).append(passage_id)
        for fact in (*draft.head_facts, *(f for s in draft.body for f in s.facts)):
            if fact.subject == entity.id and fact.id not in self.primary:
                self.primary[fact.id] = passage_id
            else:
                self.restating.setdefault(fact.id, []).append(passage_id)

    def fact_passages(self) -> dict[str, tuple[str, ...]]:
        return {f: (p, *self.restating.get(f, ())) for f, p in self.primary.items()}

    def joint(self, entity: Entity, options: tuple[str, ...], facts: list[Fact], **kw: str) -> str | None:
        """A sentence stating several facts at once, if they all sit at the lead's level."""
        text = self.say(options, **kw)
        if any(self.level_of(entity, _Sentence(text, text, (f,))) for f in facts):
            return None
        return text


def render_corpus(world: World, rng: random.Random, owner: Mapping[str, str] | None = None) -> Corpus:
    """All passages, in entity order; passage ids are "0", "1", ... (FlashRAG style).

    Args:
      world: the entities and facts.
      rng: the corpus stage's random stream.
      owner: tail fact id -> the split whose questions own it (`splits.SplitResult.owner`); tail
        facts it does not list are open to every split.
    """
    w = _Writer(world, rng, owner or {})
    restated: dict[str, list[Fact]] = {}  # entity id -> facts stated about others in its passages
    for f in world.facts:
        if f.relation in ("spouse", "creator", "founded_by", "country"):
            restated.setdefault(f.object, []).append(f)
    for entity in world.entities:
        render = {"country": _country, "city": _city, "person": _person, "org": _org, "work": _work}[entity.kind]
        render(w, entity, restated.get(entity.id, []))
    return Corpus(
        passages=tuple(w.passages),
        fact_passages=w.fact_passages(),
        entity_passages={k: tuple(v) for k, v in w.entity_passages.items()},
        passage_level=dict(w.passage_level),
    )


def _country(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    capital = w.world.lookup(e.id, "capital")
    head = [w.say(T.PASSAGE["country_intro"], s=e.name, alias=e.aliases[0])]
    sentences = [w.sentence(T.PASSAGE["capital"], [capital], o=capital.value)]
    tail, flavour = w.descriptions(e, (T.COUNTRY_FLAVOUR, T.COUNTRY_X, T.COUNTRY_Y),
                                   (T.PLACE_MORE, T.PLACE_MORE_X, T.PLACE_MORE_Y),
                                   (T.PLACE_MORE2, T.PLACE_MORE2_X, T.PLACE_MORE2_Y), ref=e.name)  # fmt: skip
    w.pack(e, _Draft(0, head, [], tail), sentences, [w.say(T.PASSAGE["country_kind"], s=e.name)], flavour)
    others = [f for f in restated if f.subject != capital.object and w.restates(e, _city_item(w, e, f))]
    while others:  # "other cities" lists
        chunk = others[:LIST_SIZE]
        while len(chunk) > 1 and w.above(e, [_list_sentence(w, e, chunk)]):
            chunk = chunk[:-1]
        others = others[len(chunk) :]
        w.emit(e, _Draft(0, [], [_Sentence(_list_sentence(w, e, chunk), "", tuple(chunk))], []))


def _city_item(w: _Writer, e: Entity, f: Fact) -> _Sentence:
    text = T.render(T.PASSAGE["cities"][0], s=e.name, o=w.world.by_id[f.subject].name)
    return _Sentence(text, text, (f,))


def _list_sentence(w: _Writer, e: Entity, group: list[Fact]) -> str:
    listed = [w.world.by_id[f.subject].name for f in group]
    joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    return T.render(T.PASSAGE["cities"][0], s=e.name, o=joined)


def _city(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    country = w.world.lookup(e.id, "country")
    population = w.world.lookup(e.id, "population")
    form = w.rng.randrange(len(T.PASSAGE["city_kind"]))  # "a city" or "a town", the same in all its passages
    intro = w.joint(e, T.PASSAGE["city_intro"][form : form + 1], [country], s=e.name, o=country.value)
    kind = T.render(T.PASSAGE["city_kind"][form], s=e.name)
    sentences = [] if intro else [w.sentence(T.PASSAGE["city_country"], [country], o=country.value)]
    sentences.append(w.sentence(T.PASSAGE["population"], [population], o=population.value))
    for f in w.world.facts:
        if f.relation == "capital" and f.object == e.id:
            said = w.sentence(T.PASSAGE["capital_of"], [f], o=w.world.by_id[f.subject].name)
            if w.restates(e, said):
                sentences.append(said)
    tail, flavour = w.descriptions(e, (T.CITY_FLAVOUR, T.CITY_X, T.CITY_Y),
                                   (T.PLACE_MORE, T.PLACE_MORE_X, T.PLACE_MORE_Y),
                                   (T.PLACE_MORE2, T.PLACE_MORE2_X, T.PLACE_MORE2_Y), ref=e.name)  # fmt: skip
    w.pack(e, _Draft(0, [intro or kind], [], tail, (country,) if intro else ()), sentences, [kind],
           flavour)  # fmt: skip


def _person(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    tense = be(w.world, e)
    ref = e.name.split()[-1]
    named = T.render(T.PASSAGE["alias"][0], s=e.name, alias=e.aliases[0]) if e.aliases else e.name

    def say(key: str, facts: list[Fact], **kw: str) -> _Sentence:
        return w.sentence(T.PASSAGE[key], facts, first_s=e.name, rest_s=ref, be=tense, **kw)

    job = w.world.lookup(e.id, "occupation")
    year, city = w.world.lookup(e.id, "birth_year"), w.world.lookup(e.id, "born_in")
    sentences = [say("occupation", [job], o=job.value)]
    if w.level.get(year.id, 0) == w.level.get(city.id, 0):
        sentences.append(say("birth", [year, city], city=city.value, year=year.value))
    else:
        sentences += [say("born_in", [city], o=city.value), say("birth_year", [year], o=year.value)]
    school = w.world.lookup(e.id, "educated_at")
    if school is not None:
        sentences.append(say("educated_at", [school], o=school.value))
    marriage = w.world.lookup(e.id, "spouse")
    if marriage is not None:
        partner = w.world.by_id[w.world.target(marriage, e.id)]
        sentences.append(say("spouse", [marriage], o=partner.name))
    tail, flavour = w.descriptions(e, (T.PERSON_FLAVOUR, T.PERSON_X, T.PERSON_Y),
                                   (T.PERSON_MORE, T.PERSON_MORE_X, T.PERSON_MORE_Y),
                                   (T.PERSON_MORE2, T.PERSON_MORE2_X, T.PERSON_MORE2_Y), ref=ref, be=tense)  # fmt: skip
    for f in restated:
        thing = w.world.by_id[f.subject]
        if f.relation == "creator":
            said = say("works", [f], o=thing.name, **T.WORK_WORDS[thing.subkind])
        elif f.relation == "founded_by":
            said = say("founded", [f], o=thing.name)
        else:
            continue
        if w.restates(e, said):
            sentences.append(said)
    # the lead opens with its first sentence of the lead's level, the name (with alias) given in full
    opening = next((s for s in sentences if w.level_of(e, s) == 0), None)
    if opening is None:
        opening = _Sentence(*(2 * [T.render(T.PASSAGE["person_kind"][0], s=e.name, be=tense)]), ())
    else:
        sentences.remove(opening)
    first = opening.first.replace(e.name, named, 1)
    w.pack(e, _Draft(0, [first], [], tail, opening.facts), sentences, [], flavour)


def _org(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    founder, year = w.world.lookup(e.id, "founded_by"), w.world.lookup(e.id, "founded_year")
    home = w.world.lookup(e.id, "headquarters")
    orgword = T.ORG_WORDS[e.subkind]
    intro = w.joint(e, T.PASSAGE["org_intro"], [founder, year], s=e.name, orgword=orgword, year=year.value,
                    founder=founder.value)  # fmt: skip
    kind = w.say(T.PASSAGE["org_kind"], s=e.name, orgword=orgword)
    sentences = [] if intro else [w.sentence(T.PASSAGE["founder"], [founder], o=founder.value),
                                  w.sentence(T.PASSAGE["founding_year"], [year], o=year.value)]  # fmt: skip
    sentences.append(w.sentence(T.PASSAGE["headquarters"], [home], o=home.value))
    tail, flavour = w.descriptions(e, (T.ORG_FLAVOUR, T.ORG_X, T.ORG_Y), (T.ORG_MORE, T.ORG_MORE_X, T.ORG_MORE_Y),
                                   (T.ORG_MORE2, T.ORG_MORE2_X, T.ORG_MORE2_Y))  # fmt: skip
    w.pack(e, _Draft(0, [intro or kind], [], tail, (founder, year) if intro else ()), sentences, [kind],
           flavour)  # fmt: skip


def _work(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    kw = T.WORK_WORDS[e.subkind]
    creator, year = w.world.lookup(e.id, "creator"), w.world.lookup(e.id, "year")
    house = w.world.lookup(e.id, "publisher")
    intro = w.joint(e, T.PASSAGE["work_intro"], [creator, year], s=e.name, year=year.value,
                    creator=creator.value, **kw)  # fmt: skip
    kind = w.say(T.PASSAGE["work_kind"], s=e.name, **kw)
    sentences = [] if intro else [w.sentence(T.PASSAGE["work_creator"], [creator], o=creator.value, **kw),
                                  w.sentence(T.PASSAGE["work_year"], [year], o=year.value, **kw)]  # fmt: skip
    sentences.append(w.sentence(T.PASSAGE["publisher"], [house], o=house.value, **kw))
    tail, flavour = w.descriptions(e, (T.WORK_FLAVOUR, T.WORK_X, T.WORK_Y),
                                   (T.WORK_MORE, T.WORK_MORE_X, T.WORK_MORE_Y),
                                   (T.WORK_MORE2, T.WORK_MORE2_X, T.WORK_MORE2_Y), **kw)  # fmt: skip
    w.pack(e, _Draft(0, [intro or kind], [], tail, (creator, year) if intro else ()), sentences, [kind],
           flavour)  # fmt: skip


def pretrain_lines(world: World, rng: random.Random) -> list[str]:
    """Every variant statement of every popular fact (plus country alias lines), shuffled."""
    lines = []
    for f in world.facts:
        if f.tier != "popular":
            continue
        subject = world.by_id[f.subject]
        kw = words_for(world, subject)
        for template in T.PRETRAIN[f.relation]:
            lines.append(T.render(template, s=subject.name, o=f.value, **kw))
    for e in world.of_kind("country"):
        lines.append(f"{e.name} is officially the {e.aliases[0]}.")
    rng.shuffle(lines)
    return lines
