//! Giving CUDA pool memory back: a trim asked for ([`Recognizer::trim`](super::Recognizer::trim))
//! or one after an idle period, counted and logged.

use std::sync::atomic::Ordering;

use super::Shared;

impl Shared {
    /// Runs a trim and counts it.
    pub(crate) fn trim(&self, idle: bool) -> crate::cuda::TrimReport {
        // This process's pools, and each worker process's (which trims its own).
        let report = self
            .lanes
            .iter()
            .filter_map(|lane| lane.process.as_ref()?.trim())
            .fold(crate::cuda::trim(), crate::cuda::TrimReport::combined);
        self.counters.trims.fetch_add(1, Ordering::Relaxed);
        if idle {
            self.counters.idle_trims.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .bytes_trimmed
            .fetch_add(report.bytes_released, Ordering::Relaxed);
        let kind = if idle { "idle" } else { "requested" };
        if report.refused_cuda_graphs {
            log::warn!(
                target: "whisper_steady::recognizer",
                "{kind} trim refused: this build uses CUDA graphs, which replay pool addresses \
                 (set GGML_CUDA_DISABLE_GRAPHS=1 to allow trims)"
            );
        }
        if report.pools_failed > 0 {
            log::warn!(
                target: "whisper_steady::recognizer",
                "{kind} trim: {} CUDA pools could not wait for their GPU work or give memory \
                 back (a CUDA error); they keep it",
                report.pools_failed
            );
        }
        if report.bytes_released > 0 {
            log::info!(
                target: "whisper_steady::recognizer",
                "{kind} trim: {} bytes of CUDA pool memory returned to the driver ({} pools, {} \
                 after waiting for their GPU work)",
                report.bytes_released,
                report.pools,
                report.pools_waited
            );
        }
        report
    }
}
