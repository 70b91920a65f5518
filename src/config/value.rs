//! Value parsing shared by every section: the one list parser, the one optional-value helper,
//! booleans, durations, and the Kubernetes name rules. Each turns a bad value into a
//! [`ConfigError`] naming the variable, the value and what is accepted.

use std::time::Duration;

use super::ConfigError;
use certboot_core::timefmt::{human, parse_duration};

/// Parses a comma-separated list (blanks ignored), each item with `parse`, dropping duplicates.
/// An item `parse` refuses makes the whole value invalid: "<item> is not <what>".
pub(super) fn parse_list<T: PartialEq>(
    var: &'static str,
    value: Option<&str>,
    what: &str,
    accepted: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in split_list(value) {
        let parsed = parse(&item).ok_or_else(|| {
            ConfigError::invalid(var, value, format!("{item:?} is not {what}"), accepted)
        })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Parses an optional variable with `parse` (given the trimmed value); unset is `None`, a value
/// `parse` refuses is invalid for `reason`.
pub(super) fn parse_optional<T>(
    var: &'static str,
    value: Option<&str>,
    reason: &str,
    accepted: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    parse(value.trim())
        .map(Some)
        .ok_or_else(|| ConfigError::invalid(var, value, reason, accepted))
}

/// Parses a boolean variable: true/false, 1/0, yes/no, on/off.
pub fn parse_bool(
    var: &'static str,
    value: Option<&str>,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            var,
            value,
            "not a boolean",
            "true or false",
        )),
    }
}

/// The accepted range of a duration variable, checked at parse time so that no value that parses
/// can overflow the timer or schedule arithmetic that uses it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
}

impl DurationRange {
    /// "a duration from 1s to 365d00h, e.g. 90s, 5m, 1h30m, or plain seconds"
    pub fn accepted(&self) -> String {
        format!(
            "a duration from {} to {}, e.g. 90s, 5m, 1h30m, or plain seconds",
            human(self.min),
            human(self.max)
        )
    }
}

pub(super) fn optional_duration(
    var: &'static str,
    value: Option<&str>,
    range: DurationRange,
) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let d = parse_duration(value)
        .ok_or_else(|| ConfigError::invalid(var, value, "not a duration", range.accepted()))?;
    if d < range.min {
        let reason = if d.is_zero() {
            "must be longer than zero".to_string()
        } else {
            format!("shorter than {}", human(range.min))
        };
        return Err(ConfigError::invalid(var, value, reason, range.accepted()));
    }
    if d > range.max {
        let reason = format!("longer than {}", human(range.max));
        return Err(ConfigError::invalid(var, value, reason, range.accepted()));
    }
    Ok(Some(d))
}

/// Splits a comma-separated list, trimming blanks and dropping empty items.
pub(super) fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

pub(super) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

pub(super) fn validate_dns_subdomain(var: &'static str, value: &str) -> Result<(), ConfigError> {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "not a Kubernetes object name",
            "a DNS subdomain (lowercase letters, digits, '-', '.')",
        ))
    }
}

pub(super) fn validate_dns_label(var: &'static str, value: &str) -> Result<(), ConfigError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "not a namespace name",
            "a DNS label (lowercase letters, digits, '-', at most 63)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parser_drops_blanks_and_duplicates_and_names_the_bad_item() {
        let parse = |value| {
            parse_list("X", Some(value), "a number", "digits", |item| {
                item.parse::<u8>().ok()
            })
        };
        assert_eq!(parse(" 1, ,2,1 ").unwrap(), vec![1, 2]);
        let err = parse("1,x").unwrap_err().to_string();
        assert_eq!(
            err,
            "X=\"1,x\" is invalid: \"x\" is not a number; accepted: digits"
        );
        assert!(
            parse_list("X", None, "a number", "digits", |i| i.parse::<u8>().ok())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_optional_value_helper_trims_and_names_the_variable() {
        let parse = |value| parse_optional("Y", value, "odd", "1 or 2", |v| v.parse::<u8>().ok());
        assert_eq!(parse(None).unwrap(), None);
        assert_eq!(parse(Some(" 2 ")).unwrap(), Some(2));
        assert!(parse(Some("z"))
            .unwrap_err()
            .to_string()
            .starts_with("Y=\"z\" is invalid: odd"));
    }

    #[test]
    fn durations_outside_their_range_name_the_variable_and_the_range() {
        let range = DurationRange {
            min: Duration::from_secs(1),
            max: Duration::from_secs(86_400),
        };
        let parse = |value| optional_duration("Z", Some(value), range);
        assert_eq!(parse("1d").unwrap(), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("1s").unwrap(), Some(Duration::from_secs(1)));
        let err = parse("106751991167301d").unwrap_err().to_string();
        assert!(
            err.starts_with("Z=\"106751991167301d\" is invalid: longer than 1d00h"),
            "{err}"
        );
        assert!(err.contains("from 1s to 1d00h"), "{err}");
        let err = parse("500ms").unwrap_err().to_string();
        assert!(err.contains("shorter than 1s"), "{err}");
        assert!(parse("0s")
            .unwrap_err()
            .to_string()
            .contains("longer than zero"));
    }
}
