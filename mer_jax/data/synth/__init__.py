"""The embedded default dataset: synthetic multi-stem songs rated by simulated annotator panels.

PMEmo cannot be redistributed, so mer-jax generates its default dataset, deterministically from
a seed, with NumPy/SciPy alone. It exercises the whole pipeline - separation included, since the
true stems are written beside the mix - and it has a known answer.

Generative model
----------------
1. Parameters (``params.SongParams``), drawn independently and uniformly per song: tempo 60-180
   BPM, mode (major/minor, p = 1/2), key, loudness (mix RMS -30 .. -14 dBFS), rhythmic density,
   consonance, the lead's register (MIDI 55-76), the brightness of the lead voice, the chords, the
   bass and the hi-hats, vibrato rate/depth, and the balance of the four stems (+-4 dB).
2. Four stems (``instruments``): drums (kick on 1 and 3 with syncopated extras, snare on 2 and
   4, 1-4 hi-hats per beat), bass (chord roots, plucked sine + saw, low-passed), vocals (a
   voice-like lead: glottal-like source blended with a buzzy saw, vibrato, onset scoops, breath,
   vowel formant resonators, a phrase-wise melody on the scale), other (detuned-saw chord pads on
   I-V-vi-IV or i-VI-iv-v, dissonant tones and detuning as consonance falls). The mix is the
   sum of the stems (16-bit, exact), never clipped.
3. Perception (``perception``): standardized cues -> latent valence/arousal by weights taken
   from the music-emotion literature (valence: mode, consonance, tempo, register, lead timbre,
   accompaniment brightness, and a mode x tempo interaction; arousal: tempo, loudness, density,
   lead timbre, drum level). Part of the signal is instrument-specific: a bright, buzzy lead
   raises arousal and lowers valence (timbre shapes perceived emotion, Hailstone et al. 2009)
   while bright chords raise valence, so the brightness of the mix confounds two opposite
   effects that the separated stems can tell apart.
4. Annotators: a pool of 40 simulated listeners, each with a bias, a sensitivity, a personal
   weighting of the cues and rating noise, rate each song on a 9-point scale; a panel of 10
   per song. The label is the panel's mean and std on 0-1 - the form of PMEmo's labels. Songs
   with conflicting cues get more disagreement.

Usage: ``python -m mer_jax.data.synth --out DIR --n N --seconds S --seed K``.
"""
from mer_jax.data.synth.generate import SynthConfig, SynthSong, render_song, write_dataset
from mer_jax.data.synth.params import STEMS, SongParams, sample_song_params

__all__ = ["SynthConfig", "SynthSong", "render_song", "write_dataset", "STEMS", "SongParams",
           "sample_song_params"]
