//! [`Receipt`]: the answer to an append, and what wakes the writer thread.
//!
//! An append does not wake the writer thread. A blocking sender writes its
//! own batch once it is done with the profile ([`super::settle_now`]), so
//! waking the thread for it would cost a system call and a thread switch
//! per append for nothing: about a third of what the journal added to a
//! one-thread `cargo loadgen --engine numpool,journal --concurrency 1`. The
//! thread is woken instead when someone is about to wait on it: a receipt
//! awaited and still pending, or dropped unanswered (nobody waits, but the
//! records must still be written soon).
//!
//! A receipt that only [informs](Receipt::informing) holds up no reply: a
//! sender settling it writes what is queued if no one else is writing and
//! no write waits for a disk (`fsync = interval`), and does not wait. It is
//! still handed back to the sender rather than dropped where it was made,
//! under the profile's lock: dropped there, it woke the writer thread, and
//! on two cores the woken thread took a core from a sender (about a tenth
//! of a long batched run's time: `cargo loadgen --engine journal
//! --messages 64M`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::Thread;

use tokio::sync::oneshot;
pub(crate) use tokio::sync::oneshot::error::{RecvError, TryRecvError};

/// Resolves once the records it was given for are written (an error if the
/// journal failed: the change must not be acknowledged).
pub(crate) struct Receipt {
    answer: oneshot::Receiver<()>,
    /// The writer thread, woken (once) when this receipt is waited on.
    writer: Thread,
    woken: bool,
    answered: bool,
    /// No reply waits for these records (see [`Receipt::informing`]).
    informs: bool,
}

impl Receipt {
    pub(super) fn new(answer: oneshot::Receiver<()>, writer: Thread) -> Receipt {
        Receipt {
            answer,
            writer,
            woken: false,
            answered: false,
            informs: false,
        }
    }

    /// This receipt, marked as one no reply waits for: the records only
    /// inform (a reservation of daily counts without a cap), and must be
    /// written soon, not before the reply.
    pub(crate) fn informing(mut self) -> Receipt {
        self.informs = true;
        self
    }

    /// Whether no reply waits for this receipt.
    pub(crate) fn informs(&self) -> bool {
        self.informs
    }

    /// The answer if there is one, without waking the writer thread.
    pub(crate) fn try_recv(&mut self) -> Result<(), TryRecvError> {
        let answer = self.answer.try_recv();
        self.answered |= !matches!(answer, Err(TryRecvError::Empty));
        answer
    }

    /// Makes sure the writer thread will write what this receipt waits
    /// for: for a caller about to wait without writing it itself.
    pub(crate) fn wake_writer(&mut self) {
        if !self.woken {
            self.woken = true;
            self.writer.unpark();
        }
    }
}

impl Future for Receipt {
    type Output = Result<(), RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.answer).poll(cx) {
            Poll::Ready(answer) => {
                this.answered = true;
                Poll::Ready(answer)
            }
            Poll::Pending => {
                this.wake_writer();
                Poll::Pending
            }
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if !self.answered && matches!(self.try_recv(), Err(TryRecvError::Empty)) {
            self.wake_writer();
        }
    }
}
