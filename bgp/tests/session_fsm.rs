//! RFC 4271 §8 state-machine table tests on a virtual clock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::session::{
    Action, ConnId, Direction, DownReason, Input, Session, SessionConfig, State, StopReason,
};
use bgp::wire::{Capability, DecodeError, Message, Notification, Open, Update};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 4);
const OUT: ConnId = ConnId(1);
const IN: ConnId = ConnId(2);

fn cfg() -> SessionConfig {
    SessionConfig::new(64512, 64512, LOCAL_ID)
}

/// The peer's OPEN: AS 64512, hold `hold`, identifier `id`.
fn peer_open(hold: u16, id: [u8; 4]) -> Message {
    Message::Open(Open::new(
        64512,
        hold,
        Ipv4Addr::from(id),
        vec![Capability::FourOctetAs(64512)],
    ))
}

/// A virtual clock: seconds since t0.
struct Clock(Instant);
impl Clock {
    fn at(&self, secs: u64) -> Instant {
        self.0 + Duration::from_secs(secs)
    }
}

fn sent(actions: &[Action]) -> Vec<(ConnId, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { conn, message } => Some((*conn, message.clone())),
            _ => None,
        })
        .collect()
}

/// (code, subcode) of every NOTIFICATION sent.
fn notifications(actions: &[Action]) -> Vec<(u8, u8)> {
    sent(actions)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Notification(n) => Some((n.code, n.subcode)),
            _ => None,
        })
        .collect()
}

fn closed(actions: &[Action]) -> Vec<ConnId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

/// A session brought to `state` over the outbound connection OUT with a
/// peer that offers hold time 30 s (so keepalive is 10 s).
fn session_in(clock: &Clock, state: State) -> Session {
    let mut s = Session::new(cfg());
    s.handle(clock.at(0), Input::ManualStart);
    if state == State::Connect {
        return s;
    }
    s.handle(
        clock.at(0),
        Input::Connected {
            conn: OUT,
            direction: Direction::Outbound,
        },
    );
    if state == State::OpenSent {
        return s;
    }
    s.handle(
        clock.at(0),
        Input::Message {
            conn: OUT,
            message: peer_open(30, [10, 200, 0, 1]),
        },
    );
    if state == State::OpenConfirm {
        return s;
    }
    s.handle(
        clock.at(0),
        Input::Message {
            conn: OUT,
            message: Message::Keepalive,
        },
    );
    assert_eq!(s.state(), State::Established);
    s
}

#[test]
fn idle_refuses_connections_and_ignores_messages_and_time() {
    let c = Clock(Instant::now());
    let mut s = Session::new(cfg());
    let a = s.handle(
        c.at(0),
        Input::Connected {
            conn: IN,
            direction: Direction::Inbound,
        },
    );
    assert_eq!(a, vec![Action::Close { conn: IN }]);
    assert!(s.handle(c.at(1), Input::Tick).is_empty());
    assert!(
        s.handle(
            c.at(1),
            Input::Message {
                conn: IN,
                message: Message::Keepalive
            }
        )
        .is_empty()
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn manual_start_connects_and_connect_retry_repeats_the_attempt() {
    let c = Clock(Instant::now());
    let mut s = Session::new(cfg());
    let a = s.handle(c.at(0), Input::ManualStart);
    assert!(has(&a, &Action::Connect));
    assert_eq!(s.state(), State::Connect);
    assert_eq!(s.next_deadline(), Some(c.at(5)), "ConnectRetryTimer");
    let a = s.handle(c.at(5), Input::Tick);
    assert_eq!(a, vec![Action::CancelConnect, Action::Connect]);
    assert_eq!(s.state(), State::Connect);
    // A failed attempt: Active, and the next ConnectRetry expiry connects.
    s.handle(c.at(6), Input::ConnectFailed);
    assert_eq!(s.state(), State::Active);
    let a = s.handle(c.at(11), Input::Tick);
    assert!(has(&a, &Action::Connect));
    assert_eq!(s.state(), State::Connect);
}

#[test]
fn passive_sessions_listen_and_never_connect() {
    let c = Clock(Instant::now());
    let mut s = Session::new(SessionConfig {
        passive: true,
        ..cfg()
    });
    let a = s.handle(c.at(0), Input::ManualStart);
    assert!(!has(&a, &Action::Connect));
    assert_eq!(s.state(), State::Active);
    for t in [5, 10, 15] {
        assert!(!has(&s.handle(c.at(t), Input::Tick), &Action::Connect));
    }
    let a = s.handle(
        c.at(16),
        Input::Connected {
            conn: IN,
            direction: Direction::Inbound,
        },
    );
    assert!(matches!(&sent(&a)[..], [(IN, Message::Open(_))]));
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn open_keepalive_handshake_negotiates_hold_and_keepalive() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::OpenSent);
    assert_eq!(
        s.next_deadline(),
        Some(c.at(240)),
        "large hold timer while waiting for OPEN"
    );
    let a = s.handle(
        c.at(1),
        Input::Message {
            conn: OUT,
            message: peer_open(30, [10, 200, 0, 1]),
        },
    );
    assert_eq!(sent(&a), vec![(OUT, Message::Keepalive)]);
    assert_eq!(s.state(), State::OpenConfirm);
    let neg = s.negotiated().unwrap();
    assert_eq!(neg.hold_time, Duration::from_secs(30), "min(90, 30)");
    assert_eq!(neg.keepalive, Duration::from_secs(10));
    assert!(neg.context.four_octet_as);
    let a = s.handle(
        c.at(2),
        Input::Message {
            conn: OUT,
            message: Message::Keepalive,
        },
    );
    assert_eq!(s.state(), State::Established);
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Up(n) if n.peer_id == Ipv4Addr::new(10, 200, 0, 1)))
    );
}

#[test]
fn keepalives_every_third_of_the_hold_time_and_updates_count_as_life() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    assert_eq!(s.next_deadline(), Some(c.at(10)));
    let a = s.handle(c.at(10), Input::Tick);
    assert_eq!(sent(&a), vec![(OUT, Message::Keepalive)]);
    assert_eq!(s.next_deadline(), Some(c.at(20)));
    // Sending an UPDATE at 15 pushes the next KEEPALIVE to 25.
    s.handle(c.at(15), Input::UpdateSent);
    assert!(sent(&s.handle(c.at(20), Input::Tick)).is_empty());
    assert_eq!(
        sent(&s.handle(c.at(25), Input::Tick)),
        vec![(OUT, Message::Keepalive)]
    );
}

#[test]
fn hold_timer_expiry_sends_4_0_in_every_state_that_has_it() {
    for (state, expiry) in [
        (State::OpenSent, 240),
        (State::OpenConfirm, 30),
        (State::Established, 30),
    ] {
        let c = Clock(Instant::now());
        let mut s = session_in(&c, state);
        // Keepalives we send do not keep the peer's hold timer alive.
        let mut last = Vec::new();
        for t in (1..=expiry).step_by(1) {
            last = s.handle(c.at(t), Input::Tick);
            if s.state() == State::Idle {
                assert_eq!(t, expiry, "{state}: hold timer fired early");
                break;
            }
        }
        assert_eq!(s.state(), State::Idle, "{state}");
        assert_eq!(notifications(&last), vec![(4, 0)], "{state}");
        assert_eq!(closed(&last), vec![OUT]);
    }
}

#[test]
fn received_messages_restart_the_hold_timer() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    for t in [20, 40, 60] {
        s.handle(
            c.at(t),
            Input::Message {
                conn: OUT,
                message: Message::Keepalive,
            },
        );
        s.handle(c.at(t + 5), Input::Tick);
        assert_eq!(s.state(), State::Established);
    }
    let update = Message::Update(Update::default());
    let a = s.handle(
        c.at(80),
        Input::Message {
            conn: OUT,
            message: update.clone(),
        },
    );
    assert_eq!(a, vec![Action::Received(update)]);
    s.handle(c.at(109), Input::Tick);
    assert_eq!(s.state(), State::Established);
    s.handle(c.at(110), Input::Tick);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn open_validation_sends_the_prescribed_notifications() {
    let cases: Vec<(SessionConfig, Message, (u8, u8))> = vec![
        // 2/2 Bad Peer AS.
        (
            cfg(),
            Message::Open(Open::new(64999, 90, Ipv4Addr::new(10, 200, 0, 1), vec![])),
            (2, 2),
        ),
        // 2/3 Bad BGP Identifier: ours, inside one AS.
        (cfg(), peer_open(90, LOCAL_ID.octets()), (2, 3)),
        // 2/7 Unsupported Capability: graceful restart (64) required.
        (
            SessionConfig {
                required_capabilities: vec![64],
                ..cfg()
            },
            peer_open(90, [10, 200, 0, 1]),
            (2, 7),
        ),
    ];
    for (config, open, want) in cases {
        let c = Clock(Instant::now());
        let mut s = Session::new(config);
        s.handle(c.at(0), Input::ManualStart);
        s.handle(
            c.at(0),
            Input::Connected {
                conn: OUT,
                direction: Direction::Outbound,
            },
        );
        let a = s.handle(
            c.at(1),
            Input::Message {
                conn: OUT,
                message: open,
            },
        );
        assert_eq!(notifications(&a), vec![want]);
        assert_eq!(s.state(), State::Idle);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Down(DownReason::NotificationSent(_))))
        );
    }
}

#[test]
fn unexpected_messages_are_fsm_errors_with_the_rfc_6608_subcode() {
    let update = Message::Update(Update::default());
    let cases = [
        (State::OpenSent, Message::Keepalive, (5, 1)),
        (State::OpenSent, update.clone(), (5, 1)),
        (State::OpenConfirm, update, (5, 2)),
        (State::Established, peer_open(90, [10, 200, 0, 1]), (5, 3)),
    ];
    for (state, message, want) in cases {
        let c = Clock(Instant::now());
        let mut s = session_in(&c, state);
        let a = s.handle(c.at(1), Input::Message { conn: OUT, message });
        assert_eq!(notifications(&a), vec![want], "{state}");
        assert_eq!(s.state(), State::Idle);
    }
}

#[test]
fn a_notification_from_the_peer_ends_the_session_without_answering() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    let cease = Notification::cease_with_communication(2, "maintenance");
    let a = s.handle(
        c.at(3),
        Input::Message {
            conn: OUT,
            message: Message::Notification(cease.clone()),
        },
    );
    assert!(notifications(&a).is_empty());
    assert_eq!(closed(&a), vec![OUT]);
    assert!(has(
        &a,
        &Action::Down(DownReason::NotificationReceived(cease))
    ));
}

#[test]
fn decode_errors_send_their_notification() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    let a = s.handle(
        c.at(3),
        Input::DecodeError {
            conn: OUT,
            error: DecodeError::BadMessageType(9),
        },
    );
    let n = sent(&a);
    assert!(
        matches!(&n[..], [(OUT, Message::Notification(x))] if x.code == 1 && x.subcode == 3 && x.data == [9])
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn a_lost_connection_in_opensent_listens_again_and_in_established_restarts_after_idle_hold() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::OpenSent);
    s.handle(c.at(1), Input::Closed { conn: OUT });
    assert_eq!(s.state(), State::Active);

    let mut s = session_in(&c, State::Established);
    let a = s.handle(c.at(1), Input::Closed { conn: OUT });
    assert_eq!(s.state(), State::Idle);
    assert!(has(&a, &Action::Down(DownReason::ConnectionLost)));
    assert_eq!(
        s.next_deadline(),
        Some(c.at(2)),
        "IdleHold of 1 s after the first error"
    );
    let a = s.handle(c.at(2), Input::Tick);
    assert!(has(&a, &Action::Connect), "automatic start after IdleHold");
}

#[test]
fn idle_hold_backs_off_exponentially_and_resets_after_a_stable_session() {
    let c = Clock(Instant::now());
    let mut s = Session::new(cfg());
    s.handle(c.at(0), Input::ManualStart);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..5 {
        s.handle(
            c.at(now),
            Input::Connected {
                conn: OUT,
                direction: Direction::Outbound,
            },
        );
        // The peer sends garbage right away.
        s.handle(
            c.at(now),
            Input::DecodeError {
                conn: OUT,
                error: DecodeError::ConnectionNotSynchronized,
            },
        );
        let next = s.next_deadline().unwrap();
        let wait = next.duration_since(c.at(now)).as_secs();
        waits.push(wait);
        now += wait;
        s.handle(c.at(now), Input::Tick); // automatic start
    }
    assert_eq!(waits, [1, 2, 4, 8, 16]);
    // A session that stays Established for stable_after (60 s) resets it.
    s.handle(
        c.at(now),
        Input::Connected {
            conn: OUT,
            direction: Direction::Outbound,
        },
    );
    s.handle(
        c.at(now),
        Input::Message {
            conn: OUT,
            message: peer_open(0, [10, 200, 0, 1]),
        },
    );
    s.handle(
        c.at(now),
        Input::Message {
            conn: OUT,
            message: Message::Keepalive,
        },
    );
    assert_eq!(s.state(), State::Established);
    s.handle(c.at(now + 61), Input::Closed { conn: OUT });
    assert_eq!(s.next_deadline(), Some(c.at(now + 62)), "back to 1 s");
}

#[test]
fn hold_time_zero_means_no_keepalives_and_no_hold_timer() {
    let c = Clock(Instant::now());
    let mut s = Session::new(cfg());
    s.handle(c.at(0), Input::ManualStart);
    s.handle(
        c.at(0),
        Input::Connected {
            conn: OUT,
            direction: Direction::Outbound,
        },
    );
    s.handle(
        c.at(0),
        Input::Message {
            conn: OUT,
            message: peer_open(0, [10, 200, 0, 1]),
        },
    );
    s.handle(
        c.at(0),
        Input::Message {
            conn: OUT,
            message: Message::Keepalive,
        },
    );
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.next_deadline(), None);
    assert!(s.handle(c.at(100_000), Input::Tick).is_empty());
}

#[test]
fn manual_stop_sends_cease_with_the_shutdown_communication_and_stays_idle() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    let a = s.handle(
        c.at(5),
        Input::ManualStop {
            why: StopReason::AdministrativeShutdown,
            communication: Some("node drained".into()),
        },
    );
    let n = sent(&a);
    let [(OUT, Message::Notification(cease))] = &n[..] else {
        panic!("{a:?}")
    };
    assert_eq!((cease.code, cease.subcode), (6, 2));
    assert_eq!(cease.shutdown_communication(), Some("node drained"));
    assert_eq!(s.state(), State::Idle);
    assert_eq!(
        s.next_deadline(),
        None,
        "no automatic restart after ManualStop"
    );
    // In Connect there is no OPEN yet, so no NOTIFICATION either.
    let mut s = session_in(&c, State::Connect);
    let a = s.handle(
        c.at(1),
        Input::ManualStop {
            why: StopReason::PeerDeconfigured,
            communication: None,
        },
    );
    assert!(notifications(&a).is_empty());
    assert!(has(&a, &Action::CancelConnect));
}

#[test]
fn removing_a_peer_sends_cease_peer_deconfigured() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::OpenConfirm);
    let why = StopReason::PeerDeconfigured;
    let a = s.handle(
        c.at(1),
        Input::ManualStop {
            why,
            communication: Some("ignored".into()),
        },
    );
    let n = sent(&a);
    let [(OUT, Message::Notification(cease))] = &n[..] else {
        panic!("{a:?}")
    };
    assert_eq!((cease.code, cease.subcode), (6, 3));
    assert!(
        cease.data.is_empty(),
        "RFC 9003 text only with subcodes 2 and 4"
    );
}

#[test]
fn delay_open_waits_before_sending_open_or_answers_an_early_open() {
    let c = Clock(Instant::now());
    let config = SessionConfig {
        delay_open: Some(Duration::from_secs(3)),
        ..cfg()
    };
    let mut s = Session::new(config.clone());
    s.handle(c.at(0), Input::ManualStart);
    let a = s.handle(
        c.at(0),
        Input::Connected {
            conn: OUT,
            direction: Direction::Outbound,
        },
    );
    assert!(sent(&a).is_empty(), "no OPEN while DelayOpenTimer runs");
    assert_eq!(s.state(), State::Connect);
    let a = s.handle(c.at(3), Input::Tick);
    assert!(matches!(&sent(&a)[..], [(OUT, Message::Open(_))]));
    assert_eq!(s.state(), State::OpenSent);

    let mut s = Session::new(config);
    s.handle(c.at(0), Input::ManualStart);
    s.handle(
        c.at(0),
        Input::Connected {
            conn: OUT,
            direction: Direction::Outbound,
        },
    );
    let a = s.handle(
        c.at(1),
        Input::Message {
            conn: OUT,
            message: peer_open(90, [10, 200, 0, 1]),
        },
    );
    let msgs: Vec<_> = sent(&a)
        .into_iter()
        .map(|(_, m)| m.message_type())
        .collect();
    assert_eq!(
        msgs,
        [
            bgp::wire::MessageType::Open,
            bgp::wire::MessageType::Keepalive
        ]
    );
    assert_eq!(s.state(), State::OpenConfirm);
}

/// Collision with our identifier higher than the peer's: the outbound
/// connection (ours) survives, the inbound one gets Cease 6/7.
#[test]
fn collision_keeps_our_connection_when_our_identifier_is_higher() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::OpenSent);
    let a = s.handle(
        c.at(1),
        Input::Connected {
            conn: IN,
            direction: Direction::Inbound,
        },
    );
    assert!(
        matches!(&sent(&a)[..], [(IN, Message::Open(_))]),
        "answer the second connection too"
    );
    // Peer 10.200.0.1 < our 10.200.0.4: its OPEN on the inbound one loses.
    let a = s.handle(
        c.at(1),
        Input::Message {
            conn: IN,
            message: peer_open(90, [10, 200, 0, 1]),
        },
    );
    assert_eq!(notifications(&a), vec![(6, 7)]);
    assert_eq!(closed(&a), vec![IN]);
    assert_eq!(s.state(), State::OpenSent);
    s.handle(
        c.at(2),
        Input::Message {
            conn: OUT,
            message: peer_open(90, [10, 200, 0, 1]),
        },
    );
    s.handle(
        c.at(2),
        Input::Message {
            conn: OUT,
            message: Message::Keepalive,
        },
    );
    assert_eq!((s.state(), s.connection()), (State::Established, Some(OUT)));
}

/// Collision with the peer's identifier higher: its connection survives,
/// whichever OPEN arrives first.
#[test]
fn collision_keeps_the_peers_connection_when_its_identifier_is_higher() {
    for open_first_on in [OUT, IN] {
        let c = Clock(Instant::now());
        let mut s = session_in(&c, State::OpenSent);
        s.handle(
            c.at(1),
            Input::Connected {
                conn: IN,
                direction: Direction::Inbound,
            },
        );
        let high = [10, 200, 0, 9];
        let a = s.handle(
            c.at(1),
            Input::Message {
                conn: open_first_on,
                message: peer_open(90, high),
            },
        );
        assert_eq!(
            notifications(&a),
            vec![(6, 7)],
            "first OPEN on {open_first_on:?}"
        );
        assert_eq!(closed(&a), vec![OUT]);
        assert_eq!(s.connection(), Some(IN));
        if open_first_on == OUT {
            assert_eq!(
                s.state(),
                State::OpenSent,
                "still waiting for the OPEN on IN"
            );
            s.handle(
                c.at(2),
                Input::Message {
                    conn: IN,
                    message: peer_open(90, high),
                },
            );
        }
        assert_eq!(s.state(), State::OpenConfirm);
        s.handle(
            c.at(2),
            Input::Message {
                conn: IN,
                message: Message::Keepalive,
            },
        );
        assert_eq!((s.state(), s.connection()), (State::Established, Some(IN)));
    }
}

#[test]
fn a_connection_arriving_in_established_is_closed() {
    let c = Clock(Instant::now());
    let mut s = session_in(&c, State::Established);
    let a = s.handle(
        c.at(1),
        Input::Connected {
            conn: IN,
            direction: Direction::Inbound,
        },
    );
    assert_eq!(a, vec![Action::Close { conn: IN }]);
    assert_eq!((s.state(), s.connection()), (State::Established, Some(OUT)));
}

#[test]
fn automatic_stop_sends_its_notification_and_restarts_only_when_asked() {
    let clock = Clock(Instant::now());
    let cease = Notification::new(bgp::wire::ErrorCode::Cease, 1, [0, 1, 1, 0, 0, 0, 3]);
    for restart_after in [Some(Duration::from_secs(30)), None] {
        let mut s = session_in(&clock, State::Established);
        let a = s.handle(
            clock.at(1),
            Input::AutomaticStop {
                notification: cease.clone(),
                restart_after,
            },
        );
        assert_eq!(sent(&a), [(OUT, Message::Notification(cease.clone()))]);
        assert_eq!(closed(&a), [OUT]);
        assert!(has(
            &a,
            &Action::Down(DownReason::NotificationSent(cease.clone()))
        ));
        assert_eq!(s.state(), State::Idle);
        // Nothing happens before the IdleHold is over.
        assert!(s.handle(clock.at(30), Input::Tick).is_empty());
        let later = s.handle(clock.at(31), Input::Tick);
        match restart_after {
            Some(_) => {
                assert!(has(&later, &Action::Connect), "{later:?}");
                assert_eq!(s.state(), State::Connect);
            }
            None => {
                assert!(later.is_empty(), "{later:?}");
                assert_eq!(s.next_deadline(), None);
                assert_eq!(s.state(), State::Idle);
            }
        }
    }
    // In Idle there is nothing to stop.
    let mut idle = Session::new(cfg());
    let none = idle.handle(
        clock.at(0),
        Input::AutomaticStop {
            notification: cease,
            restart_after: None,
        },
    );
    assert!(none.is_empty());
}
