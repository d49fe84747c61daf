//! Vectored writes of response pieces. glommio's TcpStream has no vectored write, so the
//! pieces (encoded framing interleaved with stored record slices) go out with `sendmsg` on
//! the raw fd, non-blocking and chunked to IOV_MAX; when the socket is full, one `write`
//! through glommio waits for it to drain, then vectored sends resume.

use std::os::fd::RawFd;

use bytes::{Buf, Bytes};
use futures::{AsyncWrite, AsyncWriteExt};

/// Linux's IOV_MAX.
pub(super) const IOV_MAX: usize = 1024;

pub async fn write_all<W: AsyncWrite + Unpin>(
    fd: RawFd,
    writer: &mut W,
    mut pieces: Vec<Bytes>,
) -> std::io::Result<()> {
    pieces.retain(|p| !p.is_empty());
    let mut first = 0usize;
    while first < pieces.len() {
        match send_vectored(fd, &pieces[first..]) {
            Ok(mut n) => {
                while n > 0 {
                    let len = pieces[first].len();
                    if n >= len {
                        n -= len;
                        first += 1;
                    } else {
                        pieces[first].advance(n);
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Park on writability through glommio with the current piece.
                let n = writer.write(&pieces[first]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                pieces[first].advance(n);
                if pieces[first].is_empty() {
                    first += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_vectored(fd: RawFd, pieces: &[Bytes]) -> std::io::Result<usize> {
    let count = pieces.len().min(IOV_MAX);
    let iov: Vec<libc::iovec> = pieces[..count]
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: msghdr is plain data; zeroed is a valid "no address, no control" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = count as _;
    // SAFETY: iov points at `count` live slices borrowed from `pieces` for this call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
