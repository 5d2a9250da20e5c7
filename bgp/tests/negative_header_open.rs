//! The negative table, part 1: the lab-facts §7 matrix (BIRD as the
//! reference), message header errors (RFC 4271 §6.1) and OPEN errors
//! (RFC 4271 §6.2), one test per case with the exact code/subcode/data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::Ipv4Addr;

use bgp::wire::*;
use support::expect::*;
use support::{GOOD_NLRI, good_attributes, hex, message, update};

// ---- lab-facts §7 matrix -------------------------------------------------

#[test]
fn lab_good_update_is_installed() {
    let (u, errors) = accepted(&update(&[], &good_attributes(), &GOOD_NLRI), &FOUR);
    assert!(errors.is_empty());
    assert_eq!(u.nlri, vec![good_prefix()]);
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 200, 0, 4)));
}

#[test]
fn lab_unknown_optional_transitive_is_kept_with_partial() {
    let (u, errors) = accepted(&with_attr(0x99, Some(hex("c0 99 04 deadbeef"))), &FOUR);
    assert!(errors.is_empty());
    assert_eq!(u.nlri, vec![good_prefix()]);
    assert_eq!(
        u.attributes.unknown,
        vec![RawAttribute {
            type_code: 0x99,
            value: hex("deadbeef")
        }]
    );
    // Passed on with the Partial bit (RFC 4271 §5).
    let mut out = Vec::new();
    encode(&Message::Update(u), &FOUR, &mut out).unwrap();
    assert!(support::to_hex(&out).contains("e09904deadbeef"));
}

#[test]
fn lab_origin_length_2_is_treat_as_withdraw_3_5() {
    let bytes = with_attr(1, Some(hex("40 01 02 0000")));
    assert_withdrawn(&bytes, &FOUR, 5, "40010200 00".replace(' ', "").as_str());
}

#[test]
fn lab_attribute_length_past_the_block_is_treat_as_withdraw() {
    // A 4-octet attribute block holding ORIGIN with length 200.
    let bytes = update(&[], &hex("40 01 c8 00"), &GOOD_NLRI);
    assert_withdrawn(&bytes, &FOUR, 5, "4001c800");
}

#[test]
fn lab_nlri_without_next_hop_is_treat_as_withdraw_3_3() {
    let bytes = with_attr(3, None);
    assert_withdrawn(&bytes, &FOUR, 3, "03");
}

#[test]
fn lab_nlri_prefix_length_33_is_3_10() {
    let bytes = update(&[], &good_attributes(), &hex("21 ac1f0900 00"));
    assert_eq!(notification(&bytes, &FOUR), (3, 10, String::new()));
}

#[test]
fn lab_marker_not_all_ones_is_1_1() {
    let mut bytes = message(4, &[]);
    bytes[..16].fill(0);
    assert_eq!(
        frame(&bytes, &FOUR).unwrap_err().notification(),
        Notification::new(ErrorCode::MessageHeader, 1, [])
    );
    assert_eq!(notification(&bytes, &FOUR), (1, 1, String::new()));
}

#[test]
fn lab_header_length_18_is_1_2_with_data_0012() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0012 04");
    let n = frame(&bytes, &FOUR).unwrap_err().notification();
    assert_eq!(
        (n.code, n.subcode, support::to_hex(&n.data)),
        (1, 2, "0012".into())
    );
}

#[test]
fn lab_message_type_9_is_1_3_with_data_09() {
    let bytes = message(9, &[]);
    assert_eq!(frame(&bytes, &FOUR), Ok(Some(19)));
    assert_eq!(notification(&bytes, &FOUR), (1, 3, "09".into()));
}

// ---- RFC 4271 §6.1 message header ----------------------------------------

#[test]
fn frame_waits_for_the_whole_message() {
    let bytes = update(&[], &good_attributes(), &GOOD_NLRI);
    assert_eq!(frame(&bytes[..17], &FOUR), Ok(None));
    assert_eq!(frame(&bytes[..bytes.len() - 1], &FOUR), Ok(None));
    let mut two = bytes.clone();
    two.extend_from_slice(&message(4, &[]));
    assert_eq!(frame(&two, &FOUR), Ok(Some(bytes.len())));
}

#[test]
fn length_above_4096_is_1_2_unless_extended_messages() {
    let big = update(&[], &good_attributes(), &GOOD_NLRI.repeat(1100));
    let len = big.len();
    assert!(len > 4096);
    let data = format!("{len:04x}");
    assert_eq!(
        frame(&big, &FOUR).unwrap_err().notification().data,
        hex(&data)
    );
    assert_eq!(notification(&big, &FOUR), (1, 2, data));
    let ext = Context {
        extended_message: true,
        ..FOUR
    };
    assert_eq!(frame(&big, &ext), Ok(Some(len)));
    assert!(decode(&big, &ext).is_ok());
}

#[test]
fn open_above_4096_is_1_2_even_with_extended_messages() {
    let mut body = hex("04 fc00 00f0 0ac80001 ff ff");
    let caps = [0x80u8, 0].repeat(2100); // unknown capability 128, empty
    let mut param = vec![2];
    param.extend_from_slice(&u16::try_from(caps.len()).unwrap().to_be_bytes());
    param.extend_from_slice(&caps);
    body.extend_from_slice(&u16::try_from(param.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&param);
    let bytes = message(1, &body);
    let ext = Context {
        extended_message: true,
        ..FOUR
    };
    let (code, subcode, _) = notification(&bytes, &ext);
    assert_eq!((code, subcode), (1, 2));
}

#[test]
fn keepalive_of_20_octets_is_1_2() {
    let bytes = message(4, &[0]);
    assert_eq!(notification(&bytes, &FOUR), (1, 2, "0014".into()));
}

#[test]
fn update_of_22_octets_is_1_2() {
    let bytes = message(2, &[0, 0, 0]);
    assert_eq!(notification(&bytes, &FOUR), (1, 2, "0016".into()));
}

#[test]
fn notification_of_20_octets_is_1_2() {
    let bytes = message(3, &[6]);
    assert_eq!(notification(&bytes, &FOUR), (1, 2, "0014".into()));
}

#[test]
fn slice_longer_than_its_length_is_1_2() {
    let mut bytes = message(4, &[]);
    bytes.push(0);
    assert_eq!(notification(&bytes, &FOUR), (1, 2, "0013".into()));
}

// ---- RFC 4271 §6.2 OPEN ----------------------------------------------------

fn open(fields: &str, params: &str) -> Vec<u8> {
    let p = hex(params);
    let mut body = hex(fields);
    body.push(u8::try_from(p.len()).unwrap());
    body.extend_from_slice(&p);
    message(1, &body)
}

#[test]
fn open_version_3_is_2_1_with_data_0004() {
    let bytes = open("03 fc00 00f0 0ac80001", "");
    assert_eq!(notification(&bytes, &FOUR), (2, 1, "0004".into()));
}

#[test]
fn open_as_0_is_2_2() {
    let bytes = open("04 0000 00f0 0ac80001", "");
    assert_eq!(notification(&bytes, &FOUR), (2, 2, String::new()));
    let four_octet_zero = open("04 5ba0 00f0 0ac80001", "02 06 41 04 00000000");
    assert_eq!(notification(&four_octet_zero, &FOUR), (2, 2, String::new()));
}

#[test]
fn open_bgp_identifier_0_is_2_3() {
    let bytes = open("04 fc00 00f0 00000000", "");
    assert_eq!(notification(&bytes, &FOUR), (2, 3, String::new()));
}

#[test]
fn open_unsupported_optional_parameter_is_2_4() {
    let bytes = open("04 fc00 00f0 0ac80001", "01 02 0000");
    assert_eq!(notification(&bytes, &FOUR), (2, 4, String::new()));
}

#[test]
fn open_hold_time_1_and_2_are_2_6_but_0_and_3_are_fine() {
    for hold in ["0001", "0002"] {
        let bytes = open(&format!("04 fc00 {hold} 0ac80001"), "");
        assert_eq!(notification(&bytes, &FOUR), (2, 6, String::new()));
    }
    for hold in ["0000", "0003"] {
        let bytes = open(&format!("04 fc00 {hold} 0ac80001"), "");
        assert!(decode(&bytes, &FOUR).is_ok());
    }
}

#[test]
fn open_parameter_length_mismatch_is_2_0() {
    let mut bytes = open("04 fc00 00f0 0ac80001", "02 02 0200");
    let last = bytes.len() - 1;
    bytes.remove(last); // Opt Parm Len now says 4, 3 octets follow
    let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    bytes[16..18].copy_from_slice(&len);
    assert_eq!(notification(&bytes, &FOUR), (2, 0, String::new()));
}

#[test]
fn open_malformed_capability_is_2_0() {
    // Multiprotocol with a 3-octet value.
    let bytes = open("04 fc00 00f0 0ac80001", "02 05 01 03 000100");
    assert_eq!(notification(&bytes, &FOUR), (2, 0, String::new()));
    // ADD-PATH with Send/Receive 4.
    let bytes = open("04 fc00 00f0 0ac80001", "02 06 45 04 0001 01 04");
    assert_eq!(notification(&bytes, &FOUR), (2, 0, String::new()));
}

#[test]
fn open_extended_optional_parameters_rfc_9072() {
    // Opt Parm Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length 7,
    // then a Capabilities parameter with a 2-octet length.
    let bytes = message(
        1,
        &hex("04 fc00 00f0 0ac80001 ff ff 0007 02 0004 0200 4600"),
    );
    let Message::Open(o) = decode(&bytes, &FOUR).unwrap().message else {
        panic!("not an OPEN")
    };
    assert_eq!(
        o.capabilities,
        vec![Capability::RouteRefresh, Capability::EnhancedRouteRefresh]
    );
}

#[test]
fn open_with_one_parameter_per_capability_decodes_flat() {
    let bytes = open("04 fc00 00f0 0ac80001", "02 02 0200 02 02 4600");
    let Message::Open(o) = decode(&bytes, &FOUR).unwrap().message else {
        panic!("not an OPEN")
    };
    assert_eq!(
        o.capabilities,
        vec![Capability::RouteRefresh, Capability::EnhancedRouteRefresh]
    );
}
