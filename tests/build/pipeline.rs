//! The patch pipeline of the build script (`build/patches.rs`), run against the pinned tree.

#[allow(dead_code)]
#[path = "../../build/patches.rs"]
mod patches;

use std::fs;
use std::path::{Path, PathBuf};

use patches::{HashTable, Outcome, PipelineError, Series};

const PRISTINE: &str = env!("WHISPER_STEADY_PRISTINE_TREE");
const PATCHED: &str = env!("WHISPER_STEADY_PATCHED_TREE");

fn patch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("patches")
}

fn load(exclude: &[&str]) -> (Series, HashTable) {
    let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
    let series = Series::load(&patch_dir(), &exclude).expect("series loads");
    let table = HashTable::load(&patch_dir().join("upstream.sha256")).expect("table loads");
    (series, table)
}

const CUDA_TU: &str = "ggml/src/ggml-cuda/ggml-cuda.cu";

#[test]
fn the_series_applies_to_the_pinned_tree() {
    let (series, table) = load(&[]);
    let listed = fs::read_to_string(patch_dir().join("series"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert!(listed > 0);
    assert_eq!(series.patches.len(), listed);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("whisper.cpp");
    let outcome = patches::prepare_tree(Path::new(PRISTINE), &dest, &series, &table).unwrap();
    assert_eq!(outcome, Outcome::Applied(series.patches.len()));
    for header in ["vmm-ledger.h", "pool-policy.h", "pool-stats.h"] {
        assert!(
            dest.join("ggml/src/ggml-cuda").join(header).is_file(),
            "{header}"
        );
    }
    let tu = fs::read_to_string(dest.join(CUDA_TU)).unwrap();
    assert!(!tu.contains("GGML_ASSERT(ptr == (void *) ((char *)(pool_addr) + pool_used))"));
    assert!(tu.contains("ggml_cuda_vmm_ledger ledger;"));
    // The tree this very build compiled is the same as the one produced here.
    for file in series.touched_upstream_files().keys() {
        // Compared as bytes, reported by name: a whole source file in a failure message hides
        // everything else.
        assert!(
            fs::read(dest.join(file)).unwrap() == fs::read(Path::new(PATCHED).join(file)).unwrap(),
            "{file} differs from the tree this build compiled (rebuild after changing the series)"
        );
    }
    // The pristine tree was only read.
    let pristine_tu = fs::read_to_string(Path::new(PRISTINE).join(CUDA_TU)).unwrap();
    assert!(pristine_tu.contains("GGML_ASSERT(ptr == (void *) ((char *)(pool_addr) + pool_used))"));
}

#[test]
fn the_hash_table_lists_exactly_the_files_the_series_touches() {
    let (series, table) = load(&[]);
    let touched: Vec<String> = series.touched_upstream_files().into_keys().collect();
    let listed: Vec<String> = table.entries.keys().cloned().collect();
    assert_eq!(touched, listed);
    for (file, hash) in &table.entries {
        assert_eq!(
            &patches::sha256_file(&Path::new(PRISTINE).join(file)).unwrap(),
            hash
        );
    }
}

#[test]
fn a_tampered_upstream_file_stops_the_build_with_the_drift_error() {
    let (series, table) = load(&[]);
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("tampered");
    patches::copy_tree(Path::new(PRISTINE), &tampered).unwrap();
    let mut text = fs::read(tampered.join(CUDA_TU)).unwrap();
    text.extend_from_slice(b"\n// local edit\n");
    fs::write(tampered.join(CUDA_TU), &text).unwrap();
    let found = patches::sha256_file(&tampered.join(CUDA_TU)).unwrap();

    let dest = dir.path().join("out");
    let err = patches::prepare_tree(&tampered, &dest, &series, &table).unwrap_err();
    match &err {
        PipelineError::Drift {
            file,
            expected,
            found: f,
            patch,
        } => {
            assert_eq!(file, CUDA_TU);
            assert_eq!(expected, &table.entries[CUDA_TU]);
            assert_eq!(f, &found);
            assert_eq!(patch, "0001-cuda-vmm-pool-out-of-order-frees.patch");
        }
        other => panic!("expected a drift error, got {other:?}"),
    }
    let message = err.to_string();
    for needle in [
        CUDA_TU,
        found.as_str(),
        &table.entries[CUDA_TU],
        "0001-",
        "scripts/refresh-upstream-hashes.sh",
    ] {
        assert!(
            message.contains(needle),
            "message lacks {needle}: {message}"
        );
    }
    assert!(!dest.exists(), "nothing is copied or patched after a drift");
}

#[test]
fn a_second_run_does_not_reapply() {
    let (series, table) = load(&[]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("whisper.cpp");
    let pristine = Path::new(PRISTINE);
    assert_eq!(
        patches::prepare_tree(pristine, &dest, &series, &table).unwrap(),
        Outcome::Applied(series.patches.len())
    );
    let first = fs::read(dest.join(CUDA_TU)).unwrap();
    let modified = fs::metadata(dest.join(CUDA_TU))
        .unwrap()
        .modified()
        .unwrap();

    assert_eq!(
        patches::prepare_tree(pristine, &dest, &series, &table).unwrap(),
        Outcome::AlreadyPatched
    );
    assert_eq!(fs::read(dest.join(CUDA_TU)).unwrap(), first);
    assert_eq!(
        fs::metadata(dest.join(CUDA_TU))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // Applying the diffs to the already-patched file again must fail rather than double-apply,
    // which is why the stamp matters.
    assert!(patches::apply_series(&dest, &series).is_err());
}

#[test]
fn a_changed_series_rebuilds_the_tree_from_pristine() {
    let (series, table) = load(&[]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("whisper.cpp");
    let pristine = Path::new(PRISTINE);
    patches::prepare_tree(pristine, &dest, &series, &table).unwrap();

    // 0007 (the device self-test), 0008 (the legacy pool's lock), 0009 (trim), 0010 (rejected
    // frees by kind), 0011 (the self-test's later checks), 0014 (the trim's wait), 0015 (the
    // review's fixes) and 0020 (growth that makes room) build on 0003's statistics, so all nine
    // go.
    let excluded = [
        "0003", "0007", "0008", "0009", "0010", "0011", "0014", "0015", "0020",
    ];
    let (fewer, table) = load(&excluded);
    assert_eq!(fewer.patches.len(), series.patches.len() - excluded.len());
    assert_eq!(
        patches::prepare_tree(pristine, &dest, &fewer, &table).unwrap(),
        Outcome::Applied(fewer.patches.len())
    );
    assert!(!dest.join("ggml/src/ggml-cuda/pool-stats.h").exists());
    assert!(dest.join("ggml/src/ggml-cuda/pool-policy.h").exists());
}

#[test]
fn every_patch_has_a_header_saying_what_why_and_how_it_is_tested() {
    let listing = fs::read_to_string(patch_dir().join("series")).unwrap();
    for name in listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let text = fs::read_to_string(patch_dir().join(name)).unwrap();
        let header = &text[..text.find("\n--- ").expect("a diff")];
        for section in ["What:", "Why:", "Tested by:"] {
            assert!(
                header.contains(section),
                "{name} lacks `{section}` in its header"
            );
        }
    }
}

#[test]
fn a_source_tampered_after_patching_is_caught_before_the_stamp() {
    let (series, table) = load(&[]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    patches::copy_tree(Path::new(PRISTINE), &source).unwrap();
    let dest = dir.path().join("whisper.cpp");
    assert_eq!(
        patches::prepare_tree(&source, &dest, &series, &table).unwrap(),
        Outcome::Applied(series.patches.len())
    );

    fs::write(source.join("ggml/include/ggml-cuda.h"), "// replaced\n").unwrap();
    let err = patches::prepare_tree(&source, &dest, &series, &table).unwrap_err();
    assert!(
        matches!(&err, PipelineError::Drift { file, .. } if file == "ggml/include/ggml-cuda.h"),
        "{err:?}"
    );
}
