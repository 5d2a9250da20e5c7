//! Crafted bytes from a raw BGP client get exactly the NOTIFICATION RFC 4271
//! prescribes; only that session ends, and BIRD's session with tabby stays
//! up throughout. A connection from an unconfigured address is closed
//! without an OPEN.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use bgp::session::{SessionConfig, State};
use bgp::speaker::{PeerConfig, SpeakerConfig};
use bgp::wire::{Capability, Context, Message, Open, decode, encode};
use harness::mesh::{Guest, MESH_AS, Members, Mesh, MeshOptions, node_addr};
use harness::speaker::SpeakerInNs;
use harness::{Netns, require_live, wait_until};

const TABBY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 4);
const RAW: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 5);
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 6);

fn session(remote_as: u32) -> SessionConfig {
    let mut s = SessionConfig::new(MESH_AS, remote_as, TABBY);
    s.hold_time = Duration::from_secs(9);
    s.connect_retry = Duration::from_secs(2);
    s.idle_hold = Duration::from_millis(100);
    s.idle_hold_max = Duration::from_millis(400);
    s
}

fn bytes(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(m, &Context::default(), &mut out).unwrap();
    out
}

fn read_message(s: &mut TcpStream) -> Option<Message> {
    let mut head = [0u8; 19];
    s.read_exact(&mut head).ok()?;
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let mut msg = head.to_vec();
    msg.resize(len, 0);
    s.read_exact(&mut msg[19..]).ok()?;
    Some(decode(&msg, &Context::default()).unwrap().message)
}

/// A client that completes the handshake (unless `established` is false,
/// where it stops after reading tabby's OPEN), sends `crafted`, and returns
/// the NOTIFICATION tabby answers with, checking that the connection is
/// then closed.
fn crafted_exchange(established: bool, crafted: Vec<u8>) -> Notified {
    let mut last_err = String::new();
    for _ in 0..50 {
        let mut s = match TcpStream::connect_timeout(
            &SocketAddr::new(TABBY.into(), 179),
            Duration::from_secs(1),
        ) {
            Ok(s) => s,
            Err(e) => {
                last_err = e.to_string();
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // tabby (passive towards us) answers a connection with its OPEN;
        // an immediate close means it was still in IdleHold: try again.
        let Some(Message::Open(_)) = read_message(&mut s) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        if established {
            let open = Open::new(64513, 9, RAW, vec![Capability::FourOctetAs(64513)]);
            s.write_all(&bytes(&Message::Open(open))).unwrap();
            s.write_all(&bytes(&Message::Keepalive)).unwrap();
            assert!(matches!(read_message(&mut s), Some(Message::Keepalive)));
        }
        s.write_all(&crafted).unwrap();
        loop {
            match read_message(&mut s) {
                Some(Message::Keepalive) => continue,
                Some(Message::Notification(n)) => {
                    let mut rest = Vec::new();
                    let eof = s
                        .read_to_end(&mut rest)
                        .map(|_| rest.is_empty())
                        .unwrap_or(true);
                    assert!(eof, "tabby must close after its NOTIFICATION");
                    return (n.code, n.subcode, n.data);
                }
                other => panic!("expected a NOTIFICATION, got {other:?}"),
            }
        }
    }
    panic!("could not reach tabby: {last_err}");
}

/// (code, subcode, data) of a NOTIFICATION.
type Notified = (u8, u8, Vec<u8>);

fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut h = vec![0xff; 16];
    h.extend_from_slice(&len.to_be_bytes());
    h.push(kind);
    h
}

fn open_body(version: u8, hold: u16) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&64513u16.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&RAW.octets());
    b.push(0);
    b
}

#[test]
fn malformed_messages_get_the_prescribed_notification_and_end_only_that_session() {
    let bins = ["bird", "birdc"];
    if !require_live(
        "malformed_messages_get_the_prescribed_notification_and_end_only_that_session",
        &bins,
    ) {
        return;
    }
    let members = Members {
        bird: true,
        gobgp: false,
        frr: false,
    };
    let mesh = Mesh::start(
        "bad",
        &MeshOptions {
            members,
            guests: vec![Guest::ibgp(TABBY)],
            zebra: false,
        },
    )
    .unwrap();
    let n4 = Netns::new("bad-n4").unwrap();
    mesh.switch
        .attach(&n4, "eth0", &format!("{TABBY}/24"))
        .unwrap();
    let raw = Netns::new("bad-raw").unwrap();
    mesh.switch
        .attach(&raw, "eth0", &format!("{RAW}/24"))
        .unwrap();
    let stranger = Netns::new("bad-stranger").unwrap();
    mesh.switch
        .attach(&stranger, "eth0", &format!("{STRANGER}/24"))
        .unwrap();

    let cfg = SpeakerConfig {
        listen: vec![SocketAddr::new(TABBY.into(), 179)],
        ..Default::default()
    };
    let tabby = SpeakerInNs::start(&n4, cfg).unwrap();
    let mut bird = PeerConfig::new(IpAddr::V4(node_addr(1)), session(MESH_AS));
    bird.local_address = Some(TABBY.into());
    tabby.block_on(tabby.handle.add_peer(bird)).unwrap();
    let mut raw_peer = PeerConfig::new(IpAddr::V4(RAW), session(64513));
    raw_peer.session.passive = true;
    tabby.block_on(tabby.handle.add_peer(raw_peer)).unwrap();
    tabby
        .wait_established(&[IpAddr::V4(node_addr(1))], Duration::from_secs(30))
        .unwrap();

    let mut keepalive_zero_marker = header(19, 4);
    keepalive_zero_marker[..16].fill(0);
    let mut v3 = header(29, 1);
    v3.extend(open_body(3, 90));
    let mut hold1 = header(29, 1);
    hold1.extend(open_body(4, 1));
    let mut truncated = header(25, 1);
    truncated.extend(&open_body(4, 90)[..6]);
    let cases: Vec<(&str, bool, Vec<u8>, Notified)> = vec![
        (
            "marker not all ones",
            true,
            keepalive_zero_marker,
            (1, 1, vec![]),
        ),
        ("header length 18", true, header(18, 4), (1, 2, vec![0, 18])),
        (
            "header length 4097",
            true,
            header(4097, 2),
            (1, 2, vec![0x10, 0x01]),
        ),
        (
            "unknown message type 9",
            true,
            header(19, 9),
            (1, 3, vec![9]),
        ),
        ("OPEN with version 3", false, v3, (2, 1, vec![0, 4])),
        ("OPEN with hold time 1", false, hold1, (2, 6, vec![])),
        ("truncated OPEN", false, truncated, (1, 2, vec![0, 25])),
    ];
    for (what, established, crafted, want) in cases {
        let got = raw
            .spawn(move || Ok(crafted_exchange(established, crafted)))
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{what}: raw client panicked"))
            .unwrap();
        assert_eq!(got, want, "{what}");
        let bird = tabby.peer(IpAddr::V4(node_addr(1))).unwrap();
        assert_eq!(
            (bird.state, bird.counters.established),
            (State::Established, 1),
            "{what}: {bird:?}"
        );
    }

    // A stranger (not a configured peer) gets its connection closed with
    // no OPEN sent.
    let got = stranger
        .spawn(|| {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::new(TABBY.into(), 179),
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = Vec::new();
            let n = s.read_to_end(&mut buf).unwrap_or(0);
            Ok(n)
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(got, 0, "tabby sent {got} bytes to an unconfigured address");
    wait_until("BIRD still Established", Duration::from_secs(5), || {
        Ok(mesh.bird.as_ref().unwrap().established()? == 1)
    })
    .unwrap();
}
