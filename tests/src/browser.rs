//! A small W3C WebDriver client for end-to-end tests in a real browser: Debian's `chromedriver`
//! driving headless Chromium, spoken as HTTP/1.1 + JSON on loopback.
//!
//! [`Browser::launch`] starts chromedriver in a process group of its own; Chromium and its
//! helpers are its children and stay in that group. Dropping the [`Browser`] kills the whole
//! group, so no browser outlives a test, even one that panicked half-way.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Debian's `chromium`.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's switches. Headless as root needs `--no-sandbox`. This machine has no network
/// beyond loopback: without the background-networking switches Chromium keeps trying Google's
/// services, and every host maps to 127.0.0.1 so nothing leaves loopback whatever a page asks.
/// A fixed window size keeps screenshots comparable between runs.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * 127.0.0.1",
    "--window-size=1024,768",
];
/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest one WebDriver command may take; a navigation waits for the page to load.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long chromedriver may take to say which port it listens on.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Between two looks at the page in [`Browser::wait_until`].
const POLL: Duration = Duration::from_millis(100);
/// The PNG file signature.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// One headless Chromium behind its chromedriver, with one WebDriver session.
#[derive(Debug)]
pub struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    // Dropped in this order: the processes die before their profile directory is removed.
    _driver: Driver,
    _scratch: tempfile::TempDir,
}

/// What the page shows at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `location.href`.
    pub url: String,
    /// `document.title`.
    pub title: String,
    /// The rendered text of the body (`innerText`).
    pub text: String,
}

/// A PNG's width and height, once its signature and header were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PngSize {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// The chromedriver process; dropping it kills its process group.
#[derive(Debug)]
struct Driver {
    child: tokio::process::Child,
    /// chromedriver's pid, which is also its process group's id.
    group: Option<u32>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let signal = |sig: &str, group: u32| {
            std::process::Command::new("kill")
                .args([sig, "--", &format!("-{group}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        // The group outlives chromedriver if it died first: its Chromium is still in it.
        if let Some(group) = self.group {
            signal("-KILL", group);
        }
        let _ = self.child.start_kill();
        // Wait (briefly) until every member is gone, so the profile directory is removed after
        // the last writer and the next test starts with no browser left over. Reaping
        // chromedriver is ours to do; the orphaned Chromium processes are reaped by init.
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < end {
            let reaped = matches!(self.child.try_wait(), Ok(Some(_)) | Err(_));
            let group_gone = self.group.is_none_or(|g| !signal("-0", g));
            if reaped && group_gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with an empty profile that accepts any
    /// certificate (the gateway's is self-signed). chromedriver's log goes to `log`. Fails,
    /// naming the Debian package, when either program is missing.
    pub async fn launch(log: &Path) -> anyhow::Result<Browser> {
        for (program, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(program).is_file() {
                bail!(
                    "{program} is missing: install Debian's `{package}` package (scripts/setup does)"
                );
            }
        }
        let scratch = tempfile::tempdir().context("creating the browser's scratch directory")?;
        let profile = scratch.path().join("profile");
        let mut child = tokio::process::Command::new(CHROMEDRIVER)
            // Port 0: chromedriver binds a free port and prints it, so there is no race for one.
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            // Chromium's own temporary files then go where the profile goes, and go with it.
            .env("TMPDIR", scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let stdout = child.stdout.take();
        let group = child.id();
        let driver = Driver { child, group };
        let Some(stdout) = stdout else {
            bail!("chromedriver's stdout was not captured");
        };
        let port = tokio::time::timeout(START_TIMEOUT, driver_port(stdout))
            .await
            .with_context(|| {
                format!(
                    "chromedriver did not report its port within {START_TIMEOUT:?}; see {}",
                    log.display()
                )
            })??;
        let http = Client::builder(TokioExecutor::new()).build_http();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": CHROMIUM_ARGS
                        .iter()
                        .map(|a| (*a).to_string())
                        .chain([format!("--user-data-dir={}", profile.display())])
                        .collect::<Vec<_>>(),
                },
            }},
        });
        let created = command(
            &http,
            Method::POST,
            &format!("{base}/session"),
            capabilities,
        )
        .await
        .with_context(|| format!("creating a Chromium session; see {}", log.display()))?;
        let Some(id) = created["sessionId"].as_str() else {
            bail!("chromedriver answered a new session without an id: {created}");
        };
        Ok(Browser {
            session: format!("{base}/session/{id}"),
            http,
            _driver: driver,
            _scratch: scratch,
        })
    }

    /// Navigates to `url` and waits for the page (after redirects) to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.post("/url", json!({ "url": url }))
            .await
            .with_context(|| format!("navigating to {url}"))
            .map(drop)
    }

    /// What the page shows now.
    pub async fn page(&self) -> anyhow::Result<Page> {
        let v = self
            .script(
                "return {url: location.href, title: document.title, \
                 text: document.body ? document.body.innerText : ''};",
            )
            .await?;
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(Page {
            url: field("url"),
            title: field("title"),
            text: field("text"),
        })
    }

    /// Polls the page until `check` returns a value, or fails after `timeout` naming `what` and
    /// the last page seen. A page that is between two documents (a reload, a redirect) cannot
    /// answer; that is "not yet", not a failure.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Page) -> Option<T>,
    ) -> anyhow::Result<T> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.page().await {
                Ok(page) => match check(&page) {
                    Some(v) => return Ok(v),
                    None => format!("{page:?}"),
                },
                Err(e) => format!("no page: {e:#}"),
            };
            if tokio::time::Instant::now() >= end {
                bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Replaces the value of the first input matching `css` with `text`, as typed keys.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await?;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await
        .with_context(|| format!("typing into `{css}`"))
        .map(drop)
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await
            .with_context(|| format!("clicking `{css}`"))
            .map(drop)
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        let v = self.get(&format!("/element/{element}/text")).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The cookies the browser would send to the current page, as WebDriver describes them
    /// (`name`, `value`, `secure`, `httpOnly`, `sameSite`, ...).
    pub async fn cookies(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.get("/cookie").await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The size of the viewport in CSS pixels (`innerWidth`, `innerHeight`).
    pub async fn viewport(&self) -> anyhow::Result<PngSize> {
        let v = self.script("return [innerWidth, innerHeight];").await?;
        let dim = |i: usize| v[i].as_u64().and_then(|n| u32::try_from(n).ok());
        match (dim(0), dim(1)) {
            (Some(width), Some(height)) => Ok(PngSize { width, height }),
            _ => bail!("the viewport's size is not two numbers: {v}"),
        }
    }

    /// Saves a screenshot of the viewport to `path` as PNG, checks that it is one, and returns
    /// its size.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<PngSize> {
        let v = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        let size = png_size(&png).context("the screenshot")?;
        std::fs::write(path, &png).with_context(|| format!("writing {}", path.display()))?;
        Ok(size)
    }

    /// Ends the session (chromedriver closes Chromium); dropping the browser then reaps what is
    /// left. Errors are reported, but the processes go either way.
    pub async fn close(self) -> anyhow::Result<()> {
        command(&self.http, Method::DELETE, &self.session, Value::Null)
            .await
            .map(drop)
    }

    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .with_context(|| format!("finding `{css}`"))?;
        match v[ELEMENT].as_str() {
            Some(id) => Ok(id.to_string()),
            None => bail!("finding `{css}`: no element reference in {v}"),
        }
    }

    async fn script(&self, body: &str) -> anyhow::Result<Value> {
        self.post("/execute/sync", json!({ "script": body, "args": [] }))
            .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        command(
            &self.http,
            Method::GET,
            &format!("{}{path}", self.session),
            Value::Null,
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        command(
            &self.http,
            Method::POST,
            &format!("{}{path}", self.session),
            body,
        )
        .await
    }
}

/// Checks the PNG signature and the IHDR chunk and returns the image's size.
pub fn png_size(png: &[u8]) -> anyhow::Result<PngSize> {
    if !png.starts_with(PNG_SIGNATURE) {
        bail!("not a PNG: it starts {:02x?}", &png[..png.len().min(8)]);
    }
    // The first chunk follows the signature: length (4), type (4), then width and height.
    let Some(header) = png.get(8..24).filter(|h| &h[4..8] == b"IHDR") else {
        bail!("a PNG without its IHDR header ({} bytes)", png.len());
    };
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Ok(PngSize {
        width: be(&header[8..12]),
        height: be(&header[12..16]),
    })
}

/// One WebDriver command: JSON in, the response's `value` out; a WebDriver error (`error`,
/// `message`) becomes an `Err` that quotes them.
async fn command(
    http: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let what = format!("WebDriver {method} {url}");
    let payload = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(payload))
        .with_context(|| what.clone())?;
    let exchange = async {
        let response = http.request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{what}: no answer within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| what.clone())?;
    let mut answer: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{what}: not JSON ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    let value = answer["value"].take();
    if !status.is_success() || value.get("error").is_some_and(|e| !e.is_null()) {
        bail!(
            "{what}: {status} {}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
        );
    }
    Ok(value)
}

/// Reads chromedriver's stdout until it names its port, then keeps draining it in the
/// background so chromedriver never blocks on a full pipe.
async fn driver_port(stdout: tokio::process::ChildStdout) -> anyhow::Result<u16> {
    const READY: &str = "started successfully on port ";
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.split_once(READY).map(|(_, r)| r) {
            let port = rest
                .trim_end_matches('.')
                .trim()
                .parse()
                .with_context(|| format!("chromedriver's port in `{line}`"))?;
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(port);
        }
    }
    bail!("chromedriver exited before listening")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_size_reads_the_header_and_refuses_other_files() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&1024u32.to_be_bytes());
        png.extend_from_slice(&768u32.to_be_bytes());
        assert_eq!(
            png_size(&png).expect("a PNG header"),
            PngSize {
                width: 1024,
                height: 768
            }
        );
        assert!(png_size(b"<html>not an image</html>").is_err());
        assert!(png_size(PNG_SIGNATURE).is_err());
    }
}
