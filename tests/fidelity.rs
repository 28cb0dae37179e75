//! Import-hook fidelity: every line of the 17-item checklist in DESIGN.md
//! ("Import hook fidelity") runs as a pair — once through a real worker and
//! a real forked python3 child importing from the virtual workspace, once
//! from the same files on disk (`python_shim/fidelity/run_on_disk.py`) — and
//! the two results must be equal, with every fact in `expect` true.
//!
//! The fixtures live in `python_shim/fidelity/` (see its README): the
//! workspace is uploaded file by file and its one workflow,
//! `fidelity_checks.py::check(name)`, runs one named check per execution.
//! Each test has its own database, Redis prefix and worker, so a failure
//! names exactly one checklist item.

mod common;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestEnv, WorkerHandle, test_worker_config};
use futures::FutureExt;
use serde_json::{Value, json};

/// The workflow that runs one check: `check(name: str) -> dict`.
const WORKFLOW: &str = "fidelity_checks.py::check";

/// `python_shim/fidelity` in this checkout.
fn fidelity_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python_shim/fidelity")
}

/// Every file of the fidelity workspace as (relative path, bytes), sorted;
/// `__pycache__` folders and bytecode are left out.
fn workspace_files() -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                if name != "__pycache__" {
                    walk(root, &path, out);
                }
            } else if kind.is_file() && !name.ends_with(".pyc") && !name.ends_with(".pyo") {
                let relative = path
                    .strip_prefix(root)
                    .expect("under the workspace")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                assert!(
                    std::str::from_utf8(&bytes).is_ok(),
                    "fixture {relative} is not UTF-8"
                );
                out.push((relative, bytes));
            }
        }
    }
    let root = fidelity_dir().join("workspace");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|(p, _)| p == "fidelity_checks.py"),
        "fidelity workspace not found at {}",
        root.display()
    );
    files
}

/// A fresh env with the whole fidelity workspace uploaded and a worker
/// running on it.
async fn fidelity_env() -> (TestEnv, WorkerHandle) {
    let env = TestEnv::new().await;
    for (path, bytes) in workspace_files() {
        let r = env.put(&path, bytes).await;
        assert!(r.status.is_success(), "PUT {path}: {}", r.text());
    }
    let worker = env.start_worker(test_worker_config()).await;
    (env, worker)
}

/// Runs `run_on_disk.py ARG` with the worker's interpreter and the
/// environment a worker's child gets; returns its JSON output. The script
/// itself puts the workspace folder first on `sys.path` and `python_shim`
/// second (for `import runeflow`).
fn run_on_disk(arg: &str) -> Value {
    let python = test_worker_config().python;
    let script = fidelity_dir().join("run_on_disk.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(arg)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs(runeflow_worker::zygote::child_environment(&[]))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "disk run of {arg} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("disk run of {arg} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Runs check `name` through the worker; the result, or why it failed.
async fn run_virtual(env: &TestEnv, name: &str) -> Result<Value, String> {
    let e = env.execute(WORKFLOW, json!({"name": name})).await;
    if e["status"] != "success" {
        let error = &e["error"];
        return Err(format!(
            "{name}: virtual execution ended {} instead of success\n\
             error: {}: {}\ntraceback:\n{}\nlogs:\n{}",
            e["status"],
            error["type"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("?"),
            error["traceback"].as_str().unwrap_or("(none)"),
            e["logs"].as_str().unwrap_or("(none)"),
        ));
    }
    Ok(e["result"].clone())
}

/// JSON paths at which `a` and `b` differ (`$` is the root).
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = format!("{path}.{key}");
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => differences(&sub, p, q, out),
                    (Some(_), None) => out.push(format!("{sub} (only virtual)")),
                    (None, Some(_)) => out.push(format!("{sub} (only disk)")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(path.to_owned()),
        _ => {}
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON")
}

/// Equal virtual and disk results, every `expect` fact true.
fn compare(name: &str, virtual_result: &Value, disk: &Value) -> Result<(), String> {
    if virtual_result != disk {
        let mut paths = Vec::new();
        differences("$", virtual_result, disk, &mut paths);
        return Err(format!(
            "{name}: virtual and disk imports differ at {}\n\
             --- virtual (worker) ---\n{}\n--- disk (run_on_disk.py) ---\n{}",
            paths.join(", "),
            pretty(virtual_result),
            pretty(disk),
        ));
    }
    let Some(expect) = disk["expect"].as_object().filter(|e| !e.is_empty()) else {
        return Err(format!(
            "{name}: result has no `expect` facts\n{}",
            pretty(disk)
        ));
    };
    let failed: Vec<&str> = expect
        .iter()
        .filter(|(_, ok)| **ok != Value::Bool(true))
        .map(|(key, _)| key.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{name}: expectations not met (on both sides): {}\n{}",
            failed.join(", "),
            pretty(disk)
        ));
    }
    if disk["check"] != name {
        return Err(format!("{name}: result is for check {}", disk["check"]));
    }
    Ok(())
}

/// One virtual/disk pair.
async fn check_pair(env: &TestEnv, name: &str) -> Result<(), String> {
    let virtual_result = run_virtual(env, name).await?;
    let disk = tokio::task::spawn_blocking({
        let name = name.to_owned();
        move || run_on_disk(&name)
    })
    .await
    .map_err(|e| format!("{name}: disk run panicked: {e}"))?;
    compare(name, &virtual_result, &disk)
}

/// Runs `body` on a fresh fidelity env; stops the worker and drops the env
/// whether or not `body` panicked.
async fn with_fidelity_env(body: impl AsyncFnOnce(&TestEnv)) {
    let (env, worker) = fidelity_env().await;
    let outcome = AssertUnwindSafe(body(&env)).catch_unwind().await;
    worker.stop().await;
    env.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The test of one checklist item: its own env, worker and disk run.
async fn checklist_item(name: &str) {
    with_fidelity_env(async move |env: &TestEnv| {
        if let Err(message) = check_pair(env, name).await {
            panic!("{message}");
        }
    })
    .await;
}

/// The names `run_on_disk.py --list` reports.
fn listed_checks() -> Vec<String> {
    let listing = run_on_disk("--list");
    listing["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("--list printed no checks: {listing}"))
        .iter()
        .map(|n| n.as_str().expect("check names are strings").to_owned())
        .collect()
}

#[test]
fn listing_covers_the_checklist_and_nothing_untested() {
    let names = listed_checks();
    for n in 1..=17 {
        let item = format!("item{n:02}");
        assert!(names.contains(&item), "{item} missing from {names:?}");
    }
    let items: Vec<String> = (1..=17).map(|n| format!("item{n:02}")).collect();
    let untested: Vec<&String> = names
        .iter()
        .filter(|n| !items.contains(n) && !n.starts_with("extra_"))
        .collect();
    assert!(
        untested.is_empty(),
        "checks without a test here: {untested:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_import_binds_submodules_on_parents() {
    checklist_item("item01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item02_relative_imports_in_modules_and_init_set_package() {
    checklist_item("item02").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item03_file_equals_spec_origin_and_co_filename_path_only_on_packages() {
    checklist_item("item03").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item04_tracebacks_and_uncaught_reports_show_virtual_source() {
    checklist_item("item04").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item05_inspect_getsource_on_function_class_module() {
    checklist_item("item05").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item06_syntax_error_names_file_line_text_and_leaves_no_module() {
    checklist_item("item06").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item07_exception_at_import_propagates_unchanged() {
    checklist_item("item07").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item08_circular_imports_behave_as_on_disk() {
    checklist_item("item08").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item09_namespace_packages_have_no_file_and_iterable_path() {
    checklist_item("item09").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_workspace_module_named_like_stdlib_or_site_packages() {
    checklist_item("item10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item11_find_spec_returns_none_for_missing_names() {
    checklist_item("item11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item12_reload_runs_new_code_and_deleted_module_not_found() {
    checklist_item("item12").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item13_pkgutil_iter_modules_get_data_and_importlib_resources() {
    checklist_item("item13").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item14_pep263_coding_cookies_decode() {
    checklist_item("item14").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item15_sixteen_threads_importing_one_module_execute_it_once() {
    checklist_item("item15").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item16_nothing_is_written_to_pycache() {
    checklist_item("item16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item17_doctest_suite_and_unittest_by_name_behave_as_on_disk() {
    checklist_item("item17").await;
}

/// Every `extra_*` check, in one env; all failures are reported together.
/// The virtual listing must also equal the disk one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_checks_match_disk() {
    let names = tokio::task::spawn_blocking(listed_checks)
        .await
        .expect("listing");
    let extras: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("extra_"))
        .cloned()
        .collect();
    assert!(!extras.is_empty(), "no extra_* checks listed: {names:?}");
    with_fidelity_env(async move |env: &TestEnv| {
        let e = env.execute(WORKFLOW, json!({"name": "list"})).await;
        assert_eq!(e["status"], "success", "{}", pretty(&e));
        assert_eq!(
            e["result"],
            json!({ "checks": names }),
            "virtual listing differs from disk"
        );
        let mut failures = Vec::new();
        for name in &extras {
            if let Err(message) = check_pair(env, name).await {
                failures.push(message);
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} extra checks failed:\n\n{}",
            failures.len(),
            extras.len(),
            failures.join("\n\n")
        );
    })
    .await;
}
