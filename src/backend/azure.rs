//! `azure:` — Azure Blob Storage through OpenDAL's azblob service. A blob PUT is atomic
//! ([`Publish::Put`]).
//!
//! Credentials as restic reads them: `AZURE_ACCOUNT_NAME` with `AZURE_ACCOUNT_KEY` or
//! `AZURE_ACCOUNT_SAS`; the endpoint is `https://ACCOUNT.blob.ENDPOINT_SUFFIX`
//! (`AZURE_ENDPOINT_SUFFIX`, default `core.windows.net`), or `AZURE_ENDPOINT` whole (the
//! Azurite emulator: `http://127.0.0.1:10000/devstoreaccount1`).

use super::remote::signed::{self, MakeRoot};
use super::remote::{Publish, Service};
use crate::error::{Error, Result};
use bytes::Bytes;

/// A parsed `azure:` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureLocation {
    /// The container.
    pub container: String,
    /// The prefix inside it, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl AzureLocation {
    /// Parse `azure:container/prefix` or restic's `azure:container:/prefix`.
    pub fn parse(s: &str) -> Result<AzureLocation> {
        let rest = s.strip_prefix("azure:").unwrap_or(s);
        let (container, prefix) = match rest.split_once(':') {
            Some((c, p)) => (c, p),
            None => rest.split_once('/').unwrap_or((rest, "")),
        };
        // Azure's rule for container names: 3 to 63 of lowercase letters, digits and `-`.
        let valid = (3..=63).contains(&container.len())
            && container.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "{s}: not an Azure location (a container name is 3 to 63 lowercase letters, digits \
                 and `-`); use azure:container/prefix"
            )));
        }
        Ok(AzureLocation { container: container.into(), prefix: prefix.trim_matches('/').into() })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The service for `loc`, with the credentials of the environment.
pub fn service(loc: &AzureLocation) -> Result<Service> {
    let location = format!("azure:{}/{}", loc.container, loc.prefix).trim_end_matches('/').to_string();
    let account = env("AZURE_ACCOUNT_NAME").ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{location}: set AZURE_ACCOUNT_NAME, and AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS, to reach Azure"
        ))
    })?;
    let endpoint = env("AZURE_ENDPOINT").unwrap_or_else(|| {
        let suffix = env("AZURE_ENDPOINT_SUFFIX").unwrap_or_else(|| "core.windows.net".into());
        format!("https://{account}.blob.{suffix}")
    });
    let mut builder = opendal::services::Azblob::default()
        .endpoint(&endpoint)
        .container(&loc.container)
        .root(&format!("/{}", loc.prefix))
        .account_name(&account);
    let secret = match (env("AZURE_ACCOUNT_KEY"), env("AZURE_ACCOUNT_SAS")) {
        (Some(key), _) => {
            builder = builder.account_key(&key);
            Secret::Key(key)
        }
        (None, Some(sas)) => {
            let sas = sas.trim_start_matches('?').to_string();
            builder = builder.sas_token(&sas);
            Secret::Sas(sas)
        }
        (None, None) => {
            return Err(Error::InvalidArgument(format!(
                "{location}: set AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS for the account {account}"
            )))
        }
    };
    let op = opendal::Operator::new(builder).map_err(|e| super::remote::io_err(&location, e))?.finish();
    let url = format!("{}/{}?restype=container", endpoint.trim_end_matches('/'), loc.container);
    let make_root = make_container(Target { url, account, secret, location: location.clone() });
    Ok(Service {
        op,
        location,
        publish: Publish::Put,
        guard: None,
        make_root: Some(make_root),
        range_reader: None,
        object_lock: None,
    })
}

/// How requests to the account are signed.
#[derive(Clone)]
enum Secret {
    Key(String),
    Sas(String),
}

/// The container, and what it takes to ask about it.
#[derive(Clone)]
struct Target {
    url: String,
    account: String,
    secret: Secret,
    location: String,
}

/// `init` on a container that does not exist creates it, as restic does; one that exists, or
/// that the credentials may not ask about (a SAS scoped to blobs), is left to the requests that
/// follow.
fn make_container(target: Target) -> MakeRoot {
    Box::new(move || {
        let target = target.clone();
        Box::pin(async move { ensure_container(&target).await })
    })
}

async fn ensure_container(t: &Target) -> Result<()> {
    let credential = match &t.secret {
        Secret::Key(key) => reqsign_azure_storage::StaticCredentialProvider::new_shared_key(&t.account, key),
        Secret::Sas(sas) => reqsign_azure_storage::StaticCredentialProvider::new_sas_token(sas),
    };
    let signer = reqsign_core::Signer::new(
        signed::context(&t.location)?,
        credential,
        reqsign_azure_storage::RequestSigner::new(),
    );
    let version = [("x-ms-version", "2022-11-02"), ("content-length", "0")];
    let props = signed::send(&signer, &t.location, http::Method::HEAD, &t.url, &version[..1], Bytes::new()).await?;
    if props.status != 404 {
        return Ok(());
    }
    let made = signed::send(&signer, &t.location, http::Method::PUT, &t.url, &version, Bytes::new()).await?;
    match made.status {
        200..=299 | 409 => Ok(()),
        status => Err(Error::Io {
            path: t.location.clone().into(),
            source: std::io::Error::other(format!(
                "the container does not exist and creating it failed (HTTP {status} {}): create it \
                 with the storage's own tools, or use credentials that may",
                signed::error_code(&made.body)
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_in_both_forms_and_bad_containers_are_usage_errors() {
        for s in ["azure:bkp-1/team/repo/", "azure:bkp-1:/team/repo"] {
            let l = AzureLocation::parse(s).unwrap();
            assert_eq!((l.container.as_str(), l.prefix.as_str()), ("bkp-1", "team/repo"), "{s}");
        }
        assert_eq!(AzureLocation::parse("azure:bkp").unwrap().prefix, "");
        for bad in ["azure:", "azure:ab", "azure:Upper/x", "azure:a_b/x"] {
            assert!(matches!(AzureLocation::parse(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }
}
