//! Refusing secrets left at the example values of `.env.example`.
//!
//! `cp .env.example .env && docker compose up` must not give a deployment
//! whose API token or database password is `change-me`: every server
//! process (`init`, `api`, `worker`) checks the secrets it was given at
//! start-up and stops with one line naming the variable.

use runeflow_shared::config::Config;
use runeflow_shared::secrets::KEY_ENV;

/// The marker every example secret in `.env.example` carries.
const EXAMPLE_MARKER: &str = "change-me";

/// A secret still at its example value.
#[derive(Debug, PartialEq, Eq)]
pub struct ExampleSecret {
    pub variable: &'static str,
}

impl std::fmt::Display for ExampleSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} still holds the example value from .env.example ('{EXAMPLE_MARKER}...'): \
             set a secret of your own (e.g. `openssl rand -hex 32`)",
            self.variable
        )
    }
}

impl std::error::Error for ExampleSecret {}

/// Checks every secret `config` holds: the API token, the git token and
/// the passwords inside `DATABASE_URL` and `REDIS_URL`, and the secret key.
pub fn refuse_example_secrets(config: &Config) -> Result<(), ExampleSecret> {
    // Read from the environment only (never a flag, which `ps` would show).
    let secret_key = std::env::var(KEY_ENV).ok();
    let secrets = [
        ("RUNEFLOW_API_TOKEN", config.api_token.as_deref()),
        ("RUNEFLOW_GIT_TOKEN", config.git_token.as_deref()),
        ("DATABASE_URL", config.database_url.as_deref()),
        ("REDIS_URL", config.redis_url.as_deref()),
        (KEY_ENV, secret_key.as_deref()),
    ];
    for (variable, value) in secrets {
        if value.is_some_and(is_example) {
            return Err(ExampleSecret { variable });
        }
    }
    Ok(())
}

fn is_example(value: &str) -> bool {
    value.to_ascii_lowercase().contains(EXAMPLE_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new(
            "postgres://runeflow:0f3a9c@postgres:5432/runeflow",
            "redis://:9b1e77@redis:6379/0",
        )
    }

    #[test]
    fn real_secrets_pass() {
        let mut c = config();
        c.api_token = Some("3c5e0a7d".into());
        c.git_token = Some("ghp_abc".into());
        assert_eq!(refuse_example_secrets(&c), Ok(()));
        assert_eq!(refuse_example_secrets(&config()), Ok(()));
    }

    #[test]
    fn each_example_value_is_refused_by_name() {
        let mut c = config();
        c.api_token = Some("change-me".into());
        assert_eq!(
            refuse_example_secrets(&c),
            Err(ExampleSecret {
                variable: "RUNEFLOW_API_TOKEN"
            })
        );

        let mut c = config();
        c.database_url = Some("postgres://runeflow:change-me-postgres@postgres/runeflow".into());
        let err = refuse_example_secrets(&c).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        assert!(!err.to_string().contains('\n'), "one line: {err}");

        let mut c = config();
        c.redis_url = Some("redis://:CHANGE-ME-redis@redis:6379/0".into());
        assert_eq!(
            refuse_example_secrets(&c).unwrap_err().variable,
            "REDIS_URL"
        );

        let mut c = config();
        c.git_token = Some("change-me".into());
        assert_eq!(
            refuse_example_secrets(&c).unwrap_err().variable,
            "RUNEFLOW_GIT_TOKEN"
        );
    }
}
