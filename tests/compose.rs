//! The compose deployment (`compose.yaml`, `Dockerfile`, `.env.example`,
//! `.dockerignore`), checked without a Docker engine: the compose file parses
//! (PyYAML through `python3 -c`), its Runeflow services run real subcommands
//! of the binary in the right order, the worker can be scaled, every variable
//! the services read is documented, each service gets only the secrets it
//! uses, Redis and PostgreSQL require passwords, the worker has a healthcheck
//! and minimal capabilities, compose's defaults are the binary's, and the
//! Dockerfile has a cache-friendly build stage and a slim non-root runtime
//! stage whose entrypoint is runeflow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    let path = root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// compose.yaml

/// PyYAML's safe loader, except that a key repeated in one mapping is an
/// error (compose refuses it; PyYAML would silently keep the last one). Keys
/// brought in by a `<<` merge may be overridden, as compose allows.
const LOAD_YAML: &str = r#"
import json, sys, yaml

class Loader(yaml.SafeLoader):
    pass

def mapping(loader, node, deep=False):
    own = [k.value for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
    dups = sorted({k for k in own if own.count(k) > 1})
    if dups:
        raise yaml.constructor.ConstructorError(
            None, None, "duplicate keys %s" % dups, node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
with open(sys.argv[1]) as f:
    json.dump(yaml.load(f, Loader=Loader), sys.stdout)
"#;

/// A Python that has PyYAML: `python3` on the PATH, else Debian's (where
/// `apt-get install python3-yaml` puts it when `python3` is another build).
fn python_with_yaml() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import yaml"])
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .expect("no python3 with PyYAML (apt-get install python3-yaml, or pip install PyYAML)")
}

fn compose() -> Value {
    let path = root().join("compose.yaml");
    let out = Command::new(python_with_yaml())
        .arg("-c")
        .arg(LOAD_YAML)
        .arg(&path)
        .output()
        .expect("run python3 to parse compose.yaml");
    assert!(
        out.status.success(),
        "compose.yaml does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).expect("PyYAML printed JSON");
    assert!(value.is_object(), "compose.yaml is not a mapping: {value}");
    value
}

fn services(compose: &Value) -> &Map<String, Value> {
    compose["services"]
        .as_object()
        .expect("compose.yaml has a `services` mapping")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Map<String, Value> {
    services(compose)
        .get(name)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("compose.yaml has no service `{name}`"))
}

/// The services whose image is built from this repository's Dockerfile.
fn built_services(compose: &Value) -> BTreeSet<String> {
    services(compose)
        .iter()
        .filter(|(_, svc)| {
            let build = &svc["build"];
            let (context, dockerfile) = match build {
                Value::String(context) => (Some(context.as_str()), None),
                Value::Object(b) => (
                    b.get("context").and_then(Value::as_str),
                    b.get("dockerfile").and_then(Value::as_str),
                ),
                _ => return false,
            };
            matches!(context, Some(".") | Some("./") | None)
                && matches!(dockerfile, Some("Dockerfile") | None)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// A service's `command` as words (exec form, or a string split like compose does).
fn command_words(svc: &Map<String, Value>) -> Vec<String> {
    match svc.get("command") {
        Some(Value::Array(words)) => words
            .iter()
            .map(|w| w.as_str().expect("command words are strings").to_owned())
            .collect(),
        Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// `depends_on` as service → condition (the short list form means `service_started`).
fn depends_on(svc: &Map<String, Value>) -> BTreeMap<String, String> {
    match svc.get("depends_on") {
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| (n.as_str().unwrap().to_owned(), "service_started".to_owned()))
            .collect(),
        Some(Value::Object(deps)) => deps
            .iter()
            .map(|(name, dep)| {
                let condition = dep["condition"].as_str().unwrap_or("service_started");
                (name.clone(), condition.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A service's `environment:` block as name → value (mapping or `NAME=value` list).
fn environment(svc: &Map<String, Value>) -> BTreeMap<String, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match svc.get("environment") {
        Some(Value::Object(vars)) => vars.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let item = item.as_str().expect("environment entries are strings");
                match item.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (item.to_owned(), String::new()),
                }
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn env_files(svc: &Map<String, Value>) -> Vec<String> {
    match svc.get("env_file") {
        Some(Value::String(f)) => vec![f.clone()],
        Some(Value::Array(files)) => files
            .iter()
            .filter_map(|f| match f {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("path").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `ports:` entries as (host part, container port); host part empty when
/// only the container port is given.
fn ports(svc: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Array(entries)) = svc.get("ports") else {
        return Vec::new();
    };
    entries
        .iter()
        .map(|entry| match entry {
            Value::Object(long) => (
                long.get("published")
                    .map(|p| p.as_str().map(str::to_owned).unwrap_or(p.to_string()))
                    .unwrap_or_default(),
                long["target"].to_string(),
            ),
            other => {
                let short = other
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or(other.to_string());
                let short = short.split('/').next().unwrap().to_owned();
                match short.rsplit_once(':') {
                    Some((host, container)) => (host.to_owned(), container.to_owned()),
                    None => (String::new(), short),
                }
            }
        })
        .collect()
}

/// The words of a healthcheck `test` (without the CMD / CMD-SHELL marker) and
/// whether it runs through a shell.
fn healthcheck(svc: &Map<String, Value>) -> (Vec<String>, bool) {
    let test = &svc
        .get("healthcheck")
        .unwrap_or_else(|| panic!("no healthcheck in {svc:?}"))["test"];
    let words: Vec<String> = match test {
        Value::Array(words) => words
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect(),
        Value::String(line) => vec!["CMD-SHELL".to_owned(), line.clone()],
        other => panic!("healthcheck test is {other}"),
    };
    match words.first().map(String::as_str) {
        Some("CMD") => (words[1..].to_vec(), false),
        Some("CMD-SHELL") => (words[1..].to_vec(), true),
        other => panic!("healthcheck test starts with {other:?}, not CMD or CMD-SHELL"),
    }
}

/// Names substituted by compose in the file's values (`${NAME}`,
/// `${NAME:-default}`, ...), not the `$${NAME}` escapes meant for the
/// container's shell.
fn interpolated_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let bytes = text.as_bytes();
            let mut i = 0;
            while i + 1 < bytes.len() {
                if bytes[i] == b'$' && bytes[i + 1] == b'$' {
                    i += 2;
                    continue;
                }
                if bytes[i] == b'$' && bytes[i + 1] == b'{' {
                    let name: String = text[i + 2..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(!name.is_empty(), "empty ${{}} in compose.yaml: {text:?}");
                    names.insert(name);
                }
                i += 1;
            }
        }
        Value::Array(items) => items.iter().for_each(|v| interpolated_names(v, names)),
        Value::Object(map) => map.values().for_each(|v| interpolated_names(v, names)),
        _ => {}
    }
}

/// A compose duration (`40s`, `1m30s`, `500ms`) in seconds.
fn duration_secs(text: &str) -> f64 {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap());
        }
        let n: f64 = number
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {text}"));
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            other => panic!("unit {other} in duration {text}"),
        };
    }
    assert!(number.is_empty(), "duration {text} lacks a unit");
    total
}

// ---------------------------------------------------------------------------
// the binary

fn runeflow(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(args)
        .output()
        .expect("run the runeflow binary");
    assert!(
        out.status.success(),
        "`runeflow {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// The names in clap's `[env: NAME=value]` / `[env: NAME]` markers (the
/// second form for `hide_env_values`).
fn env_markers(help: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in help.match_indices("[env: ") {
        let rest = &help[at + "[env: ".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        assert!(
            end > 0 && matches!(rest[end..].chars().next(), Some('=' | ']')),
            "unexpected env marker in help: {:?}",
            &rest[..rest.len().min(40)]
        );
        names.insert(rest[..end].to_owned());
    }
    names
}

/// Environment variables read by the server subcommands the deployment runs.
fn server_env() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for cmd in ["init", "api", "worker"] {
        let found = env_markers(&runeflow(&[cmd, "--help"]));
        assert!(
            found.contains("DATABASE_URL") && found.contains("REDIS_URL"),
            "`runeflow {cmd} --help` shows no DATABASE_URL/REDIS_URL env marker: {found:?}"
        );
        names.extend(found);
    }
    names
}

/// The subcommand paths listed under `Commands:` in a help text (recursing
/// into groups such as `git`).
fn all_subcommands(path: &[String], out: &mut Vec<Vec<String>>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = runeflow(&args);
    let Some(section) = help.split("Commands:\n").nth(1) else {
        return;
    };
    for line in section.lines().take_while(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.is_empty() || name == "help" {
            continue;
        }
        let mut sub = path.to_vec();
        sub.push(name.to_owned());
        out.push(sub.clone());
        all_subcommands(&sub, out);
    }
}

/// Every variable any subcommand reads (its `[env:` markers).
fn every_env_read() -> BTreeSet<String> {
    let mut commands = Vec::new();
    all_subcommands(&[], &mut commands);
    assert!(
        commands.iter().any(|c| c == &["worker".to_owned()]),
        "`runeflow --help` lists no worker subcommand: {commands:?}"
    );
    commands
        .iter()
        .flat_map(|c| {
            let mut args: Vec<&str> = c.iter().map(String::as_str).collect();
            args.push("--help");
            env_markers(&runeflow(&args))
        })
        .collect()
}

/// The lines of one flag's entry in a help text (short or long format):
/// from the flag to the next flag.
fn flag_block(help: &str, flag: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines.next().unwrap_or_default();
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.trim_start().starts_with('-')))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `[default: ...]` of one flag in a help text.
fn flag_default(help: &str, flag: &str) -> String {
    let line = flag_block(help, flag);
    let start = line
        .find("[default: ")
        .unwrap_or_else(|| panic!("{flag} has no default in: {line}"));
    let rest = &line[start + "[default: ".len()..];
    rest[..rest.find(']').unwrap()].to_owned()
}

// ---------------------------------------------------------------------------
// .env.example

struct EnvExample {
    /// `NAME=value` lines.
    set: BTreeMap<String, String>,
    /// Names of `NAME=` and `# NAME=` lines.
    documented: BTreeSet<String>,
}

fn env_example() -> EnvExample {
    let text = read(".env.example");
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let mut set = BTreeMap::new();
    let mut documented = BTreeSet::new();
    for line in text.lines() {
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line.trim()),
        };
        let Some((name, value)) = body.split_once('=') else {
            continue;
        };
        if !is_name(name) {
            assert!(commented, ".env.example: not a NAME=value line: {line:?}");
            continue;
        }
        documented.insert(name.to_owned());
        if !commented {
            let previous = set.insert(name.to_owned(), value.to_owned());
            assert!(previous.is_none(), ".env.example sets {name} twice");
        }
    }
    EnvExample { set, documented }
}

// ---------------------------------------------------------------------------
// Dockerfile

struct Stage {
    image: String,
    name: Option<String>,
    /// (INSTRUCTION, arguments) with continuation lines joined.
    instructions: Vec<(String, String)>,
}

fn dockerfile() -> Vec<Stage> {
    let text = read("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "Dockerfile ends in a continuation");

    let mut args = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (op, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let op = op.to_ascii_uppercase();
        let rest = rest.trim().to_owned();
        if op == "ARG"
            && stages.is_empty()
            && let Some((k, v)) = rest.split_once('=')
        {
            args.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
        if op == "FROM" {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let mut image = words[0].to_owned();
            for (k, v) in &args {
                image = image
                    .replace(&format!("${{{k}}}"), v)
                    .replace(&format!("${k}"), v);
            }
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                image,
                name,
                instructions: Vec::new(),
            });
            continue;
        }
        if let Some(stage) = stages.last_mut() {
            stage.instructions.push((op, rest));
        } else {
            assert!(op == "ARG", "{op} before the first FROM");
        }
    }
    stages
}

/// Packages installed by `apt-get install` in a stage.
fn apt_packages(stage: &Stage) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for (_, run) in stage.instructions.iter().filter(|(op, _)| op == "RUN") {
        for (at, _) in run.match_indices("apt-get install") {
            for word in run[at + "apt-get install".len()..].split_whitespace() {
                if matches!(word, "&&" | ";" | "||" | "|") || word.ends_with(';') {
                    break;
                }
                if !word.starts_with('-') {
                    packages.insert(word.to_owned());
                }
            }
        }
    }
    packages
}

fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("Cargo.toml has workspace members");
    let list = &line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()];
    let members: Vec<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(!members.is_empty(), "no workspace members in {line}");
    members
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn compose_file_parses_with_the_five_services() {
    let compose = compose();
    let names: BTreeSet<&str> = services(&compose).keys().map(String::as_str).collect();
    for expected in ["postgres", "redis", "init", "api", "worker"] {
        assert!(
            names.contains(expected),
            "no service {expected} in {names:?}"
        );
    }
    assert_eq!(
        built_services(&compose),
        BTreeSet::from(["init".to_owned(), "api".to_owned(), "worker".to_owned()]),
        "exactly init, api and worker are built from the Dockerfile"
    );
}

#[test]
fn runeflow_services_run_real_subcommands_of_one_image() {
    let compose = compose();
    let mut images = BTreeSet::new();
    for name in built_services(&compose) {
        let svc = service(&compose, &name);
        let words = command_words(svc);
        let first = words
            .first()
            .unwrap_or_else(|| panic!("service {name} has no command"));
        // The image's ENTRYPOINT is `runeflow`: the command is its arguments.
        assert_ne!(
            first, "runeflow",
            "service {name}: the entrypoint already is runeflow"
        );
        assert_eq!(
            first, &name,
            "service {name} runs `runeflow {first}`, not `runeflow {name}`"
        );
        let help = runeflow(&[first, "--help"]);
        assert!(
            help.contains("Usage: runeflow"),
            "`runeflow {first} --help` printed no usage: {help}"
        );
        assert!(
            env_files(svc).is_empty(),
            "service {name} reads a whole env file: list only what it needs in `environment:`"
        );
        images.insert(svc.get("image").map(Value::to_string).unwrap_or_default());
    }
    assert_eq!(
        images.len(),
        1,
        "init, api and worker should share one image tag (built once): {images:?}"
    );
    assert!(!images.contains(""), "the built image has no `image:` tag");
}

#[test]
fn services_start_in_dependency_order() {
    let compose = compose();

    let (pg_check, _) = healthcheck(service(&compose, "postgres"));
    assert!(
        pg_check.join(" ").contains("pg_isready"),
        "postgres healthcheck does not use pg_isready: {pg_check:?}"
    );
    // Over TCP: the first start's setup server listens on the socket only.
    assert!(
        pg_check.join(" ").contains("-h 127.0.0.1"),
        "postgres healthcheck does not check TCP (pg_isready -h 127.0.0.1): {pg_check:?}"
    );
    let (redis_check, _) = healthcheck(service(&compose, "redis"));
    assert!(
        redis_check.join(" ").contains("redis-cli") && redis_check.join(" ").contains("ping"),
        "redis healthcheck is not `redis-cli ping`: {redis_check:?}"
    );
    let pg = service(&compose, "postgres");
    let volume = pg["volumes"]
        .as_array()
        .and_then(|v| v.first())
        .and_then(Value::as_str)
        .unwrap_or_default();
    let volume_name = volume.split(':').next().unwrap_or_default();
    assert!(
        volume.ends_with(":/var/lib/postgresql/data")
            && compose["volumes"].get(volume_name).is_some(),
        "postgres data is not on a named volume: {volume:?}"
    );

    let init = service(&compose, "init");
    let init_deps = depends_on(init);
    for backing in ["postgres", "redis"] {
        assert_eq!(
            init_deps.get(backing).map(String::as_str),
            Some("service_healthy"),
            "init must wait for {backing} to be healthy: {init_deps:?}"
        );
    }
    // A one-shot: restarting a completed init would run it forever.
    let restart = init.get("restart").and_then(Value::as_str).unwrap_or("no");
    assert!(
        matches!(restart, "no" | "on-failure") || restart.starts_with("on-failure:"),
        "init restarts with policy {restart:?}"
    );

    for name in ["api", "worker"] {
        let deps = depends_on(service(&compose, name));
        assert_eq!(
            deps.get("init").map(String::as_str),
            Some("service_completed_successfully"),
            "{name} must wait for init to complete successfully: {deps:?}"
        );
    }

    // And no cycle or reversed edge anywhere: a topological order must put
    // postgres/redis before init before api/worker.
    let all = services(&compose);
    let mut order: Vec<String> = Vec::new();
    let mut left: BTreeSet<String> = all.keys().cloned().collect();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|n| {
                depends_on(all[n.as_str()].as_object().unwrap())
                    .keys()
                    .all(|d| order.contains(d))
            })
            .cloned()
            .collect();
        assert!(!ready.is_empty(), "dependency cycle among {left:?}");
        for n in ready {
            left.remove(&n);
            order.push(n);
        }
    }
    let pos = |n: &str| order.iter().position(|o| o == n).unwrap();
    assert!(pos("postgres") < pos("init") && pos("redis") < pos("init"));
    assert!(pos("init") < pos("api") && pos("init") < pos("worker"));
}

#[test]
fn api_listens_on_all_interfaces_is_published_and_checks_readyz() {
    let compose = compose();
    let api = service(&compose, "api");
    let bind = environment(api)
        .get("RUNEFLOW_BIND")
        .cloned()
        .expect("api sets RUNEFLOW_BIND in its environment");
    let (host, port) = bind.rsplit_once(':').expect("RUNEFLOW_BIND is host:port");
    assert_eq!(
        host, "0.0.0.0",
        "the api must listen on all interfaces in its container"
    );
    let published = ports(api);
    assert!(
        published
            .iter()
            .any(|(host_part, container)| container == port && !host_part.is_empty()),
        "api publishes no host port for container port {port}: {published:?}"
    );
    for (host_part, _) in &published {
        assert!(
            host_part.starts_with("127.0.0.1:"),
            "api is published beyond loopback: {host_part:?}"
        );
    }

    let (check, shell) = healthcheck(api);
    let joined = check.join(" ");
    assert!(
        joined.contains(&format!(":{port}/readyz")),
        "api healthcheck does not request /readyz on port {port}: {joined}"
    );
    // The runtime image has no curl: the healthcheck's program must be one
    // the Dockerfile's runtime stage installs.
    let program = if shell {
        joined.split_whitespace().next().unwrap().to_owned()
    } else {
        check[0].clone()
    };
    let stages = dockerfile();
    let runtime = apt_packages(stages.last().unwrap());
    assert!(
        runtime.contains(&program),
        "api healthcheck runs {program}, which the runtime stage does not install ({runtime:?})"
    );
}

#[test]
fn worker_scales_without_fixed_names_or_ports() {
    let compose = compose();
    let worker = service(&compose, "worker");
    for fixed in ["container_name", "hostname"] {
        assert!(
            !worker.contains_key(fixed),
            "worker sets {fixed}: replicas would clash"
        );
    }
    let fixed_ports: Vec<_> = ports(worker)
        .into_iter()
        .filter(|(host, _)| !host.is_empty())
        .collect();
    assert!(
        fixed_ports.is_empty(),
        "worker publishes fixed host ports: {fixed_ports:?}"
    );

    // Each replica names itself (host-pid-random from its own hostname) only
    // while nothing gives them all one name.
    let help = runeflow(&["worker", "--help"]);
    let name_flag = flag_block(&help, "--worker-name");
    assert!(
        name_flag.contains("RUNEFLOW_WORKER_NAME") && !name_flag.contains("[default:"),
        "the worker name must default to a per-process name: {name_flag}"
    );
    assert!(
        !environment(worker).contains_key("RUNEFLOW_WORKER_NAME"),
        "worker environment fixes RUNEFLOW_WORKER_NAME for every replica"
    );
    assert!(
        !env_example().set.contains_key("RUNEFLOW_WORKER_NAME"),
        ".env.example sets RUNEFLOW_WORKER_NAME, which every replica would share"
    );

    // `docker compose stop` must leave the drain its time (docker's default
    // grace is 10 s).
    let drain: f64 = env_example()
        .set
        .get("RUNEFLOW_DRAIN_SECS")
        .cloned()
        .unwrap_or_else(|| flag_default(&help, "--drain-secs"))
        .parse()
        .expect("drain seconds are a number");
    let grace = worker
        .get("stop_grace_period")
        .and_then(Value::as_str)
        .map(duration_secs)
        .unwrap_or(10.0);
    assert!(
        grace > drain,
        "worker stop_grace_period {grace}s does not exceed RUNEFLOW_DRAIN_SECS {drain}s"
    );
}

#[test]
fn every_variable_the_services_read_is_documented() {
    let compose = compose();
    let example = env_example();

    let mut needed = server_env();
    needed.insert("RUST_LOG".to_owned()); // read by tracing, not by clap
    // The runeflow services' variables (postgres and redis take theirs from
    // the interpolated names below).
    for name in built_services(&compose) {
        let vars = environment(service(&compose, &name));
        assert!(
            !(name == "api" && vars.is_empty()),
            "api has no environment block"
        );
        needed.extend(vars.into_keys());
    }
    let mut interpolated = BTreeSet::new();
    interpolated_names(&compose, &mut interpolated);
    assert!(
        interpolated.contains("POSTGRES_PASSWORD"),
        "the postgres password should come from .env: {interpolated:?}"
    );
    needed.extend(interpolated.iter().cloned());

    let missing: Vec<_> = needed.difference(&example.documented).collect();
    assert!(
        missing.is_empty(),
        "not documented in .env.example (as `NAME=` or `# NAME=`): {missing:?}"
    );

    // And nothing documented that no one reads (a typo would be silently ignored).
    let mut known = every_env_read();
    known.extend(needed);
    let unknown: Vec<_> = example.documented.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        ".env.example documents variables nothing reads: {unknown:?}"
    );
}

#[test]
fn env_example_points_at_the_compose_services() {
    let compose = compose();
    let example = env_example();
    let get = |name: &str| {
        example
            .set
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!(".env.example does not set {name}"))
    };
    // The secrets are set, to values every runeflow process refuses.
    for secret in [
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "RUNEFLOW_API_TOKEN",
        "RUNEFLOW_SECRET_KEY",
    ] {
        assert!(
            get(secret).contains("change-me"),
            "{secret} in .env.example is not an obvious example value"
        );
    }
    // The URLs are not in .env: compose builds them from the secrets, so
    // they cannot drift apart.
    for url in ["DATABASE_URL", "REDIS_URL"] {
        assert!(
            !example.set.contains_key(url),
            ".env.example sets {url}; compose.yaml builds it from the passwords"
        );
    }
    for name in built_services(&compose) {
        let env = environment(service(&compose, &name));
        let db = env
            .get("DATABASE_URL")
            .unwrap_or_else(|| panic!("{name} has no DATABASE_URL"));
        assert!(
            db.starts_with("postgres://${POSTGRES_USER")
                && db.contains(":${POSTGRES_PASSWORD")
                && db.contains("}@postgres:5432/${POSTGRES_DB"),
            "{name}: DATABASE_URL is not built from POSTGRES_*: {db}"
        );
        let redis = env
            .get("REDIS_URL")
            .unwrap_or_else(|| panic!("{name} has no REDIS_URL"));
        assert!(
            redis.starts_with("redis://:${REDIS_PASSWORD") && redis.contains("}@redis:6379/"),
            "{name}: REDIS_URL does not carry the Redis password: {redis}"
        );
    }

    // The postgres container takes its credentials from .env, not from
    // literals that could drift from DATABASE_URL.
    let pg_env = environment(service(&compose, "postgres"));
    for name in ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"] {
        let value = pg_env
            .get(name)
            .unwrap_or_else(|| panic!("postgres environment lacks {name}"));
        assert!(
            value.starts_with(&format!("${{{name}")),
            "postgres {name} is {value:?}, not ${{{name}}} from .env"
        );
    }
    // Redis requires the password.
    let redis_cmd = command_words(service(&compose, "redis")).join(" ");
    assert!(
        redis_cmd.contains("--requirepass ${REDIS_PASSWORD"),
        "redis runs without --requirepass: {redis_cmd}"
    );
}

/// Secrets go only where they are used: the worker runs user code and never
/// gets the API or git token; init needs neither either.
#[test]
fn each_service_gets_only_the_secrets_it_uses() {
    let compose = compose();
    let never = |svc: &str, names: &[&str]| {
        let env = environment(service(&compose, svc));
        for name in names {
            assert!(
                !env.contains_key(*name),
                "{svc} gets {name}, which it does not use"
            );
        }
    };
    let tokens = [
        "RUNEFLOW_API_TOKEN",
        "RUNEFLOW_GIT_TOKEN",
        "RUNEFLOW_GIT_USERNAME",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
    ];
    never("worker", &tokens);
    never("init", &tokens);
    let api = environment(service(&compose, "api"));
    assert!(api.contains_key("RUNEFLOW_API_TOKEN"), "api has no token");
    assert!(
        api["RUNEFLOW_API_TOKEN"].contains(":?"),
        "api's token must be required by compose (${{RUNEFLOW_API_TOKEN:?...}})"
    );
    // The key sealing workflow secrets: required by compose for init (which
    // checks it), api (seals) and worker (opens); never the data services.
    for svc in ["init", "api", "worker"] {
        let env = environment(service(&compose, svc));
        assert!(
            env.get("RUNEFLOW_SECRET_KEY")
                .is_some_and(|v| v.starts_with("${RUNEFLOW_SECRET_KEY:?")),
            "{svc} must get RUNEFLOW_SECRET_KEY, required (${{RUNEFLOW_SECRET_KEY:?...}})"
        );
    }
    never("postgres", &["RUNEFLOW_SECRET_KEY"]);
    never("redis", &["RUNEFLOW_SECRET_KEY"]);
    assert!(
        read(".gitignore")
            .lines()
            .any(|l| l.trim() == ".env" || l.trim() == "/.env"),
        ".env is not in .gitignore"
    );
}

/// The worker runs as root with only the capabilities to switch its
/// children to their own uids and signal them; init and api run as the
/// image's unprivileged user. Crashed services come back; the worker has a
/// healthcheck that means "consuming".
#[test]
fn worker_privileges_restart_and_health() {
    let compose = compose();
    let worker = service(&compose, "worker");
    let list = |key: &str| -> BTreeSet<String> {
        worker
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    assert_eq!(worker.get("user").and_then(Value::as_str), Some("0:0"));
    assert_eq!(list("cap_drop"), BTreeSet::from(["ALL".to_owned()]));
    assert_eq!(
        list("cap_add"),
        BTreeSet::from(["SETUID".to_owned(), "SETGID".to_owned(), "KILL".to_owned()])
    );
    assert!(
        list("security_opt").contains("no-new-privileges:true"),
        "worker lacks no-new-privileges"
    );
    for name in ["init", "api"] {
        assert!(
            !service(&compose, name).contains_key("user"),
            "{name} overrides the image's non-root user"
        );
    }
    for name in ["worker", "api", "postgres", "redis"] {
        let restart = service(&compose, name)
            .get("restart")
            .and_then(Value::as_str);
        assert_eq!(restart, Some("always"), "{name} restart policy");
    }
    assert_eq!(worker.get("init"), Some(&Value::Bool(true)), "worker init");

    let (check, shell) = healthcheck(worker);
    assert!(!shell, "worker healthcheck needs no shell: {check:?}");
    assert_eq!(check, ["runeflow", "worker-health"]);
    let health_file = environment(worker)
        .get("RUNEFLOW_HEALTH_FILE")
        .cloned()
        .expect("worker sets RUNEFLOW_HEALTH_FILE");
    let dir = health_file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let runtime = dockerfile().pop().unwrap();
    assert!(
        runtime.instructions.iter().any(|(op, args)| op == "RUN"
            && args.contains(&format!("install -d -m 0755 -o root -g root {dir}"))),
        "the image does not create {dir} (root-owned, out of the children's reach)"
    );

    // uid claims live in one volume shared by every worker replica, so two
    // replicas never run children under the same (host-wide) uid.
    let claims = "/run/runeflow/child-uids";
    let volumes: Vec<&str> = worker
        .get("volumes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let named = volumes
        .iter()
        .find_map(|v| v.strip_suffix(&format!(":{claims}")))
        .unwrap_or_else(|| panic!("worker does not mount a volume at {claims}: {volumes:?}"));
    assert!(
        compose["volumes"].get(named).is_some(),
        "{named} is not a named volume (each replica would have its own claims)"
    );
    assert!(
        runtime.instructions.iter().any(|(op, args)| op == "RUN"
            && args.contains(&format!("install -d -m 0700 -o root -g root {claims}"))),
        "the image does not create {claims} root-only"
    );
}

/// Where compose gives a variable a default (`${NAME:-default}`), it is the
/// binary's own default: the two cannot drift apart.
#[test]
fn compose_defaults_match_the_binary() {
    let compose = compose();
    let mut defaults = BTreeMap::new();
    for cmd in ["init", "api", "worker"] {
        defaults.extend(env_defaults(&runeflow(&[cmd, "--help"])));
    }
    let mut checked = 0;
    for name in built_services(&compose) {
        for (var, value) in environment(service(&compose, &name)) {
            let Some(inner) = value
                .strip_prefix(&format!("${{{var}:-"))
                .and_then(|v| v.strip_suffix('}'))
            else {
                continue;
            };
            if var == "RUST_LOG" {
                continue; // read by tracing, not a flag
            }
            // Deliberately stricter in compose: the image prepares the child
            // uids, so a worker that cannot switch is a broken deployment.
            if var == "RUNEFLOW_CHILD_USERS" {
                assert_eq!(inner, "required", "{name}: compose default of {var}");
                checked += 1;
                continue;
            }
            match defaults.get(&var) {
                Some(default) => {
                    assert_eq!(inner, default, "{name}: compose default of {var}");
                    checked += 1;
                }
                None => assert!(
                    inner.is_empty(),
                    "{name}: {var} has a compose default {inner:?} but no flag default"
                ),
            }
        }
    }
    assert!(checked >= 8, "only {checked} defaults checked");
}

/// env name → `[default: ...]` of every option in a help text.
fn env_defaults(help: &str) -> BTreeMap<String, String> {
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line.trim());
            block.push(' ');
        }
    }
    blocks
        .iter()
        .filter_map(|block| {
            let env = env_markers(block).into_iter().next()?;
            let start = block.find("[default: ")? + "[default: ".len();
            let end = start + block[start..].find(']')?;
            // clap quotes a default that has spaces.
            Some((env, block[start..end].trim_matches('"').to_owned()))
        })
        .collect()
}

#[test]
fn dockerfile_builds_with_cargo_and_runs_slim_as_non_root() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "the Dockerfile needs a build and a runtime stage"
    );

    let build = stages
        .iter()
        .find(|s| s.image.starts_with("rust:") && s.image.contains("bookworm"))
        .unwrap_or_else(|| {
            let images: Vec<_> = stages.iter().map(|s| &s.image).collect();
            panic!("no rust:*bookworm build stage among {images:?}")
        });
    let build_name = build
        .name
        .clone()
        .expect("the build stage is named (AS ...)");
    let runs = |s: &Stage, needle: &str| {
        s.instructions
            .iter()
            .position(|(op, args)| op == "RUN" && args.contains(needle))
    };
    let full_build = "cargo build --release --locked --bin runeflow";
    let first_build = runs(build, full_build)
        .expect("build stage runs cargo build --release --locked --bin runeflow");

    // Cache-friendly: manifests and lock file first, a dependency build, and
    // only then the sources.
    let copies_all = build
        .instructions
        .iter()
        .position(|(op, args)| op == "COPY" && args.split_whitespace().next() == Some("."))
        .expect("build stage copies the sources (COPY . .)");
    assert!(
        first_build < copies_all,
        "no cargo build before `COPY . .`: dependencies are rebuilt on every source change"
    );
    let last_build = build
        .instructions
        .iter()
        .rposition(|(op, args)| op == "RUN" && args.contains(full_build))
        .unwrap();
    assert!(
        last_build > copies_all,
        "no cargo build after the sources are copied"
    );
    let early_copies: String = build.instructions[..first_build]
        .iter()
        .filter(|(op, _)| op == "COPY")
        .map(|(_, args)| format!("{args} "))
        .collect();
    let mut needed = vec!["Cargo.lock".to_owned(), "Cargo.toml".to_owned()];
    for member in workspace_members() {
        needed.push(format!("{member}/Cargo.toml"));
        if root().join(&member).join("build.rs").exists() {
            needed.push(format!("{member}/build.rs"));
        }
    }
    for file in needed {
        assert!(
            early_copies
                .split_whitespace()
                .any(|w| w == file || w == format!("./{file}")),
            "{file} is not copied before the dependency build (COPY lines: {early_copies})"
        );
    }

    let runtime = stages.last().unwrap();
    assert_eq!(runtime.image, "debian:bookworm-slim", "runtime stage base");
    let packages = apt_packages(runtime);
    for package in ["python3", "ca-certificates"] {
        assert!(
            packages.contains(package),
            "runtime stage does not install {package}: {packages:?}"
        );
    }
    // git2 builds libgit2 with https: OpenSSL to build against and at run time.
    if read("Cargo.lock").contains("name = \"openssl-sys\"") {
        let build_packages = apt_packages(build);
        for package in ["libssl-dev", "pkg-config"] {
            assert!(
                build_packages.contains(package),
                "build stage does not install {package}: {build_packages:?}"
            );
        }
        assert!(
            packages.contains("libssl3"),
            "runtime stage does not install libssl3: {packages:?}"
        );
    }

    let copies_binary = runtime.instructions.iter().any(|(op, args)| {
        op == "COPY"
            && args.contains(&format!("--from={build_name}"))
            && args.split_whitespace().last() == Some("/usr/local/bin/runeflow")
    });
    assert!(
        copies_binary,
        "runtime stage does not COPY --from={build_name} the binary to /usr/local/bin/runeflow"
    );

    let user = runtime
        .instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, u)| u.split(':').next().unwrap().to_owned())
        .expect("runtime stage sets a USER");
    assert!(
        !matches!(user.as_str(), "root" | "0"),
        "runtime stage runs as {user}"
    );

    let entrypoint = runtime
        .instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, e)| e.clone())
        .expect("runtime stage has an ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(&entrypoint).expect("ENTRYPOINT in exec (JSON) form");
    assert_eq!(entrypoint, ["runeflow"], "ENTRYPOINT");
}

#[test]
fn dockerignore_keeps_the_context_small_but_complete() {
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| l.trim_matches('/').to_owned())
        .collect();
    for must in ["target", ".git", ".env"] {
        assert!(
            patterns.iter().any(|p| p == must),
            ".dockerignore does not exclude {must}"
        );
    }
    // What the build needs: a pattern equal to one of these paths or to a
    // folder above it would break the image build.
    let mut needed: Vec<String> = [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "benches",
        "python_shim/bootstrap.py",
        "python_shim/runeflow/__init__.py",
    ]
    .map(str::to_owned)
    .to_vec();
    needed.extend(workspace_members().into_iter().map(|m| format!("{m}/src")));
    for path in &needed {
        assert!(root().join(path).exists(), "{path} does not exist");
        for pattern in &patterns {
            assert!(
                !(pattern == "*"
                    || pattern == "**"
                    || pattern == path
                    || path.starts_with(&format!("{pattern}/"))),
                ".dockerignore pattern {pattern:?} excludes {path}, which the build needs"
            );
        }
    }
}
