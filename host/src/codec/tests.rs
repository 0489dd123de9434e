//! Property tests of the host's decoders, driven the way `FramedRead` drives them: arbitrary
//! bytes in arbitrary chunks never panic, never buffer more than the maximum (plus the chunk at
//! hand), and decode exactly what a straightforward model of each wire format says.

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;
use std::io;
use tokio_util::codec::{Decoder, Encoder};

use super::{FrameCodec, JsonLinesCodec, length_delimited_codec};
use crate::error::Error;

/// Largest chunk the tests feed at once.
const MAX_CHUNK: usize = 300;

/// What a decoder produced, in a comparable form.
#[derive(Debug, PartialEq)]
enum Out<T> {
    Item(T),
    Malformed { line: u64 },
    LineTooLong,
    FrameTooLarge { length: u64 },
    UnexpectedEof,
}

fn classify<T>(result: Result<T, Error>) -> Out<T> {
    match result {
        Ok(item) => Out::Item(item),
        Err(Error::MalformedJson { line, .. }) => Out::Malformed { line },
        Err(Error::LineTooLong { .. }) => Out::LineTooLong,
        Err(Error::FrameTooLarge { length, .. }) => Out::FrameTooLarge { length },
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Out::UnexpectedEof,
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// Feeds `input` to `decoder` in chunks of the given sizes, decoding after each chunk until the
/// decoder needs more, then `decode_eof` until it is done. After every step, checks that the
/// decoder left no unconsumed input behind (so the input buffer stays at one chunk's size) and
/// holds at most `bound` bytes itself.
fn drive<D: Decoder<Error = Error>>(
    decoder: &mut D,
    input: &[u8],
    chunks: &[usize],
    held: impl Fn(&D) -> usize,
    bound: usize,
) -> Vec<Out<D::Item>> {
    let mut out = Vec::new();
    let mut src = BytesMut::new();
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let take = (*sizes.next().unwrap()).clamp(1, rest.len());
        src.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            let result = decoder.decode(&mut src);
            assert!(held(decoder) <= bound, "decoder holds {} > {bound}", held(decoder));
            assert!(src.len() <= MAX_CHUNK, "unconsumed input grew to {}", src.len());
            // The input buffer never grows towards the maximum: it holds one chunk at most.
            assert!(src.capacity() <= 2 * MAX_CHUNK, "input buffer capacity grew to {}", src.capacity());
            match result {
                Ok(None) => {
                    assert!(src.is_empty(), "needing more, the decoder must have taken everything");
                    break;
                }
                other => out.push(classify(other.map(|item| item.unwrap()))),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut src) {
            Ok(None) => break,
            Err(e) => {
                out.push(classify::<D::Item>(Err(e)));
                break;
            }
            other => out.push(classify(other.map(|item| item.unwrap()))),
        }
    }
    out
}

/// The JSON Lines model: each `\n`-terminated piece is one line, too long, malformed or a value.
fn json_model(input: &[u8], max: usize) -> Vec<Out<Value>> {
    input
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            if line.len() > max {
                return Out::LineTooLong;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            match serde_json::from_slice(text) {
                Ok(value) => Out::Item(value),
                Err(_) => Out::Malformed { line: i as u64 + 1 },
            }
        })
        .collect()
}

/// The frame model: header, length check, payload, sequentially.
fn frame_model(mut input: &[u8], max: usize) -> Vec<Out<Vec<u8>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        if input.len() < 4 {
            out.push(Out::UnexpectedEof);
            break;
        }
        let length = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
        input = &input[4..];
        if length > max {
            out.push(Out::FrameTooLarge { length: length as u64 });
        }
        if input.len() < length {
            out.push(Out::UnexpectedEof);
            break;
        }
        if length <= max {
            out.push(Out::Item(input[..length].to_vec()));
        }
        input = &input[length..];
    }
    out
}

/// Writes `input` into a real pipe in the given chunk sizes while `read` drains the other end
/// through an [`AsyncReader`](crate::AsyncReader), and returns what `read` collected.
fn through_pipe<T: 'static>(
    input: Vec<u8>,
    chunks: Vec<usize>,
    read: impl AsyncFnOnce(&mut crate::AsyncReader) -> Vec<Out<T>>,
) -> Vec<Out<T>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let (rx, tx) = crate::pipe().unwrap();
        let (mut rx, mut tx) = (rx.open().unwrap(), tx.open().unwrap());
        let writer = tokio::spawn(async move {
            let mut rest = &input[..];
            for size in chunks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let take = (*size).clamp(1, rest.len());
                tx.write_all(&rest[..take]).await.unwrap();
                rest = &rest[take..];
                tokio::task::yield_now().await;
            }
        });
        let out = read(&mut rx).await;
        writer.await.unwrap();
        out
    })
}

/// Calls `next` until it says the stream ended, classifying each result; an `UnexpectedEof`
/// must be the last word.
async fn collect<T>(
    rx: &mut crate::AsyncReader,
    mut next: impl AsyncFnMut(&mut crate::AsyncReader) -> Result<Option<T>, Error>,
) -> Vec<Out<T>> {
    let mut out = Vec::new();
    loop {
        match next(rx).await {
            Ok(None) => return out,
            Ok(Some(item)) => out.push(Out::Item(item)),
            Err(e) => out.push(classify(Err(e))),
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32).to_be_bytes()[..], payload].concat()
}

/// Bytes that are mostly JSON-ish, with any byte possible.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(b'\n'),
        Just(b'{'),
        Just(b'}'),
        Just(b'"'),
        Just(b':'),
        Just(b'1'),
        Just(b' '),
        Just(b'\r'),
        any::<u8>()
    ];
    proptest::collection::vec(byte, 0..40)
}

/// A stream of valid lines and junk, in any order.
fn json_stream() -> impl Strategy<Value = Vec<u8>> {
    let valid = (any::<i64>(), "[a-z\\n\"\\\\]{0,30}")
        .prop_map(|(n, s)| format!("{}\n", serde_json::json!({ "n": n, "s": s })).into_bytes());
    proptest::collection::vec(prop_oneof![valid, jsonish_bytes()], 0..30).prop_map(|pieces| pieces.concat())
}

/// A stream of frames (some possibly oversized), maybe cut, maybe with junk after.
fn frame_stream() -> impl Strategy<Value = Vec<u8>> {
    let payloads = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..12);
    (payloads, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(payloads, cut, junk)| {
        let mut bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        if cut {
            bytes.truncate(bytes.len() / 2 + bytes.len() % 3);
        }
        bytes.extend(junk);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_lines_decode_exactly_the_model_with_bounded_memory(
        input in json_stream(),
        chunks in proptest::collection::vec(1usize..MAX_CHUNK, 1..10),
        max in 1usize..120,
    ) {
        let mut codec = JsonLinesCodec::<Value>::with_max_length(max);
        let out = drive(&mut codec, &input, &chunks, JsonLinesCodec::buffered_capacity, (2 * max).max(8));
        prop_assert_eq!(out, json_model(&input, max));
    }

    #[test]
    fn arbitrary_bytes_as_frames_decode_exactly_the_model_with_bounded_memory(
        input in prop_oneof![frame_stream(), proptest::collection::vec(any::<u8>(), 0..600)],
        chunks in proptest::collection::vec(1usize..MAX_CHUNK, 1..10),
        max in 0usize..160,
    ) {
        let mut codec = FrameCodec::with_max_length(max);
        let out = drive(&mut codec, &input, &chunks, FrameCodec::buffered_capacity, max);
        prop_assert_eq!(out, frame_model(&input, max));
    }

    #[test]
    fn frame_codec_and_tokio_length_delimited_codec_agree(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..10),
        chunks in proptest::collection::vec(1usize..MAX_CHUNK, 1..10),
    ) {
        // Ours encodes, tokio-util's decodes...
        let mut wire = BytesMut::new();
        for payload in &payloads {
            FrameCodec::new().encode(&payload[..], &mut wire).unwrap();
        }
        let mut theirs = length_delimited_codec(1 << 20);
        let mut decoded = Vec::new();
        while let Some(frame) = theirs.decode_eof(&mut wire).unwrap() {
            decoded.push(frame.to_vec());
        }
        prop_assert_eq!(&decoded, &payloads);

        // ...and the other way round, through arbitrary chunks.
        let mut wire = BytesMut::new();
        for payload in &payloads {
            length_delimited_codec(1 << 20).encode(bytes::Bytes::copy_from_slice(payload), &mut wire).unwrap();
        }
        let out = drive(&mut FrameCodec::new(), &wire, &chunks, FrameCodec::buffered_capacity, 300);
        prop_assert_eq!(out, payloads.into_iter().map(Out::Item).collect::<Vec<_>>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn async_reader_recv_over_a_real_pipe_matches_the_model(
        input in json_stream(),
        chunks in proptest::collection::vec(1usize..MAX_CHUNK, 1..10),
        max in 1usize..120,
    ) {
        let out = through_pipe(input.clone(), chunks, async move |rx| {
            rx.set_max_line_length(max);
            collect(rx, async |rx| rx.recv::<Value>().await).await
        });
        prop_assert_eq!(out, json_model(&input, max));
    }

    #[test]
    fn async_reader_recv_frame_over_a_real_pipe_matches_the_model(
        input in prop_oneof![frame_stream(), proptest::collection::vec(any::<u8>(), 0..600)],
        chunks in proptest::collection::vec(1usize..MAX_CHUNK, 1..10),
        max in 0usize..160,
    ) {
        let out = through_pipe(input.clone(), chunks, async move |rx| {
            rx.set_max_frame_length(max);
            collect(rx, async |rx| rx.recv_frame().await).await
        });
        // After an `UnexpectedEof` the stream has ended: the reader then says `None`.
        prop_assert_eq!(out, frame_model(&input, max));
    }
}

#[test]
fn malformed_json_names_line_column_and_reason() {
    let mut codec = JsonLinesCodec::<Value>::new();
    let mut src = BytesMut::from(&b"{\"a\":1}\n{\"a\": oops}\n"[..]);
    assert_eq!(codec.decode(&mut src).unwrap(), Some(serde_json::json!({ "a": 1 })));
    let err = codec.decode(&mut src).unwrap_err();
    assert!(
        matches!(&err, Error::MalformedJson { line: 2, column: 7, message } if message == "expected value"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "line 2: malformed JSON: expected value at column 7");
}

#[test]
fn the_unterminated_last_line_is_decoded_at_eof() {
    let mut codec = JsonLinesCodec::<u32>::new();
    let mut src = BytesMut::from(&b"1\n2"[..]);
    assert_eq!(codec.decode(&mut src).unwrap(), Some(1));
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    assert_eq!(codec.decode_eof(&mut src).unwrap(), Some(2));
    assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
}

#[test]
fn encoding_json_appends_one_line_or_nothing() {
    let mut dst = BytesMut::new();
    JsonLinesCodec::new().encode(serde_json::json!({ "s": "a\nb" }), &mut dst).unwrap();
    assert_eq!(&dst[..], b"{\"s\":\"a\\nb\"}\n");
    // Non-string map keys are not JSON; a partial write must not be left behind.
    let bad = std::collections::BTreeMap::from([((1, 2), 3)]);
    let err = JsonLinesCodec::new().encode(bad, &mut dst).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::InvalidInput), "{err:?}");
    assert_eq!(&dst[..], b"{\"s\":\"a\\nb\"}\n");
}

#[test]
fn encoding_an_oversized_frame_appends_nothing() {
    let mut dst = BytesMut::new();
    let err = FrameCodec::with_max_length(3).encode(&b"four"[..], &mut dst).unwrap_err();
    assert!(matches!(err, Error::FrameTooLarge { length: 4, max: 3 }), "{err:?}");
    assert!(dst.is_empty());
}

#[test]
fn a_huge_frame_header_is_rejected_before_any_payload_arrives() {
    let mut codec = FrameCodec::new();
    let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    let err = codec.decode(&mut src).unwrap_err();
    assert!(matches!(err, Error::FrameTooLarge { length: 0xffff_ffff, max: super::DEFAULT_MAX_FRAME_LENGTH }));
    assert_eq!(codec.buffered_capacity(), 0);
}
