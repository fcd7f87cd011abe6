//! `r:` and `R:` name earlier values by slot: PHP numbers every value it reads
//! (array keys and `R:` itself excepted) in one sequence, across all the
//! variables of a `php`-handler session. This module finds the value behind a
//! slot, and renumbers references when a session entry is replaced or removed.
//!
//! A `C:` payload counts as one slot here. PHP also numbers the values inside
//! it when its class's `unserialize()` calls `unserialize()` (as most do), and
//! only that class knows its payload's layout, so slots after a `C:` value are
//! treated as unknown.

use super::parse::MAX_DEPTH;
use super::value::{Key, Value};

/// The values of a tree (or of a session's entries) by slot.
pub(crate) struct Slots<'a> {
    /// Slot `n` is at index `n - 1`, up to and including the first `C:` value.
    values: Vec<&'a Value>,
}

impl<'a> Slots<'a> {
    pub(crate) fn new(roots: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut values = Vec::new();
        for root in roots {
            if !number(root, &mut values, true) {
                break;
            }
        }
        Self { values }
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    pub(crate) fn get(&self, slot: u64) -> Option<&'a Value> {
        let index = usize::try_from(slot.checked_sub(1)?).ok()?;
        self.values.get(index).copied()
    }
}

/// Appends `value`'s slots in PHP's order (depth first, parent before
/// children). With `stop_at_custom`, stops after a `C:` value and returns false.
/// A loop rather than recursion, so trees built by hand cannot exhaust the stack.
fn number<'a>(value: &'a Value, out: &mut Vec<&'a Value>, stop_at_custom: bool) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Ref(_) => continue,
            Value::Custom { .. } if stop_at_custom => {
                out.push(value);
                return false;
            }
            Value::Array(entries)
            | Value::Object {
                properties: entries,
                ..
            } => {
                out.push(value);
                pending.extend(entries.iter().rev().map(|(_, child)| child));
            }
            _ => out.push(value),
        }
    }
    true
}

pub(crate) fn has_references(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Ref(_) | Value::ObjectRef(_) => return true,
            Value::Array(entries)
            | Value::Object {
                properties: entries,
                ..
            } => {
                pending.extend(entries.iter().map(|(_, child)| child));
            }
            _ => {}
        }
    }
    false
}

/// Whether changing entry `index` can move a slot that a reference names:
/// references only point backwards, so only entries after it matter.
pub(crate) fn change_moves_references(entries: &[(Key, Value)], index: usize) -> bool {
    entries
        .iter()
        .skip(index + 1)
        .any(|(_, value)| has_references(value))
}

/// What goes into a rebuilt session, in order.
pub(crate) enum Planned {
    /// The old entry at this index, references renumbered.
    Kept(usize),
    /// A new value, taken as is: its own references, if any, are the caller's.
    Fresh(Value),
}

/// Rebuilds a session's entries so each reference names the same value as
/// before. A reference to a value that is gone (its entry replaced or
/// removed) gets a copy of that value in its place; later references to the
/// same value then name the copy, so sharing survives.
pub(crate) fn rebuild(old: &[(Key, Value)], plan: Vec<(Key, Planned)>) -> Vec<(Key, Value)> {
    let mut old_slots = Vec::new();
    let mut starts = Vec::with_capacity(old.len());
    for (_, value) in old {
        starts.push(old_slots.len() as u64);
        number(value, &mut old_slots, false);
    }
    let mut rebuild = Rebuild {
        map: vec![0; old_slots.len()],
        old_slots,
        next: 0,
    };
    plan.into_iter()
        .map(|(key, planned)| match planned {
            Planned::Kept(index) => {
                let mut cursor = starts.get(index).copied().unwrap_or_default();
                let value = match old.get(index) {
                    Some((_, value)) => rebuild.copy(value, &mut cursor, 0),
                    None => Value::Null,
                };
                (key, value)
            }
            Planned::Fresh(value) => {
                let mut slots = Vec::new();
                number(&value, &mut slots, false);
                rebuild.next += slots.len() as u64;
                (key, value)
            }
        })
        .collect()
}

struct Rebuild<'a> {
    old_slots: Vec<&'a Value>,
    /// Old slot `n` (at index `n - 1`) → its new slot, 0 while not placed.
    map: Vec<u64>,
    /// The last new slot handed out.
    next: u64,
}

impl<'a> Rebuild<'a> {
    fn placed(&self, old: u64) -> Option<u64> {
        let index = usize::try_from(old.checked_sub(1)?).ok()?;
        self.map.get(index).copied().filter(|&new| new != 0)
    }

    fn place(&mut self, old: u64, new: u64) {
        if let Some(slot) = old
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.map.get_mut(i))
        {
            *slot = new;
        }
    }

    /// Copies `value`, whose first slot in the old numbering is `cursor + 1`.
    fn copy(&mut self, value: &'a Value, cursor: &mut u64, depth: usize) -> Value {
        match value {
            Value::Ref(target) => match self.placed(*target) {
                Some(new) => Value::Ref(new),
                None => self
                    .materialize(*target, depth)
                    .unwrap_or(Value::Ref(*target)),
            },
            Value::ObjectRef(target) => {
                *cursor += 1;
                let own = *cursor;
                match self.placed(*target) {
                    Some(new) => {
                        self.next += 1;
                        self.place(own, self.next);
                        Value::ObjectRef(new)
                    }
                    None => {
                        let first = self.next + 1;
                        match self.materialize(*target, depth) {
                            Some(copy) => {
                                self.place(own, first);
                                copy
                            }
                            None => {
                                self.next += 1;
                                self.place(own, self.next);
                                Value::ObjectRef(*target)
                            }
                        }
                    }
                }
            }
            _ => {
                *cursor += 1;
                self.next += 1;
                // Placed before the children, which may refer back to it.
                self.place(*cursor, self.next);
                match value {
                    Value::Array(entries) => {
                        Value::Array(self.copy_entries(entries, cursor, depth))
                    }
                    Value::Object { class, properties } => Value::Object {
                        class: class.clone(),
                        properties: self.copy_entries(properties, cursor, depth),
                    },
                    other => other.clone(),
                }
            }
        }
    }

    fn copy_entries(
        &mut self,
        entries: &'a [(Key, Value)],
        cursor: &mut u64,
        depth: usize,
    ) -> Vec<(Key, Value)> {
        entries
            .iter()
            .map(|(key, child)| (key.clone(), self.copy(child, cursor, depth + 1)))
            .collect()
    }

    /// A copy of the old value in slot `target`, or `None` when that slot is
    /// unknown (or the copying runs too deep, as a cycle of removed values would).
    fn materialize(&mut self, target: u64, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let index = usize::try_from(target.checked_sub(1)?).ok()?;
        let value = *self.old_slots.get(index)?;
        let mut cursor = target - 1;
        Some(self.copy(value, &mut cursor, depth + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(id: i64) -> Value {
        Value::Object {
            class: b"stdClass".to_vec(),
            properties: vec![(Key::from("id"), Value::Int(id))],
        }
    }

    #[test]
    fn slots_number_parents_before_children_and_skip_php_references() {
        let tree = Value::Array(vec![
            (Key::Int(0), Value::Int(1)),
            (Key::Int(1), Value::Ref(2)),
            (Key::Int(2), object(3)),
            (Key::Int(3), Value::ObjectRef(4)),
        ]);
        let slots = Slots::new([&tree]);
        assert_eq!(slots.get(1), Some(&tree));
        assert_eq!(slots.get(2), Some(&Value::Int(1)));
        assert_eq!(slots.get(3), Some(&object(3)));
        assert_eq!(slots.get(4), Some(&Value::Int(3)));
        assert_eq!(slots.get(5), Some(&Value::ObjectRef(4)));
        assert_eq!(slots.get(0), None);
        assert_eq!(slots.get(6), None);
    }

    #[test]
    fn slots_after_a_custom_payload_are_unknown() {
        let custom = Value::Custom {
            class: b"X".to_vec(),
            data: b"N;".to_vec(),
        };
        let slots = Slots::new([&Value::Int(1), &custom, &Value::Int(2)]);
        assert_eq!(slots.get(2), Some(&custom));
        assert_eq!(slots.get(3), None);
    }

    #[test]
    fn removing_a_shared_object_moves_it_into_the_first_reference() {
        // first|O:..{id}second|r:1;third|r:1;  minus `first`
        let old = vec![
            (Key::from("first"), object(9)),
            (Key::from("second"), Value::ObjectRef(1)),
            (Key::from("third"), Value::ObjectRef(1)),
        ];
        let new = rebuild(
            &old,
            vec![
                (Key::from("second"), Planned::Kept(1)),
                (Key::from("third"), Planned::Kept(2)),
            ],
        );
        assert_eq!(
            new,
            vec![
                (Key::from("second"), object(9)),
                (Key::from("third"), Value::ObjectRef(1))
            ]
        );
    }

    #[test]
    fn replacing_an_entry_shifts_later_references() {
        // a|a:2:{..}b|i:5;c|R:4;  with a's two elements replaced by a scalar
        let old = vec![
            (
                Key::from("a"),
                Value::Array(vec![(Key::Int(0), Value::Null), (Key::Int(1), Value::Null)]),
            ),
            (Key::from("b"), Value::Int(5)),
            (Key::from("c"), Value::Ref(4)),
        ];
        let new = rebuild(
            &old,
            vec![
                (Key::from("a"), Planned::Fresh(Value::Null)),
                (Key::from("b"), Planned::Kept(1)),
                (Key::from("c"), Planned::Kept(2)),
            ],
        );
        assert_eq!(new[2].1, Value::Ref(2));
    }

    #[test]
    fn a_copied_cycle_points_at_its_copy() {
        // a|a:1:{s:4:"self";R:1;}b|R:1;  minus `a`
        let cyclic = Value::Array(vec![(Key::from("self"), Value::Ref(1))]);
        let old = vec![
            (Key::from("a"), cyclic.clone()),
            (Key::from("b"), Value::Ref(1)),
        ];
        let new = rebuild(&old, vec![(Key::from("b"), Planned::Kept(1))]);
        assert_eq!(new, vec![(Key::from("b"), cyclic)]);
    }
}
