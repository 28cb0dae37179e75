//! Workflow settings from decorator keyword arguments:
//! `@workflow(schedule="0 9 * * *", timezone="Europe/Paris", retries=3, ...)`
//! and `@data_provider(cache_ttl=60)`.
//!
//! Only literal values count, since the file is never run to read them. A
//! value that is not a literal, has the wrong type or is out of range is a
//! [`Diagnostic`] on the file and the setting is then absent (its default
//! applies), as for an out-of-range `timeout=`. `None` means "not set" and is
//! never a diagnostic. Bifrost's spellings are accepted as aliases
//! (`endpoint_enabled`, `cache_ttl_seconds`; `timeout_seconds` is read with
//! `timeout` in `python.rs`); when both spellings are given, ours wins and the
//! other is reported.
//!
//! Nothing here acts on a setting: detection, storage and display only.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Diagnostic, WorkflowKind, WorkflowMeta};
use crate::schedule::{DEFAULT_TIMEZONE, Schedule, parse_timezone};

/// Most retries a workflow may ask for (each is a full re-run).
pub const MAX_RETRIES: i64 = 100;

/// Longest base delay between retries: one day.
pub const MAX_RETRY_BACKOFF_SECONDS: f64 = 24.0 * 3600.0;

/// Most copies of one workflow a limit may allow at once.
pub const MAX_CONCURRENCY: i64 = 100_000;

/// How long a data provider's options stay cached when it does not say.
pub const DEFAULT_CACHE_TTL_SECONDS: f64 = 300.0;

/// Longest cache lifetime of a data provider's options: 7 days.
pub const MAX_CACHE_TTL_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// Longest exception class name kept in `retry_on`, and most names kept.
const MAX_CLASS_NAME_CHARS: usize = 200;
const MAX_RETRY_ON: usize = 100;

/// Settings of one workflow or data provider, as stored in
/// `workflows.settings`. Absent values are left out of the JSON, so "has a
/// schedule" is `settings ? 'schedule'` in SQL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    /// `schedule=` with its `timezone=` and `catch_up=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSetting>,
    /// `retries=`: re-runs after a failed attempt (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `retry_backoff=`: base delay before the first retry, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_seconds: Option<f64>,
    /// `retry_on=`: exception class names that are retried (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
    /// `endpoint=` (alias `endpoint_enabled=`): exposed as an HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<bool>,
    /// `max_concurrency=`: most executions running at once (absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Data providers only: `cache_ttl=` (alias `cache_ttl_seconds=`),
    /// default 300; 0 disables the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<f64>,
}

impl Settings {
    /// The settings stored in a `workflows.settings` value; `{}` for
    /// anything unreadable (a row written before the column existed).
    pub fn from_json(value: &Value) -> Settings {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    /// The JSON stored in `workflows.settings`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}

/// A cron schedule as written in the decorator, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleSetting {
    /// The cron expression (5 fields, or 6 with seconds first).
    pub cron: String,
    /// IANA zone the expression's wall-clock times are read in (default UTC).
    pub timezone: String,
    /// Whether ticks missed while nothing ran are made up, once (default true).
    pub catch_up: bool,
}

impl ScheduleSetting {
    /// The parsed schedule; `None` only for a value that never passed
    /// [`Schedule::parse`] (e.g. edited by hand in the database).
    pub fn parse(&self) -> Option<Schedule> {
        Schedule::parse(&self.cron, &self.timezone).ok()
    }
}

/// One keyword argument of a decorator call, as detection found it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Keyword {
    /// The keyword as written (ours or an alias).
    pub name: String,
    /// The value as JSON when it is a literal; `None` otherwise.
    pub value: Option<Value>,
    /// The value's source text, quoted in diagnostics.
    pub source: String,
    /// 1-based position of the value.
    pub line: u32,
    pub column: u32,
}

/// What [`read_settings`] found: the settings (a schedule not yet checked,
/// see [`check_schedules`]), the problems, and where `schedule=`'s value is.
pub(super) struct Read {
    pub settings: Settings,
    pub problems: Vec<Diagnostic>,
    pub schedule_at: Option<(u32, u32)>,
}

/// Reads the settings of a `kind` entry point named `function` from its
/// decorator's keywords (`keyword(name)` finds one by name).
pub(super) fn read_settings(
    kind: WorkflowKind,
    function: &str,
    keyword: &dyn Fn(&str) -> Option<Keyword>,
) -> Read {
    let mut reader = Reader {
        function,
        keyword,
        diagnostics: Vec::new(),
        schedule_at: None,
    };
    let settings = match kind {
        WorkflowKind::Workflow => Settings {
            schedule: reader.schedule(),
            retries: reader
                .integer("retries", 0, MAX_RETRIES)
                .and_then(|n| u32::try_from(n).ok()),
            retry_backoff_seconds: reader.seconds(
                "retry_backoff",
                None,
                Bound::Above(0.0),
                MAX_RETRY_BACKOFF_SECONDS,
            ),
            retry_on: reader.class_names("retry_on"),
            endpoint: reader.boolean("endpoint", Some("endpoint_enabled")),
            max_concurrency: reader
                .integer("max_concurrency", 1, MAX_CONCURRENCY)
                .and_then(|n| u32::try_from(n).ok()),
            cache_ttl_seconds: None,
        },
        WorkflowKind::DataProvider => Settings {
            cache_ttl_seconds: Some(
                reader
                    .seconds(
                        "cache_ttl",
                        Some("cache_ttl_seconds"),
                        Bound::AtLeast(0.0),
                        MAX_CACHE_TTL_SECONDS,
                    )
                    .unwrap_or(DEFAULT_CACHE_TTL_SECONDS),
            ),
            ..Settings::default()
        },
    };
    Read {
        settings,
        problems: reader.diagnostics,
        schedule_at: reader.schedule_at,
    }
}

/// The lower end of a range of seconds.
#[derive(Clone, Copy)]
enum Bound {
    /// More than this.
    Above(f64),
    /// This or more.
    AtLeast(f64),
}

/// Reads keywords one by one and collects what was wrong with them.
struct Reader<'a> {
    function: &'a str,
    keyword: &'a dyn Fn(&str) -> Option<Keyword>,
    diagnostics: Vec<Diagnostic>,
    /// Where the `schedule=` value is, for `check_schedules`.
    schedule_at: Option<(u32, u32)>,
}

impl Reader<'_> {
    /// The keyword `name` (or its `alias`), unless absent or `None`.
    fn find(&mut self, name: &str, alias: Option<&str>) -> Option<Keyword> {
        let primary = (self.keyword)(name);
        let aliased = alias.and_then(|alias| (self.keyword)(alias).map(|k| (alias, k)));
        match (primary, aliased) {
            (Some(primary), Some((alias, other))) => {
                self.report(
                    &other,
                    &format!("{alias}= is ignored because {name}= is also given"),
                );
                Some(primary)
            }
            (Some(found), None) | (None, Some((_, found))) => Some(found),
            (None, None) => None,
        }
        .filter(|k| k.value != Some(Value::Null))
    }

    fn report(&mut self, at: &Keyword, message: &str) {
        self.diagnostics.push(Diagnostic {
            line: at.line,
            column: at.column,
            message: format!("{}: {message}", self.function),
        });
    }

    /// A bad value: reported, and the setting is then absent.
    fn refuse<T>(&mut self, at: &Keyword, expected: &str) -> Option<T> {
        self.report(
            at,
            &format!(
                "{}={} is not {expected}; the setting is ignored",
                at.name,
                quote(&at.source)
            ),
        );
        None
    }

    fn string(&mut self, name: &str) -> Option<(String, Keyword)> {
        let found = self.find(name, None)?;
        match &found.value {
            Some(Value::String(s)) => Some((s.clone(), found)),
            _ => self.refuse(&found, "a string literal"),
        }
    }

    fn boolean(&mut self, name: &str, alias: Option<&str>) -> Option<bool> {
        let found = self.find(name, alias)?;
        match found.value {
            Some(Value::Bool(b)) => Some(b),
            _ => self.refuse(&found, "True or False"),
        }
    }

    fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let found = self.find(name, None)?;
        match found.value.as_ref().and_then(Value::as_i64) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => self.refuse(&found, &format!("between {min} and {max}")),
            None => self.refuse(&found, "an int literal"),
        }
    }

    fn seconds(&mut self, name: &str, alias: Option<&str>, low: Bound, max: f64) -> Option<f64> {
        let found = self.find(name, alias)?;
        let Some(seconds) = found.value.as_ref().and_then(Value::as_f64) else {
            return self.refuse(&found, "a number literal (seconds)");
        };
        let (fits_low, low_text) = match low {
            Bound::Above(low) => (seconds > low, format!("more than {low}")),
            Bound::AtLeast(low) => (seconds >= low, format!("at least {low}")),
        };
        if fits_low && seconds <= max {
            Some(seconds)
        } else {
            self.refuse(&found, &format!("{low_text} and at most {max} seconds"))
        }
    }

    /// `retry_on=[...]`: exception class names as strings.
    fn class_names(&mut self, name: &str) -> Option<Vec<String>> {
        let found = self.find(name, None)?;
        let expected = "a list of exception class names as strings (e.g. [\"TimeoutError\"])";
        let Some(Value::Array(items)) = &found.value else {
            return self.refuse(&found, expected);
        };
        let names: Option<Vec<String>> = items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|s| is_class_name(s))
                    .map(str::to_owned)
            })
            .collect();
        match names {
            Some(names) if names.len() <= MAX_RETRY_ON => Some(names),
            _ => self.refuse(&found, expected),
        }
    }

    /// `schedule=`, read with `timezone=` and `catch_up=`. A bad zone drops
    /// the schedule too: running it in another zone would be wrong.
    fn schedule(&mut self) -> Option<ScheduleSetting> {
        let cron = self.string("schedule");
        let zone = self.find("timezone", None);
        let catch_up = self.boolean("catch_up", None).unwrap_or(true);
        let outcome = if cron.is_some() {
            "the workflow has no schedule"
        } else {
            "the setting is ignored"
        };
        let zone = match zone {
            None => DEFAULT_TIMEZONE.to_owned(),
            Some(at) => match &at.value {
                Some(Value::String(name)) => match parse_timezone(name) {
                    Ok(_) => name.clone(),
                    Err(err) => {
                        self.report(&at, &format!("{err}; {outcome}"));
                        return None;
                    }
                },
                _ => {
                    let message = format!(
                        "timezone={} is not a string literal; {outcome}",
                        quote(&at.source)
                    );
                    self.report(&at, &message);
                    return None;
                }
            },
        };
        let (cron, at) = cron?;
        // The expression itself is checked once per file (`check_schedules`).
        self.schedule_at = Some((at.line, at.column));
        Some(ScheduleSetting {
            cron: cron.trim().to_owned(),
            timezone: zone,
            catch_up,
        })
    }
}

/// Most distinct (expression, zone) pairs checked in one file: checking
/// one that no date matches takes up to a few ms, and a file is user input.
pub const MAX_SCHEDULES_PER_FILE: usize = 50;

/// Checks every schedule of a file's entry points, each distinct one once
/// and at most [`MAX_SCHEDULES_PER_FILE`] of them; a bad one is dropped
/// and reported where its `schedule=` value is.
pub(super) fn check_schedules(workflows: &mut [WorkflowMeta]) -> Vec<Diagnostic> {
    let mut checked: HashMap<(String, String), Result<(), String>> = HashMap::new();
    let mut diagnostics = Vec::new();
    for meta in workflows {
        let Some(setting) = &meta.settings.schedule else {
            continue;
        };
        let key = (setting.cron.clone(), setting.timezone.clone());
        let verdict = match checked.get(&key) {
            Some(verdict) => verdict.clone(),
            None if checked.len() >= MAX_SCHEDULES_PER_FILE => Err(format!(
                "more than {MAX_SCHEDULES_PER_FILE} different schedules in one file"
            )),
            None => {
                let verdict = Schedule::parse(&key.0, &key.1)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                checked.insert(key, verdict.clone());
                verdict
            }
        };
        if let Err(reason) = verdict {
            let (line, column) = meta.schedule_at.unwrap_or((meta.line, 1));
            diagnostics.push(Diagnostic {
                line,
                column,
                message: format!("{}: {reason}; the workflow has no schedule", meta.function),
            });
            meta.settings.schedule = None;
        }
    }
    diagnostics
}

/// A Python class name, possibly dotted (`TimeoutError`, `requests.HTTPError`).
fn is_class_name(s: &str) -> bool {
    s.chars().count() <= MAX_CLASS_NAME_CHARS
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// Source text for a diagnostic, cut to a readable length.
fn quote(source: &str) -> String {
    const MAX: usize = 60;
    if source.chars().count() <= MAX {
        source.to_owned()
    } else {
        let cut: String = source.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Analysis, EntityType, analyze_python};
    use super::*;

    /// Analyses `@DECORATOR(ARGS)` on a function named `job` at line 3.
    fn analyze(decorator: &str, args: &str) -> Analysis {
        analyze_python(&format!(
            "from runeflow import workflow, data_provider\n@{decorator}({args})\ndef job():\n    pass\n"
        ))
    }

    /// Settings of a `@workflow(ARGS)` that must come without diagnostics.
    fn clean(args: &str) -> Settings {
        let analysis = analyze("workflow", args);
        assert!(
            analysis.diagnostics.is_empty(),
            "{args}: {:?}",
            analysis.diagnostics
        );
        analysis.workflows[0].settings.clone()
    }

    /// The one diagnostic of a `@workflow(ARGS)`, which stays a workflow.
    fn refused(args: &str) -> (Settings, Diagnostic) {
        let analysis = analyze("workflow", args);
        assert_eq!(analysis.entity_type, EntityType::Workflow, "{args}");
        assert_eq!(
            analysis.diagnostics.len(),
            1,
            "{args}: {:?}",
            analysis.diagnostics
        );
        let diagnostic = analysis.diagnostics[0].clone();
        assert_eq!(diagnostic.line, 2, "{args}");
        assert!(
            diagnostic.message.starts_with("job: "),
            "{}",
            diagnostic.message
        );
        (analysis.workflows[0].settings.clone(), diagnostic)
    }

    #[test]
    fn no_keywords_means_no_settings() {
        assert_eq!(clean(""), Settings::default());
        assert_eq!(
            clean("name='x', timeout=5").to_json(),
            serde_json::json!({})
        );
        let bare = analyze_python("@workflow\ndef job():\n    pass\n");
        assert_eq!(bare.workflows[0].settings, Settings::default());
    }

    #[test]
    fn schedule_with_zone_and_catch_up() {
        let s = clean("schedule='0 9 * * *', timezone=\"Europe/Paris\", catch_up=False");
        assert_eq!(
            s.schedule,
            Some(ScheduleSetting {
                cron: "0 9 * * *".into(),
                timezone: "Europe/Paris".into(),
                catch_up: false,
            })
        );
        let defaults = clean("schedule='*/5 * * * * *'")
            .schedule
            .expect("schedule");
        assert_eq!(
            (defaults.timezone.as_str(), defaults.catch_up),
            ("UTC", true)
        );
        assert_eq!(clean("schedule=None"), Settings::default());
        // A zone or catch_up without a schedule is checked but sets nothing.
        assert_eq!(
            clean("timezone='Asia/Tokyo', catch_up=True"),
            Settings::default()
        );
    }

    #[test]
    fn a_bad_schedule_is_a_diagnostic_and_no_schedule() {
        for (args, says) in [
            ("schedule='0 9 * *'", "not a valid cron expression"),
            ("schedule='0 0 30 2 *'", "never runs"),
            ("schedule=CRON", "not a string literal"),
            ("schedule=f'{x} * * * *'", "not a string literal"),
            ("schedule='0 9 * * *', timezone='Europe/Pariss'", "IANA"),
            ("schedule='0 9 * * *', timezone=3", "not a string literal"),
        ] {
            let (settings, diagnostic) = refused(args);
            assert_eq!(settings.schedule, None, "{args}");
            assert!(
                diagnostic.message.contains(says),
                "{args}: {}",
                diagnostic.message
            );
        }
        let (_, diagnostic) = refused("schedule='61 * * * *'");
        assert_eq!(diagnostic.column, 20, "points at the value");
        assert!(
            diagnostic.message.contains("no schedule"),
            "{}",
            diagnostic.message
        );
        // A bad catch_up keeps the schedule with the default.
        let (settings, diagnostic) = refused("schedule='@daily', catch_up='yes'");
        assert!(settings.schedule.expect("kept").catch_up);
        assert!(
            diagnostic.message.contains("True or False"),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn retries_backoff_and_retry_on() {
        let s = clean(
            "retries=3, retry_backoff=2.0, retry_on=['TimeoutError', \"requests.HTTPError\"]",
        );
        assert_eq!(s.retries, Some(3));
        assert_eq!(s.retry_backoff_seconds, Some(2.0));
        assert_eq!(
            s.retry_on,
            Some(vec![
                "TimeoutError".to_owned(),
                "requests.HTTPError".to_owned()
            ])
        );
        assert_eq!(
            clean("retries=0, retry_backoff=86400, retry_on=()").retries,
            Some(0)
        );
        for (args, says) in [
            ("retries=-1", "between 0 and 100"),
            ("retries=101", "between 0 and 100"),
            ("retries=2.5", "an int literal"),
            ("retries=True", "an int literal"),
            ("retries=N", "an int literal"),
            ("retry_backoff=0", "more than 0"),
            ("retry_backoff=-2.0", "more than 0"),
            ("retry_backoff=86401", "at most 86400"),
            ("retry_backoff='2'", "a number literal"),
            (
                "retry_on=[TimeoutError]",
                "exception class names as strings",
            ),
            (
                "retry_on='TimeoutError'",
                "exception class names as strings",
            ),
            (
                "retry_on=['not a class']",
                "exception class names as strings",
            ),
        ] {
            let (settings, diagnostic) = refused(args);
            assert_eq!(settings, Settings::default(), "{args}");
            assert!(
                diagnostic.message.contains(says),
                "{args}: {}",
                diagnostic.message
            );
        }
    }

    #[test]
    fn endpoint_and_max_concurrency() {
        let s = clean("endpoint=True, max_concurrency=2");
        assert_eq!((s.endpoint, s.max_concurrency), (Some(true), Some(2)));
        assert_eq!(clean("endpoint_enabled=False").endpoint, Some(false));
        for (args, says) in [
            ("endpoint=1", "True or False"),
            ("max_concurrency=0", "between 1 and"),
            ("max_concurrency=10**6", "an int literal"),
            ("max_concurrency='2'", "an int literal"),
        ] {
            let (settings, diagnostic) = refused(args);
            assert_eq!(settings, Settings::default(), "{args}");
            assert!(
                diagnostic.message.contains(says),
                "{args}: {}",
                diagnostic.message
            );
        }
        let (settings, diagnostic) = refused("endpoint=True, endpoint_enabled=False");
        assert_eq!(settings.endpoint, Some(true), "ours wins");
        assert!(
            diagnostic.message.contains("endpoint_enabled= is ignored"),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn timeout_seconds_is_an_alias_of_timeout() {
        let analysis = analyze("workflow", "timeout_seconds=30");
        assert_eq!(analysis.workflows[0].timeout_seconds, Some(30.0));
        let analysis = analyze("workflow", "timeout=5, timeout_seconds=30");
        assert_eq!(analysis.workflows[0].timeout_seconds, Some(5.0));
        let analysis = analyze("workflow", "timeout_seconds=1e20");
        assert_eq!(analysis.workflows[0].timeout_seconds, None);
        assert!(analysis.diagnostics[0].message.contains("out of range"));
    }

    #[test]
    fn data_providers_have_a_cache_ttl_defaulting_to_300() {
        let ttl = |args: &str| {
            let analysis = analyze("data_provider", args);
            assert_eq!(analysis.entity_type, EntityType::DataProvider);
            (analysis.workflows[0].settings.clone(), analysis.diagnostics)
        };
        let (s, d) = ttl("");
        assert_eq!((s.cache_ttl_seconds, d.len()), (Some(300.0), 0));
        assert_eq!(s.to_json(), serde_json::json!({"cache_ttl_seconds": 300.0}));
        assert_eq!(ttl("cache_ttl=60").0.cache_ttl_seconds, Some(60.0));
        assert_eq!(ttl("cache_ttl_seconds=0").0.cache_ttl_seconds, Some(0.0));
        // Workflow-only settings on a provider are not read.
        assert_eq!(ttl("schedule='bad', retries=-1").1, []);
        for bad in [
            "cache_ttl=-1",
            "cache_ttl=604801",
            "cache_ttl='60'",
            "cache_ttl=TTL",
        ] {
            let (s, d) = ttl(bad);
            assert_eq!(
                s.cache_ttl_seconds,
                Some(300.0),
                "{bad}: the default applies"
            );
            assert_eq!(d.len(), 1, "{bad}: {d:?}");
            assert!(d[0].message.contains("cache_ttl="), "{}", d[0].message);
        }
        let (_, d) = ttl("cache_ttl_seconds=-5");
        assert!(
            d[0].message.contains("cache_ttl_seconds=-5 is not"),
            "{}",
            d[0].message
        );
        // And a workflow has no cache.
        assert_eq!(clean("cache_ttl=60").cache_ttl_seconds, None);
    }

    #[test]
    fn settings_round_trip_through_their_json() {
        let s = clean(
            "schedule='0 9 * * 1', timezone='Europe/Paris', retries=2, retry_backoff=1.5, \
             retry_on=['KeyError'], endpoint=True, max_concurrency=4",
        );
        let json = s.to_json();
        assert_eq!(json["schedule"]["timezone"], "Europe/Paris");
        assert_eq!(Settings::from_json(&json), s);
        assert_eq!(
            Settings::from_json(&serde_json::json!("junk")),
            Settings::default()
        );
        assert!(s.schedule.expect("schedule").parse().is_some());
    }

    #[test]
    fn schedules_are_checked_once_each_and_at_most_fifty_per_file() {
        // 60 distinct good schedules, then the first one again.
        let mut source = String::new();
        for minute in (0..60).chain([0]) {
            source.push_str(&format!(
                "@workflow(schedule='{minute} 9 * * *')\ndef w{minute}():\n    pass\n\n"
            ));
        }
        let analysis = analyze_python(&source);
        assert_eq!(analysis.workflows.len(), 61);
        let scheduled = |a: &Analysis| {
            a.workflows
                .iter()
                .filter(|w| w.settings.schedule.is_some())
                .count()
        };
        assert_eq!(
            scheduled(&analysis),
            MAX_SCHEDULES_PER_FILE + 1,
            "a repeat is free"
        );
        assert_eq!(analysis.diagnostics.len(), 10, "{:?}", analysis.diagnostics);
        let first = &analysis.diagnostics[0];
        assert!(
            first
                .message
                .starts_with("w50: more than 50 different schedules in one file"),
            "{first:?}"
        );
        assert_eq!((first.line, first.column), (201, 20));

        // Expressions no date matches cost little each, and stay bounded.
        let mut source = String::from("@workflow(schedule='@daily')\ndef good():\n    pass\n\n");
        for i in 0..2_000 {
            let (minute, hour) = (i % 60, i / 60 % 24);
            source.push_str(&format!(
                "@workflow(schedule='{minute} {hour} 31 2 *')\ndef w{i}():\n    pass\n\n"
            ));
        }
        let started = std::time::Instant::now();
        let analysis = analyze_python(&source);
        let elapsed = started.elapsed();
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(scheduled(&analysis), 1);
        assert!(analysis.workflows[0].settings.schedule.is_some());
        let first = &analysis.diagnostics[0];
        assert!(first.message.contains("never runs"), "{first:?}");
        assert_eq!((first.line, first.column), (5, 20));
    }

    #[test]
    fn diagnostics_keep_their_lines_in_big_files_parsed_in_pieces() {
        let mut source = String::new();
        for i in 0..20_000 {
            source.push_str(&format!(
                "@workflow(retries=-{i})\ndef w{i}():\n    return 1\n\n\n"
            ));
        }
        let analysis = analyze_python(&source);
        assert_eq!(analysis.workflows.len(), 20_000);
        // `-0` is 0, a valid value; the next ones are reported, capped.
        assert_eq!(
            analysis.diagnostics.len(),
            super::super::python::MAX_DIAGNOSTICS
        );
        for (i, d) in analysis.diagnostics.iter().enumerate() {
            assert_eq!(d.line as usize, (i + 1) * 5 + 1, "{d:?}");
        }
    }
}
