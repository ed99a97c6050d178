"""Renders the world as text: encyclopedia-style passages (the search corpus) and the
pretraining statements (popular facts only).

Passages: one lead passage per entity (its facts as subject, one sentence each, plus one or two
descriptive sentences), and for persons who created works or founded organisations a second
passage listing them. A fact's *primary* passage is its subject's lead passage; other passages
that restate it (the partner's lead for a marriage, a person's works, a country's cities) follow
it in `fact_passages`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

from coa_jax.data.world import templates as T
from coa_jax.data.world.schema import Entity, Fact, Passage, World

LEAD_MAX_WORDS = 60  # a person's works and foundations join the lead passage up to this length


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
    entity_passages: Mapping[str, tuple[str, ...]]  # entity id -> passage ids


class _Writer:
    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng
        self.passages: list[Passage] = []
        self.primary: dict[str, str] = {}  # fact id -> its subject's passage
        self.restating: dict[str, list[str]] = {}  # fact id -> other passages stating it
        self.entity_passages: dict[str, list[str]] = {}

    def say(self, options: tuple[str, ...], **kw: str) -> str:
        return T.render(self.rng.choice(options), **kw)

    def flavour(self, sentences: tuple[str, ...], xs: tuple[str, ...], ys: tuple[str, ...], **kw: str) -> list[str]:
        return [T.render(s, x=self.rng.choice(xs), y=self.rng.choice(ys), **kw) for s in sentences]

    def emit(self, entity: Entity, sentences: list[str], facts: list[Fact]) -> None:
        passage_id = str(len(self.passages))
        self.passages.append(Passage(passage_id, entity.name, " ".join(sentences), entity.id))
        self.entity_passages.setdefault(entity.id, []).append(passage_id)
        for fact in facts:
            if fact.subject == entity.id and fact.id not in self.primary:
                self.primary[fact.id] = passage_id
            else:
                self.restating.setdefault(fact.id, []).append(passage_id)

    def fact_passages(self) -> dict[str, tuple[str, ...]]:
        return {f: (p, *self.restating.get(f, ())) for f, p in self.primary.items()}


def render_corpus(world: World, rng: random.Random) -> Corpus:
    """All passages, in entity order; passage ids are "0", "1", ... (FlashRAG style)."""
    w = _Writer(world, rng)
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
    )


def _country(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    capital = w.world.lookup(e.id, "capital")
    text = [w.say(T.PASSAGE["country_intro"], s=e.name, alias=e.aliases[0]),
            w.say(T.PASSAGE["capital"], o=capital.value)]  # fmt: skip
    text += w.flavour(T.COUNTRY_FLAVOUR, T.COUNTRY_X, T.COUNTRY_Y, ref=e.name)
    w.emit(e, text, [capital])
    others = [f for f in restated if f.subject != capital.object]
    for start in range(0, len(others), 4):
        group = others[start : start + 4]
        listed = [w.world.by_id[f.subject].name for f in group]
        joined = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
        w.emit(e, [w.say(T.PASSAGE["cities"], s=e.name, o=joined)], group)


def _city(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    country = w.world.lookup(e.id, "country")
    population = w.world.lookup(e.id, "population")
    text = [w.say(T.PASSAGE["city_intro"], s=e.name, o=country.value),
            w.say(T.PASSAGE["population"], o=population.value)]  # fmt: skip
    facts = [country, population]
    capital_of = [f for f in w.world.facts if f.relation == "capital" and f.object == e.id]
    for f in capital_of:
        text.append(w.say(T.PASSAGE["capital_of"], o=w.world.by_id[f.subject].name))
    text += w.flavour(T.CITY_FLAVOUR, T.CITY_X, T.CITY_Y, ref=e.name)
    w.emit(e, text, facts + capital_of)


def _person(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    tense = be(w.world, e)
    ref = e.name.split()[-1]
    job = w.world.lookup(e.id, "occupation")
    year, city = w.world.lookup(e.id, "birth_year"), w.world.lookup(e.id, "born_in")
    if e.aliases:
        text = [w.say(T.PASSAGE["occupation_alias"], s=e.name, alias=e.aliases[0], be=tense, o=job.value)]
    else:
        text = [w.say(T.PASSAGE["occupation"], s=e.name, be=tense, o=job.value)]
    text.append(w.say(T.PASSAGE["birth"], s=ref, city=city.value, year=year.value))
    facts = [job, year, city]
    school = w.world.lookup(e.id, "educated_at")
    if school is not None:
        text.append(w.say(T.PASSAGE["educated_at"], s=ref, o=school.value))
        facts.append(school)
    marriage = w.world.lookup(e.id, "spouse")
    if marriage is not None:
        partner = w.world.by_id[w.world.target(marriage, e.id)]
        text.append(w.say(T.PASSAGE["spouse"], s=ref, be=tense, o=partner.name))
        facts.append(marriage)
    text += w.flavour(T.PERSON_FLAVOUR, T.PERSON_X, T.PERSON_Y, ref=ref, be=tense)

    made = [f for f in restated if f.relation in ("creator", "founded_by")]
    more = []
    for f in made:
        thing = w.world.by_id[f.subject]
        if f.relation == "creator":
            more.append(w.say(T.PASSAGE["works"], s=ref, o=thing.name, **T.WORK_WORDS[thing.subkind]))
        else:
            more.append(w.say(T.PASSAGE["founded"], s=ref, o=thing.name))
    if len(" ".join(text + more).split()) <= LEAD_MAX_WORDS:
        w.emit(e, text + more, facts + made)
        return
    w.emit(e, text, facts)
    for start in range(0, len(made), 4):  # the rest in passages of up to four sentences
        chunk = more[start : start + 4]
        chunk[0] = chunk[0].replace(ref, e.name, 1)
        w.emit(e, chunk, made[start : start + 4])


def _org(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    founder, year = w.world.lookup(e.id, "founded_by"), w.world.lookup(e.id, "founded_year")
    home = w.world.lookup(e.id, "headquarters")
    text = [w.say(T.PASSAGE["org_intro"], s=e.name, orgword=T.ORG_WORDS[e.subkind], year=year.value,
                  founder=founder.value),
            w.say(T.PASSAGE["headquarters"], o=home.value)]  # fmt: skip
    text += w.flavour(T.ORG_FLAVOUR, T.ORG_X, T.ORG_Y)
    w.emit(e, text, [founder, year, home])


def _work(w: _Writer, e: Entity, restated: list[Fact]) -> None:
    kw = T.WORK_WORDS[e.subkind]
    creator, year = w.world.lookup(e.id, "creator"), w.world.lookup(e.id, "year")
    house = w.world.lookup(e.id, "publisher")
    text = [w.say(T.PASSAGE["work_intro"], s=e.name, year=year.value, creator=creator.value, **kw),
            w.say(T.PASSAGE["publisher"], o=house.value, **kw)]  # fmt: skip
    text += w.flavour(T.WORK_FLAVOUR, T.WORK_X, T.WORK_Y, **kw)
    w.emit(e, text, [creator, year, house])


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
