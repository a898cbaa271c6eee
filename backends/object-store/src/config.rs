//! Store URLs: `file:///dir`, `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `az://container/prefix`, with `?key=value`
//! options passed to object_store's builders (e.g. `endpoint`, `region`,
//! `allow_http`). Credentials come from the environment (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`), never from the URL.

use std::fmt;

use kingpin_api::{Error, Result};
use url::Url;

/// A parsed store URL. `Display` shows it without options, which may hold
/// secrets.
#[derive(Clone)]
pub struct ObjectStoreUrl {
    pub(crate) url: Url,
    pub(crate) options: Vec<(String, String)>,
}

impl ObjectStoreUrl {
    /// Parses a store URL and splits off its options.
    pub fn parse(text: &str) -> Result<Self> {
        let mut url = Url::parse(text)
            .map_err(|e| Error::invalid(format!("blob store URL is invalid: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(
                "credentials are not accepted in blob store URLs, because URLs end up in logs; use the AWS_*, GOOGLE_* or AZURE_* environment",
            ));
        }
        match url.scheme() {
            "file" | "memory" | "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" => {}
            other => {
                return Err(Error::invalid(format!(
                    "unknown blob store scheme {other:?}; expected file, memory, s3, gs or az"
                )))
            }
        }
        let options: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (key, _) in &options {
            if [
                "secret_access_key",
                "aws_secret_access_key",
                "access_key_id",
                "aws_access_key_id",
                "session_token",
            ]
            .contains(&key.as_str())
            {
                return Err(Error::invalid(format!(
                    "option {key:?} would put a credential in a URL; use the environment instead"
                )));
            }
        }
        url.set_query(None);
        Ok(ObjectStoreUrl { url, options })
    }

    /// The scheme.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }
}

impl fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}

impl fmt::Debug for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ObjectStoreUrl")
            .field("url", &self.url.as_str())
            .field("options", &keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_options_and_refuses_credentials() {
        let url =
            ObjectStoreUrl::parse("s3://bucket/pre?endpoint=http://127.0.0.1:9000&allow_http=true")
                .unwrap();
        assert_eq!(url.to_string(), "s3://bucket/pre");
        assert_eq!(url.options.len(), 2);
        for bad in [
            "s3://key:secret@bucket/x",
            "s3://b/x?aws_secret_access_key=s",
            "ftp://h/x",
            "not a url",
        ] {
            let err = ObjectStoreUrl::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("secret@"), "{err}");
        }
    }
}
