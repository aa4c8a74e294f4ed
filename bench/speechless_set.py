"""Builds the no-speech set of bench/RESULTS.md ("No words without speech", issue 27): clips
that hold no speech (silence, room tone, noise of several colours and levels, mains hum, music-like
tones, applause-like noise) and clips of speech that is hard to hear (quiet, or in noise), in two
splits made with different parameters: `tune` (what the guard's thresholds may be chosen on) and
`heldout` (only reported, never tuned on). Everything is made by sox (repeatable mode, `-R`) and
espeak-ng, so the same tools give the same set.

usage: python3 bench/speechless_set.py OUT_DIR
writes OUT_DIR/set.tsv: path, split, kind, seconds, reference text (empty for no speech),
tab-separated, like bench/wer_set.py's.
"""
import os
import subprocess
import sys
import wave

RATE = 16000


def sox(*args):
    subprocess.run(["sox", "-R", *args], check=True)


def synth(path, seconds, *spec):
    sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", path, "synth", str(seconds), *spec)


def seconds_of(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / w.getframerate()


def tones(path, seconds, notes, wave_kind, gain, scratch):
    """A melody: `notes` (Hz) in turn, each a fraction of `seconds`, at `gain` dB."""
    parts = []
    step = seconds / len(notes)
    for i, hz in enumerate(notes):
        part = os.path.join(scratch, f"note{i}.wav")
        synth(part, f"{step:.3f}", wave_kind, str(hz), "fade", "0.02", f"{step:.3f}", "0.05",
              "gain", str(gain))
        parts.append(part)
    sox(*parts, path)


def hum(path, seconds, base, gain, scratch):
    """Mains hum: the fundamental and its odd harmonics, mixed."""
    parts = []
    for k, level in ((1, 0), (3, -6), (5, -12)):
        part = os.path.join(scratch, f"hum{k}.wav")
        synth(part, seconds, "sine", str(base * k), "gain", str(gain + level))
        parts.append(part)
    sox("-m", *parts, path)


def speech(path, text, voice, rate, volume, scratch, noise=None):
    """espeak-ng's `text` at `volume` (a factor), optionally mixed with `noise` = (kind, dB)."""
    raw = os.path.join(scratch, "raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", raw, text], check=True)
    clean = os.path.join(scratch, "clean.wav")
    # Half a second of silence before and after, as a recording would have.
    sox("-v", str(volume), raw, "-r", str(RATE), "-c", "1", "-b", "16", clean,
        "pad", "0.5", "0.5")
    if noise is None:
        os.replace(clean, path)
        return
    kind, gain = noise
    bed = os.path.join(scratch, "bed.wav")
    synth(bed, f"{seconds_of(clean):.3f}", kind, "gain", str(gain))
    sox("-m", clean, bed, path)


# (name, split, maker): each maker writes the clip at the path it is given.
def clips(scratch):
    no = []
    for split, secs, room, levels, base, notes, kinds in (
        ("tune", 12, -55, (-20, -35), 50, [262, 330, 392, 523, 392, 330], ("sine", "triangle")),
        ("heldout", 9, -48, (-15, -28, -42), 60, [220, 277, 330, 440, 370, 294, 247],
         ("square", "sawtooth")),
    ):
        no.append((f"silence-{secs}s", split, lambda p, s=secs: synth(p, s, "sine", "0", "gain", "-120")))
        no.append((f"room-tone", split, lambda p, s=secs, g=room: synth(p, s, "brownnoise", "gain", str(g))))
        for colour in ("whitenoise", "pinknoise", "brownnoise"):
            for level in levels:
                no.append((f"{colour}{level}", split,
                           lambda p, s=secs, c=colour, g=level: synth(p, s, c, "gain", str(g))))
        no.append((f"hum{base}", split, lambda p, s=secs, b=base: hum(p, s, b, -20, scratch)))
        for kind in kinds:
            no.append((f"tones-{kind}", split,
                       lambda p, s=secs, k=kind, n=notes: tones(p, s, n, k, -18, scratch)))
        # Applause-like: noise whose loudness flutters quickly.
        no.append(("applause", split, lambda p, s=secs, t=(11 if split == "tune" else 17):
                   synth(p, s, "pinknoise", "tremolo", str(t), "90", "gain", "-12")))
        no.append(("rain", split, lambda p, s=secs, t=(3 if split == "tune" else 5):
                   synth(p, s, "whitenoise", "lowpass", "3000", "tremolo", str(t), "40", "gain", "-22")))
    hard = [
        # (split, voice, rate, volume, noise, text)
        ("tune", "en-us", 150, 0.03, None, "Please turn off the lights in the kitchen."),
        ("tune", "en-gb", 160, 0.8, ("pinknoise", -18), "The meeting starts at nine tomorrow morning."),
        ("tune", "en-us+f3", 140, 0.8, ("whitenoise", -24), "Call me when you get home tonight."),
        ("tune", "en-gb-scotland", 170, 0.05, ("brownnoise", -40), "We need more milk and bread."),
        ("heldout", "en-gb-x-rp", 150, 0.02, None, "Set a timer for fifteen minutes."),
        ("heldout", "en-us-nyc", 155, 0.8, ("pinknoise", -15), "The train to the airport is late again."),
        ("heldout", "en-029", 145, 0.8, ("whitenoise", -20), "Open the window before you leave."),
        ("heldout", "en-us+m3", 165, 0.04, ("brownnoise", -35), "What is the weather like in Paris?"),
    ]
    speech_clips = [
        (f"speech-{i}", split, text,
         lambda p, v=voice, r=rate, vol=volume, n=noise, t=text: speech(p, t, v, r, vol, scratch, n))
        for i, (split, voice, rate, volume, noise, text) in enumerate(hard)
    ]
    return [(name, split, "", maker) for name, split, maker in no] + speech_clips


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    scratch = os.path.join(out, ".scratch")
    os.makedirs(scratch, exist_ok=True)
    rows = []
    for name, split, text, maker in clips(scratch):
        path = os.path.join(out, f"{split}-{name}.wav")
        maker(path)
        kind = "speech" if text else "none"
        rows.append((path, split, kind, f"{seconds_of(path):.2f}", text))
    with open(os.path.join(out, "set.tsv"), "w") as f:
        for row in rows:
            f.write("\t".join(row) + "\n")
    print(f"{len(rows)} clips in {out}/set.tsv", file=sys.stderr)


if __name__ == "__main__":
    main()
