//! Command-line arguments. Configuration comes from the environment; flags only pick what to do.

use std::time::Duration;

use certboot_core::timefmt::parse_duration;

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Obtain (and in sidecar mode, renew) the certificate.
    Run,
    Help,
    Version,
    /// Print the CSR certboot would file, without any API call.
    DryRun,
    /// Exit 0 only when the pair on disk matches and is valid for at least `min_valid`.
    Check {
        min_valid: Duration,
    },
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => Ok(Command::Run),
        ["-h" | "--help" | "help"] => Ok(Command::Help),
        ["-V" | "--version" | "version"] => Ok(Command::Version),
        ["--dry-run" | "dry-run"] => Ok(Command::DryRun),
        ["check" | "--check", rest @ ..] => parse_check(rest),
        _ => Err(format!("unknown arguments {:?}", words.join(" "))),
    }
}

fn parse_check(rest: &[&str]) -> Result<Command, String> {
    let value = match rest {
        [] => {
            return Ok(Command::Check {
                min_valid: Duration::ZERO,
            })
        }
        ["--min-valid", value] => *value,
        [flag] if flag.starts_with("--min-valid=") => &flag["--min-valid=".len()..],
        _ => {
            return Err(format!(
                "unknown check arguments {:?}; usage: certboot check [--min-valid DURATION]",
                rest.join(" ")
            ))
        }
    };
    parse_duration(value)
        .map(|min_valid| Command::Check { min_valid })
        .ok_or_else(|| format!("--min-valid {value:?} is not a duration (e.g. 5m, 1h, 300)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn recognises_every_command() {
        assert_eq!(p(&[]), Ok(Command::Run));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(p(&["--dry-run"]), Ok(Command::DryRun));
        assert_eq!(
            p(&["check"]),
            Ok(Command::Check {
                min_valid: Duration::ZERO
            })
        );
        assert_eq!(
            p(&["check", "--min-valid", "5m"]),
            Ok(Command::Check {
                min_valid: Duration::from_secs(300)
            })
        );
        assert_eq!(
            p(&["check", "--min-valid=90s"]),
            Ok(Command::Check {
                min_valid: Duration::from_secs(90)
            })
        );
    }

    #[test]
    fn rejects_unknown_arguments() {
        assert!(p(&["--signer", "x"]).is_err());
        assert!(p(&["check", "--min-valid", "soon"]).is_err());
    }
}
