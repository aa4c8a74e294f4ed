#!/usr/bin/env python3
"""Speech timestamps and probabilities of the silero-vad package, for tests/model/vad_model.rs.

Usage: silero-reference.py UNPACKED_WHEEL_DIR AUDIO.wav

UNPACKED_WHEEL_DIR is the silero-vad wheel unpacked (it holds silero_vad/utils_vad.py and
silero_vad/data/silero_vad.onnx); AUDIO.wav is 16 kHz mono 16-bit PCM. Needs numpy and
onnxruntime, not PyTorch: the package's own get_speech_timestamps (utils_vad.py, loaded from the
wheel unchanged) runs on a numpy array through a small stand-in for the few torch functions it
calls, and the model is the package's ONNX file fed exactly as the package's OnnxWrapper feeds
it (64 samples of context before each 512-sample window, the LSTM state carried over).

Prints the per-window speech probabilities and the speech timestamps (samples) that
get_speech_timestamps returns with its default parameters.
"""

import importlib.util
import sys
import types
import wave

import numpy as np
import onnxruntime


def torch_stand_in():
    torch = types.ModuleType("torch")
    torch.Tensor = np.ndarray
    torch.is_tensor = lambda x: isinstance(x, np.ndarray)
    torch.no_grad = lambda: (lambda f: f)
    torch.device = lambda name: name  # a default argument of init_jit_model
    functional = types.SimpleNamespace(
        pad=lambda x, pad, *a, **k: np.pad(x, (pad[0], pad[1]))
    )
    torch.nn = types.SimpleNamespace(functional=functional)
    return torch


class OnnxModel:
    """What the package's OnnxWrapper does at 16 kHz, on numpy arrays."""

    def __init__(self, path):
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"], sess_options=opts
        )
        self.reset_states()

    def reset_states(self):
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, 64), dtype=np.float32)

    def __call__(self, chunk, sr):
        assert sr == 16000 and len(chunk) == 512
        x = np.concatenate([self.context, chunk.reshape(1, 512).astype(np.float32)], axis=1)
        out, self.state = self.session.run(
            None, {"input": x, "state": self.state, "sr": np.array(16000, dtype=np.int64)}
        )
        self.context = x[:, -64:]
        self.probs.append(float(out.reshape(-1)[0]))
        return out.reshape(-1)[:1]


def main():
    wheel_dir, wav_path = sys.argv[1], sys.argv[2]
    sys.modules["torch"] = torch_stand_in()
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    spec = importlib.util.spec_from_file_location(
        "utils_vad", f"{wheel_dir}/silero_vad/utils_vad.py"
    )
    utils_vad = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils_vad)

    with wave.open(wav_path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        audio = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0

    model = OnnxModel(f"{wheel_dir}/silero_vad/data/silero_vad.onnx")
    model.probs = []
    speeches = utils_vad.get_speech_timestamps(audio, model, sampling_rate=16000)
    print(f"samples: {len(audio)}")
    print(f"windows: {len(model.probs)}")
    print("probs:", " ".join(f"{p:.3f}" for p in model.probs))
    print("speech (samples):", [(s["start"], s["end"]) for s in speeches])
    print("speech (seconds):", [(s["start"] / 16000, s["end"] / 16000) for s in speeches])


if __name__ == "__main__":
    main()
