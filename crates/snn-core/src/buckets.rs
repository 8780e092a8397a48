//! A stable counting sort into compressed rows (CSR) with buffers reused from call to call: the
//! grouping of events by neuron, column or block that the clocked engine and its adjoint do
//! once per sample or population (count per key, prefix sum, fill).

use std::ops::Range;

/// Items grouped by a key in `0..n`, keeping their input order within a key; the offsets of the
/// groups (`starts`, `n + 1` of them) and the fill cursors are kept for the next call.
///
/// ```
/// use snn_core::Buckets;
///
/// let mut b = Buckets::default();
/// let mut out = Vec::new();
/// b.sort(3, [(2, 'a'), (0, 'b'), (2, 'c')].into_iter(), &mut out);
/// assert_eq!(out, ['b', 'a', 'c']);
/// assert_eq!(b.starts(), &[0, 1, 1, 3]);
/// assert_eq!(b.range(2), 1..3);
/// assert_eq!(&out[b.range(1)], &[]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    /// `starts[k]..starts[k + 1]` index key `k`'s items.
    starts: Vec<u32>,
    /// Fill cursor per key.
    fill: Vec<u32>,
}

impl Buckets {
    /// Sets `out` to `items`' values grouped by key (`0..n`), each key's in the order of `items`
    /// (which is walked twice: once to count, once to fill). Panics if a key is `n` or more.
    /// The offsets are `u32`: the items must number fewer than `u32::MAX` (the callers group
    /// one sample's spikes or events, far fewer).
    pub fn sort<T: Copy + Default>(
        &mut self,
        n: usize,
        items: impl Iterator<Item = (usize, T)> + Clone,
        out: &mut Vec<T>,
    ) {
        self.starts.clear();
        self.starts.resize(n + 1, 0);
        for (k, _) in items.clone() {
            self.starts[k + 1] += 1;
        }
        for k in 0..n {
            self.starts[k + 1] += self.starts[k];
        }
        self.fill.clear();
        self.fill.extend_from_slice(&self.starts[..n]);
        out.clear();
        out.resize(self.starts[n] as usize, T::default());
        for (k, v) in items {
            let at = &mut self.fill[k];
            out[*at as usize] = v;
            *at += 1;
        }
    }

    /// The group offsets of the last [`Buckets::sort`]: key `k`'s items are
    /// `starts()[k]..starts()[k + 1]` (empty before the first sort).
    pub fn starts(&self) -> &[u32] {
        &self.starts
    }

    /// The index range of key `k`'s items. Panics if `k` is not below the last sort's `n`.
    #[inline]
    pub fn range(&self, k: usize) -> Range<usize> {
        self.starts[k] as usize..self.starts[k + 1] as usize
    }

    /// Bytes held by the buffers (capacity).
    pub fn heap_bytes(&self) -> usize {
        4 * (self.starts.capacity() + self.fill.capacity())
    }
}
