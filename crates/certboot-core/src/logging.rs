//! Log output: one human-readable line per state change by default, JSON lines on request.
//!
//! The level comes from `CERTBOOT_LOG` (or `RUST_LOG`), in `tracing`'s filter syntax; the default
//! shows certboot's own lines at `info` and other crates' warnings. Logs go to stderr; stdout is
//! kept for `--help`, `--version` and `--dry-run` output. Key material is never logged: no code
//! path formats the key, and [`crate::pki::key::PrivateKey`]'s `Debug` prints `"..."`.
//!
//! Messages carry text certboot does not control (a Denied/Failed condition's message from an
//! approver or signer, an API server's error message). In text format every message is written
//! through [`escape_control`], so such text cannot start a forged log line or hide itself with
//! terminal or bidirectional controls; JSON format escapes through JSON itself.

use std::fmt;
use std::future::Future;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::timefmt::{relative, unix_now};

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per state change.
    Text,
    /// One JSON object per line.
    Json,
}

tokio::task_local! {
    /// Inside a sidecar renewal: when the certificate on disk expires (Unix seconds).
    static CURRENT_EXPIRY: i64;
}

/// Runs `work` (one renewal attempt) so that every retry, re-watch and progress line inside it
/// also says when the certificate currently on disk expires. The one way that expiry reaches
/// those lines: nothing passes it as a parameter.
pub async fn with_current_expiry<F: Future>(not_after: i64, work: F) -> F::Output {
    CURRENT_EXPIRY.scope(not_after, work).await
}

/// When the certificate on disk expires, inside a renewal ([`with_current_expiry`]); `None`
/// otherwise (the first certificate).
pub fn current_expiry() -> Option<i64> {
    CURRENT_EXPIRY.try_with(|at| *at).ok()
}

/// "; the current certificate stays in place and expires in 5m00s" inside a renewal, empty
/// otherwise: the one wording of that note.
pub fn expiry_note() -> String {
    current_expiry().map(expiry_note_at).unwrap_or_default()
}

/// [`expiry_note`] for a certificate expiring at `not_after` (Unix seconds).
pub fn expiry_note_at(not_after: i64) -> String {
    format!(
        "; the current certificate stays in place and expires {}",
        relative(not_after - unix_now())
    )
}

/// certboot's own lines at info; other crates' warnings. kube-client's own error lines are off:
/// certboot reports every failed call itself, with what failed and what to do.
const DEFAULT_FILTER: &str = "certboot=info,kube_client=off,warn";

/// Installs the global logger. Safe to call once; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CERTBOOT_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.event_format(Text).try_init(),
    };
}

/// `2026-11-23T09:30:00.123Z INFO CSR shop:web-0:6f1d3c approved; ...` and nothing else: the
/// structured fields repeat what the message says, so text mode leaves them to JSON mode.
struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = k8s_openapi::jiff::Timestamp::now();
        let level = event.metadata().level();
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(
            writer,
            "{} {:>5} {}",
            now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            level,
            escape_control(&message.0)
        )
    }
}

/// `text` with control characters escaped: `\n`, `\r`, `\t`, and `\u{..}` for the other C0/C1
/// controls, DEL, the line/paragraph separators and the bidirectional overrides. Everything else is
/// kept as is.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[tokio::test]
    async fn the_expiry_note_is_said_only_inside_a_renewal() {
        assert_eq!(expiry_note(), "");
        assert_eq!(current_expiry(), None);
        let at = unix_now() + 120;
        let (note, seen) =
            with_current_expiry(at, async { (expiry_note(), current_expiry()) }).await;
        assert!(
            note.starts_with("; the current certificate stays in place and expires in"),
            "{note}"
        );
        assert_eq!(seen, Some(at));
    }
}

#[cfg(test)]
mod injection_tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_hostile_denial_message_stays_on_one_escaped_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(Text)
            .finish();
        // What certboot logs for a Denied CSR: the approver's reason and message, verbatim.
        let denied = format!(
            "CSR {} was denied ({}): {}",
            "shop:web-0:6f1d3c",
            "Policy\r",
            "no\n2026-11-24T00:00:00.000Z  INFO wrote /certs/cert.pem\u{1b}[2K\u{202e}"
        );
        tracing::subscriber::with_default(subscriber, || tracing::error!("{denied}"));
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("no\\n2026-11-24T00:00:00.000Z  INFO wrote"),
            "{text}"
        );
        assert!(
            text.contains("Policy\\r") && text.contains("\\u{1b}[2K\\u{202e}"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
    }

    #[test]
    fn ordinary_text_is_kept_as_is() {
        let line = "CSR shop:web-0:6f1d3c denied: Überprüfung fehlgeschlagen (ns \"shop\")";
        assert_eq!(escape_control(line), line);
    }
}
