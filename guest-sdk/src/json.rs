//! JSON Lines encoding: one compact JSON value per line (feature `json`).
//!
//! Compact `serde_json` output never contains a raw `'\n'` (newlines inside strings are
//! escaped), so a value is always exactly one line.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses line `number` as one JSON value of type `T`.
pub(crate) fn parse<T: DeserializeOwned>(number: u64, line: &[u8]) -> io::Result<T> {
    // Without its terminator, so that serde's column is one within this line.
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    serde_json::from_slice(line).map_err(|e| {
        // serde_json counts lines inside the text it was given, which is always 1 here: name
        // the line of the stream instead, and keep the column.
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {number}: malformed JSON: {} at column {}", message(&e), e.column()),
        )
    })
}

/// `value` as one line of compact JSON, `'\n'` included.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    line.push(b'\n');
    Ok(line)
}

/// serde's description of the error, without its " at line L column C" suffix.
fn message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        label: String,
    }

    #[test]
    fn a_value_is_one_line() {
        let line = encode(&Point { x: 1, label: "a\nb".into() }).unwrap();
        assert_eq!(line, b"{\"x\":1,\"label\":\"a\\nb\"}\n");
        assert_eq!(parse::<Point>(1, &line).unwrap(), Point { x: 1, label: "a\nb".into() });
    }

    #[test]
    fn malformed_json_names_the_line_and_column() {
        let err = parse::<Point>(7, b"{\"x\": oops}\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "line 7: malformed JSON: expected value at column 7");
    }

    #[test]
    fn unserializable_values_are_invalid_input() {
        let map = std::collections::HashMap::from([((1, 2), 3)]);
        assert_eq!(encode(&map).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
