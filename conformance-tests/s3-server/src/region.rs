//! Refuses requests signed for another region, the way AWS does.

use s3s::access::{S3Access, S3AccessContext};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Access check that requires SigV4 credentials scoped to one region.
pub struct RequireRegion {
    region: String,
}

impl RequireRegion {
    pub fn new(region: String) -> Self {
        RequireRegion { region }
    }
}

/// The region of a SigV4 `Authorization` header's credential scope
/// (`Credential=<id>/<date>/<region>/s3/aws4_request`).
fn signed_region(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(2)
}

#[async_trait::async_trait]
impl S3Access for RequireRegion {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Signature is required",
            ));
        }
        let signed = cx
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(signed_region);
        match signed {
            Some(region) if region != self.region => {
                // AWS's wording, which clients (ours included) parse.
                let mut error = S3Error::with_message(
                    S3ErrorCode::AuthorizationHeaderMalformed,
                    format!(
                        "The authorization header is malformed; the region '{region}' is wrong; expecting '{}'",
                        self.region
                    ),
                );
                let mut headers = http::HeaderMap::new();
                if let Ok(value) = self.region.parse() {
                    headers.insert("x-amz-bucket-region", value);
                }
                error.set_headers(headers);
                Err(error)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::signed_region;

    #[test]
    fn reads_the_region_of_the_credential_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=id/20261130/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(signed_region(header), Some("eu-west-1"));
        assert_eq!(signed_region("Basic xyz"), None);
    }
}
