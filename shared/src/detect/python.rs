// TEMPORARY placeholder so the crate compiles while helper-1 writes the real file.
use super::{Analysis, EntityType};
pub fn analyze_python(_source: &str) -> Analysis {
    Analysis { entity_type: EntityType::Module, workflows: Vec::new(), diagnostics: Vec::new() }
}
