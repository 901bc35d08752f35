//! Minimal JSON writers for the few shapes tickcast emits; faster than a generic serializer and
//! precise about numbers (shortest round-trip floats, integers without a fraction).

/// Appends `v` as a JSON number: integral values without `.0`, others as the shortest decimal that
/// round-trips. Non-finite values (never accepted at ingest) are written as `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
    } else if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        write_i64(out, v as i64);
    } else {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(v).as_bytes());
    }
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Appends a signed integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Appends `s` as a quoted, escaped JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Appends `items` as a JSON array of strings.
pub fn write_str_array<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, item.as_ref());
    }
    out.push(b']');
}

/// What a simd-json error means, for the person fixing the input (a feed's publisher, a client): no parser internals (error
/// kind names, Debug output), the byte offset where simd-json gives a real one.
pub fn describe_error(e: &simd_json::Error) -> String {
    use simd_json::ErrorType as E;
    let at = e.index();
    // simd-json stores the byte it stopped at as `byte as char`; show non-ASCII bytes as bytes.
    let found = match e.character() {
        Some(c) if c.is_ascii_graphic() => format!("'{c}'"),
        Some(c) => format!("byte 0x{:02X}", u32::from(c)),
        None => "the end".to_string(),
    };
    let msg = match e.error() {
        // simd-json's catch-all for a byte that cannot start a value here.
        E::InternalError | E::UnexpectedCharacter | E::NoStructure | E::Parser => {
            match e.character() {
                // A closing bracket where a value should be, or the end of the whole value with
                // more text after it: simd-json reports both the same way.
                Some(c @ ('}' | ']')) if at > 0 => format!(
                    "a value is missing before the '{c}' at byte {at}, or more text follows it"
                ),
                _ => format!("unexpected {found} at byte {at}"),
            }
        }
        E::ExpectedObjectContent => format!(
            "unexpected {found} at byte {at} inside an object (expected a quoted key, ',' or '}}')"
        ),
        E::ExpectedObjectKey => format!("expected a quoted key at byte {at}, found {found}"),
        E::ExpectedObjectColon => {
            format!("expected ':' after the key, found {found} at byte {at}")
        }
        E::ExpectedArrayContent => {
            format!("unexpected {found} at byte {at} inside an array (expected ',' or ']')")
        }
        E::ExpectedTrue | E::ExpectedFalse | E::ExpectedNull => format!(
            "unknown word at byte {at} (only true, false and null may appear without quotes)"
        ),
        E::TrailingData => format!("more text follows the value that starts at byte {at}"),
        // Found while walking the structure: it ran out before every '{' and '[' was closed.
        E::Syntax if e.character().is_some() => {
            "the input ends inside an object or array (truncated?)".to_string()
        }
        // Found while scanning for strings, before any structure.
        E::Syntax => "a string is not closed, or holds a raw control character (write tabs and \
             newlines as \\t and \\n)"
            .to_string(),
        E::Eof => "the input is empty".to_string(),
        E::InvalidUtf8 => "the input is not valid UTF-8".to_string(),
        E::InvalidEscape => match e.character() {
            Some(c) if c.is_ascii_graphic() => format!("invalid escape '\\{c}' in a string"),
            _ => "invalid escape in a string".to_string(),
        },
        E::InvalidUnicodeEscape | E::InvalidUnicodeCodepoint => {
            "invalid \\u escape in a string".to_string()
        }
        E::InvalidNumber | E::InvalidExponent => {
            format!("malformed or out-of-range number near byte {at}")
        }
        E::Overflow => format!("number out of range near byte {at}"),
        E::DepthLimitExceeded => "objects or arrays nested too deeply".to_string(),
        E::InputTooLarge => "the input is too large to parse".to_string(),
        E::ExpectedMap => return "expected a JSON object".to_string(),
        E::Unexpected(Some(want), Some(got)) => {
            return format!("expected {}, found {}", type_name(*want), type_name(*got))
        }
        E::Serde(m) => return m.clone(),
        E::Io(err) => return format!("read error: {err}"),
        _ if e.character().is_some() => format!("not parseable at byte {at} ({found})"),
        _ => "not parseable".to_string(),
    };
    format!("not valid JSON: {msg}")
}

/// A JSON value type in words: "an array", "a number", ...
pub fn type_name(t: simd_json::ValueType) -> &'static str {
    use simd_json::ValueType as T;
    match t {
        T::Null => "null",
        T::Bool => "true or false",
        T::I64 | T::I128 | T::U64 | T::U128 | T::F64 => "a number",
        T::String => "a string",
        T::Array => "an array",
        T::Object => "an object",
        _ => "another value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_have_no_float_noise() {
        assert_eq!(f(189.12), "189.12");
        assert_eq!(f(18912.0 / 100.0), "189.12");
        assert_eq!(f(200.0), "200");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(-3.5), "-3.5");
        assert_eq!(f(f64::NAN), "null");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\n\u{1}é");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }
}
