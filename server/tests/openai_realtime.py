"""Drives recognizer-server's /v1/realtime with the official OpenAI Python client
(`openai[realtime]` on PyPI) in transcription mode.

Usage: openai_realtime.py BASE_URL API_KEY JFK_WAV; prints one JSON line of what it saw, which
server/tests/openai.rs checks. Any exception is a failure (exit 1).
"""

import asyncio
import audioop
import base64
import json
import sys
import time
import wave

from openai import AsyncOpenAI


def read_jfk(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


async def collect(conn, until, seen, started):
    """Reads events into `seen` until `until(event)` is true (or 120 s pass). On a failure, what
    was seen goes to stderr first, so that the test's message says what the server sent."""
    try:
        while True:
            event = await asyncio.wait_for(conn.recv(), timeout=120)
            seen.append(
                (time.monotonic() - started, event.type, event.model_dump(exclude_none=True))
            )
            if until(event):
                return event
    except Exception:
        for at, kind, body in seen:
            body = {k: v for k, v in body.items() if k not in ("type", "event_id")}
            print(f"{at:7.2f} {kind} {json.dumps(body)[:300]}", file=sys.stderr)
        raise


async def server_vad(client, pcm16k):
    """jfk.wav at 24 kHz, streamed at real time in 100 ms pieces, turns found by the server."""
    pcm24k, _ = audioop.ratecv(pcm16k, 2, 1, 16000, 24000, None)
    seen = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        started = time.monotonic()
        await collect(conn, lambda e: e.type == "session.created", seen, started)
        await conn.session.update(
            session={
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "whisper-1", "language": "en"},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 500,
                        },
                    }
                },
            }
        )
        await collect(conn, lambda e: e.type == "session.updated", seen, started)

        async def send():
            piece = 2400 * 2  # 100 ms at 24 kHz
            # And 4 s of silence: the last turn ends, and a machine slowed by other work still
            # has the first turn transcribed while the client is sending (what the test checks).
            audio = pcm24k + b"\0" * (24000 * 2 * 4)
            for i in range(0, len(audio), piece):
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(audio[i : i + piece]).decode()
                )
                await asyncio.sleep(0.1)
            return time.monotonic() - started

        sender = asyncio.create_task(send())
        completed = []

        def last_turn(event):
            if event.type == "conversation.item.input_audio_transcription.completed":
                completed.append(event.transcript)
                # jfk.wav ends "... ask what you can do for your country": the last turn
                # (a turn may also end at "... what your country can do for you"). It may
                # come while the trailing silence is still being sent (then awaited below).
                words = event.transcript.lower().strip().rstrip(".!?,")
                return words.endswith("for your country")
            return False

        await collect(conn, last_turn, seen, started)
        sent = await sender
    return {"events": seen, "audio_sent_at": sent}


async def manual(client, pcm16k, g711):
    """turn_detection null: the client commits; PCM at 24 kHz or G.711 mu-law at 8 kHz."""
    if g711:
        pcm8k, _ = audioop.ratecv(pcm16k, 2, 1, 16000, 8000, None)
        audio, fmt = audioop.lin2ulaw(pcm8k, 2), {"type": "audio/pcmu"}
    else:
        audio, _ = audioop.ratecv(pcm16k, 2, 1, 16000, 24000, None)
        fmt = {"type": "audio/pcm", "rate": 24000}
    seen = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        started = time.monotonic()
        await conn.session.update(
            session={
                "type": "transcription",
                "audio": {"input": {"format": fmt, "turn_detection": None}},
            }
        )
        await collect(conn, lambda e: e.type == "session.updated", seen, started)
        for i in range(0, len(audio), 8000):
            await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i : i + 8000]).decode())
        await conn.input_audio_buffer.commit()
        event = await collect(
            conn,
            lambda e: e.type == "conversation.item.input_audio_transcription.completed",
            seen,
            started,
        )
        return {"events": [t for _, t, _ in seen], "transcript": event.transcript}


async def bad_events(client):
    """Every bad event is an `error` event; the connection stays usable."""
    errors = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        started = time.monotonic()
        seen = []
        await collect(conn, lambda e: e.type == "session.created", seen, started)
        for raw in [
            "not json",
            json.dumps({"type": "bogus.event"}),
            json.dumps({"type": "input_audio_buffer.append", "audio": "!!! not base64"}),
            json.dumps({"type": "response.create"}),
            json.dumps({"type": "session.update", "session": {"type": "realtime"}}),
            json.dumps({"type": "input_audio_buffer.commit"}),
        ]:
            await conn.send_raw(raw)
            event = await collect(conn, lambda e: e.type == "error", seen, started)
            errors.append(event.error.code)
        await conn.session.update(session={"type": "transcription"})
        await collect(conn, lambda e: e.type == "session.updated", seen, started)
    return {"error_codes": errors, "still_open": True}


async def main():
    base, key, jfk = sys.argv[1], sys.argv[2], sys.argv[3]
    client = AsyncOpenAI(base_url=base, api_key=key, max_retries=0)
    pcm = read_jfk(jfk)
    out = {
        "server_vad": await server_vad(client, pcm),
        "manual_pcm": await manual(client, pcm, g711=False),
        "manual_g711": await manual(client, pcm, g711=True),
        "bad": await bad_events(client),
    }
    print(json.dumps(out))


asyncio.run(main())
