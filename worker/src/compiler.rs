//! The trusted compiler: a Python process of the worker's own that turns
//! workspace sources into marshalled code objects (PROTOCOL.md, "Compiler").
//!
//! Children get code objects instead of source so an import costs a
//! `marshal.loads` (microseconds) instead of a `compile()` (hundreds of
//! them). The code must never come from a user's process, which could
//! poison the cache for every later execution; this process runs no
//! workspace code at all, it only compiles it.

use std::sync::Arc;
use std::time::Duration;

use runeflow_shared::protocol::{
    CompileItem, CompileReply, CompileRequest, CompiledItem, read_frame, read_message,
    write_message,
};
use tokio::sync::Mutex;

use crate::zygote::{Interpreter, ZygoteConfig, ZygoteError, boot};

/// How long one compile request may take (big batches of big files).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply accepted from the compiler (header and blob).
const REPLY_LIMIT: usize = 256 * 1024 * 1024;

/// One compiled module: its code object (None when it does not compile:
/// the child then compiles the source itself and raises the real error)
/// and the imports its bytecode makes.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    pub code: Option<Arc<[u8]>>,
    pub imports: Vec<Import>,
}

impl Compiled {
    /// Bytes it holds: the marshalled code and the import names.
    pub fn weight(&self) -> usize {
        let imports: usize = self
            .imports
            .iter()
            .map(|i| 48 + i.name.len() + i.fromlist.iter().map(|f| 24 + f.len()).sum::<usize>())
            .sum();
        self.code.as_ref().map_or(0, |c| c.len()) + imports
    }
}

/// One `IMPORT_NAME`: `from <level dots><name> import <fromlist>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    pub fromlist: Vec<String>,
    pub level: u32,
}

/// The worker's compiler process, started on first use and replaced when
/// it dies.
pub struct Compiler {
    config: ZygoteConfig,
    current: Mutex<Option<Interpreter>>,
}

impl Compiler {
    pub fn new(config: ZygoteConfig) -> Self {
        Compiler {
            config,
            current: Mutex::new(None),
        }
    }

    /// Boots the compiler now, so the first execution does not wait for it.
    pub async fn warm_up(&self) -> Result<(), ZygoteError> {
        self.running(&mut *self.current.lock().await)
            .await
            .map(|_| ())
    }

    /// The live compiler process in `current`, booting one when there is
    /// none or it died.
    async fn running<'c>(
        &self,
        current: &'c mut Option<Interpreter>,
    ) -> Result<&'c mut Interpreter, ZygoteError> {
        if !current.as_mut().is_some_and(Interpreter::is_alive) {
            *current = Some(boot(&self.config, Some("compiler")).await?);
        }
        current.as_mut().ok_or(ZygoteError::Gone)
    }

    /// Compiles `(virtual file name, source)` pairs, in order.
    pub async fn compile(
        &self,
        items: Vec<(String, Arc<str>)>,
    ) -> Result<Vec<Compiled>, ZygoteError> {
        let mut current = self.current.lock().await;
        let process = self.running(&mut current).await?;
        let expected = items.len();
        let request = CompileRequest {
            op: "compile".to_owned(),
            items: items
                .into_iter()
                .map(|(filename, source)| CompileItem {
                    filename,
                    source: source.to_string(),
                })
                .collect(),
        };
        let exchange = async {
            write_message(&mut process.control, &request).await?;
            let reply: Option<CompileReply> =
                read_message(&mut process.control, REPLY_LIMIT).await?;
            let blob = read_frame(&mut process.control, REPLY_LIMIT).await?;
            Ok::<_, ZygoteError>((reply, blob))
        };
        let result = match tokio::time::timeout(COMPILE_TIMEOUT, exchange).await {
            Ok(Ok((Some(reply), Some(blob)))) => split(reply, &blob, expected),
            Ok(Ok(_)) => Err(ZygoteError::Gone),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(ZygoteError::Timeout),
        };
        if result.is_err() {
            // Out of step or dead: the next request starts a fresh one.
            *current = None;
        }
        result
    }
}

/// Cuts the blob into the items' code objects.
fn split(reply: CompileReply, blob: &[u8], expected: usize) -> Result<Vec<Compiled>, ZygoteError> {
    if reply.op != "compiled" || reply.items.len() != expected {
        return Err(ZygoteError::Refused(format!(
            "compiler answered `{}` with {} of {expected} items",
            reply.op,
            reply.items.len()
        )));
    }
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(expected);
    for item in reply.items {
        out.push(match item {
            CompiledItem::Code { size, imports } => {
                let end = offset.checked_add(size).filter(|&end| end <= blob.len());
                let Some(end) = end else {
                    return Err(ZygoteError::Refused(
                        "compiler blob shorter than its items".to_owned(),
                    ));
                };
                let code = Arc::from(&blob[offset..end]);
                offset = end;
                Compiled {
                    code: Some(code),
                    imports: imports
                        .into_iter()
                        .map(|(name, fromlist, level)| Import {
                            name,
                            fromlist,
                            level,
                        })
                        .collect(),
                }
            }
            CompiledItem::Failed { .. } => Compiled::default(),
        });
    }
    if offset != blob.len() {
        return Err(ZygoteError::Refused(
            "compiler blob longer than its items".to_owned(),
        ));
    }
    Ok(out)
}
