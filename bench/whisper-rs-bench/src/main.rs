//! whisper-rs 0.16 transcribing with its defaults (greedy), timed per run.

#[path = "../../common/compat.rs"]
mod compat;

fn main() {
    let (model, threads, runs, audio) = compat::args(std::env::args().skip(1));
    let ctx = compat::load(&model);
    for path in audio {
        let samples = compat::read_wav(&path);
        let (times, text) = compat::run(&ctx, &samples, threads, runs);
        compat::report("whisper-rs", threads, &path, &times, &text);
    }
}
