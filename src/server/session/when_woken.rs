//! A future polled only when it was woken, for joining two futures in one task where one of
//! them is woken far more often than the other.

use futures_util::task::{waker_ref, ArcWake, AtomicWaker};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Polls a future only when a waker it was given fired (and on its first poll): joined with
/// another in one task, it is not polled again each time the other is woken.
pub struct WhenWoken<F> {
    inner: Pin<Box<F>>,
    flag: Arc<WokenFlag>,
}

struct WokenFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl ArcWake for WokenFlag {
    fn wake_by_ref(flag: &Arc<Self>) {
        flag.woken.store(true, Ordering::Release);
        flag.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    pub fn new(inner: F) -> Self {
        WhenWoken {
            inner: Box::pin(inner),
            flag: Arc::new(WokenFlag {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let flag = self.flag.clone();
        let waker = waker_ref(&flag);
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    #[tokio::test]
    async fn a_future_is_polled_again_only_when_its_own_waker_fired() {
        let polls = Cell::new(0);
        let waker = RefCell::new(None::<std::task::Waker>);
        let watched = WhenWoken::new(std::future::poll_fn(|cx| {
            polls.set(polls.get() + 1);
            *waker.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        let busy = async {
            // Wakes the shared task a hundred times, and the watched future once.
            for i in 0..100 {
                if i == 50 {
                    waker.borrow().as_ref().unwrap().wake_by_ref();
                }
                tokio::task::yield_now().await;
            }
        };
        futures_util::future::select(Box::pin(watched), Box::pin(busy)).await;
        assert_eq!(polls.get(), 2, "polled first, then once for its one wake");
    }
}
