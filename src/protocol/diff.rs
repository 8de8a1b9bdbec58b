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
    // Compared as UTF-8 bytes, a machine word at a time where the texts agree, and cut back to
    // whole characters: a keystroke in a megabyte of text costs a pass over it at memory speed,
    // with no copy. A whole character in UTF-8 is a whole code point, so no surrogate pair is
    // ever cut in UTF-16 either.
    let (old_bytes, new_bytes) = (old.as_bytes(), new.as_bytes());
    let shortest = old_bytes.len().min(new_bytes.len());
    // The changed range ends at or after the caret, so the common suffix stops there.
    let suffix_cap = match caret {
        Some(caret) => (new.len() - byte_offset(new, caret)).min(shortest),
        None => shortest,
    };
    let mut suffix = common_suffix(old_bytes, new_bytes, suffix_cap);
    let mut prefix = common_prefix(old_bytes, new_bytes, shortest - suffix);
    while !old.is_char_boundary(prefix) {
        prefix -= 1;
    }
    while !old.is_char_boundary(old.len() - suffix) || !new.is_char_boundary(new.len() - suffix) {
        suffix -= 1;
    }
    Some(Splice {
        start: utf16_len(&old[..prefix]),
        delete: utf16_len(&old[prefix..old.len() - suffix]),
        insert: new[prefix..new.len() - suffix].to_string(),
    })
}

/// How many bytes at the start of `a` and `b` are equal, up to `cap`.
fn common_prefix(a: &[u8], b: &[u8], cap: usize) -> usize {
    const WORD: usize = 16;
    let (a, b) = (&a[..cap], &b[..cap]);
    let whole = a
        .chunks_exact(WORD)
        .zip(b.chunks_exact(WORD))
        .take_while(|(x, y)| x == y)
        .count()
        * WORD;
    whole
        + a[whole..]
            .iter()
            .zip(&b[whole..])
            .take_while(|(x, y)| x == y)
            .count()
}

/// How many bytes at the end of `a` and `b` are equal, up to `cap`.
fn common_suffix(a: &[u8], b: &[u8], cap: usize) -> usize {
    const WORD: usize = 16;
    let (a, b) = (&a[a.len() - cap..], &b[b.len() - cap..]);
    let whole = a
        .rchunks_exact(WORD)
        .zip(b.rchunks_exact(WORD))
        .take_while(|(x, y)| x == y)
        .count()
        * WORD;
    let (a, b) = (&a[..a.len() - whole], &b[..b.len() - whole]);
    whole
        + a.iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
}

/// Length of `s` in UTF-16 code units; ASCII, the usual case, is counted by its bytes.
pub fn utf16_len(s: &str) -> u32 {
    if s.is_ascii() {
        s.len() as u32
    } else {
        s.chars().map(|c| c.len_utf16() as u32).sum()
    }
}

/// The byte offset in `s` of the UTF-16 offset `units` (the end of `s` past it; the start of a
/// character cut in half by it).
pub fn byte_offset(s: &str, units: u32) -> usize {
    let units = units as usize;
    if s.as_bytes()[..units.min(s.len())].is_ascii() {
        return units.min(s.len());
    }
    let mut counted = 0;
    for (at, c) in s.char_indices() {
        if counted >= units {
            return at;
        }
        counted += c.len_utf16();
        if counted > units {
            return at;
        }
    }
    s.len()
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
