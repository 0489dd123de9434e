//! Typed messages end to end: the host's `wasmpipe::codec` against guests built with the
//! `wasmpipe-guest` SDK, through real sandboxes and real pipes, good and bad input both ways.

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use wasmpipe::codec::{Bytes, FramedRead, FramedWrite, JsonLinesCodec, length_delimited_codec};
use wasmpipe::{AsyncReader, AsyncWriter, Error, Sandbox, SandboxChild};
use wasmpipe_tests::guests;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    text: String,
    tags: Vec<String>,
}

/// What `json_echo` answers.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply {
    Echo(Job),
    Error(String),
}

fn spawn(guest: &str, args: &[&str]) -> (SandboxChild, AsyncWriter, AsyncReader) {
    let mut sandbox = Sandbox::new(guest);
    for arg in args {
        sandbox = sandbox.arg(*arg);
    }
    sandbox.spawn_piped().unwrap()
}

fn job(id: u32) -> Job {
    Job { id, text: format!("line\nbreak, quote \" and ünïcode {id}"), tags: vec!["a".into(); id as usize % 3] }
}

fn assert_unexpected_eof<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Io(e)) if e.kind() == ErrorKind::UnexpectedEof => {}
        other => panic!("expected UnexpectedEof, got {other:?}"),
    }
}

// --- JSON Lines ---

#[tokio::test]
async fn typed_json_goes_to_the_guest_and_typed_replies_come_back() {
    let (mut child, mut tx, mut rx) = spawn(guests::JSON_ECHO, &[]);
    // Many in flight at once: the guest replies as it reads, the host reads afterwards.
    for id in 0..200 {
        tx.send(&job(id)).await.unwrap();
    }
    for id in 0..200 {
        assert_eq!(rx.recv::<Reply>().await.unwrap(), Some(Reply::Echo(job(id))));
    }
    drop(tx);
    assert_eq!(rx.recv::<Reply>().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn the_guest_reports_bad_json_from_the_host_by_line_and_goes_on() {
    let (mut child, mut tx, mut rx) = spawn(guests::JSON_ECHO, &["128"]);
    tx.write_all(b"{\"id\": 1,\n").await.unwrap();
    tx.write_all(format!("{}\n", serde_json::to_string(&"x".repeat(300)).unwrap()).as_bytes()).await.unwrap();
    tx.send(&job(3)).await.unwrap();
    assert_eq!(
        rx.recv::<Reply>().await.unwrap(),
        Some(Reply::Error("line 1: malformed JSON: EOF while parsing a value at column 9".into()))
    );
    assert_eq!(
        rx.recv::<Reply>().await.unwrap(),
        Some(Reply::Error("line 2: longer than the maximum of 128 bytes".into()))
    );
    assert_eq!(rx.recv::<Reply>().await.unwrap(), Some(Reply::Echo(job(3))));
    drop(tx);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn the_host_reports_bad_json_from_the_guest_by_line_and_goes_on() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct N {
        n: u32,
    }
    let (mut child, tx, mut rx) = spawn(guests::BAD_MESSAGES, &["json"]);
    drop(tx);
    rx.set_max_line_length(1024);
    assert_eq!(rx.recv::<N>().await.unwrap(), Some(N { n: 1 }));
    match rx.recv::<N>().await {
        Err(Error::MalformedJson { line: 2, column: 7, message }) => assert_eq!(message, "expected value"),
        other => panic!("expected malformed JSON on line 2, got {other:?}"),
    }
    assert_eq!(rx.recv::<N>().await.unwrap(), Some(N { n: 3 }));
    assert!(matches!(rx.recv::<N>().await, Err(Error::LineTooLong { limit: 1024 })));
    assert_eq!(rx.recv::<N>().await.unwrap(), Some(N { n: 5 }));
    assert_eq!(rx.recv::<N>().await.unwrap(), None);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn json_lines_codec_plugs_into_framed_read_and_write() {
    let (mut child, tx, rx) = spawn(guests::JSON_ECHO, &[]);
    let mut requests = FramedWrite::new(tx, JsonLinesCodec::<Job>::new());
    let replies = FramedRead::new(rx, JsonLinesCodec::<Reply>::new());
    for id in 0..20 {
        requests.feed(job(id)).await.unwrap();
    }
    requests.close().await.unwrap(); // flushes, then EOF for the guest
    let replies: Vec<Reply> = replies.map(Result::unwrap).collect().await;
    assert_eq!(replies, (0..20).map(|id| Reply::Echo(job(id))).collect::<Vec<_>>());
    assert!(child.wait().await.unwrap().success());
}

// --- Binary frames ---

#[tokio::test]
async fn frames_go_to_the_guest_and_come_back_byte_for_byte() {
    let (mut child, mut tx, mut rx) = spawn(guests::FRAME_ECHO, &[]);
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let payloads = [b"".to_vec(), b"\0\n\r\xff binary".to_vec(), big];
    let writer = tokio::spawn(async move {
        for payload in &payloads {
            tx.send_frame(payload).await.unwrap();
        }
        payloads
    });
    // Read concurrently with the writes: the big frame does not fit in the pipes at once.
    let replies = collect_frames(&mut rx).await; // until the guest exits, after the writer's EOF
    let payloads = writer.await.unwrap();
    let expected: Vec<Vec<u8>> = payloads.iter().map(|p| [&b"echo:"[..], p].concat()).collect();
    assert!(replies == expected, "replies differ from the payloads");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn the_guest_rejects_oversized_and_truncated_frames_from_the_host() {
    let (mut child, mut tx, mut rx) = spawn(guests::FRAME_ECHO, &["1024"]);
    // The host's own limit is larger, so it lets the oversized frame out.
    tx.send_frame(&[7; 2000]).await.unwrap();
    tx.send_frame(b"next").await.unwrap();
    tx.send_frame(b"oversized-reply").await.unwrap();
    tx.write_all(&[0, 0, 0, 100]).await.unwrap();
    tx.write_all(b"only ten..").await.unwrap();
    drop(tx);
    let replies: Vec<String> = collect_frames(&mut rx).await.into_iter().map(lossy).collect();
    assert_eq!(
        replies,
        [
            "error:InvalidData:frame of 2000 bytes is larger than the maximum of 1024",
            "echo:next",
            "error:InvalidData:frame of 1025 bytes is larger than the maximum of 1024",
            "error:UnexpectedEof:input ended inside a frame of 100 bytes (got 10)",
        ]
    );
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn the_host_rejects_oversized_and_truncated_frames_from_the_guest() {
    let (mut child, tx, mut rx) = spawn(guests::BAD_MESSAGES, &["frames"]);
    drop(tx);
    rx.set_max_frame_length(1024);
    assert_eq!(rx.recv_frame().await.unwrap().as_deref(), Some(&b"first"[..]));
    assert!(matches!(rx.recv_frame().await, Err(Error::FrameTooLarge { length: 2000, max: 1024 })));
    // The oversized payload was skipped: the stream is in step again.
    assert_eq!(rx.recv_frame().await.unwrap().as_deref(), Some(&b"after"[..]));
    assert_unexpected_eof(rx.recv_frame().await);
    assert_eq!(rx.recv_frame().await.unwrap(), None, "after the error, the end");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_4_gib_claim_is_refused_from_the_header_alone() {
    let (mut child, tx, mut rx) = spawn(guests::BAD_MESSAGES, &["huge-claim"]);
    drop(tx);
    match rx.recv_frame().await {
        Err(Error::FrameTooLarge { length: 0xffff_ffff, max }) => {
            assert_eq!(max, wasmpipe::codec::DEFAULT_MAX_FRAME_LENGTH)
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_unexpected_eof(rx.recv_frame().await);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn tokio_util_length_delimited_codec_speaks_to_the_guest_sdk() {
    let (mut child, tx, rx) = spawn(guests::FRAME_ECHO, &[]);
    let mut sink = FramedWrite::new(tx, length_delimited_codec(1 << 20));
    for payload in ["one", "", "three"] {
        sink.feed(bytes_of(payload)).await.unwrap();
    }
    SinkExt::<Bytes>::close(&mut sink).await.unwrap();
    let frames: Vec<String> = FramedRead::new(rx, length_delimited_codec(1 << 20))
        .map(|frame| lossy(frame.unwrap().to_vec()))
        .collect()
        .await;
    assert_eq!(frames, ["echo:one", "echo:", "echo:three"]);
    assert!(child.wait().await.unwrap().success());
}

fn bytes_of(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn collect_frames(rx: &mut AsyncReader) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(frame) = rx.recv_frame().await.unwrap() {
        frames.push(frame);
    }
    frames
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}
