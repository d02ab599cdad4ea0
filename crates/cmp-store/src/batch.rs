//! Batching of concurrent calls: what callers hand over while a batch is being served waits
//! for the next one, which one task serves whole. A lone caller is served at once (a batch of
//! one); under load, batches grow by themselves, and statements, transactions and commits are
//! paid once per batch instead of once per call.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Calls waiting for the next batch (items `T`, answers `A`).
pub struct Batcher<T, A> {
    /// Most items one batch takes.
    max: usize,
    /// Items whose caller stopped waiting are left out of the batch (see
    /// [`Batcher::leaving_out_abandoned`]).
    leave_out_abandoned: bool,
    queue: Mutex<Queue<T, A>>,
}

struct Queue<T, A> {
    waiting: Vec<(T, oneshot::Sender<A>)>,
    /// A task is serving batches.
    serving: bool,
}

/// The batch ended without an answer for this call (the serving task panicked, or answered
/// fewer items than it took).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch ended without an answer")]
pub struct NoAnswer;

impl<T: Send + 'static, A: Send + 'static> Batcher<T, A> {
    pub fn new(max: usize) -> Self {
        let queue = Mutex::new(Queue { waiting: Vec::new(), serving: false });
        Batcher { max: max.max(1), leave_out_abandoned: false, queue }
    }

    /// Leaves out of each batch the items whose caller no longer waits for the answer (a
    /// request whose client went away): for work that is only worth doing for the caller.
    pub fn leaving_out_abandoned(mut self) -> Self {
        self.leave_out_abandoned = true;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T, A>> {
        // The queue is consistent at every step, so a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `item` to the next batch and waits for its answer. When no task serves batches,
    /// one is started with `serve`, which answers a batch with one answer per item, in order.
    pub async fn submit<S, F>(self: &Arc<Self>, item: T, serve: S) -> Result<A, NoAnswer>
    where
        S: FnMut(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Vec<A>> + Send,
    {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push((item, reply));
            !std::mem::replace(&mut queue.serving, true)
        };
        if start {
            // A task of its own: a caller that goes away must not strand the others.
            let batcher = self.clone();
            tokio::spawn(async move { batcher.serve(serve).await });
        }
        answer.await.map_err(|_| NoAnswer)
    }

    /// Serves batches until no call waits.
    async fn serve<S, F>(&self, mut serve: S)
    where
        S: FnMut(Vec<T>) -> F,
        F: Future<Output = Vec<A>>,
    {
        let mut serving = Serving { batcher: self, done: false };
        loop {
            let (items, replies): (Vec<T>, Vec<_>) = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.serving = false;
                    serving.done = true;
                    return;
                }
                if self.leave_out_abandoned {
                    queue.waiting.retain(|(_, reply)| !reply.is_closed());
                }
                let n = queue.waiting.len().min(self.max);
                queue.waiting.drain(..n).unzip()
            };
            if items.is_empty() {
                continue;
            }
            let answers = serve(items).await;
            // A caller that went away learns nothing.
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
    }
}

/// If the serving task ends early (a panic): lets the next caller start another, and answers
/// the waiting calls with [`NoAnswer`] (their senders dropped).
struct Serving<'a, T, A> {
    batcher: &'a Batcher<T, A>,
    done: bool,
}

impl<T, A> Drop for Serving<'_, T, A> {
    fn drop(&mut self) {
        if !self.done {
            let mut queue = self.batcher.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.serving = false;
            queue.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_are_served_in_batches_each_with_its_own_answer() {
        let batcher = Arc::new(Batcher::<u32, (u32, usize)>::new(8));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (batcher, sizes) = (batcher.clone(), sizes.clone());
            calls.spawn(async move {
                let serve = move |items: Vec<u32>| {
                    let sizes = sizes.clone();
                    async move {
                        sizes.lock().unwrap().push(items.len());
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        items.iter().map(|i| (i * 2, items.len())).collect()
                    }
                };
                (i, batcher.submit(i, serve).await)
            });
        }
        while let Some(done) = calls.join_next().await {
            let (i, answer) = done.unwrap();
            assert_eq!(answer.unwrap().0, i * 2);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 40, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
        assert!(sizes.len() < 40, "no call was batched with another: {sizes:?}");
    }

    #[tokio::test]
    async fn a_call_given_up_while_it_waits_is_left_out_of_the_batch() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(8).leaving_out_abandoned());
        let served = Arc::new(Mutex::new(Vec::<u32>::new()));
        let (open, opened) = oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(opened)));
        // The first batch waits for the gate; the serving function records what it is given.
        let serve = {
            let served = served.clone();
            move |items: Vec<u32>| {
                served.lock().unwrap().extend(&items);
                let gate = gate.clone();
                async move {
                    if let Some(opened) = gate.lock().await.take() {
                        let _ = opened.await;
                    }
                    items
                }
            }
        };
        let first = {
            let (batcher, serve) = (batcher.clone(), serve.clone());
            tokio::spawn(async move { batcher.submit(1, serve).await })
        };
        tokio::task::yield_now().await;
        // Queued behind that batch, then given up.
        let wait = std::time::Duration::from_millis(20);
        let given_up = tokio::time::timeout(wait, batcher.submit(2, serve.clone())).await;
        assert!(given_up.is_err());
        let third = {
            let (batcher, serve) = (batcher.clone(), serve.clone());
            tokio::spawn(async move { batcher.submit(3, serve).await })
        };
        tokio::task::yield_now().await;
        let _ = open.send(());
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(third.await.unwrap(), Ok(3));
        assert_eq!(*served.lock().unwrap(), [1, 3]);
    }

    #[tokio::test]
    async fn a_batch_that_answers_too_few_gives_the_rest_no_answer_and_the_next_call_is_served() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(8));
        let none = batcher.submit(1, |_items: Vec<u32>| async { Vec::new() }).await;
        assert_eq!(none, Err(NoAnswer));
        let some = batcher.submit(2, |items: Vec<u32>| async move { items }).await;
        assert_eq!(some, Ok(2));
    }
}
