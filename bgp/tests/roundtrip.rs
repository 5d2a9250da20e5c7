//! Property tests: arbitrary messages round-trip under arbitrary contexts,
//! arbitrary bytes never panic, and decode→encode→decode is stable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bgp::wire::*;
use proptest::prelude::*;
use support::strategy;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `decode(encode(m)) == m`: what we send with `ctx`, the peer decodes
    /// with `ctx.mirror()` to the same value, with no RFC 7606 errors.
    #[test]
    fn decode_inverts_encode((ctx, m) in strategy::context_and_message()) {
        let mut out = Vec::new();
        match encode(&m, &ctx, &mut out) {
            Ok(()) => {}
            Err(EncodeError::MessageTooLong { .. }) => {
                prop_assert!(out.is_empty());
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
        let peer = ctx.mirror();
        prop_assert_eq!(frame(&out, &peer), Ok(Some(out.len())));
        let got = decode(&out, &peer).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert!(got.errors.is_empty(), "{:?}", got.errors);
        prop_assert_eq!(got.message, m);
    }

    /// Arbitrary bytes never panic, framed or not, under any context.
    #[test]
    fn arbitrary_bytes_never_panic(
        ctx in strategy::context(),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let _ = frame(&bytes, &ctx);
        let _ = decode(&bytes, &ctx);
        let _ = decode_path_attributes(&bytes, &ctx, true);
        let _ = decode_path_attributes(&bytes, &ctx, false);
    }

    /// Bodies behind a well-formed header of every type never panic, and
    /// whatever decodes re-encodes to something that decodes the same.
    #[test]
    fn framed_garbage_never_panics_and_is_stable(
        ctx in strategy::context(),
        message_type in 1u8..=5,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let bytes = support::message(message_type, &body);
        stable(&bytes, &ctx)?;
    }

    /// Valid messages with a few octets overwritten never panic and are
    /// stable under decode→encode→decode.
    #[test]
    fn mutated_messages_never_panic_and_are_stable(
        (ctx, m) in strategy::context_and_message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = Vec::new();
        if encode(&m, &ctx, &mut bytes).is_err() {
            return Ok(());
        }
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        stable(&bytes, &ctx.mirror())?;
    }
}

/// decode → encode → decode gives the first decode's message again.
fn stable(bytes: &[u8], ctx: &Context) -> Result<(), TestCaseError> {
    let _ = frame(bytes, ctx);
    let Ok(first) = decode(bytes, ctx) else {
        return Ok(());
    };
    let mut out = Vec::new();
    if encode(&first.message, &ctx.mirror(), &mut out).is_err() {
        return Ok(());
    }
    let second = decode(&out, ctx).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    prop_assert_eq!(second.message, first.message);
    Ok(())
}
