//! The Docker engine through bollard.
//!
//! Every request is wrapped so that its error says what Orca was doing and what Docker said.
//! The client negotiates the API version down to the engine's (Debian's Docker 20.10 speaks
//! 1.41), and container addresses are read from the configured network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, EventsOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder, ResizeExecOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{
    Attached, ContainerInfo, CreateSpec, EventStream, ExecSpec, ImageInfo, Output, Runtime,
    RuntimeError, RuntimeEvent, TtySize, managed_filter,
};
use crate::images::ReadyCheck;

/// Deadline of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Docker requests other than streams: generous, since a loaded engine can be slow to create.
const REQUEST_TIMEOUT: u64 = 120;
/// A detach sequence nobody types by accident: attach sessions must never be detached by the
/// user's keystrokes (Docker's default is ctrl-p ctrl-q, which shells and editors use).
const DETACH_KEYS: &str = "ctrl-@,ctrl-@,ctrl-@,ctrl-@,ctrl-@";

/// The Docker engine.
pub struct DockerRuntime {
    docker: Docker,
    network: String,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to `host` (`unix://…`, `tcp://…`), or `DOCKER_HOST`, or the local socket;
    /// negotiates the API version and checks that `network` exists.
    pub async fn connect(host: Option<&str>, network: &str) -> Result<Self, RuntimeError> {
        let target = host
            .map(String::from)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let doing = format!("connecting to the Docker engine at `{target}`");
        let docker = Docker::connect_with_host(&target)
            .map_err(|e| wrap(&doing, e))?
            .with_timeout(Duration::from_secs(REQUEST_TIMEOUT));
        let docker = docker.negotiate_version().await.map_err(|e| {
            RuntimeError::new(
                doing.clone(),
                format!("{e}; is dockerd running, and may this user use its socket?"),
            )
        })?;
        docker.ping().await.map_err(|e| wrap(&doing, e))?;
        docker
            .inspect_network(network, None)
            .await
            .map_err(|e| {
                let mut err = wrap(&format!("looking up Docker network `{network}`"), e);
                if err.not_found {
                    err.said = format!(
                        "no such network; create it (`docker network create {network}`) or fix `[docker] network`"
                    );
                }
                err
            })?;
        Ok(Self {
            docker,
            network: network.to_string(),
        })
    }

    fn address(&self, networks: Option<&HashMap<String, EndpointSettings>>) -> Option<IpAddr> {
        let ep = networks?.get(&self.network)?;
        ep.ip_address.as_deref().and_then(|ip| ip.parse().ok())
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec!["orca.kind"])]);
        let opts = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = self
            .docker
            .list_images(Some(opts))
            .await
            .map_err(|e| wrap("listing images with orca.* labels", e))?;
        Ok(images
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                repo_tags: i.repo_tags,
                labels: i.labels,
                created: i.created,
            })
            .collect())
    }

    async fn list_managed(&self, instance: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let filters = HashMap::from([("label", vec![managed_filter(instance)])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| {
            wrap(
                &format!("listing containers of gateway instance `{instance}`"),
                e,
            )
        })?;
        Ok(list
            .into_iter()
            .map(|c| {
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerInfo {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    running: state == "running",
                    exit_code: None,
                    address: self.address(c.network_settings.and_then(|n| n.networks).as_ref()),
                    created: SystemTime::UNIX_EPOCH
                        + Duration::from_secs(c.created.unwrap_or(0).max(0) as u64),
                    state,
                }
            })
            .collect())
    }

    async fn create(&self, spec: &CreateSpec) -> Result<String, RuntimeError> {
        let doing = format!(
            "creating container for image `{}` ({})",
            spec.image_name, spec.image_id
        );
        let grace = spec.stop_grace.as_secs() + u64::from(spec.stop_grace.subsec_nanos() > 0);
        let body = ContainerCreateBody {
            image: Some(spec.image_id.clone()),
            labels: Some(spec.labels.clone()),
            stop_signal: spec.stop_signal.clone(),
            stop_timeout: Some(grace as i64),
            open_stdin: Some(spec.interactive || spec.stdin_open),
            stdin_once: Some(false),
            tty: Some(spec.interactive),
            attach_stdin: Some(spec.interactive),
            attach_stdout: Some(spec.interactive),
            attach_stderr: Some(spec.interactive),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                memory: spec.limits.memory_bytes.map(|m| m as i64),
                nano_cpus: spec.limits.nano_cpus.map(|c| c as i64),
                pids_limit: spec.limits.pids.map(i64::from),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| wrap(&doing, e))?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| wrap(&format!("starting container {}", short(id)), e))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| wrap(&format!("inspecting container {}", short(id)), e))?;
        let state = c.state.unwrap_or_default();
        Ok(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: if state.running.unwrap_or(false) {
                None
            } else {
                state.exit_code
            },
            address: self.address(c.network_settings.and_then(|n| n.networks).as_ref()),
            created: c
                .created
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(t).build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(wrap(&format!("stopping container {}", short(id)), e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // Already being removed by an earlier request.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(wrap(&format!("removing container {}", short(id)), e)),
        }
    }

    async fn probe(&self, addr: IpAddr, port: Option<u16>, check: &ReadyCheck) -> bool {
        probe(addr, port, check).await
    }

    fn events(&self) -> EventStream {
        let filters = HashMap::from([
            ("type", vec!["container", "image"]),
            (
                "event",
                vec![
                    "die", "destroy", "pull", "tag", "untag", "delete", "import", "load",
                ],
            ),
        ]);
        // The request goes out when the stream is first polled; asking for events since now
        // keeps the ones that happen in between.
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
            .unwrap_or_default();
        let opts = EventsOptionsBuilder::default()
            .filters(&filters)
            .since(&since)
            .build();
        let stream = self.docker.events(Some(opts));
        let mut failed = false;
        Box::pin(
            stream
                .take_while(move |item| {
                    // One error is reported, then the stream ends: the caller resubscribes.
                    let go = !failed;
                    failed |= item.is_err();
                    std::future::ready(go)
                })
                .filter_map(|item| {
                    std::future::ready(match item {
                        Err(e) => Some(Err(wrap("following Docker events", e))),
                        Ok(ev) => event(ev).map(Ok),
                    })
                }),
        )
    }

    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .detach_keys(DETACH_KEYS)
            .build();
        let r = self
            .docker
            .attach_container(id, Some(opts))
            .await
            .map_err(|e| wrap(&format!("attaching to container {}", short(id)), e))?;
        Ok(Attached {
            exec_id: None,
            output: output_stream(r.output),
            input: r.input,
        })
    }

    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<Attached, RuntimeError> {
        let doing = format!(
            "running `{}` in container {}",
            exec.cmd.join(" "),
            short(id)
        );
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            detach_keys: Some(DETACH_KEYS.to_string()),
            tty: Some(exec.tty),
            env: Some(exec.env.clone()),
            cmd: Some(exec.cmd.clone()),
            user: exec.user.clone(),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| wrap(&doing, e))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: exec.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| wrap(&doing, e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::new(doing, "docker started the exec detached"));
        };
        if let (Some(size), true) = (exec.size, exec.tty) {
            self.resize(id, Some(&created.id), size).await?;
        }
        Ok(Attached {
            exec_id: Some(created.id),
            output: output_stream(output),
            input,
        })
    }

    async fn resize(
        &self,
        id: &str,
        exec_id: Option<&str>,
        size: TtySize,
    ) -> Result<(), RuntimeError> {
        let (h, w) = (i32::from(size.rows), i32::from(size.cols));
        match exec_id {
            None => self
                .docker
                .resize_container_tty(
                    id,
                    ResizeContainerTTYOptionsBuilder::default()
                        .h(h)
                        .w(w)
                        .build(),
                )
                .await
                .map_err(|e| {
                    wrap(
                        &format!("resizing the terminal of container {}", short(id)),
                        e,
                    )
                }),
            Some(exec) => self
                .docker
                .resize_exec(exec, ResizeExecOptionsBuilder::default().h(h).w(w).build())
                .await
                .map_err(|e| {
                    wrap(
                        &format!(
                            "resizing the terminal of an exec in container {}",
                            short(id)
                        ),
                        e,
                    )
                }),
        }
    }

    async fn signal(
        &self,
        id: &str,
        exec_id: Option<&str>,
        signal: &str,
    ) -> Result<(), RuntimeError> {
        let doing = format!("sending SIG{signal} in container {}", short(id));
        let Some(exec) = exec_id else {
            let opts = KillContainerOptionsBuilder::default()
                .signal(&format!("SIG{signal}"))
                .build();
            return self
                .docker
                .kill_container(id, Some(opts))
                .await
                .map_err(|e| wrap(&doing, e));
        };
        // The engine has no call to signal an exec: its process is signalled directly, by the
        // host pid the engine reports, which needs the engine on this host.
        let info = self
            .docker
            .inspect_exec(exec)
            .await
            .map_err(|e| wrap(&doing, e))?;
        let pid = match (info.running, info.pid) {
            (Some(true), Some(pid)) if pid > 0 => pid,
            _ => return Err(RuntimeError::new(doing, "the command is no longer running")),
        };
        let signal: nix::sys::signal::Signal = format!("SIG{signal}")
            .parse()
            .map_err(|_| RuntimeError::new(&doing, "no such signal"))?;
        let pid = i32::try_from(pid)
            .map_err(|_| RuntimeError::new(&doing, format!("the engine reported pid {pid}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|e| {
            RuntimeError::new(
                doing,
                format!(
                    "{e}: a command's process is signalled by its host pid, which needs Orca \
                     on the engine's host and in its pid namespace"
                ),
            )
        })
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let r = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| wrap("inspecting an exec", e))?;
        Ok(if r.running.unwrap_or(false) {
            None
        } else {
            r.exit_code
        })
    }
}

fn output_stream(
    s: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
) -> super::OutputStream {
    Box::pin(
        s.map_ok(|o| match o {
            LogOutput::StdErr { message } => Output::Stderr(message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => Output::Stdout(message),
        })
        .map_err(|e| wrap("reading container output", e)),
    )
}

/// Maps a Docker event to the ones the scheduler reacts to.
fn event(ev: bollard::models::EventMessage) -> Option<RuntimeEvent> {
    let typ = ev.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = ev.action.unwrap_or_default();
    let actor = ev.actor.unwrap_or_default();
    let id = actor.id.unwrap_or_default();
    match (typ.as_str(), action.as_str()) {
        ("container", "die") => Some(RuntimeEvent::ContainerDied {
            id,
            exit_code: actor
                .attributes
                .and_then(|a| a.get("exitCode").and_then(|c| c.parse().ok())),
        }),
        ("container", "destroy") => Some(RuntimeEvent::ContainerRemoved { id }),
        ("image", _) => Some(RuntimeEvent::ImagesChanged),
        _ => None,
    }
}

/// One readiness probe: a TCP connect, or an HTTP GET whose status is below 500.
pub(crate) async fn probe(addr: IpAddr, port: Option<u16>, check: &ReadyCheck) -> bool {
    let path = match check {
        ReadyCheck::None => return true,
        ReadyCheck::Tcp => None,
        ReadyCheck::Http(p) => Some(p.as_str()),
    };
    let Some(port) = port else { return false };
    let target = SocketAddr::new(addr, port);
    let attempt = async {
        let mut s = TcpStream::connect(target).await.ok()?;
        let Some(path) = path else { return Some(true) };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: orca-ready\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let r = s.read(&mut buf[n..]).await.ok()?;
            if r == 0 {
                break;
            }
            n += r;
        }
        Some(status_below_500(&buf[..n]))
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn status_below_500(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_whitespace();
    matches!(parts.next(), Some(v) if v.starts_with("HTTP/"))
        && parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| (100..500).contains(&c))
}

/// What failed, and what Docker said.
fn wrap(doing: &str, e: bollard::errors::Error) -> RuntimeError {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError {
            doing: doing.to_string(),
            said: message.trim().to_string(),
            not_found: status_code == 404,
        },
        other => RuntimeError::new(doing, other.to_string()),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Parses Docker's RFC 3339 timestamps (`2026-11-24T22:40:09.123456789Z`, or with an offset).
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut t = clock.split(':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec_text = t.next()?;
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, "0"));
    let ss: i64 = whole.parse().ok()?;
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's well-known method.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn docker_timestamps_parse() {
        let t = parse_rfc3339("2026-11-24T22:40:09.5Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::new(1_795_560_009, 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:00+01:00").unwrap(),
            SystemTime::UNIX_EPOCH
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn errors_keep_dockers_message_and_404() {
        let e = wrap(
            "creating container for image `shell` (sha256:abc)",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such image: sha256:abc\n".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "creating container for image `shell` (sha256:abc): No such image: sha256:abc"
        );
        assert!(e.not_found);
    }

    #[test]
    fn http_status_lines() {
        assert!(status_below_500(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_below_500(b"HTTP/1.0 404 Not Found"));
        assert!(!status_below_500(b"HTTP/1.1 503 Busy"));
        assert!(!status_below_500(b"SSH-2.0-OpenSSH"));
        assert!(!status_below_500(b""));
    }

    async fn serve_once(answer: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn probes_against_local_servers() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let ok = serve_once(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let bad = serve_once(b"HTTP/1.1 500 Oops\r\n\r\n").await;
        assert!(probe(lo, Some(ok), &ReadyCheck::Tcp).await);
        assert!(probe(lo, Some(ok), &ReadyCheck::Http("/".into())).await);
        assert!(!probe(lo, Some(bad), &ReadyCheck::Http("/health".into())).await);
        assert!(probe(lo, None, &ReadyCheck::None).await);
        assert!(!probe(lo, None, &ReadyCheck::Tcp).await);
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!probe(lo, Some(closed), &ReadyCheck::Tcp).await);
    }
}
