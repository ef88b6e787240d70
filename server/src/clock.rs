//! Timestamps as the protocol writes them.

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-24T17:04:00.123Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
