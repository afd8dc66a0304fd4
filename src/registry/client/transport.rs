//! One GET as the client makes it: within what is left of the deadline, retried for
//! transient failures (honouring `Retry-After` when it fits), redirects followed by hand with
//! the registry's credentials kept to its own origin, bodies capped.

use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::super::RegistryError;
use super::super::http::{self, body_timed_out, header};
use super::super::manifest::ACCEPT;
use super::super::redirect::{self, MAX_REDIRECTS, REDIRECT_STATUSES};
use super::super::retry_after::retry_after;
use super::{
    ATTEMPTS, Client, DEADLINE, FIRST_BACKOFF, MAX_MANIFEST_BYTES, REQUEST_TIMEOUT, Token,
};
use crate::capped_read::{CappedReadError, read_to_cap};

impl Client {
    /// What is left of the deadline for one request, at most [`REQUEST_TIMEOUT`].
    pub(super) fn request_timeout(&self) -> Result<Duration, RegistryError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RegistryError::Deadline {
                registry: self.reference.registry().to_owned(),
                seconds: DEADLINE.as_secs(),
            });
        }
        Ok(left.min(REQUEST_TIMEOUT))
    }

    pub(super) fn get_with_retries(
        &self,
        url: &str,
        manifest: bool,
    ) -> Result<Reply, RegistryError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let (transient, asked) = match self.get_following(url, manifest)? {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Transient { error, retry_after } => (error, retry_after),
            };
            if attempt >= ATTEMPTS {
                return Err(RegistryError::GaveUp {
                    attempts: attempt,
                    last: Box::new(transient),
                });
            }
            let wait = asked.map_or(backoff, |asked| asked.max(backoff));
            let left = self.deadline.saturating_duration_since(Instant::now());
            if wait >= left {
                return Err(match (asked, &transient) {
                    (Some(asked), RegistryError::Status { status, .. }) => {
                        RegistryError::RetryAfterPastDeadline {
                            registry: self.reference.registry().to_owned(),
                            status: *status,
                            wait: asked.as_secs(),
                            seconds: DEADLINE.as_secs(),
                        }
                    }
                    _ => RegistryError::GaveUp {
                        attempts: attempt,
                        last: Box::new(transient),
                    },
                });
            }
            thread::sleep(wait);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// One GET of `url`, following up to [`MAX_REDIRECTS`] redirects. The registry's
    /// credentials go only to the registry's own origin; a redirect elsewhere (object
    /// storage with a signed URL) gets none, which is also what such storage demands.
    fn get_following(&self, url: &str, manifest: bool) -> Result<Attempt, RegistryError> {
        let mut current = url.to_owned();
        for hop in 0..=MAX_REDIRECTS {
            let timeout = self.request_timeout()?;
            let shown = redirect::without_query(&current).to_owned();
            let mut request = http::within(&self.agent, &current, timeout);
            if manifest {
                request = request.header("Accept", ACCEPT);
            }
            let at_registry = redirect::origin(&current).as_deref() == Some(self.origin.as_str());
            if let (true, Some(Token(header))) = (at_registry, &self.token) {
                request = request.header("Authorization", header);
            }
            let timed_out = || RegistryError::TimedOut {
                url: shown.clone(),
                seconds: timeout.as_secs(),
            };
            let response = match request.call() {
                Ok(response) => response,
                Err(error) if http::timed_out(&error) => return Err(timed_out()),
                Err(error) => {
                    return Ok(Attempt::Transient {
                        error: RegistryError::Transport {
                            url: shown,
                            detail: error.to_string(),
                        },
                        retry_after: None,
                    });
                }
            };
            let code = response.status().as_u16();
            match code {
                300..=399 => {
                    current = self.redirect_target(&response, &current, url, hop)?;
                }
                401 if at_registry => {
                    let challenges: Vec<&str> = response
                        .headers()
                        .get_all("WWW-Authenticate")
                        .iter()
                        .filter_map(|value| std::str::from_utf8(value.as_bytes()).ok())
                        .map(str::trim)
                        .collect();
                    return Ok(Attempt::Done(Reply::Unauthorized {
                        challenge: (!challenges.is_empty()).then(|| challenges.join(", ")),
                    }));
                }
                429 | 500.. => {
                    let asked = header(&response, "Retry-After")
                        .and_then(|v| retry_after(v, SystemTime::now()));
                    let body = read_body(response, 64 * 1024).unwrap_or_default();
                    return Ok(Attempt::Transient {
                        error: RegistryError::Status {
                            url: shown,
                            status: code,
                            body: String::from_utf8_lossy(&body).chars().take(200).collect(),
                        },
                        retry_after: asked,
                    });
                }
                400.. => {
                    let body = read_body(response, 64 * 1024).unwrap_or_default();
                    return Ok(Attempt::Done(Reply::Status {
                        url: shown,
                        code,
                        body: String::from_utf8_lossy(&body).chars().take(200).collect(),
                    }));
                }
                _ => {
                    let content_type = header(&response, "Content-Type").map(str::to_owned);
                    let body =
                        read_body(response, MAX_MANIFEST_BYTES).map_err(|error| match error {
                            CappedReadError::TooLarge => RegistryError::TooLarge {
                                url: shown.clone(),
                                max: MAX_MANIFEST_BYTES,
                            },
                            CappedReadError::Io(error) if body_timed_out(&error) => timed_out(),
                            other => RegistryError::Transport {
                                url: shown.clone(),
                                detail: other.to_string(),
                            },
                        })?;
                    return Ok(Attempt::Done(Reply::Ok { body, content_type }));
                }
            }
        }
        // The loop returns on its last hop (a redirect there is refused).
        Err(RegistryError::TooManyRedirects {
            url: redirect::without_query(url).to_owned(),
            max: MAX_REDIRECTS,
        })
    }
}

impl Client {
    /// Where the redirect `response` to a GET of `current` leads (hop `hop` of the download
    /// of `url`), if it may be followed.
    fn redirect_target(
        &self,
        response: &ureq::http::Response<ureq::Body>,
        current: &str,
        url: &str,
        hop: usize,
    ) -> Result<String, RegistryError> {
        let location = header(response, "Location");
        let refused = |reason: &'static str| RegistryError::Redirect {
            from: redirect::without_query(current).to_owned(),
            to: location.map_or_else(String::new, |l| redirect::without_query(l).to_owned()),
            reason,
        };
        if !REDIRECT_STATUSES.contains(&response.status().as_u16()) {
            return Err(refused("not a redirect status that is followed"));
        }
        let Some(target) = location else {
            return Err(refused("it has no Location"));
        };
        if hop >= MAX_REDIRECTS {
            return Err(RegistryError::TooManyRedirects {
                url: redirect::without_query(url).to_owned(),
                max: MAX_REDIRECTS,
            });
        }
        redirect::next_url(current, target, self.plain_http_redirects).map_err(refused)
    }
}

/// One try of a download: done (whatever the answer), or a transient failure to retry.
enum Attempt {
    Done(Reply),
    Transient {
        error: RegistryError,
        retry_after: Option<Duration>,
    },
}

pub(super) enum Reply {
    Ok {
        body: Vec<u8>,
        content_type: Option<String>,
    },
    Unauthorized {
        challenge: Option<String>,
    },
    Status {
        url: String,
        code: u16,
        body: String,
    },
}

/// A response's body, at most `max` bytes.
pub(super) fn read_body(
    response: ureq::http::Response<ureq::Body>,
    max: u64,
) -> Result<Vec<u8>, CappedReadError> {
    read_to_cap(response.into_body().into_reader(), max)
}
