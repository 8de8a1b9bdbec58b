//! The shape check reads an update before yrs does. It must never panic, and whatever it lets
//! through to yrs must leave both of a document's texts plain texts: no map entries in them,
//! nothing but strings inside them, no formatting. Joining its runs of characters and applying
//! it block by block (what the room does next) must not change what it writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem::protocol::{self, CONTENT, TITLE};
use tandem::server::room::{metered, runs, shape};
use yrs::types::text::YChange;
use yrs::updates::decoder::Decode;
use yrs::Out;
use yrs::{GetString, Map, ReadTxn, Text, Transact, Update};

fuzz_target!(|bytes: &[u8]| {
    if shape::check(bytes, &[CONTENT, TITLE]).is_err() || !tandem_fuzz::origins_do_not_cross(bytes)
    {
        return;
    }
    let joined = runs::join(bytes).expect("an update the shape check accepts can be joined");
    let Ok(update) = Update::decode_v1(bytes) else {
        return;
    };
    let doc = protocol::new_doc();
    // An update yrs refuses changes nothing; one it applies is what a room would hold.
    let applied = doc.transact_mut().apply_update(update).is_ok();
    let txn = doc.transact();
    if applied {
        // Block by block, as the room applies it (without its time limit): the same texts.
        let other = protocol::new_doc();
        let far_off = std::time::Instant::now() + std::time::Duration::from_secs(3600);
        let outcome = metered::apply(
            &mut other.transact_mut(),
            joined.as_deref().unwrap_or(bytes),
            far_off,
        )
        .expect("an update the shape check accepts can be read block by block");
        assert!(outcome.finished, "{outcome:?}");
        let other_txn = other.transact();
        // What waits (a gap in a client's clocks, which yrs alone would integrate around)
        // is compared once it can go in, elsewhere; everything else must agree now.
        for root in [CONTENT, TITLE]
            .into_iter()
            .filter(|_| outcome.waiting.is_none())
        {
            let read = |txn: &yrs::Transaction| txn.get_text(root).map(|t| t.get_string(txn));
            assert_eq!(
                read(&txn),
                read(&other_txn),
                "applying block by block changed {root}"
            );
        }
    }
    if let (true, Some(joined)) = (applied, joined) {
        let other = protocol::new_doc();
        let update = Update::decode_v1(&joined).expect("a joined update decodes");
        other
            .transact_mut()
            .apply_update(update)
            .expect("a joined update applies");
        let other_txn = other.transact();
        for root in [CONTENT, TITLE] {
            let read = |txn: &yrs::Transaction| txn.get_text(root).map(|t| t.get_string(txn));
            assert_eq!(read(&txn), read(&other_txn), "joining changed {root}");
        }
    }
    for root in [CONTENT, TITLE] {
        let text = txn.get_text(root).expect("both texts are declared");
        let _ = text.get_string(&txn);
        for chunk in text.diff(&txn, YChange::identity) {
            assert!(
                matches!(chunk.insert, Out::Any(yrs::Any::String(_))) && chunk.attributes.is_none(),
                "{root} holds something other than plain text: {:?}",
                chunk.insert
            );
        }
        let entries = txn.get_map(root).map_or(0, |map| map.len(&txn));
        assert_eq!(entries, 0, "{root} holds map entries");
    }
    // Whatever the document holds encodes and decodes again. (Not with what waits for missing
    // dependencies: yrs may encode that into bytes its own merge cannot read, and panic; the
    // room takes such blocks out of the document after every change.)
    let full = txn.encode_diff_v1(&yrs::StateVector::default());
    Update::decode_v1(&full).expect("the document's own encoding decodes");
});
