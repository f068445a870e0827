"""PMEmo as a tensorflow-datasets dataset (manual download), stored as array_record.

The user points the builder at an extracted PMEmo2019 folder (metadata.csv, annotations/,
chorus/); each usable song becomes one example:

    song_id        Text
    audio          Tensor (samples,): mono float32, 44.1 kHz, cut/zero-padded to 45 s
    valence_mean, arousal_mean, valence_std, arousal_std    float32 on 0-1

Written as array_record and read with ``tfds.data_source`` - random access without TensorFlow
(mer-jax does not depend on TensorFlow). Songs the PMEmo reader skips (no audio, no std) and
files that fail to decode are left out with a warning; the dataset's description lists them.

    from mer_jax.data.tfds_pmemo import prepare_pmemo
    source = prepare_pmemo(manual_dir="/data/PMEmo2019", data_dir="~/tensorflow_datasets")
    example = source[0]
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from mer_jax import audio as audio_io
from mer_jax.data.pmemo import read_pmemo
from mer_jax.data.songs import LABEL_NAMES

log = logging.getLogger(__name__)


class Pmemo(tfds.core.GeneratorBasedBuilder):
    """PMEmo2019 static annotations with 45 s mono chorus clips."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Chorus clips and static mean/std valence-arousal annotations."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download PMEmo2019 (https://github.com/HuiZhangDB/PMEmo), extract it, and pass the "
        "folder holding metadata.csv, annotations/ and chorus/ as manual_dir.")
    CLIP_SECONDS = audio_io.CLIP_SECONDS
    SAMPLE_RATE = audio_io.SAMPLE_RATE

    def _info(self) -> tfds.core.DatasetInfo:
        # A Tensor, not tfds.features.Audio: the Audio feature needs TensorFlow even to declare.
        features = {"song_id": tfds.features.Text(),
                    "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32)}
        features.update({name: tfds.features.Scalar(dtype=np.float32) for name in LABEL_NAMES})
        return tfds.core.DatasetInfo(
            builder=self, description=__doc__, features=tfds.features.FeaturesDict(features),
            homepage="https://github.com/HuiZhangDB/PMEmo")

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(Path(dl_manager.manual_dir))}

    def _generate_examples(self, root: Path):
        dataset = read_pmemo(root)
        for skipped in dataset.skipped:
            log.warning("PMEmo song %s left out: %s", skipped.song_id, skipped.reason)
        for song in dataset:
            try:
                clip = audio_io.load_clip(song.audio_path, seconds=self.CLIP_SECONDS)
            except audio_io.AudioError as err:
                log.warning("PMEmo song %s left out: %s", song.song_id, err)
                continue
            example = {"song_id": song.song_id, "audio": clip.samples}
            example.update({name: np.float32(getattr(song, name)) for name in LABEL_NAMES})
            yield song.song_id, example


def prepare_pmemo(manual_dir: os.PathLike | str, data_dir: os.PathLike | str):
    """Build (once) and open the array_record data source of the ``train`` split."""
    builder = Pmemo(data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return tfds.data_source("pmemo", data_dir=str(data_dir), split="train")
