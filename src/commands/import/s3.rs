//! `s3://bucket/prefix` as an import source, through `object_store`. The
//! client comes from the standard AWS environment (`AmazonS3Builder::from_env`:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...); with
//! `--s3-endpoint` it talks path-style to that endpoint, plain HTTP allowed
//! (MinIO, moto). Sizes come from the listing, so an object over the limit is
//! refused without a GET; a GET still stops reading past the limit.
//!
//! Skipped: keys under a `__pycache__` or `.git` folder and `.pyc` keys, as
//! for folders, and zero-byte folder markers (`dir/`, which `object_store`
//! lists as `dir`) when other listed keys sit under them.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, RetryConfig};

use super::source::{Content, Entry, Location, skipped_path};

const SCHEME: &str = "s3://";

/// True when SOURCE names an S3 location.
pub fn is_s3_url(source: &str) -> bool {
    source.starts_with(SCHEME)
}

/// A bucket and the key prefix under which the workspace lies.
pub struct Bucket {
    store: AmazonS3,
    /// `None` for the whole bucket.
    prefix: Option<ObjectPath>,
    /// `s3://bucket/prefix` as given, for messages.
    url: String,
}

impl Bucket {
    /// Builds the client (no request is made yet).
    pub fn open(url: &str, endpoint: Option<&str>) -> anyhow::Result<Bucket> {
        let (bucket, prefix) = split_url(url)?;
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(
                ObjectPath::parse(prefix)
                    .with_context(|| format!("'{url}': the key prefix is not usable"))?,
            )
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // A one-shot command should say "unreachable" within seconds,
            // not after object_store's default 3 minutes of retries.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .with_context(|| format!("cannot configure the S3 client for '{url}'"))?;
        Ok(Bucket {
            store,
            prefix,
            url: url.to_owned(),
        })
    }

    /// Lists every object under the prefix, skipped ones left out.
    pub async fn list(&self) -> anyhow::Result<Vec<Entry>> {
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(self.prefix.as_ref())
            .try_collect()
            .await
            .with_context(|| format!("listing '{}' failed", self.url))?;
        let strip = self.prefix.as_ref().map(|p| format!("{}/", p.as_ref()));
        let mut listed: Vec<(Vec<u8>, object_store::ObjectMeta)> = Vec::new();
        for meta in objects {
            let key: &str = meta.location.as_ref();
            let relative = match &strip {
                Some(strip) => match key.strip_prefix(strip.as_str()) {
                    Some(relative) => relative.to_owned(),
                    None => continue,
                },
                None => key.to_owned(),
            };
            if relative.is_empty() || skipped_path(relative.as_bytes()) {
                continue;
            }
            listed.push((relative.into_bytes(), meta));
        }
        let folders = folder_names(listed.iter().map(|(relative, _)| relative.as_slice()));
        Ok(listed
            .into_iter()
            .filter(|(relative, meta)| !(meta.size == 0 && folders.contains(relative.as_slice())))
            .map(|(relative, meta)| Entry {
                relative,
                size: meta.size,
                location: Location::Object(meta.location),
            })
            .collect())
    }

    /// GETs one object, reading at most `limit + 1` bytes of it.
    pub async fn read(&self, key: &ObjectPath, limit: usize) -> anyhow::Result<Content> {
        let result = match self.store.get(key).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Content::Unreadable(
                    "the object was deleted after the listing".to_owned(),
                ));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading '{key}' from '{}'", self.url));
            }
        };
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        if result.meta.size > limit_u64 {
            return Ok(Content::TooLarge {
                size: result.meta.size,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(result.meta.size).unwrap_or(0));
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading '{key}' from '{}'", self.url))?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() > limit {
                return Ok(Content::TooLarge {
                    size: bytes.len() as u64,
                });
            }
        }
        Ok(Content::Bytes(bytes))
    }
}

/// `s3://bucket/some/prefix/` → (`bucket`, `some/prefix`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url.strip_prefix(SCHEME).unwrap_or(url);
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("'{url}' names no bucket (expected s3://bucket/prefix)");
    }
    Ok((bucket, prefix.trim_matches('/')))
}

/// Every proper folder of the given `/`-separated paths (`a/b/c` → `a`, `a/b`).
fn folder_names<'a>(paths: impl Iterator<Item = &'a [u8]>) -> HashSet<Vec<u8>> {
    let mut folders = HashSet::new();
    for path in paths {
        for (i, byte) in path.iter().enumerate() {
            if *byte == b'/' {
                folders.insert(path[..i].to_vec());
            }
        }
    }
    folders
}

#[cfg(test)]
mod tests {
    use super::{folder_names, split_url};

    #[test]
    fn splits_urls() {
        assert_eq!(split_url("s3://b").unwrap(), ("b", ""));
        assert_eq!(split_url("s3://b/").unwrap(), ("b", ""));
        assert_eq!(split_url("s3://b/x/y/").unwrap(), ("b", "x/y"));
        assert!(split_url("s3:///x").is_err());
    }

    #[test]
    fn folders_of_paths() {
        let paths: [&[u8]; 2] = [b"a/b/c.py", b"d.py"];
        let folders = folder_names(paths.into_iter());
        assert!(folders.contains(&b"a"[..]) && folders.contains(&b"a/b"[..]));
        assert_eq!(folders.len(), 2);
    }
}
