"""Per-token provenance labels, shared by the data collators, the rollout and the losses.

Labels are produced by the code that writes the tokens (the collator, the rollout host loop),
so loss masks derived from them cannot drift from where observations really are.
"""

from __future__ import annotations

import enum

import numpy as np


class Provenance(enum.IntEnum):
    PAD = 0
    PROMPT = 1  # system/user turn and chat scaffolding
    POLICY = 2  # reasoning and actions written by the model
    OBSERVATION = 3  # tool output appended by the host (real environment)
    SIM_OBSERVATION = 4  # observation text the policy wrote itself (simulated environment)
    FORCED = 5  # text the host appended to force an answer (not sampled)
    ANSWER = 6  # the final answer after </think>, written by the model


MODEL_WRITTEN = (Provenance.POLICY, Provenance.ANSWER)
OBSERVATIONS = (Provenance.OBSERVATION, Provenance.SIM_OBSERVATION)


def loss_mask(labels: np.ndarray, *, include_observations: bool) -> np.ndarray:
    """1.0 where a token counts in the loss: model-written tokens, plus observations if asked (SFT-3)."""
    keep = MODEL_WRITTEN + (OBSERVATIONS if include_observations else ())
    return np.isin(labels, [int(p) for p in keep]).astype(np.float32)
