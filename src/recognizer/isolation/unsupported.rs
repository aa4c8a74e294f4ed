//! Worker processes where they cannot run (not Unix): `Process` isolation is refused at start
//! (the lane is left out, or the recognizer does not start, with this reason), and the worker
//! hook does nothing.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::{Reply, WorkerConfig, WorkerProcessHealth, WorkerProgram};
use crate::recognizer::RecognizeOptions;

const WHY: &str = "worker processes need a Unix system: use isolation Thread here";

/// Does nothing here: there are no worker processes to serve.
pub fn run_worker_if_child() {}

/// Never made here: [`Supervisor::start`] refuses.
pub(crate) enum Supervisor {}

/// Never made here.
pub(crate) enum Connection {}

impl Supervisor {
    pub(crate) fn start(
        _label: String,
        _program: WorkerProgram,
        _config: WorkerConfig,
    ) -> Result<Arc<Self>, String> {
        Err(WHY.to_owned())
    }

    pub(crate) fn connection(
        &self,
        _wait: bool,
        _give_up: &dyn Fn() -> bool,
    ) -> Result<Arc<Connection>, String> {
        match *self {}
    }

    pub(crate) fn trim(&self) -> Option<crate::cuda::TrimReport> {
        match *self {}
    }

    pub(crate) fn pool_stats(&self) -> Option<crate::cuda::PoolStats> {
        match *self {}
    }

    pub(crate) fn close(&self) {
        match *self {}
    }

    pub(crate) fn health(&self) -> WorkerProcessHealth {
        match *self {}
    }

    pub(crate) fn degrades(_health: &WorkerProcessHealth) -> bool {
        false
    }
}

impl Connection {
    pub(crate) fn submit(
        &self,
        _options: RecognizeOptions,
        _audio: &[f32],
        _stream: bool,
        _abort_inside: bool,
    ) -> Result<(u64, Receiver<Reply>), String> {
        match *self {}
    }

    pub(crate) fn cancel(&self, _id: u64) {
        match *self {}
    }
}
