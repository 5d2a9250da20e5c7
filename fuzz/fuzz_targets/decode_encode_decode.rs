//! decode → encode → decode: whatever decodes re-encodes (or reports that
//! it does not fit) and decodes again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod context;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, msg)) = context::split(data) else {
        return;
    };
    let Ok(first) = bgp::wire::decode(msg, &ctx) else {
        return;
    };
    let mut out = Vec::new();
    if bgp::wire::encode(&first.message, &ctx.mirror(), &mut out).is_err() {
        assert!(out.is_empty(), "a failed encode left bytes behind");
        return;
    }
    let second = match bgp::wire::decode(&out, &ctx) {
        Ok(r) => r,
        Err(e) => panic!("re-encoded message does not decode: {e:?}"),
    };
    assert_eq!(second.message, first.message, "decode→encode→decode changed the message");
});
