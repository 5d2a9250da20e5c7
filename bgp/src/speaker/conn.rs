//! One transport connection: a reader task that frames messages, a writer
//! task that sends encoded bytes, and outbound connection attempts.
//!
//! The reader only checks framing (marker and length, RFC 4271 §6.1) and
//! hands whole messages to the peer task, which decodes them with the
//! context its session negotiated: a message is never decoded with a
//! context that changed under it. Closing the writer's channel flushes what
//! was queued (a NOTIFICATION, typically) and shuts the socket down.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::config::PeerConfig;
use super::socket::{set_md5, set_min_ttl, set_unicast_hops};
use crate::session::ConnId;
use crate::wire::{Context, DecodeError, frame};

/// What a connection's tasks report to the peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// An outbound attempt finished.
    Connected {
        attempt: u64,
        result: io::Result<TcpStream>,
    },
    /// One whole message, header included.
    Frame { conn: ConnId, bytes: Vec<u8> },
    /// The stream cannot be framed (1/1 or 1/2).
    FrameError { conn: ConnId, error: DecodeError },
    /// The peer closed the connection or it failed.
    Closed { conn: ConnId },
}

/// The peer task's side of one connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub writer: mpsc::UnboundedSender<Vec<u8>>,
    pub reader: tokio::task::JoinHandle<()>,
    /// Whether RFC 8654 extended messages were negotiated (framing limit).
    pub extended: Arc<AtomicBool>,
}

impl Conn {
    /// Start the reader and writer tasks for `stream`.
    pub fn start(
        conn: ConnId,
        stream: TcpStream,
        events: mpsc::UnboundedSender<ConnEvent>,
    ) -> Conn {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (writer, queue) = mpsc::unbounded_channel();
        let extended = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(write, queue));
        let reader = tokio::spawn(read_loop(conn, read, events, extended.clone()));
        Conn {
            writer,
            reader,
            extended,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn write_loop(mut write: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = queue.recv().await {
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_loop(
    conn: ConnId,
    mut read: OwnedReadHalf,
    events: mpsc::UnboundedSender<ConnEvent>,
    extended: Arc<AtomicBool>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        // Frame as many whole messages as are buffered, each copied out
        // once; the partial one left is moved to the front once per read
        // (splitting the buffer at each message would copy the rest of it
        // every time: a 64 KiB read of 4 KiB UPDATEs moved ~8 times over).
        let mut start = 0;
        loop {
            let ctx = Context {
                extended_message: extended.load(Ordering::Relaxed),
                ..Context::default()
            };
            let rest = buf.get(start..).unwrap_or_default();
            match frame(rest, &ctx) {
                Ok(Some(n)) => {
                    let bytes = rest.get(..n).unwrap_or_default().to_vec();
                    start += n;
                    if events.send(ConnEvent::Frame { conn, bytes }).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = events.send(ConnEvent::FrameError { conn, error });
                    return;
                }
            }
        }
        buf.drain(..start.min(buf.len()));
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = events.send(ConnEvent::Closed { conn });
                return;
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Connect to the peer with its socket options (source address, MD5, TTL).
pub(crate) async fn connect(cfg: PeerConfig) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(cfg.address, cfg.port);
    let socket = match cfg.address {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(local) = cfg.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    if let Some(password) = &cfg.password {
        set_md5(&socket, cfg.address, Some(password.as_bytes()))?;
    }
    let stream = socket.connect(remote).await?;
    apply_ttl(&stream, &cfg)?;
    Ok(stream)
}

/// Outgoing TTL and, with GTSM, the minimum incoming TTL.
pub(crate) fn apply_ttl(stream: &TcpStream, cfg: &PeerConfig) -> io::Result<()> {
    let ttl = u32::from(cfg.outgoing_ttl());
    let v6 = cfg.address.is_ipv6();
    if v6 {
        set_unicast_hops(stream, cfg.outgoing_ttl())?;
    } else {
        stream.set_ttl(ttl)?;
    }
    if let Some(hops) = cfg.gtsm_hops {
        set_min_ttl(
            stream,
            v6,
            255u8.saturating_sub(hops.max(1)).saturating_add(1),
        )?;
    }
    Ok(())
}
