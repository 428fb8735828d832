//! The optional plain `[http]` listener: every request for a host of the domain is sent to the
//! same path over HTTPS (308, which keeps the method and body); anything else is a 404.

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::route::{self, Route};
use super::{html, pages, request_host};
use crate::listeners::https::{Body, ConnInfo, Handler, empty};

/// Redirects plain HTTP to HTTPS.
#[derive(Debug, Clone)]
pub struct Redirect {
    domain: String,
    https_port: u16,
}

impl Redirect {
    /// Redirects hosts of `domain` to HTTPS on `https_port` (omitted from URLs when 443).
    pub fn new(domain: &str, https_port: u16) -> Self {
        Redirect {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            https_port,
        }
    }

    /// Where a request for `host` and `path_and_query` goes, if it is one of ours.
    pub fn location(&self, host: &str, path_and_query: &str) -> Option<String> {
        if route::route(host, &self.domain) == Route::Foreign {
            return None;
        }
        let name = route::host_name(host)?;
        let port = match self.https_port {
            443 => String::new(),
            p => format!(":{p}"),
        };
        Some(format!("https://{name}{port}{path_and_query}"))
    }
}

impl Handler for Redirect {
    async fn handle(&self, req: Request<Incoming>, _conn: &ConnInfo) -> Response<Body> {
        let host = request_host(&req).unwrap_or_default();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        match self
            .location(&host, path)
            .and_then(|l| HeaderValue::from_str(&l).ok())
        {
            Some(location) => {
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                r.headers_mut().insert(header::LOCATION, location);
                r
            }
            None => html(
                StatusCode::NOT_FOUND,
                pages::status(
                    404,
                    "Not found",
                    &format!("`{host}` is not a host this gateway serves"),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_the_domain_go_to_https_with_their_path() {
        let r = Redirect::new("localhost", 8443);
        assert_eq!(
            r.location("demo.localhost:8080", "/a?b=1").as_deref(),
            Some("https://demo.localhost:8443/a?b=1")
        );
        assert_eq!(
            r.location("LOCALHOST", "/").as_deref(),
            Some("https://localhost:8443/")
        );
        assert_eq!(r.location("evil.com", "/"), None);
        let r = Redirect::new("orca.example.org", 443);
        assert_eq!(
            r.location("nb.orca.example.org", "/").as_deref(),
            Some("https://nb.orca.example.org/")
        );
    }
}
