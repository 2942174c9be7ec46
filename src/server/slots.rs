//! An event loop's table of connections: a slot per client, reused after it closes, and a
//! generation per slot in the token epoll hands back, so an event still queued for a client
//! closed earlier in the same batch never reaches its successor. What is in a slot, and what
//! an event means for it, is the loop's business.

use mio::Token;

pub struct Slots<T> {
    items: Vec<Option<T>>,
    generations: Vec<u32>,
    free: Vec<usize>,
}

impl<T> Slots<T> {
    pub fn new() -> Self {
        Slots {
            items: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
        }
    }

    /// A free slot and its token, to register a socket with before it has a connection;
    /// `fill` it or `release` it next.
    pub fn vacant(&mut self) -> (usize, Token) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.items.push(None);
            self.generations.push(0);
            self.items.len() - 1
        });
        (slot, self.token(slot))
    }

    pub fn fill(&mut self, slot: usize, item: T) {
        self.items[slot] = Some(item);
    }

    /// Gives back a slot from `vacant` that was never filled.
    pub fn release(&mut self, slot: usize) {
        self.free.push(slot);
    }

    /// Empties a slot; its token is dead from now on.
    pub fn remove(&mut self, slot: usize) -> Option<T> {
        let item = self.items.get_mut(slot)?.take()?;
        // 30 bits: bits 62 and 63 of a token stay clear (turned.rs and the loop's own).
        self.generations[slot] = (self.generations[slot] + 1) & 0x3FFF_FFFF;
        self.free.push(slot);
        Some(item)
    }

    /// The slot's index in the low 32 bits, its generation above (below the loop's own
    /// tokens, which sit at the top of the range).
    pub fn token(&self, slot: usize) -> Token {
        Token(((self.generations[slot] as usize) << 32) | slot)
    }

    /// The slot a token names, if that client is still there.
    pub fn slot_of(&self, t: Token) -> Option<usize> {
        let slot = t.0 & 0xFFFF_FFFF;
        let generation = (t.0 >> 32) as u32;
        (self.generations.get(slot) == Some(&generation) && self.items[slot].is_some())
            .then_some(slot)
    }

    /// One past the highest slot: walk `0..end()` with `get` when the walk may close some.
    pub fn end(&self) -> usize {
        self.items.len()
    }

    /// How many slots hold a client now (a walk: for the stop, not the hot path).
    pub fn occupied(&self) -> usize {
        self.items.iter().filter(|i| i.is_some()).count()
    }

    pub fn get(&self, slot: usize) -> Option<&T> {
        self.items.get(slot)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.items.get_mut(slot)?.as_mut()
    }
}
