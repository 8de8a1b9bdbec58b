//! One edit in a text field, recovered from the text before and after it.
//!
//! Browsers report edits to a `<textarea>` in many shapes (typing, deletion, paste, cut, IME
//! composition, drag and drop, the browser's own undo). Rather than interpret each one, the
//! binding compares the field's new value with the text it last knew, which is always equal to
//! the shared text, and turns the difference into a single splice. Any edit a browser makes in
//! one event touches one contiguous range, so one splice is also the minimal operation, and
//! whatever the field becomes, the shared text becomes exactly that.
//!
//! Offsets are UTF-16 code units, like the browser's and like the document's. A splice never
//! cuts a surrogate pair in half: the strings it carries must be valid UTF-8.

/// Replace `delete` code units at `start` with `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub start: u32,
    pub delete: u32,
    pub insert: String,
}

/// The splice that turns `old` into `new`, or `None` when they are equal.
///
/// `caret` is where the caret stands in `new` after the edit (the field's `selectionEnd`), when
/// known. It settles ambiguous cases: typing `a` after the first `a` of `aa` changes the text
/// exactly as typing it before would, and only the caret tells which one happened, which
/// matters for where collaborators' concurrent edits and carets end up.
pub fn splice(old: &str, new: &str, caret: Option<u32>) -> Option<Splice> {
    if old == new {
        return None;
    }
    let old: Vec<u16> = old.encode_utf16().collect();
    let new: Vec<u16> = new.encode_utf16().collect();
    let shortest = old.len().min(new.len());

    // The changed range ends at or after the caret, so the common suffix stops there.
    let suffix_cap = match caret {
        Some(caret) => new.len().saturating_sub(caret as usize).min(shortest),
        None => shortest,
    };
    let mut suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(suffix_cap)
        .take_while(|(a, b)| a == b)
        .count();
    let mut prefix = old
        .iter()
        .zip(new.iter())
        .take(shortest - suffix)
        .take_while(|(a, b)| a == b)
        .count();

    if prefix > 0 && is_high_surrogate(old[prefix - 1]) {
        prefix -= 1;
    }
    if suffix > 0 && is_low_surrogate(old[old.len() - suffix]) {
        suffix -= 1;
    }

    let inserted = &new[prefix..new.len() - suffix];
    Some(Splice {
        start: prefix as u32,
        delete: (old.len() - suffix - prefix) as u32,
        insert: String::from_utf16(inserted).expect("splice bounds never split a surrogate pair"),
    })
}

fn is_high_surrogate(unit: u16) -> bool {
    (0xD800..0xDC00).contains(&unit)
}

fn is_low_surrogate(unit: u16) -> bool {
    (0xDC00..0xE000).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(old: &str, s: &Splice) -> String {
        let units: Vec<u16> = old.encode_utf16().collect();
        let start = s.start as usize;
        let mut out = String::from_utf16(&units[..start]).unwrap();
        out.push_str(&s.insert);
        out.push_str(&String::from_utf16(&units[start + s.delete as usize..]).unwrap());
        out
    }

    #[test]
    fn equal_texts_need_no_splice() {
        assert_eq!(splice("same", "same", None), None);
    }

    #[test]
    fn typing_deleting_and_replacing() {
        assert_eq!(
            splice("helo", "hello", Some(4)),
            Some(Splice {
                start: 3,
                delete: 0,
                insert: "l".into()
            })
        );
        assert_eq!(
            splice("hello", "hllo", Some(1)),
            Some(Splice {
                start: 1,
                delete: 1,
                insert: "".into()
            })
        );
        assert_eq!(
            splice("one two three", "one 2 three", Some(5)),
            Some(Splice {
                start: 4,
                delete: 3,
                insert: "2".into()
            })
        );
    }

    #[test]
    fn the_caret_decides_between_equal_readings() {
        // "aa" -> "aaa": typed at 0, 1 or 2; the caret after the edit says which.
        assert_eq!(splice("aa", "aaa", Some(1)).unwrap().start, 0);
        assert_eq!(splice("aa", "aaa", Some(2)).unwrap().start, 1);
        assert_eq!(splice("aa", "aaa", Some(3)).unwrap().start, 2);
        // Backspace at 1 and at 2 of "aa".
        assert_eq!(splice("aa", "a", Some(0)).unwrap().start, 0);
        assert_eq!(splice("aa", "a", Some(1)).unwrap().start, 1);
    }

    #[test]
    fn offsets_are_utf16_and_pairs_stay_whole() {
        // 😀 is two UTF-16 units.
        let s = splice("a😀b", "a😀xb", Some(4)).unwrap();
        assert_eq!(
            s,
            Splice {
                start: 3,
                delete: 0,
                insert: "x".into()
            }
        );
        // 😀 (D83D DE00) -> 😁 (D83D DE01) share a high surrogate; the splice takes both units.
        let s = splice("x😀y", "x😁y", Some(3)).unwrap();
        assert_eq!(
            s,
            Splice {
                start: 1,
                delete: 2,
                insert: "😁".into()
            }
        );
        // Shared low surrogate: 😀 (D83D DE00) -> 😀 (D83E DE00).
        let s = splice("x😀y", "x\u{1F600}\u{1F600}y", Some(5)).unwrap();
        assert_eq!(apply("x😀y", &s), "x😀😀y");
    }

    #[test]
    fn any_pair_of_texts_round_trips() {
        // A small deterministic generator keeps the test dependency-free and repeatable.
        let alphabet: Vec<char> = "ab é😀\n".chars().collect();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..5_000 {
            let old: String = (0..next(8))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let new: String = (0..next(8))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let caret = next(new.encode_utf16().count() + 1) as u32;
            for c in [None, Some(caret)] {
                if let Some(s) = splice(&old, &new, c) {
                    assert_eq!(
                        apply(&old, &s),
                        new,
                        "{old:?} -> {new:?} caret {c:?}: {s:?}"
                    );
                } else {
                    assert_eq!(old, new);
                }
            }
        }
    }
}
