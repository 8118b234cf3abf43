//! An unbounded queue of boxed items, for a call's inner queues (the writer's commands,
//! the workers' reports).
//!
//! Why boxed: tokio's channel allocates its slots 32 at a time, each the size of an item,
//! and the first block when the channel is made. A call holds its queues for its whole
//! life, so with items of ~100 bytes each queue cost ~3 KiB on every call, idle or not
//! (SPEC §9: memory per parked call). Boxed, a block is 32 pointers; an item costs one
//! small allocation while it is queued.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendError;

/// The sending half ([`mpsc::UnboundedSender`], items boxed).
#[derive(Debug)]
pub(super) struct Sender<T>(mpsc::UnboundedSender<Box<T>>);

/// The receiving half ([`mpsc::UnboundedReceiver`], items boxed).
#[derive(Debug)]
pub(super) struct Receiver<T>(mpsc::UnboundedReceiver<Box<T>>);

/// A new queue.
pub(super) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Sender(tx), Receiver(rx))
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Sender<T> {
    /// Queues `item`; gives it back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.0.send(Box::new(item)).map_err(|e| SendError(*e.0))
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        self.0.recv().await.map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_come_back_when_closed() {
        let (tx, mut rx) = channel();
        tx.send(1).unwrap();
        tx.clone().send(2).unwrap();
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        drop(rx);
        assert_eq!(tx.send(3).unwrap_err().0, 3);
    }
}
