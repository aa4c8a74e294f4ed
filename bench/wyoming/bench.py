"""Wyoming workload against a server (ours or wyoming-faster-whisper), as Home Assistant sends it.

Usage: bench.py HOST PORT OUT.json
Makes its own command recordings with espeak-ng (English, 22,050 Hz, reproducible), plus
jfk.wav, then measures: the time from `audio-stop` to `transcript` for each recording sent
alone (the latency a Home Assistant user waits), and transcripts per minute with 1 and 4
clients sending the recordings in a loop for a fixed time. Writes everything to OUT.json.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

COMMANDS = [
    "Turn on the kitchen lights.",
    "Set the thermostat to twenty one degrees.",
    "What is the weather like tomorrow?",
    "Close the garage door.",
    "Play some jazz music in the living room.",
    "Add milk and eggs to my shopping list.",
    "Turn off all the lights upstairs.",
    "Is the front door locked?",
]


def make_recordings(folder):
    out = []
    for i, text in enumerate(COMMANDS):
        path = os.path.join(folder, f"command-{i}.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", path, text], check=True)
        out.append((path, text))
    jfk = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "audio", "jfk.wav")
    out.append(
        (
            os.path.abspath(jfk),
            "And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.",
        )
    )
    return out


def read(path):
    with wave.open(path, "rb") as w:
        return w.getframerate(), w.getsampwidth(), w.getnchannels(), w.readframes(w.getnframes())


async def transcribe(host, port, audio):
    rate, width, channels, pcm = audio
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = 1024 * width * channels
        for i in range(0, len(pcm), step):
            await client.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + step]).event()
            )
        await client.write_event(AudioStop().event())
        stopped = time.monotonic()
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("closed before the transcript")
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text, time.monotonic() - stopped


async def throughput(host, port, audios, clients, seconds):
    done = 0
    until = time.monotonic() + seconds

    async def client(k):
        nonlocal done
        i = k
        while time.monotonic() < until:
            await transcribe(host, port, audios[i % len(audios)])
            done += 1
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return done * 60.0 / (time.monotonic() - started)


async def main():
    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as folder:
        recordings = make_recordings(folder)
        audios = [read(p) for p, _ in recordings]
        await transcribe(host, port, audios[0])  # warm up
        latency = []
        for (path, reference), audio in zip(recordings, audios):
            text, seconds = await transcribe(host, port, audio)
            latency.append({"file": os.path.basename(path), "reference": reference, "text": text, "seconds": seconds})
        per_minute = {
            str(n): await throughput(host, port, audios, n, 60) for n in (1, 4)
        }
    json.dump({"latency": latency, "transcripts_per_minute": per_minute}, open(out, "w"), indent=1)


asyncio.run(main())
