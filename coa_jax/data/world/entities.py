"""Samples the world's entities and facts from one `random.Random`.

Everything is drawn in a fixed order from one generator, so a seed fixes the world. Knowledge
tiers are per fact: geography (city -> country, country -> capital) is always popular, like the
common knowledge of a real base model; other facts are popular with high probability when their
subject is famous and low probability otherwise, which gives ~30-40% popular facts overall and
lets some multi-hop chains run through popular facts only.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from coa_jax.data.world import names, templates
from coa_jax.data.world.schema import ORG_KINDS, PUBLISHER_OF, WORK_KINDS, Entity, Fact, World
from coa_jax.data.world.sizes import WorldSize

POPULAR_IF_FAMOUS = 0.8
POPULAR_OTHERWISE = 0.12
ALWAYS_POPULAR = frozenset({"country", "capital"})
NEAR_DUPLICATE = 0.1  # share of names made by changing one letter of an earlier name
SHARED_SURNAME = 0.3  # share of persons (and org name stems) reusing an earlier surname (stem)


class _Builder:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.registry = names.NameRegistry(templates.reserved_words())
        self.entities: list[Entity] = []
        self.facts: list[Fact] = []
        # names drawn fresh (not near-duplicates), so variants are never variants of variants
        self.originals: dict[str, list[str]] = {"city": [], "person": [], "org": []}

    def add_entity(self, kind: str, make: Callable[[], tuple[str, tuple[str, ...]]], subkind: str = "",
                   famous: bool = False) -> Entity:  # fmt: skip
        entity_id = f"{kind}-{sum(e.kind == kind for e in self.entities) + 1:04d}"
        for _ in range(1000):
            name, aliases = make()
            parts = names.words(name) + tuple(w for a in aliases for w in names.words(a))
            if any(self.registry.reserved(w) for w in parts if w not in _NAME_FORMING):
                continue
            if self.registry.try_add(entity_id, (name, *aliases)):
                entity = Entity(entity_id, kind, name, aliases, subkind, famous)
                self.entities.append(entity)
                if kind in self.originals and not self._is_variant(kind, name):
                    self.originals[kind].append(name)
                return entity
        raise RuntimeError(f"could not find a free name for a {kind}")

    def _is_variant(self, kind: str, name: str) -> bool:
        def shape(text: str) -> str:
            return "".join("V" if ch in "aeiou" else ch for ch in text.lower())

        return any(shape(name) == shape(other) for other in self.originals[kind])

    def add_fact(self, subject: Entity, relation: str, value: str, obj: Entity | None = None,
                 famous: bool | None = None) -> None:  # fmt: skip
        famous = subject.famous if famous is None else famous
        if relation in ALWAYS_POPULAR:
            tier = "popular"
        else:
            tier = "popular" if self.rng.random() < (POPULAR_IF_FAMOUS if famous else POPULAR_OTHERWISE) else "tail"
        fact_id = f"fact-{len(self.facts) + 1:05d}"
        self.facts.append(Fact(fact_id, subject.id, relation, value, obj.id if obj else "", tier))


# words that form names on purpose although the templates use them too
_NAME_FORMING = frozenset(
    names.words(" ".join(w for ws in templates.ORG_SUFFIXES.values() for w in ws))
    + names.words(" ".join(templates.COUNTRY_FORMS + templates.TITLE_ADJECTIVES + templates.TITLE_NOUNS))
    + ("the", "of")
)


def sample_world(rng: random.Random, size: WorldSize) -> World:
    """Draws entities, then facts, in a fixed order; see the module docstring for tiers."""
    b = _Builder(rng)
    countries = [_country(b) for _ in range(size.countries)]
    cities = [_city(b, i < size.countries) for i in range(size.cities)]
    city_country = {c.id: countries[i % len(countries)] if i < 2 * len(countries) else rng.choice(countries)
                    for i, c in enumerate(cities)}  # fmt: skip
    persons = [_person(b) for _ in range(size.persons)]
    orgs = {kind: [_org(b, kind) for _ in range(size.orgs_per_kind)] for kind in ORG_KINDS}
    occupation = _occupations(rng, persons, size.works_per_kind)
    birth = {p.id: rng.randint(1850, 1985) for p in persons}
    city_weights = [3 if c.famous and i < size.countries else 1 for i, c in enumerate(cities)]

    for i, country in enumerate(countries):
        b.add_fact(country, "capital", cities[i].name, cities[i])
    for city in cities:
        b.add_fact(city, "country", city_country[city.id].name, city_country[city.id])
        b.add_fact(city, "population", f"{rng.randrange(8, 900) * 1000:,}")

    spouses = _pair_spouses(rng, persons)
    for p in persons:
        b.add_fact(p, "occupation", occupation[p.id])
        b.add_fact(p, "birth_year", str(birth[p.id]))
        home = rng.choices(cities, city_weights)[0]
        b.add_fact(p, "born_in", home.name, home)
        if rng.random() < 0.7:
            school = rng.choice(orgs["university"])
            b.add_fact(p, "educated_at", school.name, school)
        if p.id in spouses:
            partner = spouses[p.id]
            b.add_fact(p, "spouse", partner.name, partner, famous=p.famous or partner.famous)

    founded: dict[str, int] = {}
    for kind in ORG_KINDS:
        for org in orgs[kind]:
            founder = rng.choice([p for p in persons if birth[p.id] <= 1960])
            founded[org.id] = min(birth[founder.id] + rng.randint(25, 55), 2020)
            b.add_fact(org, "founded_by", founder.name, founder)
            b.add_fact(org, "founded_year", str(founded[org.id]))
            home = rng.choice(cities)
            b.add_fact(org, "headquarters", home.name, home)

    for kind in WORK_KINDS:
        creators = [p for p in persons if occupation[p.id] == templates.CREATIVE_OCCUPATION[kind]]
        for j in range(size.works_per_kind):
            creator = creators[j] if j < len(creators) else rng.choice(creators)
            work = _work(b, kind, famous_creator=creator.famous)
            year = min(birth[creator.id] + rng.randint(22, 55), 2023)
            b.add_fact(work, "creator", creator.name, creator)
            b.add_fact(work, "year", str(year))
            candidates = [o for o in orgs[PUBLISHER_OF[kind]] if founded[o.id] <= year]
            house = rng.choice(candidates) if candidates else min(orgs[PUBLISHER_OF[kind]], key=lambda o: founded[o.id])
            b.add_fact(work, "publisher", house.name, house)
    return World(entities=tuple(b.entities), facts=tuple(b.facts))


def _country(b: _Builder) -> Entity:
    def make() -> tuple[str, tuple[str, ...]]:
        name = names.country_name(b.rng)
        return name, (f"{b.rng.choice(templates.COUNTRY_FORMS)} of {name}",)

    return b.add_entity("country", make, famous=True)


def _city(b: _Builder, capital: bool) -> Entity:
    def make() -> tuple[str, tuple[str, ...]]:
        if b.originals["city"] and b.rng.random() < NEAR_DUPLICATE:
            return names.one_letter_variant(b.rng, b.rng.choice(b.originals["city"])), ()
        return names.city_name(b.rng), ()

    return b.add_entity("city", make, famous=capital or b.rng.random() < 0.3)


def _person(b: _Builder) -> Entity:
    existing = b.originals["person"]

    def make() -> tuple[str, tuple[str, ...]]:
        roll = b.rng.random()
        if existing and roll < NEAR_DUPLICATE:
            name = names.one_letter_variant(b.rng, b.rng.choice(existing))
        elif existing and roll < NEAR_DUPLICATE + SHARED_SURNAME:
            surnames = sorted({n.split()[-1] for n in existing})
            name = f"{names.first_name(b.rng)} {b.rng.choice(surnames)}"
        else:
            name = f"{names.first_name(b.rng)} {names.surname(b.rng)}"
        if b.rng.random() < 0.2:
            first, last = name.split()
            return name, (f"{first} {names.first_name(b.rng)} {last}",)
        return name, ()

    return b.add_entity("person", make, famous=b.rng.random() < 0.25)


def _org(b: _Builder, kind: str) -> Entity:
    stems = [name.split()[0] for name in b.originals["org"]]

    def make() -> tuple[str, tuple[str, ...]]:
        roll = b.rng.random()
        if stems and roll < SHARED_SURNAME:
            stem = b.rng.choice(stems)
        elif stems and roll < SHARED_SURNAME + NEAR_DUPLICATE:
            stem = names.one_letter_variant(b.rng, b.rng.choice(stems))
        else:
            stem = names.plain_word(b.rng)
        return f"{stem} {b.rng.choice(templates.ORG_SUFFIXES[kind])}", ()

    return b.add_entity("org", make, subkind=kind, famous=b.rng.random() < 0.3)


def _work(b: _Builder, kind: str, famous_creator: bool) -> Entity:
    def make() -> tuple[str, tuple[str, ...]]:
        adj, noun = b.rng.choice(templates.TITLE_ADJECTIVES), b.rng.choice(templates.TITLE_NOUNS)
        if b.rng.random() < 0.15:
            noun = _plural(noun)
        roll = b.rng.random()
        if roll < 0.5:
            return f"The {adj} {noun}", (f"{adj} {noun}",)
        if roll < 0.75:
            return f"{adj} {noun}", ()
        other = b.rng.choice([n for n in templates.TITLE_NOUNS if not noun.startswith(n)])
        return f"The {noun} of {_plural(other)}", ()

    return b.add_entity("work", make, subkind=kind, famous=b.rng.random() < (0.5 if famous_creator else 0.15))


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith("s") else "s")


def _occupations(rng: random.Random, persons: list[Entity], works_per_kind: int) -> dict[str, str]:
    order = list(persons)
    rng.shuffle(order)
    per_kind = max(1, round(works_per_kind / 1.6))
    occupation: dict[str, str] = {}
    for k, kind in enumerate(WORK_KINDS):
        for p in order[k * per_kind : (k + 1) * per_kind]:
            occupation[p.id] = templates.CREATIVE_OCCUPATION[kind]
    for p in persons:
        occupation.setdefault(p.id, rng.choice(templates.OTHER_OCCUPATIONS))
    return occupation


def _pair_spouses(rng: random.Random, persons: list[Entity]) -> dict[str, Entity]:
    """Half the persons, paired; maps each to the partner, only from the earlier-listed one."""
    order = list(persons)
    rng.shuffle(order)
    married = order[: len(order) // 2]
    pairs: dict[str, Entity] = {}
    index = {p.id: i for i, p in enumerate(persons)}
    for a, c in zip(married[0::2], married[1::2]):
        first, second = (a, c) if index[a.id] < index[c.id] else (c, a)
        pairs[first.id] = second
    return pairs
