//! The negative table, part 2: UPDATE errors (RFC 4271 §6.3) with their
//! RFC 7606 outcomes, and ROUTE-REFRESH errors (RFC 7313 §5), one test per
//! case with the exact code/subcode/data or the RFC 7606 action.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::Ipv4Addr;

use bgp::wire::*;
use support::expect::*;
use support::{GOOD_NLRI, attr, good_attributes, hex, message, update};

// ---- RFC 4271 §6.3 / RFC 7606 UPDATE ---------------------------------------

#[test]
fn withdrawn_routes_length_overrun_is_3_1() {
    let bytes = message(2, &hex("0010 0000"));
    assert_eq!(notification(&bytes, &FOUR), (3, 1, String::new()));
}

#[test]
fn total_path_attribute_length_overrun_is_3_1() {
    let bytes = message(2, &hex("0000 0010 400101 00"));
    assert_eq!(notification(&bytes, &FOUR), (3, 1, String::new()));
}

#[test]
fn withdrawn_prefix_length_33_is_3_10() {
    let bytes = update(&hex("21 0a000001 00"), &[], &[]);
    assert_eq!(notification(&bytes, &FOUR), (3, 10, String::new()));
}

#[test]
fn nlri_prefix_running_past_the_field_is_3_10() {
    let bytes = update(&[], &good_attributes(), &hex("18 ac1f"));
    assert_eq!(notification(&bytes, &FOUR), (3, 10, String::new()));
}

#[test]
fn mp_reach_ipv6_prefix_length_129_is_3_10() {
    let mut mp = hex("0002 01 10 20010db8000000000000000000000001 00 81");
    mp.extend_from_slice(&[0; 17]);
    let attrs = [attr(0x80, 14, &mp), attr(0x40, 1, &[0]), attr(0x40, 2, &[])].concat();
    assert_eq!(
        notification(&update(&[], &attrs, &[]), &FOUR),
        (3, 10, String::new())
    );
}

#[test]
fn unrecognized_well_known_attribute_is_3_2_with_the_attribute() {
    let bytes = with_attr(0x99, Some(hex("40 99 01 aa")));
    assert_eq!(notification(&bytes, &FOUR), (3, 2, "409901aa".into()));
}

#[test]
fn unknown_optional_non_transitive_is_dropped_silently() {
    let (u, errors) = accepted(&with_attr(0x99, Some(hex("80 99 01 aa"))), &FOUR);
    assert!(errors.is_empty());
    assert!(u.attributes.unknown.is_empty());
    assert_eq!(u.nlri, vec![good_prefix()]);
}

#[test]
fn missing_origin_is_treat_as_withdraw_3_3_with_type_1() {
    assert_withdrawn(&with_attr(1, None), &FOUR, 3, "01");
}

#[test]
fn missing_as_path_is_treat_as_withdraw_3_3_with_type_2() {
    assert_withdrawn(&with_attr(2, None), &FOUR, 3, "02");
}

#[test]
fn attributes_without_nlri_need_no_mandatory_attributes() {
    let bytes = update(&[], &attr(0x40, 5, &[0, 0, 0, 1]), &[]);
    let (u, errors) = accepted(&bytes, &FOUR);
    assert!(errors.is_empty());
    assert_eq!(u.attributes.local_pref, Some(1));
}

#[test]
fn origin_flags_optional_is_treat_as_withdraw_3_4() {
    assert_withdrawn(
        &with_attr(1, Some(hex("c0 01 01 00"))),
        &FOUR,
        4,
        "c0010100",
    );
}

#[test]
fn invalid_origin_value_is_treat_as_withdraw_3_6() {
    assert_withdrawn(
        &with_attr(1, Some(hex("40 01 01 03"))),
        &FOUR,
        6,
        "40010103",
    );
}

#[test]
fn malformed_as_path_segment_type_is_treat_as_withdraw_3_11() {
    assert_withdrawn(
        &with_attr(2, Some(hex("40 02 06 05 01 0000fc00"))),
        &FOUR,
        11,
        "",
    );
}

#[test]
fn as_path_segment_overrun_is_treat_as_withdraw_3_11() {
    assert_withdrawn(
        &with_attr(2, Some(hex("40 02 06 02 02 0000fc00"))),
        &FOUR,
        11,
        "",
    );
}

#[test]
fn as_path_zero_length_segment_is_treat_as_withdraw_3_11() {
    assert_withdrawn(&with_attr(2, Some(hex("40 02 02 02 00"))), &FOUR, 11, "");
}

#[test]
fn next_hop_length_5_is_treat_as_withdraw_3_5() {
    let bytes = with_attr(3, Some(hex("40 03 05 0ac8000400")));
    assert_withdrawn(&bytes, &FOUR, 5, "4003050ac8000400");
}

#[test]
fn next_hop_not_a_host_address_is_treat_as_withdraw_3_8() {
    for nh in ["00000000", "ffffffff", "e0000001", "7f000001"] {
        let a = format!("400304{nh}");
        assert_withdrawn(&with_attr(3, Some(hex(&a))), &FOUR, 8, &a);
    }
}

#[test]
fn bad_next_hop_is_ignored_without_ipv4_nlri() {
    let attrs = [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &[]),
        hex("400304 00000000"),
    ]
    .concat();
    let (_, errors) = accepted(&update(&[], &attrs, &[]), &FOUR);
    assert!(errors.is_empty());
}

#[test]
fn med_local_pref_originator_id_bad_length_are_treat_as_withdraw_3_5() {
    for a in ["800403 000001", "400502 0001", "800903 0a0000"] {
        let code = hex(a)[1];
        assert_withdrawn(
            &with_attr(code, Some(hex(a))),
            &FOUR,
            5,
            &a.replace(' ', ""),
        );
    }
}

#[test]
fn community_lists_of_bad_length_are_treat_as_withdraw_3_5() {
    for a in [
        "c00803 fde900",
        "c00800",
        "800a05 0a00000101",
        "c01007 00020000000000",
        "c0200b 0000000100000002000000",
    ] {
        assert_withdrawn(
            &with_attr(0x99, Some(hex(a))),
            &FOUR,
            5,
            &a.replace(' ', ""),
        );
    }
}

#[test]
fn atomic_aggregate_with_a_value_is_attribute_discard() {
    let (u, errors) = accepted(&with_attr(6, Some(hex("40 06 01 00"))), &FOUR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, Action::AttributeDiscard);
    assert_eq!(errors[0].error.subcode(), 5);
    assert!(!u.attributes.atomic_aggregate);
    assert_eq!(u.nlri, vec![good_prefix()]);
}

#[test]
fn aggregator_of_bad_length_is_attribute_discard() {
    // 6 octets is the 2-octet form; this session is 4-octet.
    let (u, errors) = accepted(&with_attr(7, Some(hex("c0 07 06 fc00 0a000001"))), &FOUR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, Action::AttributeDiscard);
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(u.nlri, vec![good_prefix()]);
}

#[test]
fn duplicate_attribute_keeps_the_first() {
    let bytes = with_attr(0x99, Some(hex("40 05 04 00000001")));
    let (u, errors) = accepted(&bytes, &FOUR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, Action::AttributeDiscard);
    assert_eq!(errors[0].error.subcode(), 1);
    assert_eq!(u.attributes.local_pref, Some(100));
}

#[test]
fn duplicate_mp_reach_is_3_1() {
    let mp = attr(0x80, 14, &hex("0001 01 04 0a000001 00"));
    let attrs = [mp.clone(), mp, attr(0x40, 1, &[0]), attr(0x40, 2, &[])].concat();
    assert_eq!(
        notification(&update(&[], &attrs, &[]), &FOUR),
        (3, 1, String::new())
    );
}

#[test]
fn mp_reach_flags_error_is_session_reset_3_4() {
    let mp = attr(0x40, 14, &hex("0001 01 04 0a000001 00"));
    assert_eq!(
        notification(&update(&[], &mp, &[]), &FOUR),
        (3, 4, "400e09 000101 04 0a000001 00".replace(' ', ""))
    );
}

#[test]
fn mp_reach_bad_next_hop_length_is_3_9_with_the_attribute() {
    let mp = attr(0x80, 14, &hex("0002 01 05 0102030405 00"));
    let data = support::to_hex(&mp);
    assert_eq!(notification(&update(&[], &mp, &[]), &FOUR), (3, 9, data));
}

#[test]
fn mp_reach_ipv6_with_ipv4_next_hop_is_3_9() {
    let mp = attr(0x80, 14, &hex("0002 01 04 0a000001 00"));
    let (code, subcode, _) = notification(&update(&[], &mp, &[]), &FOUR);
    assert_eq!((code, subcode), (3, 9));
}

#[test]
fn mp_reach_ipv4_with_ipv6_next_hop_rfc_8950_is_accepted() {
    let mp = attr(
        0x80,
        14,
        &hex("0001 01 10 20010db8000000000000000000000001 00 18 ac1f09"),
    );
    let attrs = [mp, attr(0x40, 1, &[0]), attr(0x40, 2, &[])].concat();
    let (u, errors) = accepted(&update(&[], &attrs, &[]), &FOUR);
    assert!(errors.is_empty());
    assert!(matches!(
        u.attributes.mp_reach,
        Some(MpReach::Ipv4Unicast {
            next_hop: NextHop::V6 { .. },
            ..
        })
    ));
}

#[test]
fn treat_as_withdraw_moves_mp_reach_nlri_to_withdrawals() {
    // MP_REACH IPv6 + MP_UNREACH IPv4 + a malformed ORIGIN.
    let reach = attr(
        0x80,
        14,
        &hex("0002 01 10 20010db8000000000000000000000001 00 30 fd0000000001"),
    );
    let unreach = attr(0x80, 15, &hex("0001 01 18 0a0001"));
    let attrs = [reach, unreach, attr(0x40, 1, &[7]), attr(0x40, 2, &[])].concat();
    let (u, errors) = accepted(&update(&[], &attrs, &GOOD_NLRI), &FOUR);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, Action::TreatAsWithdraw);
    let v4 = |a: [u8; 4], l| Nlri::new(Ipv4Prefix::new(Ipv4Addr::from(a), l).unwrap());
    assert_eq!(u.withdrawn, vec![good_prefix(), v4([10, 0, 1, 0], 24)]);
    let v6 = Ipv6Prefix::new("fd00:0:1::".parse().unwrap(), 48).unwrap();
    assert_eq!(
        u.attributes,
        PathAttributes {
            mp_unreach: Some(MpUnreach::Ipv6Unicast(vec![Nlri::new(v6)])),
            ..PathAttributes::default()
        }
    );
}

#[test]
fn as4_path_malformed_is_discarded_on_a_two_octet_session() {
    let attrs = [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &hex("02 01 5ba0")),
        attr(0x40, 3, &[10, 200, 0, 4]),
        attr(0xc0, 17, &hex("02 02 fa56ea01")),
    ]
    .concat();
    let (u, errors) = accepted(&update(&[], &attrs, &GOOD_NLRI), &Context::default());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, Action::AttributeDiscard);
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence([23456])));
    assert_eq!(u.nlri, vec![good_prefix()]);
}

#[test]
fn as4_path_is_ignored_between_four_octet_speakers() {
    let attrs = [good_attributes(), attr(0xc0, 17, &hex("02 01 fa56ea01"))].concat();
    let (u, errors) = accepted(&update(&[], &attrs, &GOOD_NLRI), &FOUR);
    assert!(errors.is_empty());
    assert_eq!(u.attributes.as_path, Some(AsPath::default()));
}

#[test]
fn as4_path_is_ignored_when_aggregator_is_not_as_trans() {
    let attrs = [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &hex("02 02 fde9 5ba0")),
        attr(0x40, 3, &[10, 200, 0, 4]),
        attr(0xc0, 7, &hex("fde9 0a000001")),
        attr(0xc0, 17, &hex("02 01 fa56ea01")),
    ]
    .concat();
    let (u, _) = accepted(&update(&[], &attrs, &GOOD_NLRI), &Context::default());
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence([65001, 23456])));
}

// ---- RFC 2918 / RFC 7313 ROUTE-REFRESH -----------------------------------

#[test]
fn route_refresh_bad_length_is_1_2_or_7_1_with_enhanced_route_refresh() {
    let bytes = message(5, &hex("0001 00 01 00"));
    assert_eq!(notification(&bytes, &FOUR), (1, 2, "0018".into()));
    let err = Context {
        enhanced_route_refresh: true,
        ..FOUR
    };
    assert_eq!(notification(&bytes, &err), (7, 1, support::to_hex(&bytes)));
}

#[test]
fn route_refresh_unknown_subtype_decodes_for_the_fsm_to_ignore() {
    let bytes = message(5, &hex("0001 07 01"));
    let Message::RouteRefresh(rr) = decode(&bytes, &FOUR).unwrap().message else {
        panic!("not a ROUTE-REFRESH")
    };
    assert_eq!(rr.subtype, RouteRefreshSubtype::Other(7));
}
