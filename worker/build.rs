//! Embeds the Python shim: generates `shim_files.rs`, a list of
//! `(relative path, include_str!(..))` for every `.py` under `python_shim/`
//! (tests excluded), so a deployed worker needs no files beside it.

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "py") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let shim = manifest.join("../python_shim");
    let package = shim.join("runeflow");
    println!("cargo:rerun-if-changed={}", shim.display());
    println!("cargo:rerun-if-changed={}", package.display());
    let mut files = Vec::new();
    collect(&package, &mut files);
    files.sort();
    let mut code = String::from(
        "/// Shim package sources: (path relative to `python_shim/`, source).\npub const SHIM_FILES: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file
            .strip_prefix(&shim)
            .expect("under shim")
            .to_string_lossy()
            .replace('\\', "/");
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    code.push_str("];\n");
    let bootstrap = shim.join("bootstrap.py");
    println!("cargo:rerun-if-changed={}", bootstrap.display());
    code.push_str(&format!(
        "/// The `-c` program that boots the zygote.\npub const BOOTSTRAP: &str = include_str!({:?});\n",
        bootstrap.display().to_string()
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("shim_files.rs");
    fs::write(out, code).expect("write shim_files.rs");
}
