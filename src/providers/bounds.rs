//! Bounds on what a provider's answer can make the gateway hold: every index, count and size
//! a provider sends is hostile until checked here, at the parse site. (The size of a whole
//! answer is bounded where it is read, `upstream::MAX_RESPONSE_BYTES`.)
//!
//! A stream names its content blocks (tool calls, text, thinking) by index, and the parsers keep
//! a little state per index. Growing a vector to an index the provider chose let one chunk with
//! index 2^40 abort the whole process on a failed allocation; [`BlockSlots`] refuses such an
//! index with an error that names it instead.

/// The most content blocks one answer may have. Real answers have a handful; parallel tool
/// calls reach dozens.
pub const MAX_BLOCKS: usize = 1024;

/// Per-block state of a stream, by the block index the provider sends.
#[derive(Debug)]
pub struct BlockSlots<T> {
    slots: Vec<T>,
}

impl<T> Default for BlockSlots<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T: Clone + Default> BlockSlots<T> {
    /// Stores `value` for block `index`, refusing an index beyond [`MAX_BLOCKS`].
    pub fn set(&mut self, index: u64, value: T) -> Result<(), String> {
        let i = checked_index(index)?;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, T::default());
        }
        self.slots[i] = value;
        Ok(())
    }

    /// The state of block `index`, if one was stored.
    pub fn get(&self, index: u64) -> Option<&T> {
        usize::try_from(index).ok().and_then(|i| self.slots.get(i))
    }

    /// How many slots are in use (the highest index stored, plus one).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no block was stored.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// `index` as a position, if it is below [`MAX_BLOCKS`].
pub fn checked_index(index: u64) -> Result<usize, String> {
    usize::try_from(index)
        .ok()
        .filter(|&i| i < MAX_BLOCKS)
        .ok_or_else(|| {
            format!(
                "the provider sent content block index {index}; an answer may have at most \
                 {MAX_BLOCKS} blocks"
            )
        })
}

/// A token count from a provider, saturating at `u32::MAX` rather than wrapping (`as u32` turned
/// 2^32 + 5 tokens into 5).
pub fn token_count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_indexes_are_refused_without_allocating() {
        let mut slots = BlockSlots::<String>::default();
        slots.set(3, "call_3".into()).unwrap();
        assert_eq!(slots.get(3).map(String::as_str), Some("call_3"));
        assert_eq!(slots.len(), 4);
        let e = slots.set(1 << 40, "x".into()).unwrap_err();
        assert!(e.contains("1099511627776") && e.contains("1024"), "{e}");
        assert!(slots.set(MAX_BLOCKS as u64, "x".into()).is_err());
        assert!(slots.get(u64::MAX).is_none());
        assert_eq!(slots.len(), 4);
    }

    #[test]
    fn token_counts_saturate() {
        assert_eq!(token_count(5), 5);
        assert_eq!(token_count((1 << 32) + 5), u32::MAX);
    }
}
