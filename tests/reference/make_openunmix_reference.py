"""Regenerate tests/reference/openunmix/: random Open-Unmix weights in the official file layout
and the ``openunmix`` PyTorch package's separation of a real MUSDB18 excerpt with them.

    python tests/reference/make_openunmix_reference.py      # with torch + openunmix installed

Not a runtime dependency: mer-jax never imports torch or openunmix. Made with torch 2.13.0+cpu and
openunmix 1.3.0 (pip install --no-deps openunmix); torchaudio, which openunmix imports at the top
of two modules but never calls on this path (the "torch" filterbank), is replaced by an empty
module when it is not installed.

Four targets (vocals, drums, bass, other) of UMX-HQ's shape except a hidden size of 8 (the
weights stay small enough to commit): nb_bins 2049, max_bin 1487 (16 kHz), 2 channels, a 3-layer
bidirectional LSTM. Every parameter and BatchNorm statistic is random (seeded). The state dicts
are saved as the release names them, ``<target>-<first 8 hex digits of the file's sha256>.pth``:
vocals and drums in torch's zip format, bass and other in the legacy format of the 2019 release
files. The Separator (niter=1, softmask off, no residual) runs on 1 s of "Cristina Vane - So
Easy" with Wiener blocks of 16 frames, so that three blocks (16 + 16 + 12 frames) are filtered.
"""
import hashlib
import sys
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
from openunmix.model import OpenUnmix, Separator  # noqa: E402

HERE = Path(__file__).resolve().parent / "openunmix"
TRACK = Path(__file__).resolve().parents[3] / "shared/data/musdb18-7s/Cristina Vane - So Easy"
TARGETS = ("vocals", "drums", "bass", "other")
LEGACY = ("bass", "other")
HIDDEN, MAX_BIN, WIN, START, SECONDS = 8, 1487, 16, 44_100, 1.0


def random_model(seed: int) -> OpenUnmix:
    torch.manual_seed(seed)
    model = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=HIDDEN, max_bin=MAX_BIN)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if "lstm" in name else 0.2)
                    + (1.0 if name.endswith("scale") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return model.eval()


def main():
    HERE.mkdir(exist_ok=True)
    for old in HERE.glob("*.pth"):
        old.unlink()
    models = {}
    for k, target in enumerate(TARGETS):
        models[target] = random_model(k)
        tmp = HERE / f"{target}.tmp"
        torch.save(models[target].state_dict(), tmp,
                   _use_new_zipfile_serialization=target not in LEGACY)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.rename(HERE / f"{target}-{digest[:8]}.pth")
    audio, rate = sf.read(TRACK / "mixture.flac", dtype="float32", always_2d=True)
    wave = audio[START:START + int(SECONDS * rate)].T.copy()
    separator = Separator(models, niter=1, wiener_win_len=WIN).eval()
    with torch.no_grad():
        estimates = separator(torch.from_numpy(wave)[None])[0].numpy()
    np.savez(HERE / "reference.npz", wave=wave, estimates=estimates.astype(np.float32),
             wiener_frames=WIN, niter=1, torch_version=torch.__version__)
    print(estimates.shape, float(np.abs(estimates).max()))


if __name__ == "__main__":
    main()
