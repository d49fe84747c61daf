//! A parser for Java `.properties` text, the format of Kafka's `server.properties`:
//! `key=value`, `key: value` or `key value`; `#` and `!` comment lines; a line ending in an odd
//! number of backslashes continues on the next (whose leading whitespace is dropped); escapes
//! `\t \n \r \f \\ \uXXXX`, any other escaped character stands for itself.

use shards::{Error, Result};

/// A config file larger than this is refused: server.properties is a few KiB.
pub const PROPERTIES_BYTES_MAX: usize = 1024 * 1024;

/// One `key=value` entry and the 1-based line where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses properties text into entries in file order (a later duplicate wins when applied).
pub fn parse_properties(text: &str) -> Result<Vec<Property>> {
    if text.len() > PROPERTIES_BYTES_MAX {
        return Err(Error::Invalid(format!(
            "config file of {} bytes exceeds the limit of {PROPERTIES_BYTES_MAX}",
            text.len()
        )));
    }
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = String::from(trimmed);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_entry(&logical, index + 1)?;
        out.push(Property {
            key,
            value,
            line: index + 1,
        });
    }
    Ok(out)
}

fn ends_with_continuation(line: &str) -> bool {
    let backslashes = line.bytes().rev().take_while(|&b| b == b'\\').count();
    backslashes % 2 == 1
}

/// Splits a logical line at the first unescaped `=`, `:` or whitespace, then unescapes both
/// halves.
fn split_entry(logical: &str, line: usize) -> Result<(String, String)> {
    let bytes = logical.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let key_end = i.min(bytes.len());
    let mut rest = &logical[key_end..];
    rest = rest.trim_start_matches([' ', '\t', '\x0c']);
    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
        rest = stripped.trim_start_matches([' ', '\t', '\x0c']);
    }
    let key = unescape(&logical[..key_end], line)?;
    let value = unescape(rest, line)?;
    Ok((key, value))
}

fn unescape(s: &str, line: usize) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        Error::Invalid(format!("config file line {line}: malformed \\u escape"))
                    })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    #[test]
    fn separators_comments_and_whitespace() {
        let got = pairs("# comment\n! also\n\n  a=1\nb : 2\nc 3\nd=\ne\n f = x y \n");
        let want = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", ""),
            ("e", ""),
            ("f", "x y "),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn continuation_and_escapes() {
        let got = pairs(
            "listeners=PLAINTEXT://a:1,\\\n    PLAINTEXT2://b:2\nk\\=x=v\\tw\\u0041\nz=ends\\\\\n",
        );
        assert_eq!(
            got[0],
            (
                "listeners".into(),
                "PLAINTEXT://a:1,PLAINTEXT2://b:2".into()
            )
        );
        assert_eq!(got[1], ("k=x".into(), "v\twA".into()));
        assert_eq!(got[2], ("z".into(), "ends\\".into()));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn line_numbers_point_at_the_first_physical_line() {
        let props = parse_properties("a=1\\\n2\n\nb=3\n").unwrap();
        assert_eq!(props[0].value, "12");
        assert_eq!(props[1].line, 4);
    }

    #[test]
    fn bad_unicode_escape_is_an_error() {
        let err = parse_properties("a=\\u12\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
