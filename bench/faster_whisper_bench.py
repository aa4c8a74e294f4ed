"""faster-whisper on the same audio, timed per run (run by bench/run.sh).

usage: faster_whisper_bench.py CT2_MODEL_DIR COMPUTE_TYPE THREADS RUNS AUDIO.wav...

COMPUTE_TYPE float32 or int8 runs WhisperModel.transcribe; batched-float32 or batched-int8 runs
its BatchedInferencePipeline (Silero VAD cuts the audio, batches of 8 chunks), faster-whisper's
fastest mode for long audio; float32-defaults or int8-defaults runs WhisperModel.transcribe as
its users do, with its defaults (beam 5, no VAD) but the language given.

Greedy decoding (beam_size=1), English, audio passed as 16 kHz float32 samples so that no
decoder library is timed. Prints one JSON line per audio file, like the Rust benches.
"""
import json
import sys
import time
import wave

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0


def main():
    model_dir, compute_type, threads, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    batched = compute_type.startswith("batched-")
    defaults = compute_type.endswith("-defaults")
    compute_type = compute_type.removeprefix("batched-").removesuffix("-defaults")
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)
    engine = f"faster-whisper {'batched ' if batched else ''}{compute_type}{' defaults' if defaults else ''}"
    if defaults:
        transcribe = lambda audio: model.transcribe(audio, language="en")
    elif batched:
        pipeline = BatchedInferencePipeline(model=model)
        transcribe = lambda audio: pipeline.transcribe(audio, language="en", beam_size=1, batch_size=8)
    else:
        transcribe = lambda audio: model.transcribe(audio, language="en", beam_size=1)
    for path in sys.argv[5:]:
        audio = read_wav(path)
        times, text = [], ""
        for _ in range(runs):
            start = time.perf_counter()
            segments, _ = transcribe(audio)
            text = "".join(s.text for s in segments)
            times.append(round(time.perf_counter() - start, 4))
        print(json.dumps({"engine": engine, "threads": threads,
                          "audio": path, "times": times, "text": text}))


if __name__ == "__main__":
    main()
