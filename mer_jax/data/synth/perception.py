"""Simulated annotator panels: what listeners perceive in a synthetic song.

Cues (each scaled to about [-1, 1]) are computed from the song's parameters and its realized
loudness. A song's latent valence and arousal are weighted sums of the cues (weights below, after
the music-psychology literature: Gabrielsson & Lindström 2010; Juslin & Laukka 2004; Eerola et al.
2013; timbre: Hailstone et al. 2009), plus a mode x tempo interaction.

Annotator j of a pool has its own bias b_j, sensitivity s_j, cue weighting (each weight scaled
by exp(N(0, 0.35^2))) and noise sd e_j. Its rating on the 9-point scale is

    round(clip(5 + 3.8 tanh(s_j * latent_j / 1.8 + b_j) + N(0, e_j^2), 1, 9)),

normalized to 0-1 as (rating - 1) / 8. A song's label is its panel's mean and sample std (ddof=1)
for valence and arousal - the form of PMEmo's labels. Because annotators weigh cues differently,
songs whose cues conflict (fast but minor, bright lead over a dark mix) get a larger spread.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.synth.params import SongParams

CUES = ("tempo", "loudness", "density", "mode", "consonance", "register", "vocal_brightness",
        "other_brightness", "drum_level")

# Weights on the standardized cues. The lead's timbre (vocal_brightness) raises arousal and lowers
# valence, while the accompaniment's brightness (other_brightness) raises valence: an instrument-
# specific effect that the mix's overall brightness confounds and separated stems can untangle.
VALENCE_WEIGHTS = {"mode": 0.9, "consonance": 0.6, "tempo": 0.35, "register": 0.35,
                   "vocal_brightness": -0.45, "other_brightness": 0.4}
AROUSAL_WEIGHTS = {"tempo": 0.85, "loudness": 0.6, "density": 0.5, "vocal_brightness": 0.6,
                   "drum_level": 0.3, "other_brightness": 0.1}
MODE_TEMPO_INTERACTION = 0.25   # major+fast happier, minor+slow sadder (on valence)
TANH_SCALE = 1.8
RATING_SPREAD = 3.8             # half-range of the mean rating around the scale's centre 5


def cue_vector(params: SongParams, loudness_db: float) -> np.ndarray:
    """Standardized cues ``(len(CUES),)`` in CUES order."""
    values = {
        "tempo": (params.tempo_bpm - 120.0) / 60.0,
        "loudness": (loudness_db + 22.0) / 8.0,
        "density": 2 * params.density - 1,
        "mode": 1.0 if params.major else -1.0,
        "consonance": 2 * params.consonance - 1,
        "register": (params.register - 65.5) / 10.5,
        "vocal_brightness": 2 * params.vocal_brightness - 1,
        "other_brightness": 2 * params.other_brightness - 1,
        "drum_level": params.stem_gain_db[2] / 4.0,
    }
    return np.array([values[c] for c in CUES])


def weight_matrix() -> np.ndarray:
    """``(2, len(CUES))``: row 0 valence, row 1 arousal."""
    return np.array([[VALENCE_WEIGHTS.get(c, 0.0) for c in CUES],
                     [AROUSAL_WEIGHTS.get(c, 0.0) for c in CUES]])


def latent_emotion(cues: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Latent (valence, arousal) ``(2,)`` of a cue vector; ``weights`` (2, cues) or default."""
    weights = weight_matrix() if weights is None else weights
    latent = weights @ cues
    latent[0] += MODE_TEMPO_INTERACTION * cues[CUES.index("mode")] * cues[CUES.index("tempo")]
    return latent


@dataclasses.dataclass(frozen=True)
class AnnotatorPool:
    """``size`` annotators: bias (size, 2), sensitivity (size, 2), weight_scale (size, 2, cues),
    noise_sd (size,) on the 9-point scale."""

    bias: np.ndarray
    sensitivity: np.ndarray
    weight_scale: np.ndarray
    noise_sd: np.ndarray

    @property
    def size(self) -> int:
        return self.noise_sd.size


def annotator_pool(rng: np.random.Generator, size: int) -> AnnotatorPool:
    return AnnotatorPool(
        bias=rng.normal(0.0, 0.15, (size, 2)),
        sensitivity=rng.lognormal(0.0, 0.25, (size, 2)),
        weight_scale=rng.lognormal(0.0, 0.35, (size, 2, len(CUES))),
        noise_sd=rng.uniform(0.5, 1.2, size),
    )


def rate(pool: AnnotatorPool, members: np.ndarray, cues: np.ndarray,
         rng: np.random.Generator) -> np.ndarray:
    """Integer ratings 1-9 ``(len(members), 2)`` (valence, arousal) of one song."""
    base = weight_matrix()
    ratings = np.empty((members.size, 2))
    for row, j in enumerate(members):
        latent = latent_emotion(cues, base * pool.weight_scale[j])
        mean = 5 + RATING_SPREAD * np.tanh(pool.sensitivity[j] * latent / TANH_SCALE + pool.bias[j])
        ratings[row] = mean + rng.normal(0.0, pool.noise_sd[j], 2)
    return np.clip(np.round(ratings), 1, 9)


def panel_labels(pool: AnnotatorPool, cues: np.ndarray, rng: np.random.Generator,
                 panel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) ``(2,)`` each on 0-1 for (valence, arousal) from a random panel of the pool.

    A panel whose ratings all agree on a dimension (std 0) is joined by further annotators of the
    pool until it disagrees, so every std is > 0 as in real crowd-sourced labels.
    """
    order = rng.permutation(pool.size)
    ratings = rate(pool, order[:panel_size], cues, rng)
    used = panel_size
    while np.any(ratings.std(axis=0) == 0):
        if used >= pool.size:
            raise RuntimeError("the annotator pool agrees unanimously; enlarge the pool")
        ratings = np.vstack([ratings, rate(pool, order[used:used + 1], cues, rng)])
        used += 1
    unit = (ratings - 1) / 8
    return unit.mean(axis=0), unit.std(axis=0, ddof=1)
