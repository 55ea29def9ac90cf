//! Plain `/metrics` answers sent without copying the text into the socket.
//!
//! nginx serves a file with `sendfile`: the socket takes references to the page cache's pages
//! instead of a copy. Here the text is written once per render into a kernel pipe, and each
//! answer `tee`s that pipe's pages into the connection's own pipe (references, no copy) and
//! `splice`s them to the socket. At 50 accounts (130 KiB) that halves the CPU of a plain answer
//! (bench/notes.md). The pages belong to the kernel and are never written again, so an answer
//! still in flight when the text changes is sent as it was.
//!
//! Linux only. Anywhere else, over TLS, for a text no pipe can hold, or when the kernel's pipe
//! limits refuse one, answers are written with `writev` as before.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::lock;

/// Texts shorter than this are copied: two more system calls cost more than the copy.
const MIN_LEN: usize = 32 * 1024;

/// Room in a connection's pipe beside the text, for the headers and the `process_*` text.
const HEADROOM: usize = 64 * 1024;

/// The text answers may send from a pipe: the latest plain exposition.
#[derive(Default)]
pub struct Texts {
    current: Mutex<Option<Source>>,
    /// Answers that went out through a pipe, for the tests.
    spliced: AtomicU64,
}

struct Source {
    /// Held so that its address stays this text's while it is current: a slice at this address
    /// and of this length is this text.
    text: Bytes,
    /// The pipe holding a copy of it, or `None` when none could be had.
    pipe: Option<Arc<imp::Pipe>>,
}

impl Texts {
    /// Makes `text` the one answers may send from a pipe, writing it into a new pipe unless it
    /// already is. Called with every plain answer; costs a lock and a comparison when the text
    /// has not changed.
    pub fn offer(&self, text: &Bytes) {
        if text.len() < MIN_LEN || !imp::SUPPORTED {
            return;
        }
        let mut current = lock(&self.current);
        if current
            .as_ref()
            .is_some_and(|source| same(&source.text, text))
        {
            return;
        }
        let pipe = match imp::Pipe::filled(text) {
            Ok(pipe) => Some(Arc::new(pipe)),
            Err(err) => {
                tracing::debug!(error = %err, bytes = text.len(), "plain text sent by copying");
                None
            }
        };
        *current = Some(Source {
            text: text.clone(),
            pipe,
        });
    }

    /// The pipe holding exactly `slice`, if it is the current text and has one.
    fn pipe_for(&self, slice: &[u8]) -> Option<Arc<imp::Pipe>> {
        if slice.len() < MIN_LEN {
            return None;
        }
        let current = lock(&self.current);
        let source = current.as_ref()?;
        same(&source.text, slice).then(|| source.pipe.clone())?
    }

    /// Whether a text has been offered.
    pub fn holds_a_text(&self) -> bool {
        lock(&self.current).is_some()
    }

    /// How many answers have been sent from a pipe.
    pub fn spliced(&self) -> u64 {
        self.spliced.load(Ordering::Relaxed)
    }
}

/// The same bytes in memory: the same address and length, not merely equal contents.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// A server connection: a TCP stream whose writes of a current text go through a pipe.
///
/// A write that holds the text is accepted whole once it is in the connection's pipe; what the
/// socket has not taken yet is sent before anything else is written, and before a flush or a
/// shutdown completes, so the order of the bytes on the wire is the order they were written in.
pub struct Conn {
    stream: TcpStream,
    texts: Option<Arc<Texts>>,
    out: Option<imp::Outbox>,
    /// The kernel refused this connection a pipe (its pipe limits): it copies from then on.
    refused: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, texts: Option<Arc<Texts>>) -> Self {
        Self {
            stream,
            texts,
            out: None,
            refused: false,
        }
    }

    /// Sends what waits in the connection's pipe.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.out {
            Some(out) => out.poll_drain(&self.stream, cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Puts `bufs` into the connection's pipe when one of them is a current text, and returns
    /// how many bytes went in; `None` when they are to be written as usual.
    fn enqueue(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let texts = self.texts.as_ref().filter(|_| !self.refused)?;
        let (at, source) = bufs
            .iter()
            .enumerate()
            .find_map(|(i, buf)| Some((i, texts.pipe_for(buf)?)))?;
        if self.out.as_ref().is_none_or(|out| !out.fits(&source)) {
            match imp::Outbox::new(source.len() + HEADROOM) {
                Ok(out) => self.out = Some(out),
                Err(err) => {
                    tracing::debug!(error = %err, "plain text sent by copying on this connection");
                    self.refused = true;
                    return None;
                }
            }
        }
        let out = self.out.as_mut()?;
        let mut accepted = 0;
        for (i, buf) in bufs.iter().enumerate() {
            let put = if i == at {
                texts.spliced.fetch_add(1, Ordering::Relaxed);
                out.tee(&source, buf)
            } else {
                out.write(buf)
            };
            accepted += put;
            if put < buf.len() {
                break;
            }
        }
        Some(accepted)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if let Some(accepted) = this.enqueue(bufs).filter(|n| *n > 0) {
            // Accepted: what the socket cannot take now goes out with the next write or flush.
            if let Poll::Ready(Err(err)) = this.poll_drain(cx) {
                return Poll::Ready(Err(err));
            }
            return Poll::Ready(Ok(accepted));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::fs::File;
    use std::io::{self, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::task::{Context, Poll, ready};

    use tokio::io::Interest;
    use tokio::net::TcpStream;

    pub const SUPPORTED: bool = true;

    /// Both ends of a new non-blocking pipe, resized to hold `bytes`.
    fn pipe(bytes: usize) -> io::Result<(OwnedFd, File)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let wanted = libc::c_int::try_from(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "text too long"))?;
        // SAFETY: F_SETPIPE_SZ takes an int and touches nothing of ours. The kernel refuses
        // sizes above /proc/sys/fs/pipe-max-size (1 MiB by default) and, past the user's pipe
        // allowance, any growth: then the text is copied as before.
        if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((read, write))
    }

    /// A pipe holding one text, written once; answers duplicate its pages with `tee`, which
    /// leaves them in place.
    pub struct Pipe {
        read: OwnedFd,
        len: usize,
    }

    impl Pipe {
        pub fn filled(text: &[u8]) -> io::Result<Pipe> {
            let (read, mut write) = pipe(text.len())?;
            // The pipe was sized for the text, so a non-blocking write takes it whole.
            write.write_all(text)?;
            Ok(Pipe {
                read,
                len: text.len(),
            })
        }

        pub fn len(&self) -> usize {
            self.len
        }
    }

    /// A connection's pipe: what has been accepted from the server and not yet sent.
    pub struct Outbox {
        read: OwnedFd,
        write: File,
        capacity: usize,
        /// Bytes accepted and not yet sent.
        pub pending: usize,
    }

    impl Outbox {
        pub fn new(capacity: usize) -> io::Result<Outbox> {
            let (read, write) = pipe(capacity)?;
            Ok(Outbox {
                read,
                write,
                capacity,
                pending: 0,
            })
        }

        /// Whether `source`'s text fits, with the rest of an answer, once the pipe is empty.
        pub fn fits(&self, source: &Pipe) -> bool {
            source.len + super::HEADROOM <= self.capacity
        }

        /// Duplicates `source`'s pages into this pipe, copying what `tee` did not take; returns
        /// the bytes now queued (all of `text` unless the pipe is full).
        pub fn tee(&mut self, source: &Pipe, text: &[u8]) -> usize {
            // SAFETY: both descriptors are open pipes owned by `source` and `self`; tee only
            // moves page references between them.
            let teed = unsafe {
                libc::tee(
                    source.read.as_raw_fd(),
                    self.write.as_raw_fd(),
                    source.len,
                    libc::SPLICE_F_NONBLOCK,
                )
            };
            let teed = usize::try_from(teed).unwrap_or(0).min(text.len());
            self.pending += teed;
            teed + self.write(&text[teed..])
        }

        /// Copies as much of `buf` into the pipe as it takes.
        pub fn write(&mut self, buf: &[u8]) -> usize {
            let mut put = 0;
            while put < buf.len() {
                match self.write.write(&buf[put..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => put += n,
                }
            }
            self.pending += put;
            put
        }

        /// Splices the pipe's contents into the socket until it is empty or the socket is full.
        pub fn poll_drain(
            &mut self,
            stream: &TcpStream,
            cx: &mut Context<'_>,
        ) -> Poll<io::Result<()>> {
            while self.pending > 0 {
                ready!(stream.poll_write_ready(cx))?;
                let spliced = stream.try_io(Interest::WRITABLE, || {
                    // SAFETY: both descriptors are open; splice moves page references from
                    // the pipe to the socket and touches no memory of ours.
                    let sent = unsafe {
                        libc::splice(
                            self.read.as_raw_fd(),
                            std::ptr::null_mut(),
                            stream.as_raw_fd(),
                            std::ptr::null_mut(),
                            self.pending,
                            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                        )
                    };
                    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
                });
                match spliced {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(sent) => self.pending -= sent,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::task::{Context, Poll};

    use tokio::net::TcpStream;

    pub const SUPPORTED: bool = false;

    pub struct Pipe;

    impl Pipe {
        pub fn filled(_: &[u8]) -> io::Result<Pipe> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn len(&self) -> usize {
            0
        }
    }

    pub struct Outbox;

    impl Outbox {
        pub fn new(_: usize) -> io::Result<Outbox> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn fits(&self, _: &Pipe) -> bool {
            false
        }
        pub fn tee(&mut self, _: &Pipe, _: &[u8]) -> usize {
            0
        }
        pub fn write(&mut self, _: &[u8]) -> usize {
            0
        }
        pub fn poll_drain(&mut self, _: &TcpStream, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use hyper::Response;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket};

    use super::*;
    use crate::server::{Chunks, accept_connections};

    /// Text that shows where a byte went missing or came twice.
    fn text(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| b'a' + ((i / 7 + usize::from(seed)) % 26) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// A connection whose socket holds little, so that most of a text waits in the pipe, and
    /// the other end of it (whose small receive buffer it gets from the listener).
    async fn narrow_pair(texts: &Arc<Texts>) -> (Conn, TcpStream) {
        let listening = TcpSocket::new_v4().unwrap();
        listening.set_recv_buffer_size(4096).unwrap();
        listening.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listening.listen(8).unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let (connected, accepted) = tokio::join!(
            socket.connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        let (reader, _) = accepted.unwrap();
        (
            Conn::new(connected.unwrap(), Some(Arc::clone(texts))),
            reader,
        )
    }

    /// Writes all of `bufs` the way hyper does: again with what was not accepted.
    async fn write_all(conn: &mut Conn, bufs: &[&[u8]]) {
        let mut owned: Vec<&[u8]> = bufs.to_vec();
        while !owned.is_empty() {
            let slices: Vec<IoSlice<'_>> = owned.iter().map(|b| IoSlice::new(b)).collect();
            let mut n = conn.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            while n > 0 {
                let first = owned[0].len().min(n);
                owned[0] = &owned[0][first..];
                n -= first;
                if owned[0].is_empty() {
                    owned.remove(0);
                }
            }
        }
    }

    #[tokio::test]
    async fn answers_keep_their_order_when_the_socket_is_slower_than_the_pipe() {
        let texts = Arc::new(Texts::default());
        let (a, b) = (text(200_000, 0), text(150_000, 1));
        texts.offer(&a);
        let (mut conn, mut reader) = narrow_pair(&texts).await;
        let writer = tokio::spawn({
            let (a, b, texts) = (a.clone(), b.clone(), Arc::clone(&texts));
            async move {
                write_all(&mut conn, &[b"head 1\n", &a, b"tail 1\n"]).await;
                // Most of `a` is still in the connection's pipe: the socket holds a few KiB.
                assert!(conn.out.as_ref().unwrap().pending > 100_000);
                // The text changes while the first answer is on its way.
                texts.offer(&b);
                write_all(&mut conn, &[b"head 2\n", &b, b"tail 2\n"]).await;
                // No longer current: copied, after everything before it.
                write_all(&mut conn, &[b"head 3\n", &a, b"tail 3\n"]).await;
                conn.shutdown().await.unwrap();
            }
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        let expected = [
            &b"head 1\n"[..],
            &a,
            b"tail 1\n",
            b"head 2\n",
            &b,
            b"tail 2\n",
            b"head 3\n",
            &a,
            b"tail 3\n",
        ]
        .concat();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "the bytes arrived out of order");
        assert_eq!(
            texts.spliced(),
            2,
            "the two current texts went through a pipe"
        );
    }

    /// A client that hangs up with most of an answer still in the pipe: the connection ends
    /// with an error (the server then closes it), rather than waiting for a socket that will
    /// never drain.
    #[tokio::test]
    async fn a_client_gone_mid_answer_ends_the_connection_with_an_error() {
        let texts = Arc::new(Texts::default());
        let a = text(200_000, 4);
        texts.offer(&a);
        let (mut conn, reader) = narrow_pair(&texts).await;
        write_all(&mut conn, &[b"head\n", &a]).await;
        assert!(conn.out.as_ref().unwrap().pending > 100_000);
        // Closed with bytes unread, the other end answers further segments with a reset.
        drop(reader);
        let flushed = tokio::time::timeout(Duration::from_secs(10), conn.flush())
            .await
            .expect("the flush ended");
        let err = flushed.expect_err("nobody reads the rest");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn texts_that_are_small_or_not_current_are_written_as_usual() {
        let texts = Arc::new(Texts::default());
        let small = text(1000, 2);
        texts.offer(&small);
        let current = text(100_000, 3);
        texts.offer(&current);
        // The same bytes elsewhere in memory are not the current text.
        let copy = Bytes::from(current.to_vec());
        let (mut conn, mut reader) = narrow_pair(&texts).await;
        let writer = tokio::spawn({
            let (small, copy) = (small.clone(), copy.clone());
            async move {
                write_all(&mut conn, &[&small, &copy]).await;
                conn.shutdown().await.unwrap();
                conn
            }
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).await.unwrap();
        let conn = writer.await.unwrap();
        assert!(received == [&small[..], &copy].concat());
        assert_eq!(texts.spliced(), 0);
        assert!(conn.out.is_none(), "no pipe was made for the connection");
    }

    /// hyper must hand the body's chunk over as it is (its vectored writes), or nothing is
    /// recognised and every answer is copied.
    #[tokio::test]
    async fn hyper_answers_on_a_kept_alive_connection_go_through_the_pipe() {
        let texts = Arc::new(Texts::default());
        let body = text(130_000, 4);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let (texts, body) = (Arc::clone(&texts), body.clone());
            accept_connections(
                listener,
                None,
                Some(Arc::clone(&texts)),
                move |_| {
                    let (texts, body) = (Arc::clone(&texts), body.clone());
                    async move {
                        texts.offer(&body);
                        Response::new(Chunks::new([body, Bytes::from_static(b"# EOF\n")]))
                    }
                },
                async {
                    let _ = stopped.await;
                },
            )
        });
        let client = reqwest::Client::new();
        for _ in 0..20 {
            let got = client
                .get(format!("http://{address}/"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(got == [&body[..], b"# EOF\n"].concat());
        }
        assert_eq!(texts.spliced(), 20);
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
