//! The GitHub REST client: octocrab for the transport (rustls, the token as a bearer header it marks
//! sensitive, the API base URL, `User-Agent`), and this module for the retry policy, which needs each
//! response's status *and headers* — octocrab's typed calls turn a non-2xx response into an error
//! without its headers, so requests go through its raw `_get`/`_post`/`_patch` and are judged here.
//!
//! Policy (GitHub's "Best practices for using the REST API"): a 5xx or a dropped connection is retried
//! with exponential backoff; a 429, or a 403 that carries `retry-after` or `x-ratelimit-remaining: 0`,
//! waits as long as those headers say (never longer than [`Retry::max_wait`]: a run does not sleep for
//! an hour on a rate limit, it says so; a secondary limit without headers waits a minute); a 403
//! "Resource not accessible by integration" is
//! [`ApiError::Denied`], which the publisher turns into the fork fallback. Everything is bounded by
//! [`Retry::attempts`]; requests that must not happen twice ([`Client::call_once`]) retry only rate
//! limits. A connection that stalls times out (10 s to connect, 30 s to read or write).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use serde::Serialize;

/// Bounds of the retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The first backoff; doubled for each further try.
    pub base: Duration,
    /// The longest wait a rate limit may ask for before the request is given up.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Why a request did not succeed. Messages never hold the token: it lives only in octocrab's
/// sensitive header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The token may not write here (a pull request from a fork gets a read-only token).
    #[error("{method} {path}: 403 {message}")]
    Denied {
        method: &'static str,
        path: String,
        message: String,
    },
    #[error(
        "{method} {path}: rate limited for another {wait_secs} s (longer than plumbline waits)"
    )]
    RateLimited {
        method: &'static str,
        path: String,
        wait_secs: u64,
    },
    #[error("{method} {path}: {status} {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path}: {message}")]
    Transport {
        method: &'static str,
        path: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// A successful response.
#[derive(Debug)]
pub struct Response {
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

pub struct Client {
    octo: Octocrab,
    retry: Retry,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `api_url` (e.g. `https://api.github.com`, or a GHES `https://host/api/v3`). Must be
    /// called inside a Tokio runtime.
    pub fn new(api_url: &str, token: &str, retry: Retry) -> Result<Client, String> {
        // octocrab would panic on a token that is not a valid header value (a pasted newline); the
        // message names the variable, never the value.
        if http::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err("GITHUB_TOKEN holds characters a header cannot carry".into());
        }
        // octocrab sends `X-GitHub-Api-Version: 2022-11-28` itself (its request-headers metadata).
        let octo = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| format!("GitHub API URL `{api_url}`: {e}"))?
            .personal_token(token.to_owned())
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_owned(),
            )
            // A stalled connection is a failed try, not a hung step.
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .set_write_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| format!("GitHub client: {e}"))?;
        Ok(Client { octo, retry })
    }

    /// One request, retried by the policy above. `path` is relative to the API URL (with its query).
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Response, ApiError> {
        self.request(method, path, body, true).await
    }

    /// A request that must not be sent twice (creating a comment): a 5xx or a broken connection may
    /// come after GitHub did it, so only rate limits are retried here; the caller looks before it
    /// tries again.
    pub async fn call_once<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Response, ApiError> {
        self.request(method, path, body, false).await
    }

    async fn request<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        retry_failures: bool,
    ) -> Result<Response, ApiError> {
        let m = method.as_str();
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.attempts;
            let backoff = self.retry.base * 2u32.saturating_pow(attempt - 1);
            let sent = match method {
                Method::Get => self.octo._get(path).await,
                Method::Post => self.octo._post(path, body).await,
                Method::Patch => self.octo._patch(path, body).await,
            };
            let response = match sent {
                Ok(r) => r,
                Err(_) if !last && retry_failures => {
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    return Err(ApiError::Transport {
                        method: m,
                        path: path.to_owned(),
                        message: e.to_string(),
                    });
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let text = self.octo.body_to_string(response).await.unwrap_or_default();
            if status.is_success() {
                let body = if text.trim().is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|e| ApiError::Status {
                        method: m,
                        path: path.to_owned(),
                        status: status.as_u16(),
                        message: format!("the response is not JSON ({e})"),
                    })?
                };
                return Ok(Response { headers, body });
            }
            let message = error_message(&text);
            if status == StatusCode::FORBIDDEN
                && message.contains("Resource not accessible by integration")
            {
                return Err(ApiError::Denied {
                    method: m,
                    path: path.to_owned(),
                    message,
                });
            }
            if let Some(wait) = rate_limit_wait(status, &headers, &message, SystemTime::now()) {
                let wait = wait.unwrap_or(backoff);
                if wait > self.retry.max_wait {
                    return Err(ApiError::RateLimited {
                        method: m,
                        path: path.to_owned(),
                        wait_secs: wait.as_secs(),
                    });
                }
                if !last {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
            } else if status.is_server_error() && !last && retry_failures {
                tokio::time::sleep(backoff).await;
                attempt += 1;
                continue;
            }
            return Err(ApiError::Status {
                method: m,
                path: path.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
    }
}

/// GitHub's `message` from an error body, or the start of the body.
fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect::<String>().trim().to_owned())
}

/// For a rate-limited response: `Some(Some(wait))` as its headers ask, `Some(None)` when it says
/// nothing (back off), `None` when the response is not about rate limits.
fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Option<Duration>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    // GitHub: a secondary rate limit without `retry-after` asks for at least a minute.
    let secondary = message.contains("secondary rate limit");
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || exhausted || secondary));
    if !limited {
        return None;
    }
    if let Some(secs) = retry_after {
        return Some(Some(Duration::from_secs(secs)));
    }
    if exhausted
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        // The reset is a whole second: wait past it.
        return Some(Some(Duration::from_secs(reset.saturating_sub(now) + 1)));
    }
    if secondary {
        return Some(Some(Duration::from_secs(60)));
    }
    Some(None)
}

/// Whether a list response has a further page (`Link: <…>; rel="next"`).
pub fn has_next_page(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            part.split(';')
                .skip(1)
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        assert_eq!(
            rate_limit_wait(s(429), &headers(&[("retry-after", "7")]), "", now),
            Some(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            rate_limit_wait(
                s(403),
                &headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030")
                ]),
                "",
                now
            ),
            Some(Some(Duration::from_secs(31)))
        );
        // A reset in the past: wait a second, not forever or negative.
        assert_eq!(
            rate_limit_wait(
                s(429),
                &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "10")]),
                "",
                now
            ),
            Some(Some(Duration::from_secs(1)))
        );
        assert_eq!(rate_limit_wait(s(429), &headers(&[]), "", now), Some(None));
        assert_eq!(
            rate_limit_wait(
                s(403),
                &headers(&[]),
                "You have exceeded a secondary rate limit. Please wait a few minutes.",
                now
            ),
            Some(Some(Duration::from_secs(60)))
        );
        // A plain 403 (bad credentials, no permission) is not a rate limit.
        assert_eq!(
            rate_limit_wait(
                s(403),
                &headers(&[("x-ratelimit-remaining", "4999")]),
                "Bad credentials",
                now
            ),
            None
        );
        assert_eq!(rate_limit_wait(s(502), &headers(&[]), "", now), None);
    }

    #[test]
    fn next_page_from_link() {
        let h = headers(&[(
            "link",
            r#"<https://api.github.com/repositories/1/issues/2/comments?page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?page=5>; rel="last""#,
        )]);
        assert!(has_next_page(&h));
        let last = headers(&[(
            "link",
            r#"<https://api.github.com/repositories/1/issues/2/comments?page=1>; rel="prev", <https://api.github.com/repositories/1/issues/2/comments?page=1>; rel="first""#,
        )]);
        assert!(!has_next_page(&last));
        assert!(!has_next_page(&HeaderMap::new()));
        assert_eq!(
            error_message(r#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
