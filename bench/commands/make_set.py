"""A held-out set of voice-assistant commands (issue 28): short requests of the kind Home
Assistant's voice pipeline sends, none of them in bench/wer-set or bench/wyoming/bench.py, spoken
by espeak-ng in four English voices at two rates, 16 kHz mono 16-bit, with 0.3 s of silence
before and after (what a wake-word pipeline leaves around a command).

usage: python3 bench/commands/make_set.py OUT_DIR [en|de-es]
writes OUT_DIR/set.tsv in bench/wer_set.py's columns (path, split, voice, rate, seconds, text);
every clip's split is `heldout`: nothing was chosen on these clips. `de-es` makes German and
Spanish commands instead (for a multilingual model; `steady-bench window` gives whisper the
voice's language).
"""
import os
import subprocess
import sys
import wave

COMMANDS = [
    "Turn on the porch light.",
    "Dim the bedroom lights to thirty percent.",
    "What time is it?",
    "Set a timer for ten minutes.",
    "Open the living room blinds.",
    "Lock the back door.",
    "What's the temperature outside?",
    "Turn off the television.",
    "Start the vacuum cleaner.",
    "Is the garage door open?",
    "Set the heating to nineteen degrees.",
    "Remind me to call my mother at six.",
    "Turn the fan on in the office.",
    "How long until sunset?",
    "Stop the music.",
    "Pause the podcast in the kitchen.",
    "Switch off the hallway lights.",
    "What's on my calendar today?",
    "Make the lights in the dining room warmer.",
    "Arm the alarm system.",
    "Water the garden for fifteen minutes.",
    "Turn up the volume.",
    "Close all the curtains.",
    "Is the washing machine finished?",
    "Cancel the timer.",
    "Turn on the coffee machine.",
    "How much energy did we use yesterday?",
    "Set the bathroom heater to high.",
    "Open the front gate.",
    "Good night.",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland"]

GERMAN = [
    "Schalte das Licht in der Küche ein.",
    "Wie wird das Wetter morgen?",
    "Stelle einen Timer auf fünf Minuten.",
    "Mach die Rollläden im Wohnzimmer zu.",
    "Ist die Haustür abgeschlossen?",
    "Stell die Heizung auf zwanzig Grad.",
    "Spiel etwas Musik im Schlafzimmer.",
    "Schalte alle Lichter im Obergeschoss aus.",
    "Wie spät ist es?",
    "Öffne das Garagentor.",
    "Setz Milch auf die Einkaufsliste.",
    "Mach den Fernseher aus.",
    "Starte den Staubsauger.",
    "Wann geht die Sonne unter?",
    "Gute Nacht.",
]
SPANISH = [
    "Enciende la luz de la cocina.",
    "¿Qué tiempo hará mañana?",
    "Pon un temporizador de cinco minutos.",
    "Cierra las persianas del salón.",
    "¿Está cerrada la puerta de entrada?",
    "Pon la calefacción a veinte grados.",
    "Pon música en el dormitorio.",
    "Apaga todas las luces de arriba.",
    "¿Qué hora es?",
    "Abre la puerta del garaje.",
    "Añade leche a la lista de la compra.",
    "Apaga la televisión.",
    "Enciende el robot aspirador.",
    "¿A qué hora se pone el sol?",
    "Buenas noches.",
]
RATES = [145, 175]
RATE = 16000


def main():
    out = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "en"
    if kind == "en":
        sets = [(text, VOICES) for text in COMMANDS]
    else:
        sets = [(t, ["de", "de+f3"]) for t in GERMAN] + [(t, ["es", "es+f3"]) for t in SPANISH]
    os.makedirs(out, exist_ok=True)
    rows = []
    n = 0
    for text, voices in sets:
        for voice in voices:
            for rate in RATES:
                raw = os.path.join(out, "raw.wav")
                path = os.path.join(out, f"command{n:03d}.wav")
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", raw, text],
                               check=True)
                subprocess.run(["sox", "-D", "-v", "0.9", raw, "-r", str(RATE), "-c", "1",
                                "-b", "16", path, "pad", "0.3", "0.3"], check=True)
                with wave.open(path, "rb") as w:
                    seconds = w.getnframes() / w.getframerate()
                rows.append(f"{path}\theldout\t{voice}\t{rate}\t{seconds:.2f}\t{text}")
                n += 1
    os.remove(os.path.join(out, "raw.wav"))
    with open(os.path.join(out, "set.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{n} clips", file=sys.stderr)


if __name__ == "__main__":
    main()
