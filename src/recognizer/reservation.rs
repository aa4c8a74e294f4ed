//! A place in the queue taken before the request exists: a server holds one while it decodes
//! an upload, so that decoding happens only for requests the queue can take, and a full queue
//! refuses before any decoding work is done.

use super::{
    lock, Admission, DecodedSegment, RecognizeError, RecognizeOptions, Recognizer, Ticket,
};

/// A place in the recognizer's queue, held from [`Recognizer::reserve`] until it is used by
/// [`submit`](Self::submit) (or [`submit_streaming`](Self::submit_streaming)) or dropped.
/// Held places count against `queue_limit` like queued requests.
#[must_use = "a reservation holds a place in the queue until it is used or dropped"]
pub struct Reservation {
    recognizer: Recognizer,
    /// Whether the place is still this reservation's (a successful submit hands it to the
    /// request).
    held: bool,
}

impl Reservation {
    pub(super) fn new(recognizer: Recognizer) -> Self {
        Reservation {
            recognizer,
            held: true,
        }
    }

    /// [`Recognizer::submit`] into the held place: never refused for a full queue. Invalid
    /// audio or options, or a shutdown, still fail it (and the place is given back).
    pub fn submit(
        mut self,
        audio: Vec<f32>,
        options: RecognizeOptions,
    ) -> Result<Ticket, RecognizeError> {
        let ticket = self
            .recognizer
            .submit_job(audio, options, None, Admission::Reserved)?;
        self.held = false;
        Ok(ticket)
    }

    /// [`Recognizer::submit_streaming`] into the held place.
    pub fn submit_streaming(
        mut self,
        audio: Vec<f32>,
        options: RecognizeOptions,
        on_segment: impl FnMut(DecodedSegment) + Send + 'static,
    ) -> Result<Ticket, RecognizeError> {
        let emitter = super::stream::Emitter::new(Box::new(on_segment));
        let segments = Some(std::sync::Arc::new(std::sync::Mutex::new(emitter)));
        let ticket = self
            .recognizer
            .submit_job(audio, options, segments, Admission::Reserved)?;
        self.held = false;
        Ok(ticket)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held {
            let mut queues = lock(&self.recognizer.shared().queues);
            queues.reserved = queues.reserved.saturating_sub(1);
        }
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("held", &self.held)
            .finish()
    }
}
