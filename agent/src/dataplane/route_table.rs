//! The kernel's routing table, as far as tabby owns it.
//!
//! A [`RouteTable`] is one blocking rtnetlink socket (opened in whatever
//! network namespace the calling thread is in). [`RouteTable::owned`] dumps
//! the routes tabby owns, filtered by the kernel (strict checking);
//! [`RouteTable::apply`] carries out a [`Plan`]. Requests are serialized
//! back to back into one buffer and sent with one `sendmsg` per batch, then
//! the ACKs are collected: unlike `ip -batch`, which waits for each ACK
//! before sending the next request, one round trip carries hundreds of
//! routes. Failures are reported per route and never stop the rest.
//!
//! Additions use `NLM_F_EXCL`, so a destination already held by a route of
//! another owner (BIRD, Felix, an operator) is reported as a conflict and
//! left alone; replacements only target destinations tabby owns; deletions
//! carry tabby's protocol, which the kernel matches.

use std::collections::HashMap;
use std::io;

use ipnet::IpNet;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

use super::ROUTE_PROTOCOL;
use super::route::{Plan, RouteSet, Target};
use super::route_msg::{MAIN_TABLE, owned_route, route_message};

/// Requests per `sendmsg`. Each is under 100 bytes and each ACK (with
/// `NETLINK_CAP_ACK`) 36, so a batch fits the socket buffers with room.
const BATCH: usize = 512;

/// What went wrong talking to the kernel as a whole (not one route).
#[derive(Debug, thiserror::Error)]
pub enum RouteTableError {
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    #[error("undecodable netlink reply: {0}")]
    Decode(String),
    #[error("netlink dump failed: {0}")]
    Dump(io::Error),
}

/// Which change a failed request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Replace,
    Delete,
}

/// The outcome of [`RouteTable::apply`].
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Requests sent to the kernel (the netlink operations counted).
    pub requests: usize,
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    /// Requests the kernel refused. `EEXIST` on an add means another
    /// owner's route holds the destination.
    pub failed: Vec<(Change, IpNet, io::Error)>,
}

/// tabby's view of one kernel's routing table.
#[derive(Debug)]
pub struct RouteTable {
    socket: Socket,
    seq: u32,
    recv: Vec<u8>,
}

impl RouteTable {
    /// Open a route socket in the calling thread's network namespace.
    pub fn open() -> Result<RouteTable, RouteTableError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_netlink_get_strict_chk(true)?;
        socket.set_cap_ack(true)?;
        socket.set_rx_buf_sz(4 << 20)?;
        Ok(RouteTable {
            socket,
            seq: 0,
            recv: vec![0; 1 << 16],
        })
    }

    /// Every route tabby owns (main table, [`ROUTE_PROTOCOL`]), both families.
    pub fn owned(&mut self) -> Result<RouteSet, RouteTableError> {
        let mut set = RouteSet::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut filter = RouteMessage::default();
            filter.header.address_family = family;
            filter.header.table = MAIN_TABLE;
            filter.header.protocol = RouteProtocol::Other(ROUTE_PROTOCOL);
            let seq = self.next_seq();
            let mut buf = Vec::new();
            push(
                &mut buf,
                RouteNetlinkMessage::GetRoute(filter),
                NLM_F_REQUEST | NLM_F_DUMP,
                seq,
            );
            self.socket.send(&buf, 0)?;
            self.read_dump(seq, |msg| {
                if let Some((dst, target)) = owned_route(&msg) {
                    set.insert(dst, target);
                }
            })?;
        }
        Ok(set)
    }

    /// Carry out `plan`, in batches; see the module doc for the flags used.
    pub fn apply(&mut self, plan: &Plan) -> Result<ApplyReport, RouteTableError> {
        let mut report = ApplyReport::default();
        let ops = plan
            .add
            .iter()
            .map(|r| (Change::Add, r))
            .chain(plan.replace.iter().map(|r| (Change::Replace, r)))
            .chain(plan.delete.iter().map(|r| (Change::Delete, r)));
        let ops: Vec<(Change, &(IpNet, Target))> = ops.collect();
        for chunk in ops.chunks(BATCH) {
            let mut buf = Vec::with_capacity(chunk.len() * 96);
            let mut pending = HashMap::with_capacity(chunk.len());
            let mut barrier = 0;
            for (change, (dst, target)) in chunk {
                let msg = route_message(dst, target);
                let (msg, flags) = match change {
                    Change::Add => (
                        RouteNetlinkMessage::NewRoute(msg),
                        NLM_F_CREATE | NLM_F_EXCL,
                    ),
                    Change::Replace => (
                        RouteNetlinkMessage::NewRoute(msg),
                        NLM_F_CREATE | NLM_F_REPLACE,
                    ),
                    Change::Delete => (RouteNetlinkMessage::DelRoute(msg), 0),
                };
                // Only the batch's last request asks for an ACK: the kernel
                // handles a batch in order and reports every failure, so
                // that ACK means every earlier request without an error
                // succeeded. This halves what the kernel has to send back.
                let last = pending.len() + 1 == chunk.len();
                let ack = if last { NLM_F_ACK } else { 0 };
                let seq = self.next_seq();
                push(&mut buf, msg, NLM_F_REQUEST | ack | flags, seq);
                pending.insert(seq, (*change, *dst));
                if last {
                    barrier = seq;
                }
            }
            self.socket.send(&buf, 0)?;
            report.requests += chunk.len();
            self.read_acks(barrier, &mut pending, &mut report)?;
        }
        Ok(report)
    }

    /// Dump, plan and apply: make the kernel hold exactly `desired`.
    /// Returns the plan carried out and its report.
    pub fn sync(&mut self, desired: &RouteSet) -> Result<(Plan, ApplyReport), RouteTableError> {
        let plan = Plan::between(desired, &self.owned()?);
        let report = self.apply(&plan)?;
        Ok((plan, report))
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Collect the errors of one batch until the ACK (or error) of its last
    /// request, `barrier`, arrives; what is still pending then succeeded.
    fn read_acks(
        &mut self,
        barrier: u32,
        pending: &mut HashMap<u32, (Change, IpNet)>,
        report: &mut ApplyReport,
    ) -> Result<(), RouteTableError> {
        let mut done = false;
        while !done {
            for msg in self.receive()? {
                let NetlinkPayload::Error(err) = msg.payload else {
                    continue;
                };
                let seq = msg.header.sequence_number;
                done |= seq == barrier;
                if err.code.is_some()
                    && let Some((change, dst)) = pending.remove(&seq)
                {
                    report.failed.push((change, dst, err.to_io()));
                }
            }
        }
        for (change, _) in pending.values() {
            match change {
                Change::Add => report.added += 1,
                Change::Replace => report.replaced += 1,
                Change::Delete => report.deleted += 1,
            }
        }
        Ok(())
    }

    fn read_dump(
        &mut self,
        seq: u32,
        mut each: impl FnMut(RouteMessage),
    ) -> Result<(), RouteTableError> {
        loop {
            for msg in self.receive()? {
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(err) if err.code.is_some() => {
                        return Err(RouteTableError::Dump(err.to_io()));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                        each(route)
                    }
                    _ => {}
                }
            }
        }
    }

    /// One `recv`, split into its netlink messages.
    fn receive(&mut self) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, RouteTableError> {
        let n = self.socket.recv(&mut &mut self.recv[..], 0)?;
        let mut out = Vec::new();
        let mut rest = &self.recv[..n];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < 16 || len > rest.len() {
                return Err(RouteTableError::Decode(format!("message length {len}")));
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                .map_err(|e| RouteTableError::Decode(e.to_string()))?;
            out.push(msg);
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
        Ok(out)
    }
}

/// Append one request to `buf`.
fn push(buf: &mut Vec<u8>, msg: RouteNetlinkMessage, flags: u16, seq: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let start = buf.len();
    buf.resize(start + nl.buffer_len(), 0);
    nl.serialize(&mut buf[start..]);
}
