//! One error type for handlers: a clear JSON answer for the client, the
//! details (SQL, paths) only in the log.

use app::protocol::ErrorBody;
use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::StatusCode;

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
    #[error("internal error")]
    Store(#[from] StoreError),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::ForeignOrigin => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Full => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Store(error) = &self {
            tracing::error!(%error, "request failed");
        }
        let body = ErrorBody {
            error: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}
