//! Path attribute decode on its own: the Path Attributes field under an
//! arbitrary context, with and without IPv4 NLRI. Must never panic; what
//! decodes must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod context;

fuzz_target!(|data: &[u8]| {
    let Some((ctx, block)) = context::split(data) else {
        return;
    };
    for ipv4_nlri in [false, true] {
        match bgp::wire::decode_path_attributes(block, &ctx, ipv4_nlri) {
            Ok((attrs, errors)) => {
                for e in &errors {
                    let _ = e.error.notification();
                }
                let mut out = Vec::new();
                let _ = attrs.emit(&ctx.mirror(), &mut out);
            }
            Err(e) => {
                let _ = e.notification();
            }
        }
    }
});
