//! SigV4 signing of raw HTTP requests to the test S3 server, for the tools
//! that speak HTTP to it directly instead of through an S3 client: the
//! fault proxy (which signs a request again after removing a header) and
//! the latency check on one keep-alive connection.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use hyper::header::{HeaderName, HeaderValue};

use crate::servers::S3Credentials;

/// Signs `parts` for S3 as S3 clients do, replacing any signature it
/// carries. The region is the one of an existing signature, else
/// `us-east-1`; the payload hash is the request's `x-amz-content-sha256`
/// (so streaming and unsigned payloads stay as they were), else
/// `UNSIGNED-PAYLOAD`.
pub fn sign_request(
    parts: &mut hyper::http::request::Parts,
    credentials: &S3Credentials,
) -> Result<(), String> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let region = header("authorization")
        .and_then(|a| {
            let scope = a.split("Credential=").nth(1)?;
            scope.split('/').nth(2).map(str::to_owned)
        })
        .unwrap_or_else(|| "us-east-1".to_owned());
    let payload = header("x-amz-content-sha256").unwrap_or_else(|| "UNSIGNED-PAYLOAD".to_owned());
    let host = header("host")
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .ok_or("the request names no host")?;
    for name in ["authorization", "x-amz-date", "x-amz-content-sha256"] {
        parts.headers.remove(name);
    }
    if !parts.headers.contains_key("host") {
        let value = HeaderValue::from_str(&host).map_err(|e| e.to_string())?;
        parts.headers.insert("host", value);
    }
    let url = format!(
        "http://{host}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = Credentials::new(
        &credentials.access_key,
        &credentials.secret_key,
        None,
        None,
        "kingpin-tests",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    for (name, value) in instructions.headers() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        parts.headers.insert(name, value);
    }
    Ok(())
}
