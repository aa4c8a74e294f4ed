//! A request body that must keep arriving: [`PacedBody`] fails when the whole body takes longer
//! than `server.body_timeout_seconds`, or when, after a short grace, it arrives at less than
//! `server.min_body_bytes_per_second` on average. A client that sends one byte now and then
//! can no longer hold a connection, a buffer and a handler for as long as it likes.
//!
//! Written here rather than taken from tower-http: its `RequestBodyTimeoutLayer` resets its
//! timer on every frame (a stall detector, which a slow drip never trips), and no maintained
//! crate offers a total deadline with a minimum rate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The time a body has before the minimum rate applies: the first bytes of an upload may
/// wait for a slow start (TCP, a phone waking its radio).
pub const RATE_GRACE: Duration = Duration::from_secs(5);

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The whole body's deadline, from the request's head.
    pub total: Duration,
    /// The least average rate, in bytes per second, once [`RATE_GRACE`] has passed (0: none).
    pub min_bytes_per_second: u64,
}

/// Why a body was cut off; axum's body extractors answer it with a 400 and this message.
#[derive(Debug)]
pub struct TooSlow(String);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TooSlow {}

/// `inner`, held to a [`Pace`] from the moment it is made (when the head has arrived).
pub struct PacedBody<B> {
    inner: B,
    pace: Pace,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
}

impl<B> PacedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, pace: Pace) -> Self {
        let started = Instant::now();
        PacedBody {
            inner,
            pace,
            started,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(started + pace.total)),
        }
    }

    /// The moment the body falls behind: its total deadline, or when the bytes received so far
    /// stop covering the minimum rate.
    fn due(&self) -> Instant {
        let deadline = self.started + self.pace.total;
        match self.pace.min_bytes_per_second {
            0 => deadline,
            rate => {
                let covered = Duration::from_secs_f64(self.received as f64 / rate as f64);
                deadline.min(self.started + RATE_GRACE + covered)
            }
        }
    }

    fn too_slow(&self) -> TooSlow {
        let elapsed = self.started.elapsed();
        TooSlow(if elapsed >= self.pace.total {
            format!(
                "the request body took more than {} s (server.body_timeout_seconds)",
                self.pace.total.as_secs_f64()
            )
        } else {
            format!(
                "the request body arrives too slowly: {} bytes in {:.1} s, under {} bytes per \
                 second (server.min_body_bytes_per_second)",
                self.received,
                elapsed.as_secs_f64(),
                self.pace.min_bytes_per_second
            )
        })
    }
}

impl<B> Body for PacedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let due = this.due();
                if Instant::now() >= due {
                    return Poll::Ready(Some(Err(Box::new(this.too_slow()))));
                }
                this.timer.as_mut().reset(due);
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(this.too_slow())))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields `chunks` of zeros, each after its delay.
    fn dripping(
        chunks: Vec<(u64, usize)>,
    ) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
            let (millis, len) = rest.next()?;
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Some((Ok(Frame::data(Bytes::from(vec![0u8; len]))), rest))
        });
        http_body_util::StreamBody::new(Box::pin(stream))
    }

    async fn read(chunks: Vec<(u64, usize)>, pace: Pace) -> Result<usize, String> {
        PacedBody::new(dripping(chunks), pace)
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .map_err(|e| e.to_string())
    }

    const PACE: Pace = Pace {
        total: Duration::from_secs(60),
        min_bytes_per_second: 1000,
    };

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_passes() {
        // 30 s at 2,000 bytes per second
        let chunks = vec![(100, 200); 300];
        assert_eq!(read(chunks, PACE).await, Ok(60_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_start_within_the_grace_passes() {
        let chunks = vec![(4_900, 10), (0, 20_000)];
        assert_eq!(read(chunks, PACE).await, Ok(20_010));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drip_is_cut_off_once_it_falls_under_the_rate() {
        // one 1 KB chunk every 50 s: behind from 6 s on (1 KB covers 1 s past the grace)
        let started = Instant::now();
        let e = read(vec![(0, 1_000), (50_000, 1_000), (50_000, 1_000)], PACE)
            .await
            .unwrap_err();
        assert!(e.contains("too slowly"), "{e}");
        assert_eq!(started.elapsed(), RATE_GRACE + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_whole_body_has_a_deadline_whatever_its_rate() {
        // fast enough at every moment, but 70 s in all
        let started = Instant::now();
        let e = read(vec![(1_000, 5_000); 70], PACE).await.unwrap_err();
        assert!(e.contains("more than 60 s"), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
