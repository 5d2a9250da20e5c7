//! The BGP session: RFC 4271 §8 finite state machine, without I/O.
//!
//! A [`Session`] is one configured peer. It is driven by
//! [`Session::handle`]`(now, input)` and answers with [`Action`]s (connect,
//! send, close, report) plus, through [`Session::next_deadline`], the time
//! at which it next needs a [`Input::Tick`]. It never reads a clock, opens
//! a socket or sleeps, so every transition is testable on a virtual clock;
//! the tokio speaker only carries bytes and time to it.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | what the operator configures per peer |
//! | [`state`] | the RFC's states, and why a session went down |
//! | [`negotiate`] | OPEN validation and what both OPENs agreed |
//! | [`backoff`] | IdleHold: exponential back-off after errors (§8.1.1) |
//! | [`fsm`] | the state machine, timers and collision detection (§6.8) |
//! | [`graceful`] | graceful restart as helper: what to keep when a session ends (RFC 4724 §4.2) |

pub mod backoff;
pub mod config;
pub mod fsm;
pub mod graceful;
pub mod negotiate;
pub mod state;

pub use config::SessionConfig;
pub use fsm::{Action, ConnId, Direction, Input, Session, StopReason};
pub use negotiate::Negotiated;
pub use state::{DownReason, State};
