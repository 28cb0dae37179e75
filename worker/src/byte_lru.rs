//! An LRU cache bounded by the bytes of what it holds, not by its number of
//! entries: a workspace module is anything from a few bytes to megabytes,
//! so a count bounds nothing (4 096 sources of 16 MiB would be 64 GiB).

use std::borrow::Borrow;
use std::hash::Hash;

use lru::LruCache;

/// Bytes counted for an entry beyond its own weight: the key, the map slot
/// and the `Arc` header, roughly.
pub const ENTRY_OVERHEAD: usize = 128;

pub struct ByteLru<K: Hash + Eq, V> {
    entries: LruCache<K, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<K: Hash + Eq, V: Clone> ByteLru<K, V> {
    /// A cache that never holds more than `budget` bytes of weight (plus
    /// [`ENTRY_OVERHEAD`] per entry, counted in the budget too).
    pub fn new(budget: usize) -> Self {
        ByteLru {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// The value for `key`, now the most recently used.
    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(value, _)| value.clone())
    }

    /// Keeps `value` (of `weight` bytes) and evicts the least recently used
    /// entries until the total fits. A value larger than the whole budget
    /// is not kept: it would evict everything and then itself.
    pub fn put(&mut self, key: K, value: V, weight: usize) {
        let weight = weight.saturating_add(ENTRY_OVERHEAD);
        if weight > self.budget {
            if let Some((_, old)) = self.entries.pop(&key) {
                self.bytes -= old;
            }
            return;
        }
        if let Some((_, old)) = self.entries.put(key, (value, weight)) {
            self.bytes -= old;
        }
        self.bytes += weight;
        while self.bytes > self.budget {
            match self.entries.pop_lru() {
                Some((_, (_, evicted))) => self.bytes -= evicted,
                None => break,
            }
        }
    }

    /// Bytes held, overhead included; never over the budget.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_bytes_evicting_the_least_recently_used() {
        let mut cache: ByteLru<String, u32> = ByteLru::new(3 * (100 + ENTRY_OVERHEAD));
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.put(key.to_owned(), i as u32, 100);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a"), Some(0)); // "b" is now the oldest
        cache.put("d".to_owned(), 3, 100);
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("a"), Some(0));
        assert!(cache.bytes() <= 3 * (100 + ENTRY_OVERHEAD));

        // One entry the size of two evicts the two least recently used
        // ("c", then "d") and keeps "a", read last.
        cache.put("big".to_owned(), 9, 2 * 100 + ENTRY_OVERHEAD);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("c"), None);
        assert_eq!(cache.get("d"), None);
        assert_eq!(cache.get("a"), Some(0));
        assert_eq!(cache.get("big"), Some(9));
        assert!(cache.bytes() <= 3 * (100 + ENTRY_OVERHEAD));
    }

    #[test]
    fn a_value_over_the_budget_is_not_kept_and_replacing_recounts() {
        let mut cache: ByteLru<&str, u32> = ByteLru::new(1000);
        cache.put("k", 1, 10);
        cache.put("k", 2, 20);
        assert_eq!(cache.bytes(), 20 + ENTRY_OVERHEAD);
        cache.put("k", 3, 5000);
        assert_eq!(cache.get("k"), None);
        assert_eq!(cache.bytes(), 0);
        assert!(cache.is_empty());
    }
}
