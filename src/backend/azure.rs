//! `azure:` — Azure Blob Storage through OpenDAL's azblob service. A blob PUT is atomic
//! ([`Publish::Put`]).
//!
//! Credentials as restic reads them: `AZURE_ACCOUNT_NAME` with `AZURE_ACCOUNT_KEY` or
//! `AZURE_ACCOUNT_SAS`; the endpoint is `https://ACCOUNT.blob.ENDPOINT_SUFFIX`
//! (`AZURE_ENDPOINT_SUFFIX`, default `core.windows.net`), or `AZURE_ENDPOINT` whole (the
//! Azurite emulator: `http://127.0.0.1:10000/devstoreaccount1`).

use super::remote::{Publish, Service};
use crate::error::{Error, Result};

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
    match (env("AZURE_ACCOUNT_KEY"), env("AZURE_ACCOUNT_SAS")) {
        (Some(key), _) => builder = builder.account_key(&key),
        (None, Some(sas)) => builder = builder.sas_token(sas.trim_start_matches('?')),
        (None, None) => {
            return Err(Error::InvalidArgument(format!(
                "{location}: set AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS for the account {account}"
            )))
        }
    }
    let op = opendal::Operator::new(builder).map_err(|e| super::remote::io_err(&location, e))?.finish();
    Ok(Service { op, location, publish: Publish::Put, guard: None })
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
