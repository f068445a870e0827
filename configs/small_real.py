"""configs/small.py made to learn real songs: the 4Q development set (160 real 30 s clips).

    python benchmarks/real_music.py --config small_real --iterations 5 --seeds 3
    python -m pipelines.train_release            # the release model for `mer-jax predict`

It trains on mel spectrograms (``spectrogram="mel"``: 129 mel bands, 30 Hz-11 kHz; the pipelines
above preprocess with it, `python -m pipelines.preprocess --spectrogram mel` by hand). Same widths
and training recipe as configs/small.py (input standardisation per frequency fitted on the
training songs, log1p magnitudes, output prior, Gaussian-KL loss, Adam with warm-up and cosine
decay, 3 seeds), plus what the real-music levers showed. Every row before "Then the
spectrogram" below was measured on the paper's |STFT| (`--set spectrogram=stft`). First
(benchmarks/real_music.py's CRNN rows; exploration with 5 Monte-Carlo iterations x 2 seeds on
4q-dev, mixed mode, quadrant accuracy / Pearson r of valence; the constant quadrant scores 28.4%
on the 109 songs tested):

    configs/small.py as it is                                  42.1% / r 0.13
    + time_pool "mean" (block averages of the stored frames)   40.4% / 0.14
    + summary "pool" (mean and max over time, no LSTMs)        45.7% / 0.19
    + 32 epochs                                                47.3% / 0.22
    + random crops of 128 time bins, 16 epochs                 43.9% / 0.20
    + random crops of 128 time bins, 32 epochs                 47.3% / 0.28
    + random crops, 64 epochs                                  47.2% / 0.27
    + random crops, 48 epochs at 2e-3 (this config)            48.6% / 0.32

Then, on splits stratified by quadrant (what every experiment on a quadrant-labelled dataset now
uses), 5 iterations x 3 seeds, 110 songs tested, constant quadrant 27.3%; quadrant accuracy /
valence r / arousal r (mixed mode, 48 epochs as above):

    this config                                                 43.4% / 0.27 / 0.65
    + model.kernel_init "he" (He init, zero output layer)       40.8% / 0.18 / 0.69
    + mixup 0.4 (songs and labels mixed in pairs)               42.8% / 0.22 / 0.70
    + model.spectral_skip (head sees each bin's mean and std)   45.6% / 0.22 / 0.53
    + the KL weighted per dimension by stop_gradient(var_p)
      ** beta (the beta-NLL of Seitzer et al., ICLR 2022):
          beta 0.5                                              43.0% / 0.23 / 0.68
          beta 1.0 (seeds 45.0-45.9%)                           45.5% / 0.26 / 0.67
      (its mean KL of 56.6 is one outlier song's, as this config's 20.0 is:
      docs/real-music.md); its means-only form (the stds keep the KL's gradient) at beta 1.0:
                                                                37.9% / 0.21 / 0.67
      with 4 of 15 models collapsed to one prediction. Neither form was kept.

None of these levers moves the accuracy beyond the noise of 110 songs (a Wilson interval is +-9
points wide); the levers that were kept as options (kernel_init, mixup, spectral_skip)
reproduce their rows with --set (with model.input_floor=median: every row above was measured
under the first floor).

Then the input standardisation's std floor. The 4Q clips hold almost nothing above 11 kHz
(MP3s at 32 kHz, 15 at 22.05 kHz, low-passed by their encoder): 63 of the 129 bins vary by
1e-4 to 4e-3 across songs, where the live bins vary by 0.12-0.86. The first floor, 1% of the
median std (0.0012), scaled those bins by up to 836: their noise became 0.25 standard deviations
(median; up to 1), and one song reached 121 (the mixed rows' mean KL of 20.0 was one prediction
on it). The floor at 1% of the largest std (0.0086; model.input_floor "peak", now the default)
leaves their noise at 0.035 (median; up to 0.5) and that song at 22.5:

    this config, input_floor "median" (as above)                43.4% / 0.27 / 0.65  KL 20.0
    this config, input_floor "peak" (this config)               47.0% / 0.27 / 0.70  KL 1.14
      sep (was 48.7% / 0.36 / 0.72)                             50.8% / 0.37 / 0.74
    + model.input_clip 5 (standardised inputs clipped)          45.4% / 0.28 / 0.69
    + model.spectral_skip                                       44.4% / 0.25 / 0.61
    + model.dropout 0.3                                         44.1% / 0.22 / 0.66
    + 64 epochs                                                 44.4% / 0.27 / 0.70

The "peak" floor reaches the accuracy goal (>= 45%); valence r stays at 0.27 (goal 0.3).

Then the spectrogram. The paper's 255-sample frames and 256-point FFT give 129 bins 172 Hz apart:
6 below 1 kHz, so melody, harmony and mode (valence's musical cues) are invisible. Mel bands
(mer_jax.features.spectrogram "mel": a 4,096-sample window on the paper's frame grid, its |STFT|
averaged into 129 triangular bands; 39 below 1 kHz, under a semitone apart above 440 Hz) keep the
shapes, the model and the recipe. First on a probe copy of the store with only the mixed
spectrograms recomputed (window at the end of each frame instead of centred), same splits and
seeds; the 11,025 Hz top was the first choice (4Q holds nothing above it; MIR's usual 22.05 kHz
analysis), the second run checks its sensitivity:

    this config on the paper's |STFT| (as above)                 47.0% / 0.27 / 0.70  KL 1.14
    + mel bands 30 Hz - 11,025 Hz                               47.6% / 0.35 / 0.74  KL 1.08
    + mel bands 30 Hz - 22,050 Hz                               53.7% / 0.29 / 0.75  KL 1.08

Then as shipped (mel bands 30 Hz - 11,025 Hz, centred; benchmarks/real_music.py):

    this config, mixed                                          50.5% / 0.37 / 0.75  KL 1.08
    this config, sep                                            49.2% / 0.38 / 0.79  KL 1.06

Both goals are met in mixed mode (accuracy >= 45%, valence r >= 0.3; the valence interval is
+0.20 to +0.52). All levers, the spectrogram included, were chosen on these same 160 songs (no
held-out set is shipped), so every row is an optimistic estimate.

Measured with 5 iterations x 3 seeds, mixed and sep, beside the Random Forest: see
docs/real-music.md.
"""
from configs.small import get_config as small_config
from mer_jax.training.config import apply_overrides


def get_config():
    return apply_overrides(small_config(), [
        "spectrogram=mel", "time_pool=mean", "model.summary=pool", "crop_bins=128", "epochs=48",
        "learning_rate=2e-3"])
