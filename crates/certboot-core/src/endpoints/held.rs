//! The connections the endpoints server holds, oldest first: waiting for their request (and
//! evictable by a newer one) or being answered.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// A connection's slot: while waiting, dropping its sender closes it.
struct Slot {
    id: u64,
    evict: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    slots: VecDeque<Slot>,
}

/// The table, shared by the accept loop and the connections' tasks; `open` mirrors its length.
#[derive(Clone)]
pub(super) struct Held {
    capacity: usize,
    table: Arc<Mutex<Table>>,
    open: Arc<AtomicUsize>,
}

/// Whether a new connection gets a slot.
pub(super) enum Admission {
    /// Its id and its eviction signal.
    Admitted {
        id: u64,
        evicted: oneshot::Receiver<()>,
    },
    /// Every slot is being answered: close it.
    Full,
}

impl Held {
    pub(super) fn new(capacity: usize, open: Arc<AtomicUsize>) -> Held {
        Held {
            capacity: capacity.max(1),
            table: Arc::default(),
            open,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for a new connection: when all slots are taken, the longest-waiting one is
    /// closed; when none is waiting, the new one is refused.
    pub(super) fn admit(&self) -> Admission {
        let mut table = self.lock();
        if table.slots.len() >= self.capacity {
            match table.slots.iter().position(|slot| slot.evict.is_some()) {
                Some(oldest) => drop(table.slots.remove(oldest)),
                None => return Admission::Full,
            }
        }
        let id = table.next_id;
        table.next_id = table.next_id.wrapping_add(1);
        let (evict, evicted) = oneshot::channel();
        table.slots.push_back(Slot {
            id,
            evict: Some(evict),
        });
        self.open.store(table.slots.len(), Ordering::SeqCst);
        Admission::Admitted { id, evicted }
    }

    /// The connection has its request: it is answered, no longer evictable.
    pub(super) fn answering(&self, id: u64) {
        if let Some(slot) = self.lock().slots.iter_mut().find(|slot| slot.id == id) {
            slot.evict = None;
        }
    }

    /// The connection is closed: its slot is free.
    pub(super) fn leave(&self, id: u64) {
        let mut table = self.lock();
        table.slots.retain(|slot| slot.id != id);
        self.open.store(table.slots.len(), Ordering::SeqCst);
    }
}
