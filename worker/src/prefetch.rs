//! The modules a workflow will import, sent with `run` as code objects.
//!
//! One socket round trip plus a `compile()` per import made a workspace
//! import several times slower than a disk import with `.pyc` files. So
//! before a run the worker walks the workflow module's imports (as its
//! bytecode lists them, found by the trusted compiler), resolves each in
//! the execution's pinned snapshot, and sends every module found, compiled,
//! in one frame. The child's finder uses an entry once instead of asking;
//! anything not sent (dynamic imports, names over the caps) is asked for as
//! before, so the set only has to be useful, never complete.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use runeflow_shared::protocol::{ModuleKind, PrefetchEntry};

use crate::byte_lru::ByteLru;
use crate::compiler::{Compiled, Compiler, Import};
use crate::modules::{ModuleServer, SourceError};

/// Most modules sent with one `run`.
const MAX_MODULES: usize = 512;
/// Most bytes of code (and fallback source) sent with one `run`.
const MAX_BYTES: usize = 8 * 1024 * 1024;
/// The SDK package is the shim's, never the workspace's.
const SDK_PACKAGE: &str = "runeflow";

/// What goes with one `run`: the entries and the blob of their code.
#[derive(Debug, Default)]
pub struct Bundle {
    pub entries: Vec<PrefetchEntry>,
    pub blob: Vec<u8>,
}

/// Compiles on demand and remembers, per (path, content hash), the code
/// object and imports. Content-addressed, so never stale.
pub struct Prefetcher {
    compiler: Compiler,
    virtual_root: String,
    cache: Mutex<ByteLru<(String, String), Arc<Compiled>>>,
}

/// A module found in the snapshot, waiting to be compiled and sent.
struct Pending {
    name: String,
    kind: ModuleKind,
    path: String,
    sha: Option<String>,
    source: Option<Arc<str>>,
}

impl Prefetcher {
    /// A cache of at most `cache_bytes` of compiled code
    /// (RUNEFLOW_CODE_CACHE_MB).
    pub fn new(compiler: Compiler, virtual_root: &str, cache_bytes: usize) -> Self {
        Prefetcher {
            compiler,
            virtual_root: virtual_root.trim_end_matches('/').to_owned(),
            cache: Mutex::new(ByteLru::new(cache_bytes)),
        }
    }

    /// Boots the compiler ahead of the first run (a failure is only logged:
    /// modules then go as source).
    pub async fn warm_up(&self) {
        if let Err(err) = self.compiler.warm_up().await {
            tracing::warn!(%err, "the Python compiler cannot start; modules go as source");
        }
    }

    /// The bundle for a run of `module`: it and everything it imports,
    /// transitively, that the snapshot has. A compiler failure only makes
    /// the bundle smaller (modules then go as source, or are asked for).
    pub async fn bundle(&self, server: &ModuleServer, module: &str) -> Result<Bundle, SourceError> {
        let mut bundle = Bundle::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        for name in with_parents(module) {
            if seen.insert(name.clone()) {
                queue.push_back(name);
            }
        }
        let mut bytes = 0usize;
        while !queue.is_empty() && bundle.entries.len() < MAX_MODULES && bytes < MAX_BYTES {
            // One breadth-first level at a time, compiled in one request.
            let mut level = Vec::new();
            while let Some(name) = queue.pop_front() {
                if let Some(found) = self.find(server, &name).await? {
                    level.push(found);
                }
            }
            let compiled = self.compiled(&level).await;
            for (pending, compiled) in level.into_iter().zip(compiled) {
                if bundle.entries.len() >= MAX_MODULES || bytes >= MAX_BYTES {
                    break;
                }
                for import in &compiled.imports {
                    for candidate in candidates(&pending.name, pending.kind, import) {
                        if seen.insert(candidate.clone()) {
                            queue.push_back(candidate);
                        }
                    }
                }
                bytes += add(&mut bundle, pending, &compiled);
            }
        }
        Ok(bundle)
    }

    /// The snapshot's module `name` with its source, if the workspace has it.
    async fn find(
        &self,
        server: &ModuleServer,
        name: &str,
    ) -> Result<Option<Pending>, SourceError> {
        if name.split('.').next() == Some(SDK_PACKAGE) {
            return Ok(None);
        }
        let Some((resolved, source)) = server.resolve(name).await? else {
            return Ok(None);
        };
        Ok(Some(Pending {
            name: name.to_owned(),
            kind: resolved.kind,
            path: resolved.path,
            sha: resolved.sha256,
            source,
        }))
    }

    /// Compiled form of each module of `level` (namespaces: nothing), from
    /// the cache or one compiler request for the misses.
    async fn compiled(&self, level: &[Pending]) -> Vec<Arc<Compiled>> {
        let mut out: Vec<Option<Arc<Compiled>>> = Vec::with_capacity(level.len());
        let mut misses = Vec::new();
        for (i, pending) in level.iter().enumerate() {
            let hit = match (&pending.sha, &pending.source) {
                (Some(sha), Some(source)) => {
                    let key = (pending.path.clone(), sha.clone());
                    let hit = self.cache.lock().ok().and_then(|mut c| c.get(&key));
                    if hit.is_none() {
                        misses.push((i, key, self.filename(&pending.path), source.clone()));
                    }
                    hit
                }
                _ => Some(Arc::new(Compiled::default())),
            };
            out.push(hit);
        }
        if !misses.is_empty() {
            let items = misses
                .iter()
                .map(|(_, _, filename, source)| (filename.clone(), source.clone()))
                .collect();
            match self.compiler.compile(items).await {
                Ok(results) => {
                    for ((i, key, _, _), compiled) in misses.into_iter().zip(results) {
                        let compiled = Arc::new(compiled);
                        if let Ok(mut cache) = self.cache.lock() {
                            let weight = key.0.len() + key.1.len() + compiled.weight();
                            cache.put(key, compiled.clone(), weight);
                        }
                        out[i] = Some(compiled);
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "compiler unavailable; modules go as source");
                }
            }
        }
        out.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// The virtual absolute file name the child's loader uses for `path`.
    fn filename(&self, path: &str) -> String {
        format!("{}/{path}", self.virtual_root)
    }
}

/// Adds one module to the bundle; returns the bytes it added.
fn add(bundle: &mut Bundle, pending: Pending, compiled: &Compiled) -> usize {
    let mut entry = PrefetchEntry {
        name: pending.name,
        kind: pending.kind,
        path: pending.path,
        code_len: None,
        source: None,
    };
    let added = match (&compiled.code, pending.kind) {
        (_, ModuleKind::Namespace) => 0,
        (Some(code), _) => {
            bundle.blob.extend_from_slice(code);
            entry.code_len = Some(code.len());
            code.len()
        }
        (None, _) => {
            let source = pending.source.map(|s| s.to_string()).unwrap_or_default();
            let len = source.len();
            entry.source = Some(source);
            len
        }
    };
    bundle.entries.push(entry);
    added
}

/// `a.b.c` → `a`, `a.b`, `a.b.c` (importing a submodule imports its parents).
fn with_parents(name: &str) -> Vec<String> {
    name.match_indices('.')
        .map(|(i, _)| name[..i].to_owned())
        .chain(std::iter::once(name.to_owned()))
        .collect()
}

/// Module names that `import` in module `module` may load: the imported
/// module with its parents, and each `fromlist` name as a submodule (it
/// may be one). Relative imports resolve against the module's package.
fn candidates(module: &str, kind: ModuleKind, import: &Import) -> Vec<String> {
    let full = if import.level == 0 {
        import.name.clone()
    } else {
        let mut package: Vec<&str> = module.split('.').collect();
        if kind == ModuleKind::Module {
            package.pop();
        }
        for _ in 1..import.level {
            if package.pop().is_none() {
                return Vec::new();
            }
        }
        if package.is_empty() {
            return Vec::new(); // beyond the top-level package: an ImportError at run time
        }
        let base = package.join(".");
        if import.name.is_empty() {
            base
        } else {
            format!("{base}.{}", import.name)
        }
    };
    if full.is_empty() {
        return Vec::new();
    }
    let mut out = with_parents(&full);
    out.extend(
        import
            .fromlist
            .iter()
            .filter(|name| name.as_str() != "*")
            .map(|name| format!("{full}.{name}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(name: &str, fromlist: &[&str], level: u32) -> Import {
        Import {
            name: name.to_owned(),
            fromlist: fromlist.iter().map(|s| (*s).to_owned()).collect(),
            level,
        }
    }

    #[test]
    fn absolute_imports_bring_their_parents_and_fromlist() {
        assert_eq!(
            candidates(
                "flows.main",
                ModuleKind::Module,
                &import("a.b", &["c", "*"], 0)
            ),
            ["a", "a.b", "a.b.c"]
        );
    }

    #[test]
    fn relative_imports_resolve_against_the_package() {
        let from_dot = import("", &["m0"], 1);
        assert_eq!(
            candidates("pkg", ModuleKind::Package, &from_dot),
            ["pkg", "pkg.m0"]
        );
        assert_eq!(
            candidates("pkg.sub.mod", ModuleKind::Module, &import("x", &["X"], 2)),
            ["pkg", "pkg.x", "pkg.x.X"]
        );
        assert!(candidates("top", ModuleKind::Module, &from_dot).is_empty());
        assert!(candidates("pkg.mod", ModuleKind::Module, &import("", &["y"], 3)).is_empty());
    }

    #[test]
    fn parents_come_first() {
        assert_eq!(with_parents("a.b.c"), ["a", "a.b", "a.b.c"]);
        assert_eq!(with_parents("a"), ["a"]);
    }
}
