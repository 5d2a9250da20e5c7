//! Message decode under an arbitrary context: framing then decoding of
//! whatever the peer sends must never panic, and every error must map to
//! a NOTIFICATION.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod context;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, mut stream)) = context::split(data) else {
        return;
    };
    // Treat the input as a TCP stream: frame, decode, repeat.
    loop {
        match bgp::wire::frame(stream, &ctx) {
            Ok(Some(n)) => {
                let (msg, rest) = stream.split_at(n);
                if let Err(e) = bgp::wire::decode(msg, &ctx) {
                    let _ = e.notification();
                }
                stream = rest;
            }
            Ok(None) => {
                let _ = bgp::wire::decode(stream, &ctx);
                break;
            }
            Err(e) => {
                let _ = e.notification();
                break;
            }
        }
    }
});
