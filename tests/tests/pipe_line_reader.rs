//! Property tests of the parent's line reader over a real pipe: whatever the bytes and however
//! they are chunked, lines come out exactly once, and over-long ones are reported, not buffered.

use proptest::prelude::*;
use wasmpipe::Error;

/// Writes `input` in the given chunk sizes into a real pipe and reads it back line by line.
fn read_lines(input: Vec<u8>, chunks: Vec<usize>, max: usize) -> Vec<Result<Vec<u8>, ()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let (rx, tx) = wasmpipe::pipe().unwrap();
        let (mut rx, mut tx) = (rx.open().unwrap(), tx.open().unwrap());
        rx.set_max_line_length(max);
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
        let mut lines = Vec::new();
        loop {
            match rx.read_line().await {
                Ok(Some(line)) => lines.push(Ok(line)),
                Ok(None) => break,
                Err(Error::LineTooLong { limit }) => {
                    assert_eq!(limit, max);
                    lines.push(Err(()));
                }
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        writer.await.unwrap();
        lines
    })
}

fn expected(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, ()>> {
    input
        .split_inclusive(|&b| b == b'\n')
        .map(|line| if line.len() <= max { Ok(line.to_vec()) } else { Err(()) })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_reassemble_exactly(
        input in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..20_000),
        chunks in proptest::collection::vec(1usize..5000, 1..10),
    ) {
        let lines = read_lines(input.clone(), chunks, usize::MAX);
        prop_assert_eq!(lines.into_iter().flat_map(Result::unwrap).collect::<Vec<u8>>(), input);
    }

    #[test]
    fn over_long_lines_are_reported_and_nothing_else_is_lost_or_duplicated(
        input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..20_000),
        chunks in proptest::collection::vec(1usize..5000, 1..10),
        max in 1usize..300,
    ) {
        prop_assert_eq!(read_lines(input.clone(), chunks, max), expected(&input, max));
    }
}
