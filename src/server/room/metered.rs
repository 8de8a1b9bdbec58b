//! Applies an update one block at a time, in an order its dependencies allow, and stops when
//! its time is up.
//!
//! Integrating one block can cost yrs a walk over the document. Splitting a long text item
//! converts a UTF-16 offset by scanning the text from its start, and YATA's conflict
//! resolution walks every item inserted concurrently at the same place. An update of many such
//! blocks costs their number times the document: 16,000 one-character inserts placed right to
//! left in a 1 MB paste (a 175 KB update) take yrs 6 seconds, and 12,000 items each placed
//! ahead of all the others take 17. No count of blocks tells such an update from a legitimate
//! reconnect, which may carry a hundred thousand cheap blocks, so the cost is measured as it
//! is paid: each block is applied on its own (inside the same transaction) and the clock is
//! read between blocks. One message thus costs at most its time limit plus one block, and one
//! block at most a walk over the document.
//!
//! A block goes in once what it names (its left and right origins) is in the document, or was
//! applied before it: the order is yrs's own, a depth-first walk from each client's blocks to
//! the clients they wait for. A block that waits for something neither the document nor the
//! update holds is handed back, with the rest of its client's blocks, as yrs would have set
//! them aside as pending. The delete set follows, range by range. Since a CRDT integrates the
//! same blocks to the same document in any order their dependencies allow, the document comes
//! out as if the update had been applied whole.
//!
//! What yrs sets aside is taken out of the document after each piece and handed back, merged:
//! left inside, yrs would merge and retry it with every later piece.
//!
//! Reads only updates [`super::shape::check`] accepted (text and deleted runs, bounded counts,
//! no client twice), after [`super::runs::join`].

use super::pending::{self, Waiting};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use yrs::block::{
    ClientID, BLOCK_GC_REF_NUMBER, BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
    BLOCK_SKIP_REF_NUMBER, ID,
};
use yrs::encoding::read::{Cursor, Error, Read};
use yrs::encoding::write::Write;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, TransactionMut, Update};

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_REF: u8 = 0b0001_1111;

/// How applying an update went.
#[derive(Debug)]
pub struct Metered {
    /// Every block and deletion was offered to yrs before the time ran out.
    pub finished: bool,
    /// What yrs could not integrate yet, taken out of the document.
    pub waiting: Option<Waiting>,
    /// yrs refused a piece: nothing after it was applied.
    pub error: Option<String>,
}

/// Why an update could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("undecodable update: {0}")]
    Undecodable(#[from] Error),
    #[error("update holds content other than text")]
    NotText,
}

/// Applies `update` (lib0 v1) to `txn` piece by piece until `deadline`.
pub fn apply(
    txn: &mut TransactionMut<'_>,
    update: &[u8],
    deadline: Instant,
) -> Result<Metered, MeterError> {
    let (mut sections, deletions_at) = read_sections(update)?;
    let mut run = Run {
        txn,
        deadline,
        waiting: Vec::new(),
    };
    // The document's clocks, and those the blocks applied here moved on.
    let clocks = run.txn.state_vector();
    let mut reached: HashMap<ClientID, u32> = HashMap::new();
    let have = |reached: &HashMap<ClientID, u32>, client: &ClientID| {
        reached
            .get(client)
            .copied()
            .unwrap_or_else(|| clocks.get(client))
    };
    let index: HashMap<ClientID, usize> = sections
        .iter()
        .enumerate()
        .map(|(i, s)| (s.client, i))
        .collect();
    let mut stack: Vec<usize> = Vec::new();
    let mut waits_on = HashSet::new();
    for first in 0..sections.len() {
        if sections[first].state != State::Open {
            continue;
        }
        stack.push(first);
        sections[first].state = State::OnStack;
        while let Some(&top) = stack.last() {
            let section = &sections[top];
            if section.left == 0 {
                sections[top].state = State::Done;
                stack.pop();
                continue;
            }
            let block = peek(update, section.at)?;
            let own = have(&reached, &section.client);
            let gap = match block.kind {
                // Dropped by yrs as it decodes: nothing to apply, nothing to wait for.
                Kind::Empty => false,
                // A range the client's clock has passed is nothing; one it has not, a gap.
                Kind::Skip => section.clock.saturating_add(block.len) > own,
                Kind::Gc | Kind::Item => section.clock > own,
            };
            // A client's blocks go in without gaps, as Yjs requires: one past the client's
            // clock waits for those before it. (yrs would integrate it around a hole, which it
            // then never encodes, so no one else would ever see it.)
            let missing = if gap {
                Some(ID::new(section.client, own))
            } else {
                block
                    .needs
                    .iter()
                    .flatten()
                    .find(|id| id.clock >= have(&reached, &id.client))
                    .copied()
            };
            match missing {
                None => {
                    let section = &mut sections[top];
                    let clock = section.clock;
                    section.at = block.end;
                    section.clock = clock.saturating_add(block.len);
                    section.left -= 1;
                    if matches!(block.kind, Kind::Gc | Kind::Item) {
                        let client = section.client;
                        let moved = own.max(section.clock);
                        reached.insert(client, moved);
                        let piece = one_block(client, clock, &update[block.start..block.end]);
                        match run.piece(&piece) {
                            Piece::Stop(stop) => return Ok(stop),
                            // yrs found it waits after all: as with a whole update, the
                            // client's later blocks wait with it.
                            Piece::SetAside => {
                                sections[top].state = State::Stuck;
                                stack.pop();
                            }
                            Piece::Applied => {}
                        }
                    }
                }
                Some(id) => match index.get(&id.client).copied() {
                    Some(other) if sections[other].state == State::Open => {
                        sections[other].state = State::OnStack;
                        stack.push(other);
                    }
                    // What it waits for is not in the update, or will not come before it.
                    _ => {
                        sections[top].state = State::Stuck;
                        waits_on.insert(id.client);
                        stack.pop();
                    }
                },
            }
        }
    }
    // Not offered to yrs: applied apart, it would integrate a client's later blocks around
    // the one that waits, where a whole update keeps them all waiting.
    if let Some(update) = stuck_blocks(update, &sections) {
        run.waiting.push(Waiting { update, waits_on });
    }
    for range in deletions(update, deletions_at)? {
        let (client, clock, len) = range?;
        if let Piece::Stop(stop) = run.piece(&one_deletion(client, clock, len)) {
            return Ok(stop);
        }
    }
    Ok(run.finish(true, None))
}

/// The transaction being fed, with what yrs set aside so far.
struct Run<'t, 'd> {
    txn: &'t mut TransactionMut<'d>,
    deadline: Instant,
    waiting: Vec<Waiting>,
}

/// What became of one piece.
enum Piece {
    Applied,
    /// yrs set (some of) it aside as pending.
    SetAside,
    /// Applying stops here.
    Stop(Metered),
}

impl Run<'_, '_> {
    fn piece(&mut self, piece: &[u8]) -> Piece {
        if Instant::now() >= self.deadline {
            return Piece::Stop(self.finish(false, None));
        }
        let applied = Update::decode_v1(piece)
            .map_err(|e| e.to_string())
            .and_then(|update| self.txn.apply_update(update).map_err(|e| e.to_string()));
        let set_aside = pending::take(self.txn).map(|waiting| self.waiting.push(waiting));
        if let Err(error) = applied {
            return Piece::Stop(self.finish(false, Some(error)));
        }
        match set_aside {
            Some(()) => Piece::SetAside,
            None => Piece::Applied,
        }
    }

    fn finish(&mut self, finished: bool, error: Option<String>) -> Metered {
        let waiting = std::mem::take(&mut self.waiting);
        let waiting = match waiting.len() {
            0 => None,
            1 => waiting.into_iter().next(),
            _ => {
                let mut waits_on = HashSet::new();
                let mut updates = Vec::with_capacity(waiting.len());
                for held in waiting {
                    waits_on.extend(held.waits_on);
                    updates.push(held.update);
                }
                // Each was encoded by yrs from what it set aside: they merge.
                yrs::merge_updates_v1(updates.iter().map(Vec::as_slice))
                    .ok()
                    .map(|update| Waiting { update, waits_on })
            }
        };
        Metered {
            finished,
            waiting,
            error,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    OnStack,
    Done,
    /// Waits for something that will not come: its remaining blocks are handed back.
    Stuck,
}

/// One client's blocks in the update, and how far they have been applied.
struct Section {
    client: ClientID,
    /// Clock of the next block.
    clock: u32,
    /// Offset of the next block in the update.
    at: usize,
    /// Offset just past the section's last block.
    end: usize,
    /// Blocks not applied yet.
    left: u32,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Skip,
    Gc,
    Item,
    /// An item without content, which yrs drops.
    Empty,
}

/// One block as read: where it is and what it waits for.
struct Peeked {
    start: usize,
    end: usize,
    len: u32,
    kind: Kind,
    needs: [Option<ID>; 2],
}

/// Reads every section's extent; returns them with the offset of the delete set.
fn read_sections(update: &[u8]) -> Result<(Vec<Section>, usize), MeterError> {
    let mut cursor = Cursor::new(update);
    let clients: u32 = cursor.read_var()?;
    // Not reserved from the count: it is only known not to exceed the bytes.
    let mut sections = Vec::new();
    for _ in 0..clients {
        let blocks: u32 = cursor.read_var()?;
        let client = ClientID::new(cursor.read_var()?);
        let clock: u32 = cursor.read_var()?;
        let at = cursor.next;
        for _ in 0..blocks {
            cursor.next = peek(update, cursor.next)?.end;
        }
        sections.push(Section {
            client,
            clock,
            at,
            end: cursor.next,
            left: blocks,
            state: State::Open,
        });
    }
    let deletions_at = cursor.next;
    // Read through once, so that an unreadable delete set refuses the update before anything
    // is applied, as decoding it whole does.
    for range in deletions(update, deletions_at)? {
        range?;
    }
    Ok((sections, deletions_at))
}

/// Reads the block at `at`, as yrs's v1 decoder does (`Block::decode`), without keeping its
/// content.
fn peek(update: &[u8], at: usize) -> Result<Peeked, MeterError> {
    let mut cursor = Cursor {
        buf: update,
        next: at,
    };
    let info = cursor.read_u8()?;
    let read_id = |cursor: &mut Cursor<'_>| -> Result<ID, Error> {
        let client: u64 = cursor.read_var()?;
        Ok(ID::new(ClientID::new(client), cursor.read_var()?))
    };
    let (kind, len, needs) = match info {
        // yrs refuses the whole update for an empty one of these.
        BLOCK_SKIP_REF_NUMBER | BLOCK_GC_REF_NUMBER => {
            let len: u32 = cursor.read_var()?;
            if len == 0 {
                return Err(MeterError::Undecodable(Error::Malformed(
                    yrs::encoding::read::MalformedKind::EmptyBlock,
                )));
            }
            let kind = if info == BLOCK_SKIP_REF_NUMBER {
                Kind::Skip
            } else {
                Kind::Gc
            };
            (kind, len, [None, None])
        }
        info => {
            let origin = (info & HAS_ORIGIN != 0)
                .then(|| read_id(&mut cursor))
                .transpose()?;
            let right_origin = (info & HAS_RIGHT_ORIGIN != 0)
                .then(|| read_id(&mut cursor))
                .transpose()?;
            if origin.is_none() && right_origin.is_none() {
                let by_name: u32 = cursor.read_var()?;
                if by_name == 1 {
                    cursor.read_string()?;
                } else {
                    // `shape` refuses items inside other items; read as yrs would.
                    read_id(&mut cursor)?;
                }
                if info & HAS_PARENT_SUB != 0 {
                    cursor.read_string()?;
                }
            }
            let len = match info & CONTENT_REF {
                BLOCK_ITEM_STRING_REF_NUMBER => {
                    let text = cursor.read_string()?;
                    u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX)
                }
                BLOCK_ITEM_DELETED_REF_NUMBER => cursor.read_var()?,
                _ => return Err(MeterError::NotText),
            };
            // yrs drops an empty item as it decodes it: it has no clock and waits for nothing.
            if len == 0 {
                (Kind::Empty, 0, [None, None])
            } else {
                (Kind::Item, len, [origin, right_origin])
            }
        }
    };
    Ok(Peeked {
        start: at,
        end: cursor.next,
        len,
        kind,
        needs,
    })
}

/// An update of one block of `client` at `clock`.
fn one_block(client: ClientID, clock: u32, block: &[u8]) -> Vec<u8> {
    let mut piece = Vec::with_capacity(block.len() + 16);
    piece.write_var(1u32);
    piece.write_var(1u32);
    piece.write_var(client.get());
    piece.write_var(clock);
    piece.write_all(block);
    piece.write_var(0u32);
    piece
}

/// One update of the blocks of every section that waits for something that will not come.
fn stuck_blocks(update: &[u8], sections: &[Section]) -> Option<Vec<u8>> {
    let stuck: Vec<&Section> = sections
        .iter()
        .filter(|s| s.state == State::Stuck && s.left > 0)
        .collect();
    if stuck.is_empty() {
        return None;
    }
    let mut piece = Vec::new();
    piece.write_var(stuck.len() as u32);
    for section in stuck {
        piece.write_var(section.left);
        piece.write_var(section.client.get());
        piece.write_var(section.clock);
        piece.write_all(&update[section.at..section.end]);
    }
    piece.write_var(0u32);
    Some(piece)
}

/// The ranges of the delete set at `at`: client, clock and length.
fn deletions(
    update: &[u8],
    at: usize,
) -> Result<impl Iterator<Item = Result<(ClientID, u32, u32), MeterError>> + '_, MeterError> {
    let mut cursor = Cursor {
        buf: update,
        next: at,
    };
    let clients: u32 = cursor.read_var()?;
    let mut client = ClientID::new(0);
    let mut ranges_left: u32 = 0;
    let mut clients_left = clients;
    Ok(std::iter::from_fn(move || {
        let mut next = || -> Result<Option<(ClientID, u32, u32)>, MeterError> {
            while ranges_left == 0 {
                if clients_left == 0 {
                    return Ok(None);
                }
                clients_left -= 1;
                client = ClientID::new(cursor.read_var()?);
                ranges_left = cursor.read_var()?;
            }
            ranges_left -= 1;
            let clock: u32 = cursor.read_var()?;
            let len: u32 = cursor.read_var()?;
            Ok(Some((client, clock, len)))
        };
        next().transpose()
    }))
}

/// An update that deletes `len` clocks of `client` from `clock` on, and nothing else.
fn one_deletion(client: ClientID, clock: u32, len: u32) -> Vec<u8> {
    let mut piece = Vec::with_capacity(24);
    piece.write_var(0u32);
    piece.write_var(1u32);
    piece.write_var(client.get());
    piece.write_var(1u32);
    piece.write_var(clock);
    piece.write_var(len);
    piece
}

#[cfg(test)]
mod tests;
