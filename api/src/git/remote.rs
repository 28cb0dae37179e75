//! Which git remotes a request may name. Checked before any lock or network
//! access, so a bad remote is a 400 naming the problem, never a 502 from
//! libgit2. Remotes are `https://` URLs; `http://`, `file://` and absolute
//! local paths only with the development setting
//! (`RUNEFLOW_GIT_ALLOW_INSECURE`). Credentials never ride in the URL: the
//! API's own are sent, and only to the https remote's host
//! ([`Remote::may_send_credentials`]).

use url::Url;

/// Longest remote accepted, in bytes.
pub const MAX_REMOTE_BYTES: usize = 2048;

/// A remote that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// What libgit2 is given: the parsed URL re-serialised (so libgit2 and
    /// the credential check read the same host), or the local path.
    url: String,
    /// Host and port of an https remote: the only place credentials go.
    https_origin: Option<(String, u16)>,
}

/// Why a remote was refused (the message is the 400's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("remote must not be empty")]
    Empty,
    #[error("remote is {0} bytes, the limit is {MAX_REMOTE_BYTES}")]
    TooLong(usize),
    #[error("remote must not contain control characters")]
    ControlCharacter,
    #[error("remote URL must not contain whitespace or backslashes")]
    BadCharacter,
    #[error(
        "'{0}' is not a URL: expected https://host/owner/repo.git{hint}",
        hint = if *.1 { " or an absolute local path" } else { "" }
    )]
    NotAUrl(String, bool),
    #[error(
        "ssh remotes ('{0}') are not supported (the API's git is built without SSH): use an https:// URL"
    )]
    Ssh(String),
    #[error("unsupported remote scheme '{0}': use an https:// URL")]
    UnsupportedScheme(String),
    #[error(
        "{0} remotes are refused: use an https:// URL (RUNEFLOW_GIT_ALLOW_INSECURE=true allows http://, file:// and local paths, for development only)"
    )]
    Insecure(&'static str),
    #[error(
        "credentials must not be part of the remote URL: the API authenticates with its own RUNEFLOW_GIT_USERNAME and RUNEFLOW_GIT_TOKEN"
    )]
    Credentials,
    #[error("remote URL '{0}' has no host")]
    NoHost(String),
    #[error("a file:// remote must name a path on the API's host, not the host '{0}'")]
    RemoteFileHost(String),
    #[error("remote URL must not have a #fragment")]
    Fragment,
}

impl Remote {
    /// Checks `raw` against the rules; `allow_insecure` is the development
    /// setting.
    pub fn parse(raw: &str, allow_insecure: bool) -> Result<Remote, RemoteError> {
        if raw.is_empty() {
            return Err(RemoteError::Empty);
        }
        if raw.len() > MAX_REMOTE_BYTES {
            return Err(RemoteError::TooLong(raw.len()));
        }
        if raw.chars().any(char::is_control) {
            return Err(RemoteError::ControlCharacter);
        }
        if !raw.contains("://") {
            return Self::parse_non_url(raw, allow_insecure);
        }
        if raw.chars().any(|c| c.is_whitespace() || c == '\\') {
            return Err(RemoteError::BadCharacter);
        }
        let url =
            Url::parse(raw).map_err(|_| RemoteError::NotAUrl(raw.to_owned(), allow_insecure))?;
        if matches!(url.scheme(), "ssh" | "git+ssh" | "ssh+git") {
            return Err(RemoteError::Ssh(raw.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RemoteError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(RemoteError::Fragment);
        }
        match url.scheme() {
            "https" => {
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| RemoteError::NoHost(raw.to_owned()))?
                    .to_ascii_lowercase();
                let port = url.port_or_known_default().unwrap_or(443);
                Ok(Remote {
                    url: url.to_string(),
                    https_origin: Some((host, port)),
                })
            }
            "http" if !allow_insecure => Err(RemoteError::Insecure("http://")),
            "http" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(RemoteError::NoHost(raw.to_owned()));
                }
                Ok(Remote {
                    url: url.to_string(),
                    https_origin: None,
                })
            }
            "file" if !allow_insecure => Err(RemoteError::Insecure("file://")),
            "file" => match url.host_str() {
                None | Some("") | Some("localhost") => Ok(Remote {
                    url: format!("file://{}", url.path()),
                    https_origin: None,
                }),
                Some(host) => Err(RemoteError::RemoteFileHost(host.to_owned())),
            },
            other => Err(RemoteError::UnsupportedScheme(other.to_owned())),
        }
    }

    /// A remote without `://`: an scp-like ssh address, a local path, or
    /// not a URL at all.
    fn parse_non_url(raw: &str, allow_insecure: bool) -> Result<Remote, RemoteError> {
        if raw.starts_with('/') {
            if !allow_insecure {
                return Err(RemoteError::Insecure("local path"));
            }
            return Ok(Remote {
                url: raw.to_owned(),
                https_origin: None,
            });
        }
        // `user@host:path` or `host:path`: git's scp-like ssh syntax.
        if let Some((host, _)) = raw.split_once(':')
            && !host.is_empty()
            && !host.contains(['/', ' '])
        {
            return Err(RemoteError::Ssh(raw.to_owned()));
        }
        Err(RemoteError::NotAUrl(raw.to_owned(), allow_insecure))
    }

    /// What to hand to libgit2.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when the API's credentials may be sent to `url` (the address
    /// libgit2 is talking to when the server asks for them): only an https
    /// URL on the remote's own host and port. A plain-http, local, or
    /// redirected-elsewhere request never gets them.
    pub fn may_send_credentials(&self, url: &str) -> bool {
        let Some((host, port)) = &self.https_origin else {
            return false;
        };
        let Ok(asked) = Url::parse(url) else {
            return false;
        };
        asked.scheme() == "https"
            && asked.username().is_empty()
            && asked.password().is_none()
            && asked
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
            && asked.port_or_known_default() == Some(*port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str, insecure: bool) -> String {
        Remote::parse(raw, insecure).unwrap_err().to_string()
    }

    #[test]
    fn https_is_the_default() {
        let r = Remote::parse("https://git.example.com/team/flows.git", false).unwrap();
        assert_eq!(r.url(), "https://git.example.com/team/flows.git");
        assert!(
            refused("http://git.example.com/x.git", false).contains("http:// remotes are refused")
        );
        assert!(refused("file:///srv/x.git", false).contains("file:// remotes are refused"));
        assert!(refused("/srv/x.git", false).contains("local path remotes are refused"));
    }

    #[test]
    fn development_setting_allows_http_file_and_paths() {
        assert!(Remote::parse("http://127.0.0.1:9/x.git", true).is_ok());
        assert_eq!(
            Remote::parse("file:///srv/x.git", true).unwrap().url(),
            "file:///srv/x.git"
        );
        assert_eq!(
            Remote::parse("/srv/x.git", true).unwrap().url(),
            "/srv/x.git"
        );
        assert!(refused("file://other/srv/x.git", true).contains("not the host 'other'"));
    }

    #[test]
    fn bad_remotes_name_the_problem() {
        assert!(refused("not a url", false).contains("'not a url' is not a URL"));
        assert!(refused("https://h/a b", false).contains("whitespace"));
        assert!(refused("/srv/x\n.git", true).contains("control characters"));
        assert!(refused("not-a-url", false).contains("'not-a-url' is not a URL"));
        assert!(refused("relative/path.git", true).contains("or an absolute local path"));
        assert!(refused("", false).contains("empty"));
        assert!(refused("git@github.com:team/flows.git", false).contains("ssh remotes"));
        assert!(refused("ssh://git@host/x.git", false).contains("ssh remotes"));
        assert!(refused("ftp://host/x.git", false).contains("unsupported remote scheme 'ftp'"));
        assert!(refused("https://user:tok@host/x.git", false).contains("credentials must not"));
        assert!(refused("https://user@host/x.git", false).contains("credentials must not"));
        assert!(refused("https://host/x.git#frag", false).contains("fragment"));
        assert!(refused("https://h/x\\y", false).contains("backslashes"));
        assert!(refused(&format!("https://h/{}", "a".repeat(3000)), false).contains("limit"));
    }

    #[test]
    fn credentials_go_only_to_the_https_host() {
        let r = Remote::parse("https://Git.Example.com/team/flows.git", false).unwrap();
        assert!(r.may_send_credentials("https://git.example.com/team/flows.git/info/refs"));
        assert!(r.may_send_credentials("https://git.example.com:443/other/path"));
        assert!(!r.may_send_credentials("https://evil.example.net/team/flows.git"));
        assert!(!r.may_send_credentials("http://git.example.com/team/flows.git"));
        assert!(!r.may_send_credentials("https://git.example.com:8443/team/flows.git"));
        assert!(!r.may_send_credentials("not a url"));
        let plain = Remote::parse("http://git.example.com/x.git", true).unwrap();
        assert!(!plain.may_send_credentials("http://git.example.com/x.git"));
        let local = Remote::parse("/srv/x.git", true).unwrap();
        assert!(!local.may_send_credentials("/srv/x.git"));
    }
}
