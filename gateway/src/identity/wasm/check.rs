//! `orca plugin check FILE.wasm`: does a component fit `orca:identity@0.1.0`, and what does it
//! export? Answers without any configuration, and says exactly what does not fit.

use std::fmt;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::State;
use super::bindings::exports::orca::identity::{http, lifecycle, password, session, ssh};
use super::plugin::{self, Exports};
use crate::identity::kv::Namespace;

/// How long instantiation and `init` of a checked component may run.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the check found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The orca interfaces the component exports.
    pub exports: Exports,
    /// Every export name of the component.
    pub export_names: Vec<String>,
    /// Every import name of the component.
    pub import_names: Vec<String>,
    /// Why it does not fit; empty when it does.
    pub problems: Vec<String>,
    /// The result of `init` with no settings (informational: real settings may differ).
    pub init_without_settings: Option<Result<(), String>>,
}

impl Report {
    /// Whether the component can be used as a resolver.
    pub fn fits(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fits() {
            writeln!(f, "fits orca:identity@0.1.0")?;
        } else {
            writeln!(f, "does not fit orca:identity@0.1.0:")?;
            for p in &self.problems {
                writeln!(f, "  - {p}")?;
            }
        }
        let names = self.exports.names();
        writeln!(
            f,
            "resolver interfaces: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )?;
        writeln!(f, "exports: {}", self.export_names.join(", "))?;
        writeln!(f, "imports: {}", self.import_names.join(", "))?;
        match &self.init_without_settings {
            Some(Ok(())) => writeln!(f, "init with no settings: ok")?,
            Some(Err(e)) => writeln!(f, "init with no settings: refused: {e}")?,
            None => {}
        }
        Ok(())
    }
}

/// Checks component bytes. `Err` only when the bytes are not a component at all.
pub async fn check(bytes: &[u8]) -> Result<Report, String> {
    let (engine, _) = super::engine::build(None, 256 << 20).map_err(|e| format!("{e:#}"))?;
    super::engine::start_ticker(&engine);
    let compile_engine = engine.clone();
    let owned = bytes.to_vec();
    let component = tokio::task::spawn_blocking(move || Component::new(&compile_engine, &owned))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "not a WebAssembly component wasmtime can compile: {e:#}; build it for \
                 wasm32-wasip2 (or with a componentize tool) against wit/identity.wit"
            )
        })?;
    let ty = component.component_type();
    let mut report = Report {
        exports: plugin::detect(&component),
        export_names: ty.exports(&engine).map(|(n, _)| n.to_string()).collect(),
        import_names: ty.imports(&engine).map(|(n, _)| n.to_string()).collect(),
        ..Report::default()
    };
    for name in &report.export_names {
        if let Some(rest) = name.strip_prefix("orca:identity/")
            && !rest.ends_with("@0.1.0")
        {
            report.problems.push(format!(
                "it exports `{name}`, a version this gateway does not speak: build it against \
                 orca:identity@0.1.0"
            ));
        }
    }
    for (name, item) in ty.imports(&engine) {
        if let Some(rest) = name.strip_prefix("orca:identity/")
            && !matches!(rest, "log@0.1.0" | "store@0.1.0" | "types@0.1.0")
        {
            report.problems.push(format!(
                "it imports `{name}`, which the gateway does not provide"
            ));
        }
        if !name.starts_with("orca:identity/") && !name.starts_with("wasi:") {
            let kind = match item.ty {
                ComponentItem::ComponentInstance(_) => "an interface",
                _ => "an item",
            };
            report.problems.push(format!(
                "it imports {kind} `{name}`; a resolver may import only orca:identity/log, store, \
                 types and wasi:* interfaces"
            ));
        }
    }
    if component
        .get_export_index(None, plugin::export_name("lifecycle"))
        .is_none()
    {
        report
            .problems
            .push("it does not export `orca:identity/lifecycle@0.1.0` (its `init`)".to_string());
    }
    if report.exports == Exports::default() {
        report.problems.push(
            "it exports none of orca:identity/http, ssh, password or session @0.1.0".to_string(),
        );
    }
    if report.exports.session && !report.exports.http {
        report
            .problems
            .push("it exports `session` without `http`".to_string());
    }
    if !report.problems.is_empty() {
        return Ok(report);
    }
    let linker = plugin::linker(&engine).map_err(|e| format!("{e:#}"))?;
    let pre = match linker.instantiate_pre(&component) {
        Ok(pre) => pre,
        Err(e) => {
            report
                .problems
                .push(format!("its imports do not match: {e:#}"));
            return Ok(report);
        }
    };
    let wasi = wasmtime_wasi::WasiCtxBuilder::new().build();
    // Instantiation and `init` of a component under check get a deadline of their own.
    let mut store = super::new_store(
        &engine,
        State::new(wasi, "check".into(), Namespace::in_memory(), 256 << 20),
        std::time::Instant::now() + CHECK_DEADLINE,
    );
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(i) => i,
        Err(e) => {
            report
                .problems
                .push(format!("it cannot be instantiated: {e:#}"));
            return Ok(report);
        }
    };
    let mut typed = |what: &str, r: wasmtime::Result<()>| {
        if let Err(e) = r {
            report
                .problems
                .push(format!("its `{what}` export has the wrong types: {e:#}"));
        }
    };
    let life = lifecycle::GuestIndices::new(&pre).and_then(|i| i.load(&mut store, &instance));
    let e = report.exports;
    if e.http {
        typed(
            "http",
            http::GuestIndices::new(&pre)
                .and_then(|i| i.load(&mut store, &instance))
                .map(|_| ()),
        );
    }
    if e.ssh {
        typed(
            "ssh",
            ssh::GuestIndices::new(&pre)
                .and_then(|i| i.load(&mut store, &instance))
                .map(|_| ()),
        );
    }
    if e.password {
        typed(
            "password",
            password::GuestIndices::new(&pre)
                .and_then(|i| i.load(&mut store, &instance))
                .map(|_| ()),
        );
    }
    if e.session {
        typed(
            "session",
            session::GuestIndices::new(&pre)
                .and_then(|i| i.load(&mut store, &instance))
                .map(|_| ()),
        );
    }
    match life {
        Err(err) => typed("lifecycle", Err(err)),
        Ok(life) => {
            let init = life.call_init(&mut store, &Vec::new()).await;
            report.init_without_settings = Some(match init {
                Ok(r) => r,
                Err(err) => Err(format!("trapped: {err:#}")),
            });
        }
    }
    Ok(report)
}
