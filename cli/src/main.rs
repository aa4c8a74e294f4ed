//! The `whisper-steady` command-line tool.

fn main() {
    eprintln!("usage: whisper-steady <command>");
    std::process::exit(2);
}
