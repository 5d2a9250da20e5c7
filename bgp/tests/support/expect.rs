//! Assertions shared by the negative tables.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;

use bgp::wire::*;

use super::{GOOD_NLRI, attr, update};

pub const FOUR: Context = Context {
    four_octet_as: true,
    extended_message: false,
    enhanced_route_refresh: false,
    add_path: AddPath {
        receive: Families::NONE,
        send: Families::NONE,
    },
};

/// The NOTIFICATION (code, subcode, data hex) that decoding `bytes` causes.
pub fn notification(bytes: &[u8], ctx: &Context) -> (u8, u8, String) {
    let err = decode(bytes, ctx).expect_err("must be rejected");
    let n = err.notification();
    (n.code, n.subcode, super::to_hex(&n.data))
}

/// Decodes an UPDATE that must keep the session.
pub fn accepted(bytes: &[u8], ctx: &Context) -> (Update, Vec<AttributeError>) {
    let r = decode(bytes, ctx).expect("must keep the session");
    match r.message {
        Message::Update(u) => (u, r.errors),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

pub fn good_prefix() -> Nlri<Ipv4Prefix> {
    Nlri::new(Ipv4Prefix::new(Ipv4Addr::new(172, 31, 9, 0), 24).unwrap())
}

/// Asserts treat-as-withdraw with exactly one error of `subcode`/`data`.
pub fn assert_withdrawn(bytes: &[u8], ctx: &Context, subcode: u8, data: &str) {
    let (u, errors) = accepted(bytes, ctx);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.action, Action::TreatAsWithdraw);
    assert_eq!(
        (e.error.subcode(), super::to_hex(&e.error.data())),
        (subcode, data.to_string())
    );
    assert_eq!(u.withdrawn, vec![good_prefix()]);
    assert!(u.nlri.is_empty());
    assert_eq!(u.attributes, PathAttributes::default());
}

/// The good UPDATE with one attribute replaced (by type code) or added.
pub fn with_attr(code: u8, replacement: Option<Vec<u8>>) -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut replaced = false;
    for a in [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &[]),
        attr(0x40, 3, &[10, 200, 0, 4]),
        attr(0x40, 5, &[0, 0, 0, 100]),
    ] {
        if a[1] == code {
            replaced = true;
            attrs.extend(replacement.clone().unwrap_or_default());
        } else {
            attrs.extend(a);
        }
    }
    if !replaced {
        attrs.extend(replacement.unwrap_or_default());
    }
    update(&[], &attrs, &GOOD_NLRI)
}
