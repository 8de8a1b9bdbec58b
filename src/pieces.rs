//! Where to cut a long text, or a long list of rendered blocks, into pieces that an edit
//! disturbs only where it happens.
//!
//! The page shows the preview and the caret layer as pieces it replaces one by one (see
//! `client::blocks`). Cut at fixed sizes, an edit that adds a byte would move every later cut
//! and so change every later piece; cut at every line or block, a pasted million empty lines
//! would be a million pieces. So a piece ends after a line (or block) that the content itself
//! marks (a blank line, or one whose hash says so, one in eight), and only once the piece holds
//! at least [`MIN_PIECE_BYTES`]; at [`MAX_PIECE_BYTES`] it ends at the next line whatever the
//! content. An edit moves the cuts around it, and the cuts after it fall back into step within
//! a few pieces. Pieces are at most one per [`MIN_PIECE_BYTES`] of text.

/// A piece ends only once it holds this many bytes…
pub const MIN_PIECE_BYTES: usize = 1024;
/// …and at the first line past this many, whatever the content.
pub const MAX_PIECE_BYTES: usize = 16 * 1024;

/// Whether a piece that holds `size` bytes once `unit` (a line with its newline, or a block's
/// HTML) is in it ends there, with pieces of at least `min` bytes.
pub fn ends_after(unit: &str, size: usize, min: usize) -> bool {
    size >= MAX_PIECE_BYTES.max(min) || (size >= min && marks_a_cut(unit))
}

/// A blank line, or one unit in eight chosen by its content (FNV-1a).
fn marks_a_cut(unit: &str) -> bool {
    if unit == "\n" {
        return true;
    }
    let hash = unit.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % 8 == 0
}

/// `blocks` gathered into pieces (see the module's documentation), each their HTML joined.
pub fn gather(blocks: Vec<String>) -> Vec<String> {
    gather_with(blocks, MIN_PIECE_BYTES)
}

fn gather_with(blocks: Vec<String>, min: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    for block in blocks {
        piece.push_str(&block);
        if ends_after(&block, piece.len(), min) {
            pieces.push(std::mem::take(&mut piece));
        }
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraphs(count: usize, from: usize) -> Vec<String> {
        (from..from + count)
            .map(|i| format!("<p>paragraph {i} {}</p>\n", "x".repeat(i % 97)))
            .collect()
    }

    #[test]
    fn many_tiny_blocks_make_few_pieces_and_the_pieces_are_the_blocks() {
        let tiny = vec!["<h1></h1>\n".to_string(); 100_000];
        let joined = tiny.concat();
        let pieces = gather(tiny);
        assert!(
            pieces.len() <= joined.len() / MIN_PIECE_BYTES + 1,
            "{}",
            pieces.len()
        );
        assert_eq!(pieces.concat(), joined);
        assert_eq!(gather(Vec::new()), Vec::<String>::new());
    }

    #[test]
    fn an_edit_changes_the_pieces_around_it_only() {
        let before = paragraphs(2_000, 0);
        let mut after = before.clone();
        after.insert(1_000, "<p>one more</p>\n".into());
        after[600] = "<p>edited</p>\n".into();
        let (before, after) = (gather(before), gather(after));
        let unchanged_before = before.iter().filter(|p| after.contains(p)).count();
        assert!(before.len() > 20, "{}", before.len());
        assert!(
            unchanged_before + 6 >= before.len(),
            "{unchanged_before} of {}",
            before.len()
        );
    }

    #[test]
    fn a_long_run_without_marks_is_cut_at_the_maximum() {
        let pieces = gather_with(vec!["y".repeat(100); 1_000], 1);
        assert!(pieces.iter().all(|p| p.len() <= MAX_PIECE_BYTES + 100));
    }
}
