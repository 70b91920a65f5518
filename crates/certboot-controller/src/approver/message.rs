//! Denial messages are bounded: a CSR condition carries at most 1 KiB, whatever the request held
//! (a request with a hundred long names must not make the Denied write larger than the API server
//! or etcd accept, which would leave the CSR pending and the write retried forever).

use std::fmt::Display;

/// The most bytes of a [`super::denial::Denial`] message. The controller prefixes it with the check
/// and reason (under 100 bytes), so the CSR's condition message stays within 1 KiB.
pub const MAX_DENIAL_MESSAGE: usize = 900;

/// How many values a list in a message shows before "and N more".
pub const LIST_SHOWN: usize = 5;

/// `message`, cut at [`MAX_DENIAL_MESSAGE`] bytes (on a character boundary) with a note saying so.
pub fn bounded(message: String) -> String {
    if message.len() <= MAX_DENIAL_MESSAGE {
        return message;
    }
    const NOTE: &str = " ... (message cut at 900 bytes)";
    let mut end = MAX_DENIAL_MESSAGE - NOTE.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{NOTE}", message.get(..end).unwrap_or_default())
}

/// The first [`LIST_SHOWN`] values, quoted, then "and N more" (`["a", "b"] and 3 more`).
pub fn few<T: Display>(values: &[T]) -> String {
    let shown: Vec<String> = values
        .iter()
        .take(LIST_SHOWN)
        .map(|v| format!("{:?}", v.to_string()))
        .collect();
    let list = format!("[{}]", shown.join(", "));
    match values.len().saturating_sub(LIST_SHOWN) {
        0 => list,
        more => format!("{list} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_and_lists_end_in_and_n_more() {
        assert_eq!(bounded("short".into()), "short");
        let cut = bounded("é".repeat(1000));
        assert!(cut.len() <= MAX_DENIAL_MESSAGE, "{}", cut.len());
        assert!(cut.ends_with("(message cut at 900 bytes)"), "{cut}");
        assert_eq!(few(&["a", "b"]), r#"["a", "b"]"#);
        let many: Vec<u32> = (0..100_000).collect();
        assert_eq!(few(&many), r#"["0", "1", "2", "3", "4"] and 99995 more"#);
    }
}
