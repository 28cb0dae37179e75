//! `--prefix` of `import`, `push` and `pull`: a workspace folder, checked
//! with the workspace's own path rules.

use anyhow::Context;
use runeflow_shared::path::WorkspacePath;

/// `--prefix` as a workspace folder: empty for the root, else validated
/// and ending in exactly one `/` (`team` and `team/` both mean `team/`).
pub fn workspace_folder(prefix: &str) -> anyhow::Result<String> {
    if prefix.is_empty() {
        return Ok(String::new());
    }
    let folder = prefix.trim_end_matches('/');
    WorkspacePath::parse(folder)
        .with_context(|| format!("--prefix '{prefix}' is not a valid workspace folder"))?;
    Ok(format!("{folder}/"))
}

#[cfg(test)]
mod tests {
    use super::workspace_folder;

    #[test]
    fn prefixes() {
        assert_eq!(workspace_folder("").unwrap(), "");
        assert_eq!(workspace_folder("team").unwrap(), "team/");
        assert_eq!(workspace_folder("team/a//").unwrap(), "team/a/");
        assert!(workspace_folder("/").is_err());
        assert!(workspace_folder("../x").is_err());
    }
}
