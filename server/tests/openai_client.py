"""Drives recognizer-server with the official OpenAI Python client (`openai` on PyPI).

Usage: openai_client.py BASE_URL AUDIO [MULTILINGUAL]; prints one JSON line of what it saw, which
server/tests/openai.rs checks. Any exception is a failure (exit 1).
"""

import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    base, audio = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base, api_key="sk-test", max_retries=0, timeout=120)
    seen = {"client_version": openai.__version__}

    with open(audio, "rb") as f:
        seen["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
    with open(audio, "rb") as f:
        seen["text"] = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="text", language="en"
        )
    with open(audio, "rb") as f:
        seen["srt"] = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="srt"
        )
    with open(audio, "rb") as f:
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            temperature=0.0,
        )
    seen["verbose"] = {
        "language": verbose.language,
        "duration": verbose.duration,
        "text": verbose.text,
        "words": [{"word": w.word, "start": w.start, "end": w.end} for w in verbose.words or []],
        "segments": [
            {
                "start": s.start,
                "end": s.end,
                "avg_logprob": s.avg_logprob,
                "no_speech_prob": s.no_speech_prob,
                "compression_ratio": s.compression_ratio,
                "tokens": len(s.tokens),
            }
            for s in verbose.segments or []
        ],
    }

    with open(audio, "rb") as f:
        events = client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        seen["stream"] = [
            {"type": e.type, "delta": getattr(e, "delta", None), "text": getattr(e, "text", None)}
            for e in events
        ]

    try:
        with open(audio, "rb") as f:
            translated = client.audio.translations.create(model="whisper-1", file=f)
        seen["translation"] = {"text": translated.text}
    except openai.BadRequestError as e:
        seen["translation"] = {"status": e.status_code, "message": str(e)}

    seen["models"] = [m.id for m in client.models.list()]
    seen["model"] = client.models.retrieve("whisper-1").id
    try:
        client.models.retrieve("no-such-model")
        seen["missing_model"] = "found"
    except openai.NotFoundError as e:
        seen["missing_model"] = e.status_code

    try:
        with open(audio, "rb") as f:
            client.audio.transcriptions.create(model="whisper-1", file=f, response_format="xml")
        seen["bad_format"] = "accepted"
    except openai.BadRequestError as e:
        seen["bad_format"] = str(e)

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
