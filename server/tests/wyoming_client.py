"""Drives recognizer-server's Wyoming server with the `wyoming` package (PyPI), the way Home
Assistant's Wyoming integration does: a connection per request, `describe` for the info,
`transcribe` + `audio-start` + `audio-chunk`s + `audio-stop` for a transcript.

Usage:
  wyoming_client.py describe HOST PORT
  wyoming_client.py transcribe HOST PORT WAV [LANGUAGE]
  wyoming_client.py concurrent HOST PORT WAV N
Prints one JSON line of what it saw, which server/tests/live.rs checks.
"""

import asyncio
import json
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info


async def describe(host: str, port: int) -> dict:
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("connection closed before info")
            if Info.is_type(event.type):
                info = Info.from_event(event)
                asr = info.asr[0]
                return {
                    "program": asr.name,
                    "streaming": asr.supports_transcript_streaming,
                    "models": [{"name": m.name, "languages": m.languages} for m in asr.models],
                }


async def transcribe(host: str, port: int, path: str, language=None) -> dict:
    with wave.open(path, "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        audio = wav.readframes(wav.getnframes())
    seen = {"events": [], "chunks": []}
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = 1024 * width * channels  # as Home Assistant's pipeline sends it
        for i in range(0, len(audio), step):
            chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=audio[i : i + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        stopped = time.monotonic()
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("connection closed before the transcript")
            seen["events"].append(event.type)
            if TranscriptChunk.is_type(event.type):
                seen["chunks"].append(TranscriptChunk.from_event(event).text)
            elif TranscriptStart.is_type(event.type) or TranscriptStop.is_type(event.type):
                pass
            elif Error.is_type(event.type):
                seen["error"] = Error.from_event(event).text
                return seen
            elif Transcript.is_type(event.type):
                transcript = Transcript.from_event(event)
                seen["text"] = transcript.text
                seen["language"] = transcript.language
                seen["seconds_after_stop"] = time.monotonic() - stopped
                return seen


async def concurrent(host: str, port: int, path: str, n: int) -> dict:
    results = await asyncio.gather(*(transcribe(host, port, path) for _ in range(n)))
    return {"results": results}


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "describe":
        out = asyncio.run(describe(host, port))
    elif mode == "transcribe":
        language = sys.argv[5] if len(sys.argv) > 5 else None
        out = asyncio.run(transcribe(host, port, sys.argv[4], language))
    else:
        out = asyncio.run(concurrent(host, port, sys.argv[4], int(sys.argv[5])))
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
