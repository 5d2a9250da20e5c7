//! Socket options BGP needs that the standard library lacks: TCP MD5
//! signatures (RFC 2385) and the minimum TTL for GTSM (RFC 5082).
//!
//! This is the one place in tabby's BGP code with `unsafe`: `setsockopt(2)`
//! takes a pointer and a length, and neither std nor tokio wraps these two
//! options. Each call passes a pointer to a live, correctly sized value.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

/// `struct tcp_md5sig` from `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; 80],
}

/// Longest key the kernel accepts (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_KEY_LEN: usize = 80;

fn storage_for(peer: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    #[allow(unsafe_code)]
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is aligned
            // for every socket address type.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in>(), sin)
            };
        }
        IpAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in6>(), sin6)
            };
        }
    }
    ss
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(io::Error::other)?;
    // SAFETY: `value` is a live reference to a `T` of exactly `len` bytes
    // for the duration of the call; the kernel only reads it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sign (or, with `None`, stop signing) TCP segments to and from `peer` on
/// `socket` with `key`. On a listening socket this applies to connections
/// accepted from `peer`; on a connecting socket, set it before `connect`.
pub fn set_md5(socket: &impl AsRawFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 octets",
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: storage_for(peer),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_MD5SIG,
        &sig,
    )
}

/// Drop packets that arrive with a TTL (hop limit) below `min` (GTSM).
pub fn set_min_ttl(socket: &impl AsRawFd, ipv6: bool, min: u8) -> io::Result<()> {
    let value = libc::c_int::from(min);
    if ipv6 {
        setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MINHOPCOUNT,
            &value,
        )
    } else {
        setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MINTTL,
            &value,
        )
    }
}

/// The hop limit of outgoing IPv6 unicast packets (the IPv6 TTL).
pub fn set_unicast_hops(socket: &impl AsRawFd, hops: u8) -> io::Result<()> {
    let value = libc::c_int::from(hops);
    setsockopt(
        socket.as_raw_fd(),
        libc::IPPROTO_IPV6,
        libc::IPV6_UNICAST_HOPS,
        &value,
    )
}
