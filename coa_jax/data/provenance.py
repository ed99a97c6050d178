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


def mask_through_last_observation(labels: np.ndarray) -> np.ndarray:
    """Labels with every token up to and including the last observation relabelled PROMPT.

    A base model's reading rows carry a controller-written prefix (calls and their results)
    before the text the model is trained to write; relabelling the prefix keeps the calls out of
    the loss, so the model learns to read results without learning to call tools.
    """
    is_obs = np.isin(labels, [int(p) for p in OBSERVATIONS])
    if not is_obs.any():
        return labels
    last = int(np.nonzero(is_obs)[0][-1])
    out = labels.copy()
    out[: last + 1] = np.where(labels[: last + 1] == int(Provenance.PAD), labels[: last + 1], int(Provenance.PROMPT))
    return out
