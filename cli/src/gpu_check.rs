//! `whisper-steady gpu-check`: proves the CUDA fixes on the machine it runs on and prints a
//! table plus a JSON report. Made to be carried to a lent GPU machine by scripts/gpu-check.sh.
//!
//! Rows:
//! - `device`: the CUDA device, its memory, and the pool kind a backend gets there;
//! - `pool-vmm`: patches 0007/0011's self-test of the real pool on the real device (out-of-order
//!   frees, a byte pattern in every live block read back after every operation, nothing in use or
//!   waiting afterwards, reserved bytes within patch 0001's bound, the first allocation after
//!   draining at the pool's base, a trim that raises the driver's free memory and leaves a
//!   working pool), all from the tested pool's own figures;
//! - `pool-vmm-threads`: the same with several threads sharing the pool, as the user's server did;
//! - `pool-legacy` / `pool-legacy-threads`: both in a child process with
//!   `GGML_CUDA_FORCE_LEGACY_POOL=1`, which must also log that it forced the legacy pool;
//! - `jfk-cuda-vs-cpu`: the audio transcribed on CUDA and on the CPU gives the same words;
//! - `shared-unlocked` / `shared-locked`: the user's crash scenario, 8 threads calling
//!   `whisper_full` on one shared context: no abort and, on CUDA, no out-of-order or rejected
//!   free (patch 0006 serializes the shared state); with the state lock every transcript right;
//! - `recognizer-4x50`: 4 states in parallel serve 50 requests, all right, pool bytes bounded;
//! - `recognizer-trim`: `Recognizer::trim` after that load gives pool memory back to the driver
//!   and the next request is still right (on the CPU: a no-op that says so);
//! - `timing`: real-time factor on CUDA and on the CPU, VMM pool and legacy pool.
//!
//! Without a CUDA device the GPU rows are `skip` (and the exit status is 1 unless
//! `--allow-no-gpu`), so the CPU-side rows can be proven on any machine.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use whisper_steady::cuda::{self, PoolSelftest};
use whisper_steady::recognizer::{
    devices, Backend, Isolation, RecognizeOptions, Recognizer, RecognizerConfig,
};
use whisper_steady::wer::{word_error_rate as wer, words};
use whisper_steady::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::race;

/// Arguments of `gpu-check`.
#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// The whisper.cpp model (a quantized tiny.en travels well: see `quantize`).
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    /// 16 kHz mono 16-bit speech (jfk.wav).
    #[arg(long, short = 'a')]
    pub audio: PathBuf,
    /// Where the JSON report goes.
    #[arg(long, default_value = "gpu-check.json")]
    pub json: PathBuf,
    /// The reference transcript the CPU and CUDA texts are scored against.
    #[arg(
        long,
        default_value = "And so my fellow Americans ask not what your country can do for you \
                         ask what you can do for your country"
    )]
    pub reference: String,
    /// Allocations and frees of each pool self-test.
    #[arg(long, default_value_t = 2000)]
    pub pool_ops: u32,
    /// Threads sharing the pool in the `-threads` self-test rows.
    #[arg(long, default_value_t = 4)]
    pub pool_threads: u32,
    /// Requests of the recognizer row.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Seconds of the `trim-under-load` row (4 workers transcribing while the pools are
    /// trimmed every 50 ms).
    #[arg(long, default_value_t = 60.0)]
    pub trim_seconds: f64,
    /// Exit 0 even when there is no CUDA device (the GPU rows are then skipped).
    #[arg(long)]
    pub allow_no_gpu: bool,
    /// Internal: run only the pool self-test and a timed transcription, print one JSON line.
    #[arg(long, hide = true)]
    pub child_pool: bool,
}

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    name: &'static str,
    status: &'static str,
    detail: String,
    data: Value,
}

impl Row {
    fn new(name: &'static str, ok: bool, detail: String, data: Value) -> Row {
        Row {
            name,
            status: if ok { "pass" } else { "FAIL" },
            detail,
            data,
        }
    }

    fn skip(name: &'static str, why: &str) -> Row {
        Row {
            name,
            status: "skip",
            detail: why.to_string(),
            data: Value::Null,
        }
    }
}

const CHILD_MARK: &str = "GPU_CHECK_CHILD ";

/// Runs the check.
pub fn run(args: &GpuCheckArgs) -> Result<(), Box<dyn Error>> {
    let audio = crate::transcribe::load_audio(&args.audio)?.samples;
    if args.child_pool {
        return child_pool(args, &audio);
    }
    let started = Instant::now();
    let audio_seconds = audio.len() as f64 / f64::from(whisper_steady::audio::WHISPER_SAMPLE_RATE);
    let gpu = devices().into_iter().find(|d| d.kind == "gpu");
    if gpu.is_none() && !args.allow_no_gpu {
        return Err(format!(
            "no CUDA device ({}); --allow-no-gpu runs the CPU-side rows only",
            if cuda::pool_stats().cuda_available {
                "none found by this CUDA build"
            } else {
                "this build has no CUDA backend: see scripts/build-cuda.sh"
            }
        )
        .into());
    }
    let mut rows = Vec::new();

    // device and pool self-tests
    let mut legacy_rtf = None;
    match &gpu {
        Some(dev) => {
            let vmm = cuda::pool_selftest(0, args.pool_ops, 0x5eed);
            let kind = match &vmm {
                Ok(r) if r.vmm => "vmm",
                Ok(_) => "legacy",
                Err(_) => "unknown",
            };
            rows.push(Row::new(
                "device",
                true,
                format!(
                    "{} ({}), {:.1} GiB, {:.1} GiB free, pool: {kind}",
                    dev.description,
                    dev.name,
                    gib(dev.memory_total),
                    gib(dev.memory_free)
                ),
                json!({"name": dev.name, "description": dev.description,
                       "memory_total": dev.memory_total, "memory_free": dev.memory_free,
                       "pool": kind}),
            ));
            rows.push(pool_row("pool-vmm", vmm, true));
            rows.push(pool_row(
                "pool-vmm-threads",
                cuda::pool_selftest_threads(0, args.pool_threads, args.pool_ops, 0x7eed),
                true,
            ));
            let (legacy_rows, rtf) = legacy_child(args);
            rows.extend(legacy_rows);
            legacy_rtf = rtf;
        }
        None => {
            rows.push(Row::skip(
                "device",
                "no CUDA device in this build or machine",
            ));
            for name in [
                "pool-vmm",
                "pool-vmm-threads",
                "pool-legacy",
                "pool-legacy-threads",
            ] {
                rows.push(Row::skip(name, "no CUDA device"));
            }
        }
    }

    // jfk on CPU and on CUDA
    let cpu_ctx = load(&args.model, false)?;
    let cpu_threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8) as i32;
    let (cpu_text, cpu_time) = best_of(3, || transcribe(&cpu_ctx, &audio, cpu_threads));
    let cpu_wer = wer(&args.reference, &cpu_text);
    let gpu_ctx = if gpu.is_some() {
        Some(load(&args.model, true)?)
    } else {
        None
    };
    let mut gpu_time = None;
    match &gpu_ctx {
        Some(ctx) => {
            let stats_before = cuda::pool_stats();
            let (text, time) = best_of(3, || transcribe(ctx, &audio, 1));
            let stats = cuda::pool_stats();
            gpu_time = Some(time);
            let same = words(&text) == words(&cpu_text);
            let ran_on_gpu = stats.vmm_pools + stats.legacy_pools > 0
                || stats.peak_bytes_in_use > stats_before.peak_bytes_in_use;
            rows.push(Row::new(
                "jfk-cuda-vs-cpu",
                same && ran_on_gpu && cpu_wer <= 0.1,
                format!(
                    "CUDA {:?}; same words as CPU: {same}; WER {:.3}; CUDA pools used: {ran_on_gpu}",
                    text.trim(),
                    wer(&args.reference, &text)
                ),
                json!({"cuda_text": text, "cpu_text": cpu_text, "same_words": same,
                       "cpu_wer": cpu_wer, "cuda_pool_stats": stats_json(&stats)}),
            ));
        }
        None => rows.push(Row::new(
            "jfk-cpu",
            cpu_wer <= 0.1,
            format!(
                "CPU {:?}; WER {cpu_wer:.3} (CUDA: no device)",
                cpu_text.trim()
            ),
            json!({"cpu_text": cpu_text, "cpu_wer": cpu_wer}),
        )),
    }
    drop(gpu_ctx);

    // the user's crash scenario: 8 threads, one shared context
    let on_gpu = gpu.is_some();
    let shared = race::SharedContext::load_on(&args.model, on_gpu)?;
    let reference = race::transcribe(&shared, &audio, None);
    let before = cuda::pool_stats();
    let unlocked = race::hammer(&shared, &audio, 8, 2, None);
    let after = cuda::pool_stats();
    let all_returned = unlocked.iter().all(|c| c.ret == 0);
    // patch 0006 serializes the shared state, so its one pool sees strictly nested frees
    let out_of_order = after.out_of_order_frees - before.out_of_order_frees;
    let rejected = after.rejected_frees - before.rejected_frees;
    rows.push(Row::new(
        "shared-unlocked",
        reference.ret == 0 && all_returned && out_of_order == 0 && rejected == 0,
        format!(
            "{}: 8 threads x 2 whisper_full on one context, no caller lock: no abort, {} of {} \
             returned 0; {out_of_order} out-of-order and {rejected} rejected frees",
            if on_gpu { "CUDA" } else { "CPU" },
            unlocked.iter().filter(|c| c.ret == 0).count(),
            unlocked.len()
        ),
        json!({"calls": unlocked.len(), "returned_0": unlocked.iter().filter(|c| c.ret == 0).count(),
               "out_of_order_frees": out_of_order, "rejected_frees": rejected,
               "pool_stats": stats_json(&after)}),
    ));
    let hold: race::Hold = (
        whisper_steady::sys::whisper_lock,
        whisper_steady::sys::whisper_unlock,
    );
    let locked = race::hammer(&shared, &audio, 8, 2, Some(hold));
    let correct = locked.iter().filter(|c| **c == reference).count();
    rows.push(Row::new(
        "shared-locked",
        reference.ret == 0 && correct == locked.len(),
        format!(
            "with whisper_lock held across full + reading: {correct} of {} transcripts equal the \
             sequential one",
            locked.len()
        ),
        json!({"calls": locked.len(), "correct": correct, "reference": reference.text}),
    ));
    drop(shared);

    // 4 states in parallel, 50 requests, then a trim
    rows.extend(recognizer_rows(args, &audio, on_gpu)?);

    // trims every 50 ms while 4 workers transcribe
    rows.push(trim_under_load_row(args, &audio, on_gpu, &cpu_text)?);

    // a worker process whose pool cannot grow
    rows.push(pool_oom_row(args, &audio, on_gpu)?);

    // a worker process killed mid-request
    rows.push(worker_kill_row(args, &audio, on_gpu)?);

    // timings
    let cpu_rtf = cpu_time.as_secs_f64() / audio_seconds;
    let mut timing = json!({"audio_seconds": audio_seconds, "cpu_threads": cpu_threads,
                            "cpu_seconds": cpu_time.as_secs_f64(), "rtf_cpu": cpu_rtf});
    let detail = match gpu_time {
        Some(t) => {
            let rtf = t.as_secs_f64() / audio_seconds;
            timing["cuda_seconds"] = json!(t.as_secs_f64());
            timing["rtf_cuda_vmm"] = json!(rtf);
            timing["rtf_cuda_legacy"] = json!(legacy_rtf);
            let legacy = legacy_rtf.map_or("not measured".to_string(), |l| {
                format!("{l:.4} ({:+.1}% vs VMM)", (l / rtf - 1.0) * 100.0)
            });
            format!(
                "RTF CUDA {rtf:.4} (VMM pool), legacy pool {legacy}; CPU ({cpu_threads} threads) \
                 {cpu_rtf:.4}: CUDA {:.1}x faster",
                cpu_rtf / rtf
            )
        }
        None => format!("RTF CPU ({cpu_threads} threads) {cpu_rtf:.4}; no CUDA device"),
    };
    rows.push(Row::new("timing", true, detail, timing));

    // report
    let failed = rows.iter().filter(|r| r.status == "FAIL").count();
    let skipped = rows.iter().filter(|r| r.status == "skip").count();
    print_table(&rows);
    let report = json!({
        "tool": "whisper-steady gpu-check",
        "version": env!("CARGO_PKG_VERSION"),
        "whisper_cpp": whisper_steady::WHISPER_CPP_VERSION,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "model": args.model.file_name().map(|n| n.to_string_lossy().into_owned()),
        "elapsed_seconds": started.elapsed().as_secs_f64(),
        "devices": devices().iter().map(|d| json!({"name": d.name, "description": d.description,
            "kind": d.kind, "memory_total": d.memory_total})).collect::<Vec<_>>(),
        "rows": rows,
        "passed": failed == 0 && (skipped == 0 || args.allow_no_gpu),
    });
    fs::write(&args.json, serde_json::to_string_pretty(&report)? + "\n")?;
    println!(
        "{} rows failed, {skipped} skipped, {:.0} s; report: {}",
        failed,
        started.elapsed().as_secs_f64(),
        args.json.display()
    );
    if failed > 0 {
        return Err(format!("{failed} gpu-check rows failed").into());
    }
    if skipped > 0 && !args.allow_no_gpu {
        return Err(
            "no CUDA device: the GPU rows were skipped (--allow-no-gpu accepts that)".into(),
        );
    }
    Ok(())
}

/// The child run with `GGML_CUDA_FORCE_LEGACY_POOL=1`: the pool self-test and a timed
/// transcription, as one JSON line on stdout.
fn child_pool(args: &GpuCheckArgs, audio: &[f32]) -> Result<(), Box<dyn Error>> {
    let selftest = cuda::pool_selftest(0, args.pool_ops, 0x5eed);
    let threads = cuda::pool_selftest_threads(0, args.pool_threads, args.pool_ops, 0x7eed);
    let rtf = match load(&args.model, true) {
        Ok(ctx) => {
            let (_, time) = best_of(3, || transcribe(&ctx, audio, 1));
            Some(
                time.as_secs_f64()
                    / (audio.len() as f64 / f64::from(whisper_steady::audio::WHISPER_SAMPLE_RATE)),
            )
        }
        Err(_) => None,
    };
    let line = json!({
        "selftest": selftest.as_ref().map(selftest_json).map_err(|e| e.clone()),
        "selftest_threads": threads.as_ref().map(selftest_json).map_err(|e| e.clone()),
        "rtf": rtf,
    });
    println!("{CHILD_MARK}{line}");
    Ok(())
}

/// Runs the legacy-pool child; returns its rows (`pool-legacy`, `pool-legacy-threads`) and its
/// real-time factor.
fn legacy_child(args: &GpuCheckArgs) -> (Vec<Row>, Option<f64>) {
    const NAMES: [&str; 2] = ["pool-legacy", "pool-legacy-threads"];
    let failed = |why: String| -> Vec<Row> {
        NAMES
            .iter()
            .map(|name| Row::new(name, false, why.clone(), Value::Null))
            .collect()
    };
    let dir = args
        .json
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let err_path = dir.join("gpu-check-legacy-child.log");
    let run = || -> Result<(String, String), Box<dyn Error>> {
        let stderr = fs::File::create(&err_path)?;
        let out = Command::new(std::env::current_exe()?)
            .args(["gpu-check", "--child-pool", "--model"])
            .arg(&args.model)
            .arg("--audio")
            .arg(&args.audio)
            .arg("--pool-ops")
            .arg(args.pool_ops.to_string())
            .arg("--pool-threads")
            .arg(args.pool_threads.to_string())
            .env("GGML_CUDA_FORCE_LEGACY_POOL", "1")
            .env("GGML_NO_BACKTRACE", "1")
            .stderr(stderr)
            .output()?;
        if !out.status.success() {
            return Err(format!("child exited with {}", out.status).into());
        }
        Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            fs::read_to_string(&err_path).unwrap_or_default(),
        ))
    };
    let (stdout, stderr) = match run() {
        Ok(v) => v,
        Err(e) => return (failed(e.to_string()), None),
    };
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(CHILD_MARK)) else {
        return (failed("the child printed no report".into()), None);
    };
    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    let logged =
        stderr.contains("Forcing legacy CUDA memory pool due to GGML_CUDA_FORCE_LEGACY_POOL");
    let rows = NAMES
        .iter()
        .zip(["selftest", "selftest_threads"])
        .map(|(name, key)| {
            let test = &v[key]["Ok"];
            if test.is_null() {
                return Row::new(
                    name,
                    false,
                    format!("self-test could not run: {}", v[key]["Err"]),
                    v[key].clone(),
                );
            }
            let legacy = test["vmm"].as_bool() == Some(false);
            Row::new(
                name,
                test["passed"].as_bool() == Some(true) && legacy && logged,
                format!(
                    "GGML_CUDA_FORCE_LEGACY_POOL=1: legacy pool {}; log line: {}; {}",
                    if legacy { "chosen" } else { "NOT chosen" },
                    if logged { "printed" } else { "MISSING" },
                    selftest_detail(test)
                ),
                json!({"selftest": test, "log_line_printed": logged}),
            )
        })
        .collect();
    (rows, v["rtf"].as_f64())
}

fn pool_row(name: &'static str, result: Result<PoolSelftest, String>, want_vmm: bool) -> Row {
    match result {
        Err(e) => Row::new(
            name,
            false,
            format!("self-test could not run: {e}"),
            Value::Null,
        ),
        Ok(r) => {
            let data = selftest_json(&r);
            Row::new(
                name,
                r.passed && r.vmm == want_vmm,
                selftest_detail(&data),
                data,
            )
        }
    }
}

/// One line for a self-test report (as JSON, the form the legacy child sends it in).
fn selftest_detail(t: &Value) -> String {
    let mb = |key: &str| t[key].as_u64().unwrap_or(0) as f64 / 1e6;
    let vmm = t["vmm"].as_bool() == Some(true);
    let bound = if vmm {
        format!(
            "reserved {:.1} MB of a {:.1} MB bound, base after drain: {}; ",
            mb("bytes_reserved"),
            mb("reserved_bound"),
            t["base_after_drain"]
        )
    } else {
        format!("reserved {:.1} MB; ", mb("bytes_reserved"))
    };
    format!(
        "{} pool, {} threads: {} ops, max {} live blocks, {} out-of-order frees, {:.0} MB \
         verified, {} mismatches, {} overlaps, {} rejected, {} B in use and {} B waiting after; \
         {bound}trim released {:.1} MB (driver free {:.1} -> {:.1} MB), allocation after trim: {}; {}",
        if vmm { "VMM" } else { "legacy" },
        t["threads"],
        t["operations"],
        t["max_live_blocks"],
        t["out_of_order_frees"],
        mb("bytes_verified"),
        t["pattern_mismatches"],
        t["overlaps"],
        t["rejected_frees"],
        t["bytes_in_use_after"],
        t["bytes_waiting_after"],
        mb("trim_released"),
        mb("driver_free_before_trim"),
        mb("driver_free_after_trim"),
        t["alloc_after_trim"],
        t["message"].as_str().unwrap_or("")
    )
}

fn selftest_json(r: &PoolSelftest) -> Value {
    json!({
        "vmm": r.vmm, "threads": r.threads, "operations": r.operations,
        "max_live_blocks": r.max_live_blocks,
        "blocks_verified": r.blocks_verified, "bytes_verified": r.bytes_verified,
        "pattern_mismatches": r.pattern_mismatches, "overlaps": r.overlaps,
        "out_of_order_frees": r.out_of_order_frees, "rejected_frees": r.rejected_frees,
        "peak_bytes_in_use": r.peak_bytes_in_use, "bytes_reserved": r.bytes_reserved,
        "reserved_bound": r.reserved_bound, "bytes_in_use_after": r.bytes_in_use_after,
        "bytes_waiting_after": r.bytes_waiting_after, "base_after_drain": r.base_after_drain,
        "trim_released": r.trim_released, "driver_free_before_trim": r.driver_free_before_trim,
        "driver_free_after_trim": r.driver_free_after_trim,
        "alloc_after_trim": r.alloc_after_trim, "elapsed_us": r.elapsed_us,
        "passed": r.passed, "message": r.message,
    })
}

fn stats_json(s: &cuda::PoolStats) -> Value {
    json!({
        "vmm_pools": s.vmm_pools, "legacy_pools": s.legacy_pools,
        "bytes_reserved": s.bytes_reserved, "bytes_in_use": s.bytes_in_use,
        "peak_bytes_in_use": s.peak_bytes_in_use, "out_of_order_frees": s.out_of_order_frees,
        "bytes_waiting_reclaim": s.bytes_waiting_reclaim, "rejected_frees": s.rejected_frees,
        "rejected_unknown_frees": s.rejected_unknown_frees,
        "rejected_size_mismatch_frees": s.rejected_size_mismatch_frees,
        "rejected_double_frees": s.rejected_double_frees,
    })
}

/// The request of every recognizer row: English, decoding at temperature 0.
fn options() -> RecognizeOptions {
    let mut o = RecognizeOptions::new().language("en");
    o.temperature = Some(0.0);
    o
}

/// 4 worker states serve `args.requests` requests submitted at once (`recognizer-4x50`); then
/// a trim of the idle pools (`recognizer-trim`).
fn recognizer_rows(
    args: &GpuCheckArgs,
    audio: &[f32],
    on_gpu: bool,
) -> Result<Vec<Row>, Box<dyn Error>> {
    let mut config = RecognizerConfig::new(&args.model);
    config.use_gpu = on_gpu;
    config.fallback_to_cpu = false;
    config.workers = 4;
    config.threads_per_worker = if on_gpu { 1 } else { 2 };
    config.queue_limit = args.requests.max(1);
    // These rows read this process's pools: the workers are threads here.
    config.isolation = Isolation::Thread;
    let recognizer = Recognizer::new(config)?;
    let expected = recognizer.transcribe(audio.to_vec(), options())?.text;
    let started = Instant::now();
    let mut reserved_after_first = None;
    let mut results = Vec::new();
    let batch = 10.min(args.requests.max(1));
    let mut submitted = 0;
    while submitted < args.requests {
        let n = batch.min(args.requests - submitted);
        let tickets: Vec<_> = (0..n)
            .map(|_| recognizer.submit(audio.to_vec(), options()))
            .collect::<Result<_, _>>()?;
        for t in tickets {
            results.push(t.wait());
        }
        submitted += n;
        reserved_after_first.get_or_insert(cuda::pool_stats().bytes_reserved);
    }
    let elapsed = started.elapsed();
    let stats = cuda::pool_stats();
    let correct = results
        .iter()
        .filter(|r| matches!(r, Ok(t) if t.text == expected))
        .count();
    let right_backend = results
        .iter()
        .filter(
            |r| matches!(r, Ok(t) if t.backend == if on_gpu { Backend::Gpu } else { Backend::Cpu }),
        )
        .count();
    let first = reserved_after_first.unwrap_or(0);
    let bounded = stats.bytes_reserved <= first + first / 4 + (16 << 20);
    let clean = stats.out_of_order_frees == 0 && stats.rejected_frees == 0;
    let ok = correct == args.requests
        && right_backend == args.requests
        && (!on_gpu || (bounded && clean));
    let trim = trim_row(&recognizer, audio, &expected, options(), on_gpu)?;
    recognizer.shutdown();
    let load = Row::new(
        "recognizer-4x50",
        ok,
        format!(
            "{} on 4 states: {correct}/{} correct, {:.1} requests/min; pool reserved {:.1} MB \
             after the first {batch}, {:.1} MB at the end, {} out-of-order frees",
            if on_gpu { "CUDA" } else { "CPU" },
            args.requests,
            args.requests as f64 / elapsed.as_secs_f64() * 60.0,
            first as f64 / 1e6,
            stats.bytes_reserved as f64 / 1e6,
            stats.out_of_order_frees
        ),
        json!({"requests": args.requests, "correct": correct, "right_backend": right_backend,
               "seconds": elapsed.as_secs_f64(), "reserved_after_first_batch": first,
               "pool_stats": stats_json(&stats), "expected": expected}),
    );
    Ok(vec![load, trim])
}

/// `trim-under-load`: 4 workers transcribe in a loop for `trim_seconds` while another thread
/// trims the pools every 50 ms: no request fails and every text has the CPU's words (a trim
/// waits for the pools' streams before it unmaps, patch 0014).
fn trim_under_load_row(
    args: &GpuCheckArgs,
    audio: &[f32],
    on_gpu: bool,
    cpu_text: &str,
) -> Result<Row, Box<dyn Error>> {
    let mut config = RecognizerConfig::new(&args.model);
    config.use_gpu = on_gpu;
    config.fallback_to_cpu = false;
    config.workers = 4;
    config.threads_per_worker = if on_gpu { 1 } else { 2 };
    config.queue_limit = 8;
    // The trims must reach the pools the workers use: threads of this process.
    config.isolation = Isolation::Thread;
    let recognizer = Recognizer::new(config)?;
    let until = Instant::now() + Duration::from_secs_f64(args.trim_seconds);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut requests, mut errors, mut differing, mut trims, mut released) = (0, 0, 0, 0u64, 0u64);
    let mut first_difference = None;
    std::thread::scope(|scope| {
        let trimmer = scope.spawn(|| {
            let (mut n, mut bytes) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                bytes += recognizer.trim().bytes_released;
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (n, bytes)
        });
        while Instant::now() < until {
            let tickets: Vec<_> = (0..4)
                .map(|_| recognizer.submit(audio.to_vec(), options()))
                .collect();
            for t in tickets {
                requests += 1;
                match t
                    .map_err(|e| e.to_string())
                    .and_then(|t| t.wait().map_err(|e| e.to_string()))
                {
                    Ok(t) if words(&t.text) == words(cpu_text) => {}
                    Ok(t) => {
                        differing += 1;
                        first_difference.get_or_insert(t.text);
                    }
                    Err(e) => {
                        errors += 1;
                        first_difference.get_or_insert(format!("<error: {e}>"));
                    }
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (trims, released) = trimmer.join().unwrap_or((0, 0));
    });
    recognizer.shutdown();
    let ok = errors == 0 && differing == 0 && requests > 0;
    Ok(Row::new(
        "trim-under-load",
        ok,
        format!(
            "{} 4 workers, {requests} requests in {:.0} s with a trim every 50 ms ({trims} trims,              {:.1} MB released): {errors} errors, {differing} texts not the CPU's words{}",
            if on_gpu { "CUDA" } else { "CPU" },
            args.trim_seconds,
            released as f64 / 1e6,
            first_difference.map_or(String::new(), |t| format!(" (first: {t:?})"))
        ),
        json!({"requests": requests, "errors": errors, "differing": differing, "trims": trims,
               "bytes_released": released, "seconds": args.trim_seconds}),
    ))
}

/// The first lane in a worker process, `workers` workers (and as many on the CPU lane beside a
/// GPU), 2 threads each.
fn isolated_config(args: &GpuCheckArgs, on_gpu: bool, workers: usize) -> RecognizerConfig {
    let mut config = RecognizerConfig::new(&args.model);
    config.use_gpu = on_gpu;
    config.fallback_to_cpu = on_gpu;
    config.workers = workers;
    config.cpu_workers = workers;
    config.threads_per_worker = 2;
    config.isolation = Isolation::Process;
    config
}

/// `pool-oom`: the GPU lane's worker process with its pools capped at 1 MiB
/// (`WHISPER_STEADY_CUDA_POOL_MAX_BYTES`, patch 0020), below what a request needs: the pool
/// cannot grow, makes room, still cannot, and its worker aborts; the request is answered from
/// the CPU lane and this process lives. GPU only (the CPU has no pools to cap).
fn pool_oom_row(args: &GpuCheckArgs, audio: &[f32], on_gpu: bool) -> Result<Row, Box<dyn Error>> {
    if !on_gpu {
        return Ok(Row::skip("pool-oom", "no CUDA device: no pool to limit"));
    }
    if !cfg!(unix) {
        return Ok(Row::skip("pool-oom", "worker processes need a Unix system"));
    }
    let mut config = isolated_config(args, true, 1);
    let mut program = whisper_steady::recognizer::WorkerProgram::current_exe()?;
    program.env.push((
        "WHISPER_STEADY_CUDA_POOL_MAX_BYTES".into(),
        (1u64 << 20).to_string().into(),
    ));
    config.worker_program = Some(program);
    let recognizer = Recognizer::new(config)?;
    let result = recognizer.transcribe(audio.to_vec(), options());
    let health = recognizer.health();
    let process = health.lanes[0].process.clone();
    recognizer.shutdown();
    let (text, on_cpu) = match &result {
        Ok(t) => (t.text.clone(), t.retried_on_cpu),
        Err(e) => (format!("<error: {e}>"), false),
    };
    let right = wer(&args.reference, &text) <= 0.1;
    let deaths = process.as_ref().map_or(0, |p| p.deaths);
    let cause = process.and_then(|p| p.last_cause).unwrap_or_default();
    let ok = right && on_cpu && deaths >= 1;
    Ok(Row::new(
        "pool-oom",
        ok,
        format!(
            "GPU worker with its pools capped at 1 MiB: answered {} (retried on the CPU:              {on_cpu}), worker deaths {deaths}, this process alive; cause: {cause}",
            if right { "right" } else { "wrong" },
        ),
        json!({"text": text, "retried_on_cpu": on_cpu, "deaths": deaths, "cause": cause}),
    ))
}

/// `worker-kill`: the GPU lane in a worker process (the CPU lane without a GPU), 4 requests
/// running, the worker process killed with SIGKILL: every request is answered right (from the
/// CPU lane, or the same lane once its process is back), and the process is started again.
fn worker_kill_row(
    args: &GpuCheckArgs,
    audio: &[f32],
    on_gpu: bool,
) -> Result<Row, Box<dyn Error>> {
    if !cfg!(unix) {
        return Ok(Row::skip(
            "worker-kill",
            "worker processes need a Unix system",
        ));
    }
    let recognizer = Recognizer::new(isolated_config(args, on_gpu, 2))?;
    let expected = recognizer.transcribe(audio.to_vec(), options())?.text;
    let pid = |r: &Recognizer| r.health().lanes[0].process.as_ref().and_then(|p| p.pid);
    let victim = pid(&recognizer).ok_or("the first lane has no worker process")?;
    let tickets: Vec<_> = (0..4)
        .map(|_| recognizer.submit(audio.to_vec(), options()))
        .collect::<Result<_, _>>()?;
    // Killed while its requests run.
    let until = Instant::now() + Duration::from_secs(30);
    while recognizer.health().lanes[0].busy == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(if on_gpu { 20 } else { 300 }));
    // SAFETY: kill(2) on the child process this recognizer started.
    #[cfg(unix)]
    let killed = unsafe { libc::kill(victim as i32, libc::SIGKILL) } == 0;
    #[cfg(not(unix))]
    let killed = false;
    let results: Vec<_> = tickets.into_iter().map(|t| t.wait()).collect();
    let correct = results
        .iter()
        .filter(|r| matches!(r, Ok(t) if t.text == expected))
        .count();
    let on_cpu = results
        .iter()
        .filter(|r| matches!(r, Ok(t) if t.retried_on_cpu))
        .count();
    let until = Instant::now() + Duration::from_secs(60);
    while pid(&recognizer).is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let health = recognizer.health();
    let process = health.lanes[0].process.clone().ok_or("no worker process")?;
    let after = recognizer.transcribe(audio.to_vec(), options());
    let after_right = matches!(&after, Ok(t) if t.text == expected);
    // The worker's pools are in the health report, and a trim reaches them.
    let reserved = recognizer.health().pool.bytes_reserved;
    let released = recognizer.trim().bytes_released;
    recognizer.shutdown();
    let ok = killed
        && correct == 4
        && process.deaths == 1
        && process.pid.is_some_and(|p| p != victim)
        && after_right
        && (!on_gpu || (reserved > 0 && released > 0));
    Ok(Row::new(
        "worker-kill",
        ok,
        format!(
            "{} lane's worker process {victim} killed with 4 requests in flight: {correct}/4              answered right ({on_cpu} from the CPU lane), deaths {}, restarted as {:?}; next              request right: {after_right}; its pools {:.1} MB reserved, a trim released {:.1} MB",
            if on_gpu { "GPU" } else { "CPU" },
            process.deaths,
            process.pid,
            reserved as f64 / 1e6,
            released as f64 / 1e6
        ),
        json!({"killed": killed, "correct": correct, "retried_on_cpu": on_cpu,
               "deaths": process.deaths, "last_cause": process.last_cause,
               "next_request_right": after_right, "worker_pool_reserved": reserved,
               "trim_released": released}),
    ))
}

/// `Recognizer::trim` on idle workers: on CUDA the pools wait for their streams and give memory
/// back (the driver's free memory goes up; not refused for CUDA graphs, no pool failed) and the
/// next request is still right; on the CPU a no-op that says so.
fn trim_row(
    recognizer: &Recognizer,
    audio: &[f32],
    expected: &str,
    options: RecognizeOptions,
    on_gpu: bool,
) -> Result<Row, Box<dyn Error>> {
    let device_free = || {
        devices()
            .into_iter()
            .find(|d| d.kind == "gpu")
            .map_or(0, |d| d.memory_free)
    };
    let (reserved_before, free_before) = (cuda::pool_stats().bytes_reserved, device_free());
    let report = recognizer.trim();
    let (reserved_after, free_after) = (cuda::pool_stats().bytes_reserved, device_free());
    let next = recognizer.transcribe(audio.to_vec(), options)?;
    let right = next.text == expected;
    let ok = if on_gpu {
        report.cuda_available
            && !report.refused_cuda_graphs
            && report.pools_failed == 0
            && report.pools_waited > 0
            && report.bytes_released > 0
            && reserved_after + report.bytes_released == reserved_before
            && free_after > free_before
            && right
    } else {
        !report.cuda_available && report.bytes_released == 0 && right
    };
    Ok(Row::new(
        "recognizer-trim",
        ok,
        if on_gpu {
            format!(
                "trim of {} idle pools ({} waited for their streams, {} failed, refused for CUDA \
                 graphs: {}) released {:.1} MB (reserved {:.1} -> {:.1} MB, driver free {:.1} -> \
                 {:.1} MB); next request right: {right}",
                report.pools,
                report.pools_waited,
                report.pools_failed,
                report.refused_cuda_graphs,
                report.bytes_released as f64 / 1e6,
                reserved_before as f64 / 1e6,
                reserved_after as f64 / 1e6,
                free_before as f64 / 1e6,
                free_after as f64 / 1e6
            )
        } else {
            format!(
                "CPU build: trim is a no-op that says so (cuda_available false); next request \
                 right: {right}"
            )
        },
        json!({"cuda_available": report.cuda_available, "pools": report.pools,
               "refused_cuda_graphs": report.refused_cuda_graphs,
               "pools_waited": report.pools_waited, "pools_failed": report.pools_failed,
               "bytes_released": report.bytes_released, "reserved_before": reserved_before,
               "reserved_after": reserved_after, "driver_free_before": free_before,
               "driver_free_after": free_after, "next_request_right": right}),
    ))
}

fn load(model: &Path, use_gpu: bool) -> Result<Arc<WhisperContext>, Box<dyn Error>> {
    let mut params = WhisperContextParameters::default();
    params.use_gpu(use_gpu);
    Ok(Arc::new(WhisperContext::new_with_params(model, params)?))
}

fn transcribe(ctx: &WhisperContext, audio: &[f32], threads: i32) -> String {
    let run = || -> Result<String, Box<dyn Error>> {
        let mut state = ctx.create_state()?;
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(threads);
        p.set_language(Some("en"));
        p.set_temperature_inc(0.0);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_special(false);
        state.full(p, audio)?;
        let mut text = String::new();
        for s in state.as_iter() {
            text.push_str(&s.to_str_lossy()?);
        }
        Ok(text)
    };
    run().unwrap_or_else(|e| format!("<error: {e}>"))
}

/// Runs `f` `n` times; the last result and the fastest time.
fn best_of(n: usize, mut f: impl FnMut() -> String) -> (String, Duration) {
    let mut best = Duration::MAX;
    let mut out = String::new();
    for _ in 0..n {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (out, best)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn print_table(rows: &[Row]) {
    println!("{:<20} {:<6} detail", "check", "status");
    for r in rows {
        println!("{:<20} {:<6} {}", r.name, r.status, r.detail);
    }
}
