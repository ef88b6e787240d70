//! One error type for handlers: a clear JSON answer for the client, the
//! details (SQL, paths) only in the log.

use app::protocol::ErrorBody;
use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::{header, HeaderValue, StatusCode};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("log in first")]
    Unauthorized,
    #[error("cross-origin request refused")]
    ForeignOrigin,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the server is full; try again later")]
    Full,
    /// One client address went over a per-address limit.
    #[error("too many {what} from your address; try again in {retry_after} s")]
    TooMany {
        what: &'static str,
        /// Seconds until trying again can succeed (`Retry-After`).
        retry_after: u64,
    },
    #[error("internal error")]
    Store(#[from] StoreError),
    /// A fault of the server's own; the detail goes to the log only.
    #[error("internal error")]
    Internal(&'static str),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::ForeignOrigin => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Full => StatusCode::SERVICE_UNAVAILABLE,
            AppError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Store(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` seconds, for an answer that has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::TooMany { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Store(error) => tracing::error!(%error, "request failed"),
            AppError::Internal(detail) => tracing::error!(detail, "request failed"),
            _ => {}
        }
        let body = ErrorBody {
            error: self.to_string(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
