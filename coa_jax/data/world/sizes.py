"""World sizes: how many entities, questions and tokenizer entries each preset builds."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class WorldSize:
    """Counts for one preset.

    Question quotas are per dataset and split; `train_per_dataset` and `dev_per_dataset` do not
    apply to bamboogle, which (like the real benchmark) is a test set only.
    """

    name: str
    countries: int
    cities: int
    persons: int
    orgs_per_kind: int
    works_per_kind: int
    test_per_dataset: int
    bamboogle_test: int
    dev_per_dataset: int
    train_per_dataset: int
    vocab_size: int

    def quota(self, dataset: str, split: str) -> int:
        if dataset == "bamboogle":
            return self.bamboogle_test if split == "test" else 0
        return {"test": self.test_per_dataset, "dev": self.dev_per_dataset, "train": self.train_per_dataset}[split]


SIZES = {
    "tiny": WorldSize("tiny", countries=3, cities=8, persons=30, orgs_per_kind=2, works_per_kind=5,
                      test_per_dataset=8, bamboogle_test=6, dev_per_dataset=4, train_per_dataset=24,
                      vocab_size=1024),
    "small": WorldSize("small", countries=5, cities=20, persons=90, orgs_per_kind=6, works_per_kind=20,
                       test_per_dataset=60, bamboogle_test=30, dev_per_dataset=25, train_per_dataset=400,
                       vocab_size=2048),
    "medium": WorldSize("medium", countries=8, cities=40, persons=260, orgs_per_kind=16, works_per_kind=60,
                        test_per_dataset=200, bamboogle_test=80, dev_per_dataset=100, train_per_dataset=1500,
                        vocab_size=4096),
}  # fmt: skip
