//! AWS SDK errors turned into [`BackendError`]s a person can act on.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use easydeploy_core::ports::BackendError;
use std::error::Error;

/// Error codes AWS uses when a caller is throttled.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
];

/// Error codes AWS uses when the caller lacks a permission or credentials.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
    "ClientException",
];

/// Turns an AWS SDK error met while trying to `what` ("create the ECS
/// service shop") into a [`BackendError`]: throttling, timeouts and AWS-side
/// failures are retryable (`aws_throttled`, `aws_unavailable`); missing
/// permissions are not (`aws_access_denied`), nor is anything else (`aws_error`).
pub fn aws_error<E, R>(what: &str, err: SdkError<E, R>) -> BackendError
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => BackendError::transient(format!(
            "cannot {what}: AWS did not answer ({})",
            source_chain(&err)
        ))
        .with_code("aws_unavailable"),
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or("no details given").trim_end_matches('.');
            classify(what, code, message)
        }
        SdkError::ResponseError(_) => BackendError::transient(format!(
            "cannot {what}: AWS sent an unreadable response ({})",
            source_chain(&err)
        ))
        .with_code("aws_unavailable"),
        _ => BackendError::permanent(format!("cannot {what}: {}", source_chain(&err))).with_code("aws_error"),
    }
}

/// The error for an AWS error `code` and `message`.
pub(crate) fn classify(what: &str, code: &str, message: &str) -> BackendError {
    // ECS says "ClientException" for both bad input and denied access.
    let denied = DENIED.contains(&code)
        && (code != "ClientException" || message.to_ascii_lowercase().contains("not authorized"));
    if THROTTLING.contains(&code) {
        BackendError::transient(format!(
            "cannot {what}: AWS is throttling the platform's requests ({code}: {message}); retry later"
        ))
        .with_code("aws_throttled")
    } else if denied {
        BackendError::permanent(format!(
            "cannot {what}: the platform's AWS identity is not allowed to ({code}: {message}); \
             grant it the permission (see deploy/terraform) and retry"
        ))
        .with_code("aws_access_denied")
    } else if matches!(
        code,
        "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ServerException"
    ) {
        BackendError::transient(format!("cannot {what}: AWS failed ({code}: {message})"))
            .with_code("aws_unavailable")
    } else {
        BackendError::permanent(format!("cannot {what}: {message} ({code})")).with_code("aws_error")
    }
}

/// The AWS error code of an SDK error, if AWS answered with one.
pub(crate) fn code_of<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

fn source_chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// `.map_err(err("create the bucket"))`.
pub(crate) fn err<E, R>(what: &str) -> impl FnOnce(SdkError<E, R>) -> BackendError + '_
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug,
{
    move |e| aws_error(what, e)
}

/// Unwraps an SDK builder result (a required field left out is a bug here).
pub(crate) fn built<T>(result: Result<T, aws_sdk_s3::error::BuildError>) -> Result<T, BackendError> {
    result.map_err(|e| BackendError::permanent(format!("an AWS request could not be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let e = classify("create the service shop", "ThrottlingException", "Rate exceeded");
        assert!(e.retryable);
        assert_eq!(e.code, "aws_throttled");
        let e = classify(
            "create the service shop",
            "AccessDeniedException",
            "User x is not authorized",
        );
        assert!(!e.retryable);
        assert_eq!(e.code, "aws_access_denied");
        assert!(e.message.contains("not allowed"), "{}", e.message);
        let e = classify("create the service shop", "ClientException", "bad subnet");
        assert_eq!(e.code, "aws_error");
        assert_eq!(
            e.message,
            "cannot create the service shop: bad subnet (ClientException)"
        );
    }
}
