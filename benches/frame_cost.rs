//! What one frame can cost the server at most: memory and time to check, decode and integrate
//! the worst update of a given size (one-character insertions that never merge, each its own
//! item), the same for one run of single characters (which yrs alone would join at a quadratic
//! cost), and to answer a sync step 1 for a document of a given size. The cases are the default
//! largest message (4 MiB) and the default largest document (32 MiB).
//!
//! Run: `cargo bench --no-default-features --features ssr --bench frame_cost`. Memory is this
//! process's peak resident size (`VmHWM`, reset before each case); one case per process run
//! would be cleaner, so each case is measured in a child process of this same binary.

use std::time::Instant;
#[path = "../tests/common/trace.rs"]
mod trace;
#[path = "../tests/common/updates.rs"]
mod updates;

use tandem::protocol;
use tandem::server::room;
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, StateVector, Text, Transact, Update};

/// An update of about `bytes` bytes made of one-character insertions at the start of the text,
/// so that no two items merge: the most items (and the most memory) per byte.
fn worst_update(bytes: usize) -> Vec<u8> {
    // Client 1: the shortest references (one byte for the client), the most items per byte.
    let doc = yrs::Doc::with_options(yrs::Options {
        client_id: yrs::block::ClientID::new(1),
        offset_kind: yrs::OffsetKind::Utf16,
        ..Default::default()
    });
    let text = doc.get_or_insert_text(protocol::CONTENT);
    let mut txn = doc.transact_mut();
    let mut n = 0;
    loop {
        for _ in 0..1024 {
            text.insert(&mut txn, 0, "x");
        }
        n += 1024;
        if n % (64 * 1024) == 0 && txn.encode_update_v1().len() >= bytes {
            return txn.encode_update_v1();
        }
    }
}

/// Resets the peak resident size to the current one (Linux), so that building the input does
/// not count as the cost of handling it.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// An update of about `bytes` bytes of one-character items, each continuing the one before:
/// what stock clients send as one item. yrs would join them at commit at a cost quadratic in
/// their number; the server joins them first (`room::runs`).
fn run_update(bytes: usize) -> Vec<u8> {
    // Seven bytes per item past the first.
    updates::run_of_single_characters(7, (bytes / 7) as u32).0
}

/// An update in which every item is a client of its own, as many as fit in `bytes` and the
/// shape check allows: the most per-client state per byte.
fn many_clients_update(bytes: usize) -> Vec<u8> {
    use yrs::encoding::write::Write;
    use yrs::updates::encoder::{Encoder, EncoderV1};
    // About fourteen bytes per client.
    let n = (bytes as u64 / 14).min(room::shape::MAX_CLIENTS.into());
    let mut encoder = EncoderV1::new();
    encoder.write_var(n);
    for client in 0..n {
        encoder.write_var(1u32);
        encoder.write_client(yrs::block::ClientID::new(n - client + 1));
        encoder.write_var(0u32);
        encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER);
        encoder.write_parent_info(true);
        encoder.write_string(protocol::CONTENT);
        encoder.write_string("x");
    }
    encoder.write_var(0u32);
    encoder.to_vec()
}

/// An update of about `bytes` bytes of collected ranges, two bytes each.
fn collected_update(bytes: usize) -> Vec<u8> {
    use yrs::encoding::write::Write;
    use yrs::updates::encoder::{Encoder, EncoderV1};
    let n = (bytes / 2) as u32;
    let mut encoder = EncoderV1::new();
    encoder.write_var(1u32);
    encoder.write_var(n);
    encoder.write_client(yrs::block::ClientID::new(1));
    encoder.write_var(0u32);
    for _ in 0..n {
        encoder.write_info(yrs::block::BLOCK_GC_REF_NUMBER);
        encoder.write_len(1);
    }
    encoder.write_var(0u32);
    encoder.to_vec()
}

/// What the server does with an update before and while integrating it: check its shape, join
/// its runs, decode and integrate.
fn case_update(kind: &str, mib: usize) {
    let update = match kind {
        "run" => run_update(mib << 20),
        "clients" => many_clients_update(mib << 20),
        "collected" => collected_update(mib << 20),
        _ => worst_update(mib << 20),
    };
    reset_peak();
    let before = peak_kib();
    let started = Instant::now();
    room::shape::check(&update, &[protocol::CONTENT, protocol::TITLE]).unwrap();
    let joined = room::runs::join(&update).unwrap();
    let doc = protocol::new_doc();
    // As the server applies it, block by block, here without its time limit.
    let metered = room::metered::apply(
        &mut doc.transact_mut(),
        joined.as_deref().unwrap_or(&update),
        far_off(),
    )
    .unwrap();
    assert!(metered.finished && metered.error.is_none());
    let elapsed = started.elapsed();
    let grown = peak_kib().saturating_sub(before);
    let what = match kind {
        "run" => "update of one run of single characters",
        "clients" => "update of one item per client",
        "collected" => "update of two-byte collected ranges",
        _ => "worst update (single characters that never merge)",
    };
    println!(
        "{what}, {:.1} MiB: +{} MiB peak resident ({:.1}x its size), {:.2} s to check, join, decode and integrate",
        update.len() as f64 / 1048576.0,
        grown / 1024,
        (grown * 1024) as f64 / update.len() as f64,
        elapsed.as_secs_f64()
    );
}

fn far_off() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400)
}

/// A real history as one update (the automerge paper, typed offline and sent on reconnect):
/// how long yrs takes to apply it whole, and block by block as the server does.
fn case_history() {
    let trace = trace::load("automerge-paper.json.gz");
    let offline = protocol::new_doc();
    trace::replay(&trace, &offline, protocol::CONTENT, |_| {});
    let update = offline
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let ranges = deleted_ranges(&update);
    let whole = {
        let doc = protocol::new_doc();
        let started = Instant::now();
        doc.transact_mut()
            .apply_update(Update::decode_v1(&update).unwrap())
            .unwrap();
        started.elapsed()
    };
    let metered = {
        let doc = protocol::new_doc();
        let started = Instant::now();
        let applied = room::metered::apply(&mut doc.transact_mut(), &update, far_off()).unwrap();
        assert!(applied.finished);
        started.elapsed()
    };
    println!(
        "automerge-paper history as one update ({} KiB, {ranges} deleted ranges): {:.1} ms whole, {:.1} ms block by block",
        update.len() / 1024,
        whole.as_secs_f64() * 1000.0,
        metered.as_secs_f64() * 1000.0
    );
}

/// Deleted ranges in an update.
fn deleted_ranges(update: &[u8]) -> usize {
    let decoded = Update::decode_v1(update).unwrap();
    decoded
        .delete_set()
        .iter()
        .map(|(_, range)| range.iter().count())
        .sum()
}

/// Updates built to make yrs work long, applied as the server does, with its time limit:
/// how long they take whole (measured up to a bound) and how far they get before the limit.
fn case_slow(kind: &str) {
    let (base, update, what) = match kind {
        "conflicts" => (
            None,
            updates::conflicting_update(30_000, 1),
            "30,000 items each passing over all placed before",
        ),
        _ => {
            let base = protocol::new_doc();
            base.get_or_insert_text(protocol::CONTENT).insert(
                &mut base.transact_mut(),
                0,
                &"0123456789abcdef".repeat(65_536),
            );
            let client = base.client_id().get();
            let encoded = base
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            (
                Some(encoded),
                updates::inserts_right_to_left(client + 1, client, 1 << 20, 200_000),
                "200,000 inserts right to left in a 1 MiB paste",
            )
        }
    };
    let doc = protocol::new_doc();
    if let Some(base) = &base {
        doc.transact_mut()
            .apply_update(Update::decode_v1(base).unwrap())
            .unwrap();
    }
    let limit = room::INTEGRATION_TIME_LIMIT;
    let started = Instant::now();
    let applied = room::metered::apply(&mut doc.transact_mut(), &update, started + limit).unwrap();
    let took = started.elapsed();
    let kept = doc
        .get_or_insert_text(protocol::CONTENT)
        .get_string(&doc.transact())
        .matches('y')
        .count();
    println!(
        "{what} ({} KiB): stopped after {:.3} s (limit {:.1} s, finished: {}), {kept} items in",
        update.len() / 1024,
        took.as_secs_f64(),
        limit.as_secs_f64(),
        applied.finished
    );
}

fn case_answer(mib: usize) {
    let doc = protocol::new_doc();
    let text = doc.get_or_insert_text(protocol::CONTENT);
    {
        let mut txn = doc.transact_mut();
        let line = "A line of Markdown text, typed by somebody.\n";
        // One insertion: many pushes in one transaction are squashed at commit by copying
        // the merged text into each left neighbour, quadratic in time and memory.
        text.push(&mut txn, &line.repeat((mib << 20) / line.len()));
    }
    reset_peak();
    let before = peak_kib();
    let started = Instant::now();
    let answer = doc.transact().encode_diff_v1(&StateVector::default());
    let elapsed = started.elapsed();
    println!(
        "sync step 2 answer for a {mib} MiB document: {:.1} MiB, +{} MiB peak resident, {:.3} s",
        answer.len() as f64 / 1048576.0,
        peak_kib().saturating_sub(before) / 1024,
        elapsed.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(kind @ ("update" | "run" | "clients" | "collected")) => {
            return case_update(kind, args[2].parse().unwrap())
        }
        Some("answer") => return case_answer(args[2].parse().unwrap()),
        Some("history") => return case_history(),
        Some(kind @ ("conflicts" | "inserts")) => return case_slow(kind),
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    let cases = [
        ("update", 1),
        ("update", 4),
        ("clients", 4),
        ("collected", 4),
        ("run", 4),
        ("answer", 1),
        ("answer", 32),
        ("history", 0),
        ("conflicts", 0),
        ("inserts", 0),
    ];
    for (kind, mib) in cases {
        let status = std::process::Command::new(&me)
            .args([kind, &mib.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
